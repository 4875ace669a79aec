"""The explain service: why one item scored as it did for a query or a known listener.

Four views, all computed on the score the recommend service ranked that item by:
  a. exact Shapley values over the modalities and the named score terms as players (shap's KernelExplainer
     over all 2^(M+T) coalitions; a missing modality is masked through the model, so the gates renormalise
     over the others). The term of a content query is the popularity prior, w · prior_i (core.serving.prior): it adds
     to the score whatever else is present, so its Shapley value is exactly that term and the modalities'
     values are the same as without it. An upload query also has "items like your upload" as a term, and
     each uploaded modality's similarity to the upload inside that modality's value (core.serving.similarity).
     A known listener has no such term: the learned bias stays in the base;
  b. SHAP over the item's named descriptor features (colours, light, edges, texture; timbre, pitch,
     spectrum, rhythm, loudness) with shap's Partition explainer over the hierarchy modality → group →
     feature, and over the words of the item's text (re-encoded with the text encoder);
  c. the gate's modality weights for the item;
  d. a deletion check: the item's score and rank once its top-attributed modality is removed.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.errors import MissingModalityError, QueryError
from core.serving.service import EncodedQuery, Query, RecommendService, single_threaded

log = logging.getLogger(__name__)

FEATURE_COLUMNS = ["modality", "field", "group", "feature", "value", "shap"]
TOKEN_COLUMNS = ["token", "shap"]


@dataclass
class ExplainConfig:
    """Budgets of the feature- and word-level explainers."""

    feature_evals: int = 1000  # Partition explainer evaluations over named features (one batched pass each)
    token_evals: int = 120  # Partition explainer evaluations over words; each re-encodes a text variant
    max_words: int = 80  # longer texts are explained over their first max_words words
    text_batch: int = 64  # text variants encoded per encoder call


@dataclass
class DeletionCheck:
    """The item's score and rank before and after its top-attributed modality is removed from it."""

    modality: str
    score_before: float
    score_after: float
    rank_before: int  # 1-based, among the items the query may recommend
    rank_after: int

    @property
    def score_drop(self) -> float:
        return self.score_before - self.score_after


@dataclass
class Explanation:
    """Everything the Explain page draws about one (query or listener, item) score."""

    item_id: str
    score: float  # the item's score as ranked, all modalities present
    base_value: float  # v(∅): every modality masked and no term (id embedding; a known listener's bias)
    modality_shapley: dict[str, float]  # exact; with `terms` sums to score − base_value
    modality_weights: dict[str, float]  # the gate's weights for this item
    feature_shap: pd.DataFrame  # modality, field, group, feature, value (standardised), shap
    token_shap: pd.DataFrame  # token, shap — words of the item's text in order
    deletion: DeletionCheck | None
    notes: list[str] = field(default_factory=list)  # what could not be explained, and why
    timings_ms: dict[str, float] = field(default_factory=dict)
    history: float = 0.0  # listening history: base_value − offset, the ids', the graph's and the collaborative term
    offset: float = 0.0  # the item's own offset (a known listener's learned bias, else 0):
    # offset + history + Σ modality_shapley + Σ terms = score

    def shapley_with_history(self) -> dict[str, float]:
        """Shapley values of the modalities and of the listening history (one more additive player):
        with the named terms they sum to score − offset."""
        return {"history": self.history, **self.modality_shapley}
    terms: dict[str, float] = field(default_factory=dict)  # Shapley values of the named terms, e.g. the prior
    term_labels: dict[str, str] = field(default_factory=dict)  # e.g. {"prior": "popularity prior × 0.20"}
    item_offset: str = ""  # which item offset applies (popularity prior or the learned bias), in words
    similarity: dict[str, float] = field(default_factory=dict)  # per uploaded modality: the similarity to the
    # upload, λ · sim_m(item), included in modality_shapley[m] (core.serving.similarity)
    similarity_weight: float | None = None  # λ; None when the query is no upload


