"""The recommend service: a query (text, images, audio, liked/disliked items, a known listener) → one query
vector from the catalog's own encoders and the fusion model → the top K items, with per-item modality
weights and per-modality score contributions. Plain dataclasses in and out.

Score contributions are the exact Shapley values of the modalities for each recommended item: the item's
score with only a subset S of modalities present, v(S), enumerated over all 2^M subsets. They add up to
score − v(∅), where v(∅) (every modality masked) is what is left of the score without content: the item's
id embedding and its bias. The explain service computes the same numbers with the `shap` library.

Which item offset applies depends on who asks (core.serving.prior): a known listener keeps the model's learned item
bias (inside the base); any other query (uploads, liked items) has the learned bias taken out and the
popularity prior, weight × prior_i, added as its own named term. In general a query's score is
q · v_i + a · bias_i + w · prior_i with (a, w) = (1, 0) for a known listener and (0, prior weight) otherwise.
An upload query also adds, per uploaded modality m, the similarity to the upload λ · ω_m · sim_m(i)
(core.serving.similarity: raw-encoder cosine in m's fields, 0 for items lacking m), which is part of modality m's
contribution: it is present exactly when m is, so the Shapley values stay exact. It also adds the named
term "items like your upload", μ · like_i (core.serving.similarity), its own Shapley player like the prior.
The part of v(∅) above the item's bias is the listening-history term: what the id embeddings, propagated
over the interaction graph, give the score, plus for a known listener the model's collaborative term (EASE,
ALS and ItemKNN on the training interactions, core.models.collaborative), which depends on no modality.
Item vectors are affine in the fused content with the id part added (and propagation is linear), so this
term is the same whichever modalities are present: it is its own additive player, its Shapley value is
exactly itself, and the modalities' values do not change. So
offset + history + Σ contributions = score.

The service is a thin orchestrator over parts with one job each: `encoding` (queries into model space),
`scoring` (item scores, single-modality parts, coalitions), `terms` (the named terms and item offsets),
`ranking` (top-k through the index, exact re-ranks, what-if order), `shapley` (exact Shapley values),
`index_tuning` (sample queries and candidate counts chosen with an approximate index), `listeners` (the
model's known listeners) and `settings` (ServingSettings, saved beside the index).
"""
from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from core.catalog.model import Catalog
from core.encoders.embeddings import EmbeddingSet
from core.errors import CatalogError, QueryError
from core.serving import index_tuning
from core.serving.encoding import QueryEncoder
from core.serving.index import (ExactIndex, HNSWConfig, IVFConfig, SampleQueries, VectorIndex, ensure_index,
                                resolve_kind, saved_settings)
from core.serving.listeners import Listeners
from core.serving.prior import DEFAULT_PRIOR_WEIGHT, PRIOR, PRIOR_MAX, popularity_counts, popularity_prior
from core.serving.query import EncodedQuery, Query, Upload, apply_feedback
from core.serving.ranking import Ranker
from core.serving.results import Recommendation, RecommendationResult
from core.serving.scoring import ItemScorer
from core.serving.settings import ServingSettings, ranking_card
from core.serving.shapley import coalition_subsets, shapley_from_coalitions, shapley_matrix
from core.serving.similarity import (DEFAULT_CLOSEST_WEIGHT, DEFAULT_LIKE_WEIGHT, DEFAULT_SIMILARITY_WEIGHT, LIKE_MAX,
                                     SIMILARITY_MAX)
from core.serving.terms import QueryTerms
from core.serving.threads import single_threaded

# the service's public surface keeps these names (pages, explain, evaluation and benchmarks import them here)
__all__ = ["EncodedQuery", "Query", "Recommendation", "RecommendationResult", "RecommendService", "ServingSettings",
           "TERM_WEIGHTS", "Upload", "apply_feedback", "coalition_subsets", "shapley_from_coalitions",
           "shapley_matrix", "single_threaded"]