def _feature_groups(service: RecommendService, field_name: str, names: list[str]) -> dict[str, list[str]]:
    """The named groups of a descriptor field: from its encoder when it has them, else one group."""
    encoder = service.encoders.get(field_name)
    groups = getattr(encoder, "feature_groups", None)
    if not groups:
        from core.encoders import audio, image_descriptor

        groups = next((g for g in (image_descriptor.FEATURE_GROUPS, audio.FEATURE_GROUPS)
                       if [f for fs in g.values() for f in fs] == list(names)), None)
    if not groups or sorted(f for fs in groups.values() for f in fs) != sorted(names):
        return {field_name: list(names)}  # names that no known grouping covers: one group
    return {g: list(fs) for g, fs in groups.items()}


def hierarchy_linkage(blocks: list[list[int]]) -> np.ndarray:
    """A scipy-style linkage matrix whose subtrees are `blocks` (lists of leaf indices), each merged as a
    balanced binary tree, then the blocks merged the same way (for shap's Partition masker)."""
    n_leaves = sum(len(b) for b in blocks)
    rows: list[list[float]] = []
    next_id = n_leaves

    def merge(nodes: list[int], sizes: list[int]) -> tuple[int, int]:
        nonlocal next_id
        while len(nodes) > 1:
            merged, merged_sizes = [], []
            for i in range(0, len(nodes) - 1, 2):
                rows.append([nodes[i], nodes[i + 1], float(len(rows) + 1), sizes[i] + sizes[i + 1]])
                merged.append(next_id)
                merged_sizes.append(sizes[i] + sizes[i + 1])
                next_id += 1
            if len(nodes) % 2:
                merged.append(nodes[-1])
                merged_sizes.append(sizes[-1])
            nodes, sizes = merged, merged_sizes
        return nodes[0], sizes[0]

    tops = [merge(list(b), [1] * len(b)) for b in blocks if b]
    merge([t[0] for t in tops], [t[1] for t in tops])
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