# A query's named-term weights a caller may set: (default, largest accepted), as the service checks them.
TERM_WEIGHTS = {"prior": (DEFAULT_PRIOR_WEIGHT, PRIOR_MAX), "similarity": (DEFAULT_SIMILARITY_WEIGHT, SIMILARITY_MAX),
                "like": (DEFAULT_LIKE_WEIGHT, LIKE_MAX)}


def _part(part: str, name: str) -> property:
    """The service's attribute `name`, held by its part `part` (read and written there): callers keep one
    surface while each part owns its state."""
    return property(lambda self: getattr(getattr(self, part), name),
                    lambda self, value: setattr(getattr(self, part), name, value),
                    doc=f"{name} of the service's {part}.")


class RecommendService:
    """Turns queries into ranked items with one catalog's embeddings, fusion model and encoders.

    `index`: "auto" (exact below settings.auto_exact_below items, else settings.auto_ann), "exact", "ivf",
    "hnsw", or a prebuilt VectorIndex over `index_vectors()`: the model's item vectors with the bias and the
    popularity prior appended. An approximate index is loaded from `index_dir` (or built and saved there)
    with the what-if candidate count chosen for it and the serving settings it was built under.
    `settings`: the serving settings (default: those saved with the index in `index_dir`, else the defaults).
    `prior_weight`: the popularity prior's weight for queries that are not a known listener;
    `similarity_weight`: λ of the similarity to the upload of such queries, `like_weight`: μ of their
    "items like your upload" term (core.serving.similarity).
    """

    def __init__(self, catalog: Catalog, embeddings: EmbeddingSet, model: Any, encoders: dict[str, Any] | None,
                 index: str | VectorIndex = "auto", data: Any = None, hnsw: HNSWConfig | None = None,
                 index_dir: Path | None = None, prior_weight: float = DEFAULT_PRIOR_WEIGHT,
                 similarity_weight: float = DEFAULT_SIMILARITY_WEIGHT,
                 like_weight: float = DEFAULT_LIKE_WEIGHT, closest_weight: float = DEFAULT_CLOSEST_WEIGHT,
                 settings: ServingSettings | None = None) -> None:
        if list(embeddings.item_ids) != catalog.item_ids:
            raise CatalogError(f"the embedding set does not match catalog {catalog.name!r} item for item; "
                               "re-encode the catalog (Catalog page or `python -m core encode`)")
        self.catalog = catalog
        self.embeddings = embeddings
        self.model = model
        self.encoders = dict(encoders or {})
        self.modalities: list[str] = list(model.modalities)
        self.n_items = len(catalog.items)
        self._settings = settings or saved_settings(index_dir) or ServingSettings()
        self.listeners = Listeners(catalog, embeddings, model, data)
        # (I,) popularity prior in [0, 1] from the training listeners per item (see core.serving.prior)
        counts = popularity_counts(model, None, self.n_items)
        prior = popularity_prior(counts if counts.any() else
                                 popularity_counts(None, self.listeners.train_matrix(), self.n_items))
        self.scorer = ItemScorer(model, embeddings, self.n_items, prior, self._settings)
        self.terms = QueryTerms(self.scorer, model, prior_weight, similarity_weight, like_weight, closest_weight)
        self.encoder = QueryEncoder(catalog, embeddings, model, self.encoders, self.listeners, self.scorer)
        augmented = self.index_vectors()  # (I, dim + 2)
        if isinstance(index, str):  # an approximate index is loaded from (or built and saved to) index_dir
            config = hnsw
            if resolve_kind(index, self.n_items, self.settings) == "ivf":  # cells from the item vectors only
                config = IVFConfig(cell_columns=self.dim, sample_tails=((0.0, self.prior_weight),))
            built = ensure_index(index_dir, augmented, index, config, queries=self.index_sample_queries,
                                 settings=self.settings)
        else:
            built = index
        self.ranker = Ranker(self.scorer, built, built if isinstance(built, ExactIndex) else ExactIndex(augmented),
                             self.settings)
        # the candidate counts saved with the index, else chosen now (and saved with an index this service keeps)
        index_tuning.keep_candidate_counts(self, index_dir if isinstance(index, str) else None)

    @property
    def settings(self) -> ServingSettings:
        """The serving settings (ServingSettings); setting them hands them to every part."""
        return self._settings

    @settings.setter
    def settings(self, value: ServingSettings) -> None:
        self._settings = self.scorer.settings = self.ranker.settings = value

    # -- one surface over the parts -------------------------------------------------------------------------
    user_ids = _part("listeners", "user_ids")
    data = _part("listeners", "data")
    user_row = _part("listeners", "user_row")
    training_rows = _part("listeners", "training_rows")
    rows_of = _part("encoder", "rows_of")
    encoder_problem = _part("encoder", "encoder_problem")
    encode_query = _part("encoder", "encode_query")
    encode_fields = _part("encoder", "encode_fields")
    present = _part("scorer", "present")
    item_vectors = _part("scorer", "item_vectors")
    dim = _part("scorer", "dim")
    bias = _part("scorer", "bias")
    prior = _part("scorer", "prior")
    linear = _part("scorer", "linear")
    weights_linear = _part("scorer", "weights_linear")
    unit_item_vectors = _part("scorer", "unit_item_vectors")
    index_vectors = _part("scorer", "index_vectors")
    modality_mask = _part("scorer", "modality_mask")
    scores = _part("scorer", "scores")
    modality_parts = _part("scorer", "modality_parts")
    row_parts = _part("scorer", "row_parts")
    coalition_scores = _part("scorer", "coalition_scores")
    coalition_values = _part("scorer", "coalition_values")
    item_weights = _part("scorer", "item_weights")
    shift = _part("scorer", "shift")
    carries = _part("scorer", "carries")
    score_item_variants = _part("scorer", "score_item_variants")
    prior_weight = _part("terms", "prior_weight")
    similarity_weight = _part("terms", "similarity_weight")
    like_weight = _part("terms", "like_weight")
    closest_weight = _part("terms", "closest_weight")
    offset_coefficients = _part("terms", "offset_coefficients")
    score_terms = _part("terms", "score_terms")
    term_extra = _part("terms", "term_extra")
    history_part = _part("terms", "history_part")
    extra_parts = _part("terms", "extra_parts")
    item_offset_label = _part("terms", "item_offset_label")
    similarity_coefficient = _part("terms", "similarity_coefficient")
    similarity_parts = _part("terms", "similarity_parts")
    index = _part("ranker", "index")
    exact_index = _part("ranker", "exact_index")
    whatif_candidates = _part("ranker", "whatif_candidates")
    term_candidates = _part("ranker", "term_candidates")
    top_rows = _part("ranker", "top_rows")
    whatif_order = _part("ranker", "whatif_order")

    # -- chosen with an approximate index (core.serving.index_tuning) ---------------------------------------
    def index_sample_queries(self) -> dict[str, SampleQueries]:
        """The named sample query sets the index tunes its search width on (index_tuning)."""
        return index_tuning.index_sample_queries(self)

    def tune_whatif_candidates(self) -> int:
        """The what-if candidate count chosen by recall on sample queries (index_tuning)."""
        return index_tuning.tune_whatif_candidates(self)

    def upload_samples(self, n: int | None = None, seed: int = 11) -> list[EncodedQuery]:
        """Encoded sample uploads the upload candidate count is chosen on (index_tuning)."""
        return index_tuning.upload_samples(self, n, seed)

    def tune_term_candidates(self) -> int:
        """The upload candidate count chosen by recall on sample uploads (index_tuning)."""
        return index_tuning.tune_term_candidates(self)

    # -- ranking -------------------------------------------------------------------------------------------
    def recommend(self, query: Query | EncodedQuery, k: int = 10, modality_weights: dict[str, float] | None = None,
                  exclude: Collection[str] = (), previous: RecommendationResult | None = None,
                  prior_weight: float | None = None, encoded_now: bool = False,
                  similarity_weight: float | None = None, like_weight: float | None = None) -> RecommendationResult:
        """The top `k` distinct items for the query, with weights, contributions, terms and rank changes.

        `prior_weight` overrides the service's popularity prior weight (content queries only);
        `similarity_weight` overrides λ of the similarity to the upload (upload queries only), whose parts
        are added to their modalities' contributions, and `like_weight` μ of "items like your upload";
        `encoded_now`: the EncodedQuery was encoded for this result, so its encoding time is counted.
        """
        encoded = query if isinstance(query, EncodedQuery) else self.encode_query(query)
        fresh = encoded_now or not isinstance(query, EncodedQuery)
        encode_ms = encoded.encode_ms if fresh else 0.0
        if modality_weights is not None:
            modality_weights = {m: float(modality_weights.get(m, 0.0)) for m in self.modalities}
            if sum(max(v, 0.0) for v in modality_weights.values()) <= 0:
                raise QueryError("every what-if modality weight is zero; give at least one modality weight > 0")
        start = time.perf_counter()
        excluded = set(encoded.exclude_rows) | set(self.rows_of(exclude)[0])
        bias_coef, prior_coef = self.offset_coefficients(encoded, prior_weight)
        terms = self.score_terms(encoded, prior_weight, like_weight, modality_weights)
        lam = self.similarity_coefficient(encoded, similarity_weight)
        beside = [t for t in terms if t.name != PRIOR and t.weight != 0]  # terms the index does not carry
        history = self.history_part(encoded)  # (I,) a known listener's collaborative term, or None

        def extra_at(at: np.ndarray | None) -> np.ndarray:
            """(n,) those terms and the similarity parts for the rows `at` (every item when None)."""
            total = np.zeros(self.n_items if at is None else len(at))
            if lam:
                total += self.similarity_parts(encoded, at, modality_weights, similarity_weight).sum(axis=1)
            for t in beside:
                total += t.part(at)
            if history is not None:
                total += history if at is None else history[at]
            return total

        with single_threaded():
            rows, kind = self.top_rows(encoded.vector, k, excluded, modality_weights, bias_coef, prior_coef,
                                       extra=extra_at if lam or beside or history is not None else None)
            coalitions = self.coalition_values(encoded.vector, rows, modality_weights)  # (2^M, k)
            weights = self.item_weights(rows, modality_weights)
        shapley = shapley_matrix(tuple(self.modalities)) @ coalitions  # (M, k)
        shift = self.shift(bias_coef, prior_coef, rows) + sum((t.part(rows) for t in beside), np.zeros(len(rows)))
        if history is not None:
            shift = shift + history[rows]
        parts = {t.name: t.part(rows) for t in terms}  # each term is its own Shapley value: it is additive
        # (k, M): each modality's similarity part joins its Shapley value
        similar = self.similarity_parts(encoded, rows, modality_weights, similarity_weight)
        full = coalitions[-1] + shift + similar.sum(axis=1)  # every modality present
        base = coalitions[0] + shift - sum(parts.values(), np.zeros(len(rows)))  # none
        weighted = [m for m in self.modalities if modality_weights and modality_weights.get(m, 0.0) > 0]
        lacking = ~self.carries(modality_weights, rows) if modality_weights is not None else np.zeros(len(rows), bool)
        # re-sort by the exact scores (HNSW scores are close); what-if: items lacking the weighted ones last
        order = np.lexsort((rows, -full, lacking))
        prev_ranks = {r.item_id: r.rank for r in previous.items} if previous is not None else {}
        # plain Python numbers per card, converted once per array (float(x[j]) per cell costs more than it adds)
        modalities = self.modalities
        offsets = (bias_coef * self.bias[rows].astype(np.float64)).tolist()
        card_weights, card_similar = weights.tolist(), similar.tolist()
        card_shares = (shapley.T + similar).tolist()  # (k, M)
        card_full, card_base = full.tolist(), base.tolist()
        card_terms = {name: np.asarray(v, np.float64).tolist() for name, v in parts.items()}
        card_present = self.present[rows].tolist()
        shown_similarity = [i for i, m in enumerate(modalities) if lam and m in encoded.modalities]
        weighted_at = [(modalities.index(m), m) for m in weighted]
        items = []
        for rank, j in enumerate(order.tolist(), start=1):
            item = self.catalog.items[int(rows[j])]
            items.append(Recommendation(
                item_id=item.id, title=item.title, rank=rank, score=card_full[j],
                modality_weights=dict(zip(modalities, card_weights[j])),
                contributions=dict(zip(modalities, card_shares[j])),
                previous_rank=prev_ranks.get(item.id), base=card_base[j],
                history=card_base[j] - offsets[j], offset=offsets[j],
                terms={name: v[j] for name, v in card_terms.items()},
                lacks=[m for i, m in weighted_at if not card_present[j][i]],
                similarity={modalities[i]: card_similar[j][i] for i in shown_similarity}))
        notes = []
        if lacking.any():
            names = " or ".join(m for m in weighted)
            notes.append(f"{int(lacking.sum())} of these {len(rows)} items carry no {names}: only "
                         f"{int(self.carries(modality_weights).sum())} items of the catalog do. They come after "
                         f"every item that does, marked “no {names}”.")
        rank_ms = (time.perf_counter() - start) * 1e3
        used = {f: self.embeddings.encoder_ids[f] for f in self.embeddings.fields}
        return RecommendationResult(items=items, latency_ms=encode_ms + rank_ms, encode_ms=encode_ms,
                                    rank_ms=rank_ms, query_modalities=list(encoded.modalities),
                                    warnings=list(encoded.warnings), encoder_ids=used, index_kind=kind,
                                    encoding="encoded" if fresh else "reused",
                                    prior_weight=None if encoded.known_listener else prior_coef,
                                    item_offset=self.item_offset_label(encoded, prior_weight), notes=notes,
                                    similarity_weight=lam if encoded.similarity is not None
                                    and not encoded.known_listener else None,
                                    protocol=ranking_card(kind, self.n_items, self.settings, self.whatif_candidates,
                                                          self.term_candidates))

    def rank_of(self, vector: np.ndarray, row: int, exclude: Collection[int] = (),
                keep: Collection[str] | None = None, bias_coef: float = 1.0,
                prior_coef: float = 0.0, similarity: np.ndarray | None = None,
                extra: np.ndarray | None = None) -> tuple[float, int]:
        """(score, 1-based rank) of item `row` with only the `keep` modalities present in IT, against every
        other non-excluded item with all of its modalities (scores q · v + a · bias + w · prior, plus the
        (I, M) `similarity` parts of the modalities present and the (I,) `extra` terms)."""
        shift = self.shift(bias_coef, prior_coef)
        if extra is not None:
            shift = shift + extra
        if similarity is not None:
            shift = shift + similarity.sum(axis=1)
        scores = self.scores(vector) + shift
        if keep is not None:
            own_shift = shift[row] - (0.0 if similarity is None else
                                      sum(similarity[row, i] for i, m in enumerate(self.modalities) if m not in keep))
            own = float(self.scores(vector, np.array([row]), keep=keep)[0] + own_shift)
        else:
            own = float(scores[row])
        others = np.ones(self.n_items, bool)
        if exclude:
            others[np.fromiter(exclude, dtype=np.int64, count=len(exclude))] = False
        others[row] = False
        return own, int((scores[others] > own).sum()) + 1