class ExplainService:
    """Explains scores of a RecommendService's model with shap."""

    def __init__(self, service: RecommendService, config: ExplainConfig | None = None) -> None:
        self.service = service
        self.config = config or ExplainConfig()
        self.modalities = list(service.modalities)

    # -- subjects -----------------------------------------------------------------------------------
    def _encoded(self, subject: EncodedQuery | Query | str) -> EncodedQuery:
        if isinstance(subject, EncodedQuery):
            return subject
        if isinstance(subject, Query):
            return self.service.encode_query(subject)
        if isinstance(subject, str):
            return self.service.encode_query(Query(user_id=subject))
        raise QueryError(f"cannot explain for a {type(subject).__name__}; pass an encoded query, a Query or a "
                         "listener id")

    def _row(self, item_id: str) -> int:
        try:
            return self.service.catalog.index_of(item_id)
        except KeyError as e:
            raise QueryError(f"item {item_id!r} is not in catalog {self.service.catalog.name!r}; pick an item "
                             "from the recommendations") from e

    # -- a. modality Shapley values -------------------------------------------------------------------
    def modality_shapley(self, vector: np.ndarray, row: int, terms: dict[str, float] | None = None,
                         shift: float = 0.0, modality_extra: dict[str, float] | None = None
                         ) -> tuple[dict[str, float], float, float]:
        """(Shapley value per player, base value v(∅), full score v(all)), exact.

        Players are the modalities, then the named `terms` (each adds its value when present); `shift` is
        added to every coalition (e.g. the learned bias taken out of a content query's score);
        `modality_extra[m]` is added whenever modality m is present (the similarity to the upload). shap's
        KernelExplainer with all 2^n coalitions enumerated solves the Shapley regression exactly (and, unlike
        shap's Exact explainer, compiles nothing on first use: that took 30 s on a busy machine).
        """
        import shap

        modalities = self.modalities
        terms = dict(terms or {})
        extra = dict(modality_extra or {})
        players = [*modalities, *terms]
        rows = np.array([row])

        def value(coalitions: np.ndarray) -> np.ndarray:
            # each row of `coalitions` is a 0/1 vector over the players: 1 = present
            out = np.empty(len(coalitions))
            for i, c in enumerate(np.asarray(coalitions) > 0.5):
                keep = [m for m, on in zip(modalities, c) if on]
                added = sum(v for (_, v), on in zip(terms.items(), c[len(modalities):]) if on)
                added += sum(extra.get(m, 0.0) for m in keep)
                out[i] = self.service.scores(vector, rows, keep=keep)[0] + shift + added
            return out

        # one all-absent background row: masking a player = replacing its 1 by 0 = the player is absent
        explainer = shap.KernelExplainer(value, np.zeros((1, len(players))))
        values = explainer.shap_values(np.ones((1, len(players))), nsamples=2 ** len(players),
                                       l1_reg=False, silent=True)
        phi = {m: float(v) for m, v in zip(players, np.ravel(values))}
        base = float(np.ravel(explainer.expected_value)[0])
        return phi, base, base + float(sum(phi.values()))

    # -- b. named features --------------------------------------------------------------------------
    def _named_fields(self, row: int) -> list[str]:
        emb = self.service.embeddings
        return [f for f in emb.fields if emb.feature_names.get(f) and emb.masks[f][row]
                and emb.modality_of[f] in self.modalities]

    def feature_shap(self, vector: np.ndarray, row: int) -> pd.DataFrame:
        """SHAP of the item's named descriptor features: a masked feature takes the catalog mean (0 after
        standardisation) and the field is re-normalised before the model projects it."""
        import shap

        emb = self.service.embeddings
        fields = self._named_fields(row)
        if not fields:
            return pd.DataFrame(columns=FEATURE_COLUMNS)
        leaves: list[tuple[str, str, str, int]] = []  # (field, group, feature, column in the field)
        blocks: list[list[int]] = []
        for f in fields:
            names = list(emb.feature_names[f])
            for group, members in _feature_groups(self.service, f, names).items():
                start = len(leaves)
                leaves += [(f, group, name, names.index(name)) for name in members]
                blocks.append(list(range(start, len(leaves))))
        x = {f: emb.matrices[f][row].astype(np.float32) for f in fields}  # (D_f,) standardised + L2
        # for each field: which leaves it owns and which of its columns they are
        owned = {f: (np.array([j for j, leaf in enumerate(leaves) if leaf[0] == f]),
                     np.array([leaf[3] for leaf in leaves if leaf[0] == f])) for f in fields}

        def value(masks: np.ndarray) -> np.ndarray:
            masks = np.asarray(masks) > 0.5  # (n, L): True = the feature keeps the item's value
            variants = {}
            for f in fields:
                keep = np.ones((len(masks), len(x[f])), bool)
                keep[:, owned[f][1]] = masks[:, owned[f][0]]
                v = np.where(keep, x[f][None, :], 0.0).astype(np.float32)  # masked = catalog mean = 0
                norms = np.linalg.norm(v, axis=1, keepdims=True)
                variants[f] = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
            return self.service.score_item_variants(vector, row, variants)

        masker = shap.maskers.Partition(np.zeros((1, len(leaves))), clustering=hierarchy_linkage(blocks))
        explainer = shap.explainers.Partition(value, masker)
        result = explainer(np.ones((1, len(leaves))), max_evals=self.config.feature_evals, silent=True)
        frame = pd.DataFrame({
            "modality": [emb.modality_of[f] for f, _, _, _ in leaves],
            "field": [f for f, _, _, _ in leaves],
            "group": [g for _, g, _, _ in leaves],
            "feature": [name for _, _, name, _ in leaves],
            "value": [float(x[f][col]) for f, _, _, col in leaves],
            "shap": result.values[0].astype(float),
        })
        return frame

    # -- b. words of the item's text -------------------------------------------------------------------
    def token_shap(self, vector: np.ndarray, row: int, notes: list[str]) -> pd.DataFrame:
        """SHAP over the words of the item's text: masked words are dropped and the text re-encoded."""
        import shap

        service = self.service
        text = (service.catalog.items[row].text or "").strip()
        fields = service.embeddings.fields_of("text") if "text" in self.modalities else []
        if not text or not fields or not service.embeddings.masks[fields[0]][row]:
            return pd.DataFrame(columns=TOKEN_COLUMNS)
        problem = "the text modality has several fields" if len(fields) != 1 else service.encoder_problem(fields[0])
        if problem:
            notes.append(f"No word attributions: {problem}.")
            return pd.DataFrame(columns=TOKEN_COLUMNS)
        text_field = fields[0]
        encoder = service.encoders[text_field]
        words = text.split()
        if len(words) > self.config.max_words:
            text = " ".join(words[:self.config.max_words])
            notes.append(f"Word attributions cover the first {self.config.max_words} words of the text.")

        def value(texts: Any) -> np.ndarray:
            texts = [str(t).strip() for t in np.ravel(texts)]
            out = np.zeros((len(texts), service.embeddings.matrices[text_field].shape[1]), np.float32)
            nonempty = [i for i, t in enumerate(texts) if t]
            for s in range(0, len(nonempty), self.config.text_batch):
                chunk = nonempty[s:s + self.config.text_batch]
                out[chunk] = encoder.encode([texts[i] for i in chunk])
            return service.score_item_variants(vector, row, {text_field: out})

        if len(re.findall(r"\w+", text)) < 2:  # one word: its exact Shapley value is f(text) − f(no text)
            scores = value([text, ""])
            return pd.DataFrame({"token": [text], "shap": [float(scores[0] - scores[1])]})
        # words split on non-word characters; a masked word is replaced by a space (dropped)
        masker = shap.maskers.Text(r"\W+", mask_token=" ", collapse_mask_token=True)
        explainer = shap.explainers.Partition(value, masker)
        result = explainer([text], max_evals=self.config.token_evals, silent=True)
        tokens = [str(t).strip() for t in result.data[0]]
        return pd.DataFrame({"token": tokens, "shap": result.values[0].astype(float)})

    # -- d. deletion ----------------------------------------------------------------------------------
    def deletion_check(self, encoded: EncodedQuery, row: int, modality: str,
                       prior_weight: float | None = None, similarity_weight: float | None = None,
                       like_weight: float | None = None) -> DeletionCheck:
        """Score and rank of the item with and without `modality` (other items keep all theirs; removing a
        modality also removes its similarity to the upload)."""
        full = [m for m in self.modalities]
        without = [m for m in self.modalities if m != modality]
        a, w = self.service.offset_coefficients(encoded, prior_weight)
        sim = self.service.similarity_parts(encoded, similarity_weight=similarity_weight)
        sim = sim if sim.any() else None
        extra = self.service.extra_parts(encoded, self.service.score_terms(encoded, prior_weight, like_weight))
        before, rank_before = self.service.rank_of(encoded.vector, row, encoded.exclude_rows, keep=full,
                                                   bias_coef=a, prior_coef=w, similarity=sim, extra=extra)
        after, rank_after = self.service.rank_of(encoded.vector, row, encoded.exclude_rows, keep=without,
                                                 bias_coef=a, prior_coef=w, similarity=sim, extra=extra)
        return DeletionCheck(modality, before, after, rank_before, rank_after)

    # -- all together -----------------------------------------------------------------------------
    def explain(self, subject: EncodedQuery | Query | str, item_id: str, features: bool = True,
                tokens: bool = True, prior_weight: float | None = None,
                similarity_weight: float | None = None, like_weight: float | None = None) -> Explanation:
        """The explanation of one item's score for an encoded query, a Query or a listener id, with the
        popularity prior at `prior_weight`, the similarity to the upload at `similarity_weight` and "items
        like your upload" at `like_weight` (the service's defaults when None) for content queries."""
        encoded = self._encoded(subject)
        row = self._row(item_id)
        with single_threaded():
            return self._explain(encoded, row, features, tokens, prior_weight, similarity_weight, like_weight)

    def _explain(self, encoded: EncodedQuery, row: int, features: bool, tokens: bool,
                 prior_weight: float | None = None, similarity_weight: float | None = None,
                 like_weight: float | None = None) -> Explanation:
        timings: dict[str, float] = {}
        notes: list[str] = []
        item_id = self.service.catalog.items[row].id
        t = time.perf_counter()
        a, _ = self.service.offset_coefficients(encoded, prior_weight)
        score_terms = self.service.score_terms(encoded, prior_weight, like_weight)
        term_values = {term.name: float(term.part(np.array([row]))[0]) for term in score_terms}
        shift = float(self.service.shift(a, 0.0, np.array([row]))[0])  # the learned bias out, if it goes
        history = self.service.history_part(encoded)  # a known listener's collaborative term joins the base
        if history is not None:
            shift += float(history[row])
        lam = self.service.similarity_coefficient(encoded, similarity_weight)
        sim_row = self.service.similarity_parts(encoded, np.array([row]), similarity_weight=similarity_weight)[0]
        similarity = {m: float(sim_row[i]) for i, m in enumerate(self.modalities) if lam and m in encoded.modalities}
        values, base, score = self.modality_shapley(encoded.vector, row, term_values, shift, similarity)
        phi = {m: values[m] for m in self.modalities}
        terms = {name: values[name] for name in term_values}
        timings["modality_shapley"] = (time.perf_counter() - t) * 1e3
        weights = self.service.item_weights(np.array([row]))[0]
        present = [m for m, p in zip(self.modalities, self.service.present[row]) if p]
        deletion = None
        if present:
            top = max(present, key=lambda m: phi[m])
            t = time.perf_counter()
            deletion = self.deletion_check(encoded, row, top, prior_weight, similarity_weight, like_weight)
            timings["deletion"] = (time.perf_counter() - t) * 1e3
        else:
            notes.append("The item has no modality at all: its score is its id embedding and bias alone.")
        feature_frame = pd.DataFrame(columns=FEATURE_COLUMNS)
        token_frame = pd.DataFrame(columns=TOKEN_COLUMNS)
        try:
            if features:
                t = time.perf_counter()
                feature_frame = self.feature_shap(encoded.vector, row)
                timings["feature_shap"] = (time.perf_counter() - t) * 1e3
            if tokens:
                t = time.perf_counter()
                token_frame = self.token_shap(encoded.vector, row, notes)
                timings["token_shap"] = (time.perf_counter() - t) * 1e3
        except MissingModalityError as e:
            notes.append(str(e))
        offset = a * float(self.service.bias[row])  # a known listener's learned bias; 0 for content queries
        return Explanation(item_id=item_id, score=score, base_value=base, modality_shapley=phi,
                           modality_weights={m: float(w) for m, w in zip(self.modalities, weights)},
                           feature_shap=feature_frame, token_shap=token_frame, deletion=deletion, notes=notes,
                           timings_ms=timings, history=base - offset, offset=offset, terms=terms,
                           term_labels={t.name: f"{t.label} × {t.weight:.2f}" for t in score_terms},
                           item_offset=self.service.item_offset_label(encoded, prior_weight),
                           similarity=similarity,
                           similarity_weight=lam if encoded.similarity is not None
                           and not encoded.known_listener else None)

    @staticmethod
    def warm_up() -> None:
        """Run the Partition explainer once on a toy game: shap compiles its numba kernels on first use
        (7 s on an idle machine, 25 s on a busy one), which would otherwise land on the first feature
        explanation a user asks for. Call it from a background thread at start-up."""
        import shap

        def game(x: Any) -> np.ndarray:
            return np.asarray(x, dtype=np.float64).sum(axis=1)

        part = shap.maskers.Partition(np.zeros((1, 3)), clustering=hierarchy_linkage([[0, 1], [2]]))
        shap.explainers.Partition(game, part)(np.ones((1, 3)), max_evals=20, silent=True)
