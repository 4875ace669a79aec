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
term is the same whichever modalities are present: it is its own additive player, its Shapley value is exactly itself, and the modalities' values do not change. So
offset + history + Σ contributions = score.
"""
from __future__ import annotations

import functools
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.catalog.model import Catalog
from core.encoders.embeddings import EmbeddingSet
from core.errors import CatalogError, MissingModalityError, QueryError
from core.serving.index import (ExactIndex, HNSWConfig, IVFConfig, SampleQueries, VectorIndex, ensure_index,
                        fast_top_k_rows, record_index_setting, resolve_kind, single_thread_blas, top_k_rows)
from core.catalog.media import load_audio, load_image
from core.serving.prior import (DEFAULT_PRIOR_WEIGHT, LEARNED_BIAS_LABEL, PRIOR, PRIOR_LABEL, ScoreTerm,
                        check_prior_weight, popularity_counts, popularity_prior)
from core.serving.similarity import (CLOSEST, CLOSEST_LABEL, DEFAULT_CLOSEST_WEIGHT, DEFAULT_LIKE_WEIGHT,
                             DEFAULT_SIMILARITY_WEIGHT, LIKE, LIKE_LABEL, check_closest_weight, check_like_weight,
                             check_similarity_weight, closest_match, like_upload, unit_rows, upload_similarity)

log = logging.getLogger(__name__)

LINEARITY_TOLERANCE = 1e-3  # relative error allowed between model scores and item_vectors @ q + bias
# What-if queries through an approximate index are re-ranked exactly over this many of its candidates
# (benchmarks.scale measures recall@10 against exact what-if scoring of every item).
# None: the count is chosen when the index is built (tune_whatif_candidates) and saved with it; an int
# overrides that choice.
WHATIF_CANDIDATES: int | None = None
WHATIF_TARGET_RECALL = 0.97  # recall@10 of sample what-if queries that the candidate count is chosen for
WHATIF_MAX_SHARE = 0.02  # ceiling on candidates as a share of the catalog; past it what-if is scored exactly
WHATIF_MIN_CANDIDATES = 500  # the first rung of the candidate ladder (doubling from there)
WHATIF_SAMPLE = 16  # sample queries (the index's own item vectors plus noise) × weight sets used to choose it
WHATIF_SAMPLE_NOISE = 0.5  # that noise's norm relative to the item's
# Upload queries add per-item terms the index does not hold (similarity to the upload, items like it). With
# an approximate index they are re-ranked exactly, those terms added, over the index's top C candidates for
# the model-space part. None: C is chosen when the index is built (tune_term_candidates) and saved with it;
# an int overrides that choice (0: scored exactly over every item).
TERM_CANDIDATES: int | None = None
TERM_MIN_CANDIDATES = 250  # the first rung of the upload candidate ladder (doubling up to WHATIF_MAX_SHARE)
TERM_SAMPLE = 32  # sample uploads the count is chosen on: catalog items' own field vectors plus noise
TERM_SAMPLE_NOISE = 0.25  # that noise's norm per field vector (unit rows: cosine ≈ 0.97, a re-encoded copy)
HISTORY_CANDIDATES = 2000  # a known listener's collaborative term (core.models.collaborative) is re-ranked the
#   same way over at least this many candidates: the earlier fixed count, as that term is not in the samples
LISTENER_QUERIES = "listener"  # the index's sample set of known listeners' queries (searched with its own width)
CONTENT_QUERIES = "content"  # the kind of the other queries (liked items, uploads: popularity prior, no bias),
#   searched as wide as the index's "liked" and "similar items" samples need
INDEX_SAMPLE = 200  # sample queries per kind (listener, liked) an approximate index tunes its search width on
INDEX_SAMPLE_LIKED = 3  # liked items per "liked" sample query (one listener's training items)
INDEX_SAMPLE_SEED = 0  # which listeners and items those samples are drawn from
LINEARITY_SAMPLE = 512  # items the what-if formula is checked on when the service starts
PARTS_CHUNK = 65_536  # items per block when single-modality parts of a large catalog are scored row-locally
_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"depth": 0, "torch": 1}


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch and BLAS on one thread inside the block (nested and concurrent uses are safe).

    Serving works on tiny batches (one query, k items, a few hundred explainer variants). Measured on two
    busy cores, a (10, 1308) → 128 → 64 head took 38 ms with two torch threads and 0.6 ms with one, and an
    item's feature SHAP fell from 24 s to 0.9 s: thread hand-offs, not arithmetic, dominate small batches.
    """
    import torch

    with _THREADS_LOCK:
        if _THREADS_STATE["depth"] == 0:
            _THREADS_STATE["torch"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS_STATE["depth"] += 1
    try:
        with single_thread_blas():
            yield
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["depth"] -= 1
            if _THREADS_STATE["depth"] == 0:
                torch.set_num_threads(_THREADS_STATE["torch"])


# -- queries ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Upload:
    """An uploaded file: its name (shown in messages) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Query:
    """What a user asks with: any mix of text, images, audio, liked/disliked item ids and a known listener."""

    text: str = ""
    images: list[Upload] = field(default_factory=list)
    audio: list[Upload] = field(default_factory=list)
    liked: list[str] = field(default_factory=list)  # catalog item ids
    disliked: list[str] = field(default_factory=list)  # catalog item ids
    user_id: str | None = None  # a listener of the catalog's interactions

    def is_empty(self) -> bool:
        """True when the query gives nothing to rank from (disliked items alone are not enough)."""
        return not (self.text.strip() or self.images or self.audio or self.liked or self.user_id)


def apply_feedback(query: Query, item_id: str, liked: bool) -> Query:
    """A new query with `item_id` moved to the liked (or disliked) list; the given query is unchanged."""
    keep, drop = (query.liked, query.disliked) if liked else (query.disliked, query.liked)
    keep = [i for i in keep if i != item_id] + [item_id]
    drop = [i for i in drop if i != item_id]
    return replace(query, liked=keep, disliked=drop) if liked else replace(query, disliked=keep, liked=drop)


@dataclass
class EncodedQuery:
    """A query turned into model space; kept so that re-ranking and explaining need no re-encoding."""

    query: Query
    vector: np.ndarray  # (dim,) the query vector the model scores items against
    content: dict[str, np.ndarray]  # modality -> (n, dim) projected uploads
    field_inputs: dict[str, np.ndarray]  # field -> (n, D_f) encoded uploads, standardised like the catalog
    liked_rows: list[int]
    disliked_rows: list[int]
    user_row: int | None  # the listener's row in the model's training data
    exclude_rows: set[int]  # never recommended: liked, disliked and the listener's training items
    modalities: list[str]  # modalities of the uploads that made it into the vector
    warnings: list[str]
    encode_ms: float
    # (I, M) raw-encoder cosine of each item to the uploads per modality (core.serving.similarity); None without
    # uploads or for a known listener
    similarity: np.ndarray | None = None
    like: np.ndarray | None = None  # (I,) like_i of core.serving.similarity; None when `similarity` is None

    @property
    def known_listener(self) -> bool:
        """Whether the query starts from a listener the model was trained on (the learned bias applies)."""
        return self.user_row is not None


# -- results --------------------------------------------------------------------------------------------
@dataclass
class Recommendation:
    """One ranked item.

    `contributions[m]` is modality m's exact Shapley share of the score; `terms` holds the named additive
    terms beside the modalities (the popularity prior of a content query: weight × prior_i), which are also
    their own Shapley values. score = base + Σ contributions + Σ terms, where `base` is the rest of the score
    with every modality masked (the id embedding; for a known listener also the learned item bias).
    """

    item_id: str
    title: str
    rank: int  # 1-based
    score: float
    modality_weights: dict[str, float]  # the gate's (or the what-if) weights, summing to 1 over present ones
    contributions: dict[str, float]
    previous_rank: int | None = None  # rank in the previous result, None when new or without one
    base: float = 0.0  # v(∅) less the named terms: the part of the score no modality or term explains
    history: float = 0.0  # listening history: base − offset, what the ids, the graph and the collaborative term give
    offset: float = 0.0  # the item's own score offset (a known listener's learned bias; 0 otherwise): base = offset + history
    terms: dict[str, float] = field(default_factory=dict)  # e.g. {"prior": w · prior_i}
    lacks: list[str] = field(default_factory=list)  # what-if modalities (weight > 0) the item does not carry
    similarity: dict[str, float] = field(default_factory=dict)  # per uploaded modality: λ · ω_m · sim_m(i),
    # the part of contributions[m] that is the similarity to the upload (core.serving.similarity)


@dataclass
class RecommendationResult:
    """The top K items of one query and how long it took."""

    items: list[Recommendation]
    latency_ms: float  # encode_ms + rank_ms
    encode_ms: float  # turning uploads and items into the query vector (0 when re-ranking)
    rank_ms: float  # scoring, top-k search, weights and contributions
    query_modalities: list[str]
    warnings: list[str]
    encoder_ids: dict[str, str]  # field -> encoder id used for the catalog and the query
    index_kind: str = "exact"  # "exact" | "hnsw" | "parts" or "model" (what-if weights: see top_rows)
    encoding: str = "encoded"  # "encoded" (encode_ms is this result's encoding) | "reused" (an encoded query)
    prior_weight: float | None = None  # the popularity prior's weight; None when the learned bias applies
    item_offset: str = ""  # which item offset applies, in words (the card and the page say it)
    notes: list[str] = field(default_factory=list)  # e.g. how many items lack the what-if modalities
    similarity_weight: float | None = None  # λ of the similarity to the upload; None when it does not apply


# -- Shapley over modalities (shared with the explain service's check) ----------------------------------
def shapley_from_coalitions(values: dict[frozenset[str], np.ndarray], modalities: Sequence[str]
                            ) -> dict[str, np.ndarray]:
    """Exact Shapley values per modality from v(S) for every subset S (each an array over items).

    φ_m = Σ_{S ⊆ M∖{m}} |S|! (M − |S| − 1)! / M! · (v(S ∪ {m}) − v(S)).
    """
    n = len(modalities)
    out = {}
    for m in modalities:
        others = [o for o in modalities if o != m]
        phi = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                phi = phi + weight * (values[s | {m}] - values[s])
        out[m] = np.asarray(phi, dtype=np.float64)
    return out


def coalition_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every subset of `modalities`, by size then in the given order (∅ first, all of them last)."""
    return [subset for size in range(len(modalities) + 1) for subset in itertools.combinations(modalities, size)]


@functools.lru_cache(maxsize=16)
def shapley_matrix(modalities: tuple[str, ...]) -> np.ndarray:
    """(M, 2^M) the Shapley values as a linear map of v(S) over coalition_subsets(modalities):
    φ = C @ v, the same sum as shapley_from_coalitions in one product."""
    subsets = coalition_subsets(modalities)
    position = {frozenset(s): j for j, s in enumerate(subsets)}
    n = len(modalities)
    out = np.zeros((n, len(subsets)))
    for i, m in enumerate(modalities):
        for s in subsets:
            if m in s:
                continue
            weight = math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
            out[i, position[frozenset(s) | {m}]] += weight
            out[i, position[frozenset(s)]] -= weight
    return out


# -- the service ---------------------------------------------------------------------------------------
class RecommendService:
    """Turns queries into ranked items with one catalog's embeddings, fusion model and encoders.

    `index`: "auto" (exact below 50,000 items, else FAISS IVF), "exact", "ivf", "hnsw", or a prebuilt
    VectorIndex over `index_vectors()`: the model's item vectors with the bias and the popularity prior
    appended. An approximate index is loaded from `index_dir` (or built and saved there) with the what-if
    candidate count chosen for it.
    `prior_weight`: the popularity prior's weight for queries that are not a known listener;
    `similarity_weight`: λ of the similarity to the upload of such queries, `like_weight`: μ of their
    "items like your upload" term (core.serving.similarity).
    """

    def __init__(self, catalog: Catalog, embeddings: EmbeddingSet, model: Any, encoders: dict[str, Any] | None,
                 index: str | VectorIndex = "auto", data: Any = None, hnsw: HNSWConfig | None = None,
                 index_dir: Path | None = None, prior_weight: float = DEFAULT_PRIOR_WEIGHT,
                 similarity_weight: float = DEFAULT_SIMILARITY_WEIGHT,
                 like_weight: float = DEFAULT_LIKE_WEIGHT, closest_weight: float = DEFAULT_CLOSEST_WEIGHT) -> None:
        if list(embeddings.item_ids) != catalog.item_ids:
            raise CatalogError(f"the embedding set does not match catalog {catalog.name!r} item for item; "
                             "re-encode the catalog (Catalog page or `python -m core encode`)")
        self.catalog = catalog
        self.embeddings = embeddings
        self.model = model
        self.encoders = dict(encoders or {})
        self.modalities: list[str] = list(model.modalities)
        self._data = data  # InteractionData the model was trained on; looked up on first need
        self._train: sp.csr_matrix | None = None
        self._user_rows: dict[str, int] | None = None
        self.n_items = len(catalog.items)
        # (I, M) presence of each modality per item: a modality an item lacks gets weight 0
        self.present = np.stack([embeddings.modality_mask(m) if m in embeddings.modalities
                                 else np.zeros(self.n_items, bool) for m in self.modalities], axis=1)
        self.item_vectors = np.asarray(model.item_vectors(), dtype=np.float32)  # (I, dim)
        self.dim = self.item_vectors.shape[1]
        # v(q = 0) = the bias part of every item's score: scores are item_vectors @ q + bias
        self.bias = np.asarray(model.score_vector(np.zeros(self.dim, np.float32)), dtype=np.float32)
        # (I,) popularity prior in [0, 1] from the training listeners per item (see core.serving.prior)
        counts = popularity_counts(model, None, self.n_items)
        self.prior = popularity_prior(counts if counts.any() else
                                      popularity_counts(None, self._train_matrix(), self.n_items))
        self.prior_weight = check_prior_weight(prior_weight)
        self.similarity_weight = check_similarity_weight(similarity_weight)
        self.like_weight = check_like_weight(like_weight)
        self.closest_weight = check_closest_weight(closest_weight)
        self.linear = self._check_linear()
        self._parts_cache: tuple[bytes, np.ndarray, np.ndarray] | None = None
        self._unit_fields: dict[str, np.ndarray] | None = None  # unit-row field matrices, on first upload
        self._unit_items: np.ndarray | None = None  # unit-row item vectors, on first upload
        self.weights_linear = False
        self.weights_linear = self._check_weights_linear()
        augmented = self.index_vectors()  # (I, dim + 2)
        if isinstance(index, str):  # an approximate index is loaded from (or built and saved to) index_dir
            config = hnsw
            if resolve_kind(index, self.n_items) == "ivf":  # cells from the item vectors, not bias and prior
                config = IVFConfig(cell_columns=self.dim, sample_tails=((0.0, self.prior_weight),))
            self.index = ensure_index(index_dir, augmented, index, config, queries=self.index_sample_queries)
        else:
            self.index = index
        self.exact_index = self.index if isinstance(self.index, ExactIndex) else ExactIndex(augmented)
        self.whatif_candidates = 0  # 0: what-if queries are scored exactly over every item
        self.term_candidates = 0  # 0: upload queries are scored exactly over every item
        if self.index.kind != "exact" and self.linear and self.weights_linear:
            saved = getattr(self.index, "settings", {}).get("whatif_candidates")
            self.whatif_candidates = int(saved) if saved is not None else self.tune_whatif_candidates()
            if saved is None and index_dir is not None and isinstance(index, str):
                record_index_setting(index_dir, "whatif_candidates", self.whatif_candidates)
        if self.index.kind != "exact" and self.linear and TERM_CANDIDATES is None:
            saved = getattr(self.index, "settings", {}).get("term_candidates")
            self.term_candidates = int(saved) if saved is not None else self.tune_term_candidates()
            if saved is None and index_dir is not None and isinstance(index, str):
                record_index_setting(index_dir, "term_candidates", self.term_candidates)

    @property
    def unit_item_vectors(self) -> np.ndarray:
        """(I, dim) the item vectors scaled to unit rows (float32), made on first need and kept."""
        if self._unit_items is None:
            norms = np.linalg.norm(self.item_vectors, axis=1, keepdims=True)
            self._unit_items = np.divide(self.item_vectors, norms, out=np.zeros_like(self.item_vectors),
                                         where=norms > 0)
        return self._unit_items

    def index_sample_queries(self) -> dict[str, SampleQueries]:
        """Named sets of (n, dim + 2) queries as this service sends them to its index, with the rows it
        excludes, to tune the index's search width on: "listener", known listeners' vectors with the learned
        bias (1, 0), their training items excluded; "liked", three of one listener's training items as
        liked items (excluded) with the popularity prior (0, prior weight); and "similar items", the same
        with any catalog item and the two items its vector scores highest as the liked items (so clusters
        no listener has heard are sampled too). Empty when the model has no listeners (the index then
        tunes on its own vectors plus noise)."""
        try:
            n_users = len(self.user_ids)
            train = self._train_matrix() if n_users else None
        except Exception as e:  # noqa: BLE001 - no listeners to sample: the index falls back to its own vectors
            log.info("no listeners to tune the index on (%s); it tunes on its own vectors", e)
            return {}
        if not n_users or train is None or train.nnz == 0:
            return {}
        rng = np.random.default_rng(INDEX_SAMPLE_SEED)
        users = np.sort(rng.choice(n_users, size=min(INDEX_SAMPLE, n_users), replace=False))
        with single_threaded():
            listener = [np.asarray(self.model.user_vector(int(u)), np.float32) for u in users]
            listened = [set(self.training_rows(int(u)).tolist()) for u in users]
            liked, chosen_rows = [], []
            for u in rng.permutation(np.flatnonzero(np.diff(train.indptr) > 0))[:INDEX_SAMPLE]:
                rows = np.unique(train.indices[train.indptr[u]:train.indptr[u + 1]])
                chosen = rng.choice(rows, size=min(INDEX_SAMPLE_LIKED, len(rows)), replace=False).tolist()
                liked.append(np.asarray(self.model.query_vector(liked=chosen), np.float32))
                chosen_rows.append(set(chosen))
            similar, similar_rows = [], []
            seeds = rng.choice(self.n_items, size=min(INDEX_SAMPLE, self.n_items), replace=False)
            for start in range(0, len(seeds), 25):  # (25, I) float32 blocks: ~100 MB at a million items
                block = seeds[start:start + 25]
                scores = self.item_vectors[block] @ self.item_vectors.T  # (b, I)
                scores[np.arange(len(block)), block] = -np.inf
                for seed, row_scores in zip(block, scores):
                    chosen = [int(seed)] + fast_top_k_rows(row_scores, INDEX_SAMPLE_LIKED - 1).tolist()
                    similar.append(np.asarray(self.model.query_vector(liked=chosen), np.float32))
                    similar_rows.append(set(chosen))
        out = {}
        prior = (0.0, self.prior_weight)
        for name, vectors, exclude, tail, kind in (
                (LISTENER_QUERIES, listener, listened, (1.0, 0.0), LISTENER_QUERIES),
                ("liked", liked, chosen_rows, prior, CONTENT_QUERIES),
                ("similar items", similar, similar_rows, prior, CONTENT_QUERIES)):
            if vectors:
                tails = np.broadcast_to(np.asarray(tail, np.float32), (len(vectors), 2))
                out[name] = SampleQueries(np.hstack([np.stack(vectors), tails]).astype(np.float32), exclude,
                                          kind)
        return out

    def tune_whatif_candidates(self) -> int:
        """The smallest candidate count (WHATIF_MIN_CANDIDATES, doubling, up to WHATIF_MAX_SHARE of the
        catalog) whose exact re-rank of the index's candidates gives recall@10 ≥ WHATIF_TARGET_RECALL
        against exact what-if scoring of every item, on sample queries drawn from the item vectors (plus
        noise) under each single-modality weight set and one mixed set; 0 (every what-if query scored
        exactly, with a warning) when none up to the ceiling does."""
        from core.serving.index import example_queries

        ceiling = int(WHATIF_MAX_SHARE * self.n_items)
        if ceiling < WHATIF_MIN_CANDIDATES:
            return 0
        rng = np.random.default_rng(7)
        queries = example_queries(self.item_vectors, None, WHATIF_SAMPLE, seed=7, noise=WHATIF_SAMPLE_NOISE)
        weight_sets = [{x: float(x == m) for x in self.modalities} for m in self.modalities]
        weight_sets.append(dict(zip(self.modalities, rng.uniform(0.1, 1.0, len(self.modalities)).tolist())))
        prior_coef = self.prior_weight  # a content query: popularity prior, no learned bias
        cases = []
        for q in queries:
            for w in weight_sets:
                truth, _ = self.top_rows(q, 10, (), w, 0.0, prior_coef, candidates=0)
                cases.append((q, w, truth))
        candidates, recall = WHATIF_MIN_CANDIDATES, 0.0
        while candidates <= ceiling:
            found = [self.top_rows(q, 10, (), w, 0.0, prior_coef, candidates=candidates)[0] for q, w, _ in cases]
            recall = float(np.mean([len(np.intersect1d(t, f)) / max(len(t), 1)
                                    for (_, _, t), f in zip(cases, found)]))
            if recall >= WHATIF_TARGET_RECALL:
                log.info("what-if queries re-rank %d index candidates (sample recall@10 %.3f)", candidates, recall)
                return candidates
            candidates *= 2
        log.warning("what-if re-ranking of up to %d index candidates reached recall@10 %.3f on sample queries, "
                    "below %.2f: what-if queries over these %d items are scored exactly over every item",
                    candidates // 2, recall, WHATIF_TARGET_RECALL, self.n_items)
        return 0

    def upload_samples(self, n: int = TERM_SAMPLE, seed: int = 11) -> list[EncodedQuery]:
        """Encoded sample uploads: n catalog items' own field vectors (those the item carries) plus Gaussian
        noise of TERM_SAMPLE_NOISE × each vector's norm, encoded as an upload of them (encode_fields)."""
        rng = np.random.default_rng(seed)
        emb, out = self.embeddings, []
        for row in rng.permutation(self.n_items)[:4 * n]:
            fields = {}
            for f in emb.fields:
                if emb.masks[f][row] and emb.modality_of.get(f) in self.modalities:
                    v = np.asarray(emb.matrices[f][row], np.float32)
                    noise = rng.standard_normal(len(v)).astype(np.float32)
                    fields[f] = v + TERM_SAMPLE_NOISE * np.linalg.norm(v) * noise / np.sqrt(len(v))
            if fields:
                out.append(self.encode_fields(fields, Query(text="sample upload")))
            if len(out) == n:
                break
        return out

    def tune_term_candidates(self) -> int:
        """The smallest upload candidate count (TERM_MIN_CANDIDATES, doubling, up to WHATIF_MAX_SHARE of the
        catalog) whose exact re-rank of the index's candidates, the upload terms added, gives recall@10 ≥
        WHATIF_TARGET_RECALL against exact scoring of every item on sample uploads (upload_samples); 0
        (upload queries scored exactly over every item, with a warning) when none up to the ceiling does."""
        ceiling = int(WHATIF_MAX_SHARE * self.n_items)
        if ceiling < TERM_MIN_CANDIDATES or not hasattr(self.model, "project_content"):
            return 0  # a small catalog (every item is scored exactly), or a model that takes no uploads
        samples = self.upload_samples()
        self.term_candidates = 0  # the truth: every item scored exactly
        truth = [{r.item_id for r in self.recommend(q, k=10).items} for q in samples]
        candidates, recall = TERM_MIN_CANDIDATES, 0.0
        try:
            while candidates <= ceiling:
                self.term_candidates = candidates
                recall = float(np.mean([len(t & {r.item_id for r in self.recommend(q, k=10).items}) / max(len(t), 1)
                                        for q, t in zip(samples, truth)])) if samples else 1.0
                if recall >= WHATIF_TARGET_RECALL:
                    log.info("upload queries re-rank %d index candidates (sample recall@10 %.3f)", candidates, recall)
                    return candidates
                candidates *= 2
        finally:
            self.term_candidates = 0
        log.warning("upload re-ranking of up to %d index candidates reached recall@10 %.3f on sample uploads, "
                    "below %.2f: upload queries over these %d items are scored exactly over every item",
                    candidates // 2, recall, WHATIF_TARGET_RECALL, self.n_items)
        return 0

    def index_vectors(self) -> np.ndarray:
        """(I, dim + 2) what the index searches: item vectors, then the learned bias, then the prior; a query
        (q, a, w) scores q · v_i + a · bias_i + w · prior_i."""
        return np.hstack([self.item_vectors, self.bias[:, None],
                          self.prior[:, None].astype(np.float32)]).astype(np.float32)

    def _check_linear(self) -> bool:
        """Whether model scores equal item_vectors @ q + bias (then an index can rank without the model)."""
        q = np.random.default_rng(0).standard_normal(self.dim).astype(np.float32)
        got = np.asarray(self.model.score_vector(q), dtype=np.float64)
        want = self.item_vectors.astype(np.float64) @ q + self.bias
        ok = bool(np.allclose(got, want, rtol=LINEARITY_TOLERANCE,
                              atol=LINEARITY_TOLERANCE * max(1.0, float(np.abs(want).max(initial=0)))))
        if not ok:
            log.warning("model scores are not item_vectors @ q + bias; every query is ranked by the model")
        return ok

    # -- known listeners ----------------------------------------------------------------------------
    @property
    def user_ids(self) -> list[str]:
        """The listeners the model was trained on, in its row order."""
        ids = getattr(self.model, "user_ids", None)
        if ids or getattr(getattr(self.model, "net", None), "n_users", None) == 0:  # 0: a content-only model
            return list(ids or [])
        return list(self.data.user_ids)

    @property
    def data(self) -> Any:
        """The InteractionData the model was trained on; rebuilt (auto split, seed 0, as the workspace
        trains) when neither the caller nor the model holds it."""
        if self._data is None:
            self._data = getattr(self.model, "data", None)
        if self._data is None:
            from core.data.splits import build_interaction_data

            self._data = build_interaction_data(self.catalog, self.embeddings, split="auto", seed=0)
        return self._data

    def _train_matrix(self) -> sp.csr_matrix:
        """(U, I) the model's training pairs: from its training data, else from the pairs a saved fusion
        model keeps with its weights, else from the rebuilt split."""
        if self._train is None:
            data = self._data if self._data is not None else getattr(self.model, "data", None)
            net = getattr(self.model, "net", None)
            if data is not None:
                self._train = sp.csr_matrix(data.train)
            elif net is not None and hasattr(net, "edge_users") and (len(net.edge_users) or net.n_users == 0):
                users, items = net.edge_users.numpy(), net.edge_items.numpy()
                self._train = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)),
                                            shape=(len(self.user_ids), self.n_items))
            else:
                self._train = sp.csr_matrix(self.data.train)
        return self._train

    def user_row(self, user_id: str) -> int:
        """The listener's row in the model; QueryError when the model knows no such listener."""
        if self._user_rows is None:
            self._user_rows = {u: i for i, u in enumerate(self.user_ids)}
        try:
            return self._user_rows[str(user_id)]
        except KeyError:
            raise QueryError(f"{user_id!r} is not a listener the model of catalog {self.catalog.name!r} was "
                             f"trained on ({len(self._user_rows)} listeners, e.g. {list(self._user_rows)[:3]}); "
                             "pick one from the list or leave the listener empty") from None

    def training_rows(self, user_row: int) -> np.ndarray:
        """Item rows the listener interacted with in training (never recommended back)."""
        train = self._train_matrix()
        return np.unique(train.indices[train.indptr[user_row]:train.indptr[user_row + 1]]).astype(np.int64)

    def rows_of(self, item_ids: Collection[str]) -> tuple[list[int], list[str]]:
        """Catalog rows of `item_ids` and the ids that are not in the catalog."""
        rows, unknown = [], []
        for i in item_ids:
            try:
                rows.append(self.catalog.index_of(i))
            except KeyError:
                unknown.append(i)
        return rows, unknown

    # -- encoding -----------------------------------------------------------------------------------
    def _usable_fields(self, modality: str, warnings: list[str]) -> list[str] | None:
        """The fields of `modality` the uploads can be encoded into, or None (with a warning) when they
        cannot be encoded exactly like the catalog was."""
        label = {"text": "query text", "image": "image uploads", "audio": "audio uploads"}[modality]
        if modality not in self.modalities:
            warnings.append(f"The {label} {'was' if modality == 'text' else 'were'} ignored: catalog "
                            f"{self.catalog.name!r} and its model have no "
                            f"{modality} modality (they have {', '.join(self.modalities)}).")
            return None
        fields = self.embeddings.fields_of(modality)
        problems = [p for p in map(self.encoder_problem, fields) if p]
        if problems:
            warnings.append(f"The {label} {'was' if modality == 'text' else 'were'} ignored: "
                            f"{'; '.join(problems)}.")
            return None
        return fields

    def _encode_uploads(self, query: Query, warnings: list[str]
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(field inputs, projected content per modality) of the query's text, images and audio."""
        # Decode every upload first, so a bad file is refused by name before any encoding work.
        images = [load_image(u.data, name=u.name) for u in query.images]
        audios = [load_audio(u.data, name=u.name) for u in query.audio]
        inputs = {"text": [query.text.strip()] if query.text.strip() else [], "image": images, "audio": audios}
        field_inputs: dict[str, np.ndarray] = {}
        content: dict[str, np.ndarray] = {}
        for modality, batch in inputs.items():
            if not batch:
                continue
            fields = self._usable_fields(modality, warnings)
            if fields is None:
                continue
            from core.encoders.pipeline import encode_inputs  # the encoder stack loads only when uploads come

            kwargs = {"texts": batch} if modality == "text" else \
                {"images": batch} if modality == "image" else {"audios": batch}
            if modality == "audio":  # each audio encoder takes the clips at its own sample rate
                from core.encoders.pipeline import encode_audio_uploads

                encoded = encode_audio_uploads({f: self.encoders[f] for f in fields}, self.embeddings,
                                               [(u.data, u.name) for u in query.audio])
            else:
                encoded = encode_inputs({f: self.encoders[f] for f in fields}, self.embeddings, **kwargs)
            encoded = {f: np.asarray(encoded[f], dtype=np.float32) for f in fields}
            projected = self.model.project_content(encoded)
            field_inputs.update(encoded)
            content[modality] = np.asarray(projected[modality], dtype=np.float32)
        return field_inputs, content

    def encode_query(self, query: Query) -> EncodedQuery:
        """The query's vector (uploads encoded like the catalog, projected by the model, combined with
        liked/disliked items and a known listener's vector) and what explaining it later needs."""
        if query.is_empty():
            raise QueryError("the query is empty: type a description, upload an image or a clip, pick tracks "
                             "you like, or choose a listener")
        start = time.perf_counter()
        warnings: list[str] = []
        field_inputs, content = self._encode_uploads(query, warnings)
        with single_threaded():
            return self._combine(query, field_inputs, content, warnings, start)

    def encode_fields(self, field_inputs: dict[str, np.ndarray], query: Query | None = None) -> EncodedQuery:
        """An encoded query from field vectors already encoded like the catalog (what uploads encode to),
        projected by the model and combined as encode_query does: e.g. an item's own stored vectors used as
        a query (the retrieval benchmark). Fields of modalities the model lacks are ignored with a warning."""
        start = time.perf_counter()
        warnings: list[str] = []
        inputs = {f: np.atleast_2d(np.asarray(x, np.float32)) for f, x in field_inputs.items()}
        content: dict[str, np.ndarray] = {}
        for modality in self.modalities:
            fields = [f for f in inputs if self.embeddings.modality_of.get(f) == modality]
            if fields:
                projected = self.model.project_content({f: inputs[f] for f in fields})
                content[modality] = np.asarray(projected[modality], dtype=np.float32)
        ignored = sorted(f for f in inputs if self.embeddings.modality_of.get(f) not in content)
        if ignored:
            warnings.append(f"Fields {ignored} were ignored: the model has no such modality.")
        with single_threaded():
            return self._combine(query or Query(), inputs, content, warnings, start)

    def _combine(self, query: Query, field_inputs: dict[str, np.ndarray], content: dict[str, np.ndarray],
                 warnings: list[str], start: float) -> EncodedQuery:
        """The encoded query from projected uploads, liked/disliked items and a known listener."""
        liked, unknown_liked = self.rows_of(query.liked)
        disliked, unknown_disliked = self.rows_of(query.disliked)
        if unknown_liked or unknown_disliked:
            warnings.append(f"Item ids not in catalog {self.catalog.name!r} were ignored: "
                            f"{sorted(set(unknown_liked + unknown_disliked))}.")
        user_row = self.user_row(query.user_id) if query.user_id else None
        if not (content or liked or user_row is not None):
            raise QueryError("nothing in the query could be used: " + (" ".join(warnings) or
                             "add text, an image, a clip or a liked track"))
        parts = []
        if user_row is not None:
            parts.append(np.asarray(self.model.user_vector(user_row), dtype=np.float32))
        if content or liked:
            parts.append(np.asarray(self.model.query_vector(liked=liked, disliked=disliked,
                                                            content=content or None), dtype=np.float32))
        elif disliked:  # a listener plus dislikes only: the dislikes still push away
            parts.append(np.asarray(self.model.query_vector(liked=[], disliked=disliked), dtype=np.float32))
        # parts are summed, not averaged: each keeps the scale the model gave it
        vector = np.sum(parts, axis=0).astype(np.float32)
        if not np.isfinite(vector).all():
            raise QueryError("the query vector is not finite; the model or an upload produced NaN values")
        exclude = set(liked) | set(disliked)
        if user_row is not None:
            exclude |= set(self.training_rows(user_row).tolist())
        used = {f: x for f, x in field_inputs.items() if self.embeddings.modality_of.get(f) in content}
        similarity = None
        if user_row is None and used:
            if self._unit_fields is None:
                self._unit_fields = unit_rows(self.embeddings.matrices)
            similarity = upload_similarity(used, self._unit_fields, self.embeddings.masks,
                                           self.embeddings.modality_of, self.modalities, self.n_items,
                                           unit_items=True)
        return EncodedQuery(query=query, vector=vector, content=content, field_inputs=field_inputs,
                            liked_rows=liked, disliked_rows=disliked, user_row=user_row, exclude_rows=exclude,
                            modalities=[m for m in self.modalities if m in content], warnings=warnings,
                            encode_ms=(time.perf_counter() - start) * 1e3, similarity=similarity,
                            like=None if similarity is None else like_upload(similarity, self.unit_item_vectors,
                                                                                    unit_items=True))

    # -- ranking ------------------------------------------------------------------------------------
    def modality_mask(self, keep: Collection[str]) -> dict[str, bool]:
        """The model's modality_mask keeping only the modalities in `keep` (True = present)."""
        return {m: m in keep for m in self.modalities}

    def scores(self, vector: np.ndarray, rows: np.ndarray | None = None, keep: Collection[str] | None = None,
               modality_weights: dict[str, float] | None = None) -> np.ndarray:
        """(len(rows),) model scores of items for a query vector, with only `keep` modalities present and
        optionally what-if modality weights."""
        if modality_weights is not None and self.weights_linear:
            return self._weighted_scores(vector, modality_weights, rows, keep)
        mask = None if keep is None else self.modality_mask(keep)
        items = None if rows is None else np.asarray(rows, dtype=np.int64)
        with single_threaded():
            return np.asarray(self.model.score_vector(vector, items=items, modality_mask=mask,
                                                      modality_weights=modality_weights), dtype=np.float64)

    def modality_parts(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(v(∅) (I,), parts (I, M)): the score with no modality, and what each modality alone adds to it."""
        key = np.asarray(vector, np.float32).tobytes()
        if self._parts_cache is None or self._parts_cache[0] != key:
            direct = getattr(self.model, "modality_part_scores", None)
            with single_threaded():
                got = direct(vector) if direct is not None else None
            if got is not None:  # one product over the projections the model keeps
                base, parts = got
            elif getattr(self.model, "subset_scores", None) is not None and self.n_items > PARTS_CHUNK:
                # row blocks through subset_scores: no masked forward pass over the catalog is kept per mask
                chunks = [self.row_parts(vector, np.arange(s, min(s + PARTS_CHUNK, self.n_items)))
                          for s in range(0, self.n_items, PARTS_CHUNK)]
                base, parts = np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])
            else:
                base = self.scores(vector, keep=())
                parts = np.stack([self.scores(vector, keep=(m,)) - base for m in self.modalities], axis=1)
            self._parts_cache = (key, base, parts)
        return self._parts_cache[1], self._parts_cache[2]

    def row_parts(self, vector: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(v(∅) (n,), parts (n, M)) of modality_parts for `rows` alone: from one pass of the model's
        subset_scores over those rows when it has one, else one masked pass per modality."""
        direct = getattr(self.model, "modality_part_scores", None)
        if direct is not None:
            with single_threaded():
                got = direct(vector, rows)
            if got is not None:
                return got
        subsets = [()] + [(m,) for m in self.modalities]
        hook = getattr(self.model, "subset_scores", None)
        values = None
        if hook is not None and len(rows):
            with single_threaded():
                values = hook(vector, rows, subsets)
        if values is None:
            values = [self.scores(vector, rows, keep=subset) for subset in subsets]
        values = np.asarray(values, np.float64)  # (M + 1, n)
        return values[0], (values[1:] - values[0][None, :]).T

    def _weighted_scores(self, vector: np.ndarray, modality_weights: dict[str, float],
                         rows: np.ndarray | None = None, keep: Collection[str] | None = None) -> np.ndarray:
        """Scores under what-if weights from the single-modality parts, without re-running the model.

        With linear fusion (weighted, gated, adversarial; no graph propagation) an item's content vector
        under weights w is Σ w_m p_m / Σ w_m over its present modalities, so its score is
        v(∅) + Σ w_m (v({m}) − v(∅)) / Σ w_m. Checked against the model when the service starts.
        """
        if rows is None:
            base, parts = self.modality_parts(vector)
        else:  # only these rows: one head pass, never a catalog-wide pass per modality
            rows = np.asarray(rows, dtype=np.int64)
            base, parts = self.row_parts(vector, rows)
        present = self.present if rows is None else self.present[rows]
        if keep is not None:
            present = present & np.array([m in keep for m in self.modalities])[None, :]
        w = np.array([max(float(modality_weights.get(m, 0.0)), 0.0) for m in self.modalities])
        w = present * w[None, :]  # (n, M)
        total = w.sum(axis=1)
        mixed = np.divide((w * parts).sum(axis=1), total, out=np.zeros_like(total), where=total > 0)
        return base + mixed

    def _check_weights_linear(self) -> bool:
        """Whether what-if scores follow the single-modality parts (see _weighted_scores)."""
        if not self.linear or not self.modalities:
            return False
        rng = np.random.default_rng(1)
        q = rng.standard_normal(self.dim).astype(np.float32)
        weights = {m: float(w) for m, w in zip(self.modalities, rng.uniform(0.1, 1.0, len(self.modalities)))}
        rows = None  # every item of a small catalog; a sample of a large one
        if self.n_items > LINEARITY_SAMPLE:
            rows = np.sort(rng.choice(self.n_items, size=LINEARITY_SAMPLE, replace=False))
        with single_threaded():
            want = np.asarray(self.model.score_vector(q, items=rows, modality_weights=weights), dtype=np.float64)
        self.weights_linear = True  # so that scores() takes the formula path for the comparison
        got = self._weighted_scores(q, weights, rows)
        self._parts_cache = None
        scale = max(1.0, float(np.abs(want).max(initial=0)))
        return bool(np.allclose(got, want, rtol=LINEARITY_TOLERANCE, atol=LINEARITY_TOLERANCE * scale))

    def coalition_scores(self, vector: np.ndarray, rows: np.ndarray,
                         modality_weights: dict[str, float] | None = None) -> dict[frozenset[str], np.ndarray]:
        """v(S) for every subset S of the model's modalities, over the items `rows`."""
        values = self.coalition_values(vector, rows, modality_weights)
        return {frozenset(s): v for s, v in zip(coalition_subsets(self.modalities), values)}

    def coalition_values(self, vector: np.ndarray, rows: np.ndarray,
                         modality_weights: dict[str, float] | None = None) -> np.ndarray:
        """(2^M, len(rows)) v(S) over the items `rows` for every subset S, in coalition_subsets order."""
        subsets = coalition_subsets(self.modalities)
        hook = getattr(self.model, "subset_scores", None)
        if modality_weights is None and hook is not None and len(rows):  # one head pass for every subset
            with single_threaded():
                values = hook(vector, np.asarray(rows, dtype=np.int64), subsets)
            if values is not None:
                return np.asarray(values, np.float64)
        return np.stack([np.asarray(self.scores(vector, rows, keep=subset, modality_weights=modality_weights),
                                    np.float64).reshape(len(rows)) for subset in subsets])

    def item_weights(self, rows: np.ndarray, modality_weights: dict[str, float] | None = None) -> np.ndarray:
        """(len(rows), M) modality weights: the gate's, or the what-if ones renormalised per item."""
        if modality_weights is None:
            return np.asarray(self.model.gate_weights(items=np.asarray(rows, dtype=np.int64)), dtype=np.float64)
        w = np.array([max(float(modality_weights.get(m, 0.0)), 0.0) for m in self.modalities])
        w = self.present[rows] * w[None, :]
        total = w.sum(axis=1, keepdims=True)
        return np.divide(w, total, out=np.zeros_like(w), where=total > 0)

    def offset_coefficients(self, encoded: EncodedQuery, prior_weight: float | None = None) -> tuple[float, float]:
        """(a, w): the query scores q · v_i + a · bias_i + w · prior_i. A known listener keeps the learned bias
        (1, 0); any other query gets the popularity prior instead (0, prior weight)."""
        if encoded.known_listener:
            return 1.0, 0.0
        return 0.0, self.prior_weight if prior_weight is None else check_prior_weight(prior_weight)

    def shift(self, bias_coef: float, prior_coef: float, rows: np.ndarray | None = None) -> np.ndarray:
        """(n,) what turns model scores (q · v + bias) into q · v + a · bias + w · prior for `rows`."""
        bias = self.bias if rows is None else self.bias[rows]
        prior = self.prior if rows is None else self.prior[rows]
        return (bias_coef - 1.0) * bias.astype(np.float64) + prior_coef * prior

    def score_terms(self, encoded: EncodedQuery, prior_weight: float | None = None,
                    like_weight: float | None = None,
                    modality_weights: dict[str, float] | None = None,
                    closest_weight: float | None = None) -> list[ScoreTerm]:
        """The named additive terms of this query's scores: the popularity prior for a content query (and
        "items like your upload" and the "closest match to your upload" for an upload query), none for a
        known listener (whose learned bias stays in the base). Under what-if weights the items like the
        upload and the closest match are found through the weighted modalities only, so a modality at weight
        0 adds nothing through these terms either. `closest_weight` overrides the service's κ (0 leaves the
        term out)."""
        if encoded.known_listener:
            return []
        _, w = self.offset_coefficients(encoded, prior_weight)
        terms = [ScoreTerm(PRIOR, PRIOR_LABEL, w, self.prior)]
        if encoded.like is not None:
            mu = self.like_weight if like_weight is None else check_like_weight(like_weight)
            like = encoded.like
            similarity = encoded.similarity
            if modality_weights is not None and encoded.similarity is not None:
                omega = np.array([max(float(modality_weights.get(m, 0.0)), 0.0) for m in self.modalities])
                similarity = encoded.similarity * omega[None, :]
                like = like_upload(similarity, self.unit_item_vectors, unit_items=True)
            terms.append(ScoreTerm(LIKE, LIKE_LABEL, mu, like))
            kappa = self.closest_weight if closest_weight is None else check_closest_weight(closest_weight)
            if kappa > 0 and similarity is not None:
                terms.append(ScoreTerm(CLOSEST, CLOSEST_LABEL, kappa, closest_match(similarity)))
        return terms

    @staticmethod
    def term_extra(terms: Sequence[ScoreTerm]) -> np.ndarray | None:
        """(I,) the named terms other than the prior (which the index carries), summed; None when none."""
        parts = [t.part() for t in terms if t.name != PRIOR]
        return np.sum(parts, axis=0) if parts else None

    def history_part(self, encoded: EncodedQuery) -> np.ndarray | None:
        """(I,) a known listener's collaborative term (core.models.collaborative: EASE, ALS and ItemKNN
        fitted on the training interactions), part of the listening history; None for other queries or
        without one."""
        hook = getattr(self.model, "history_scores", None)
        if encoded.user_row is None or hook is None:
            return None
        part = hook(encoded.user_row)
        return None if part is None else np.asarray(part, np.float64)

    def extra_parts(self, encoded: EncodedQuery, terms: Sequence[ScoreTerm]) -> np.ndarray | None:
        """(I,) what the index does not carry: the named terms other than the prior, plus a known listener's
        collaborative term (which joins the base, not a named term); None when neither applies."""
        parts = [p for p in (self.term_extra(terms), self.history_part(encoded)) if p is not None]
        return np.sum(parts, axis=0) if parts else None

    def item_offset_label(self, encoded: EncodedQuery, prior_weight: float | None = None) -> str:
        """Which item offset applies to this query, in words."""
        if encoded.known_listener:
            return f"{LEARNED_BIAS_LABEL} (a known listener: the model's own, inside the base)"
        return f"{PRIOR_LABEL} × {self.offset_coefficients(encoded, prior_weight)[1]:.2f} (learned bias not used)"

    def similarity_coefficient(self, encoded: EncodedQuery, similarity_weight: float | None = None) -> float:
        """λ: the weight of the similarity to the upload for this query (0 for a known listener or without
        uploads)."""
        if encoded.known_listener or encoded.similarity is None:
            return 0.0
        return self.similarity_weight if similarity_weight is None else check_similarity_weight(similarity_weight)

    def similarity_parts(self, encoded: EncodedQuery, rows: np.ndarray | None = None,
                         modality_weights: dict[str, float] | None = None,
                         similarity_weight: float | None = None) -> np.ndarray:
        """(n, M) λ · ω_m · sim_m(i) for `rows` (all items when None): the similarity to the upload per
        modality, ω_m the what-if weight of m (1 without what-if weights); zeros when it does not apply."""
        n = self.n_items if rows is None else len(rows)
        lam = self.similarity_coefficient(encoded, similarity_weight)
        if lam == 0.0:
            return np.zeros((n, len(self.modalities)))
        sim = encoded.similarity if rows is None else encoded.similarity[np.asarray(rows, np.int64)]
        omega = np.ones(len(self.modalities)) if modality_weights is None else \
            np.array([max(float(modality_weights.get(m, 0.0)), 0.0) for m in self.modalities])
        return lam * sim * omega[None, :]

    def carries(self, modality_weights: dict[str, float], rows: np.ndarray | None = None) -> np.ndarray:
        """(n,) whether each item carries at least one modality of weight > 0."""
        on = np.array([float(modality_weights.get(m, 0.0)) > 0 for m in self.modalities])
        present = self.present if rows is None else self.present[rows]
        return (present & on[None, :]).any(axis=1)

    def top_rows(self, vector: np.ndarray, k: int, exclude: Collection[int] = (),
                 modality_weights: dict[str, float] | None = None, bias_coef: float = 1.0,
                 prior_coef: float = 0.0,
                 extra: np.ndarray | Callable[[np.ndarray | None], np.ndarray] | None = None,
                 candidates: int | None = None) -> tuple[np.ndarray, str]:
        """The top-k item rows (and which path ranked them) by q · v + a · bias + w · prior (+ `extra`, (I,)
        per-item parts such as the similarity to the upload, or a function giving them for some rows (None:
        all); such queries are scored exactly, or re-ranked over the index's top term_candidates).

        What-if weights change the item vectors, so such queries are never ranked by the index: they are
        scored exactly, from the single-modality parts when the fusion is linear ("parts"), else by the
        model ("model"); so are all queries of a model whose scores are not linear in the query. Under
        what-if weights, items carrying none of the weighted modalities come after every item that does.
        `candidates`: what-if candidates to re-rank from an approximate index (default: WHATIF_CANDIDATES,
        else the count chosen with the index; 0 scores what-if queries exactly over every item).
        """
        if candidates is None:
            candidates = self.whatif_candidates if WHATIF_CANDIDATES is None else WHATIF_CANDIDATES
        if extra is not None and not callable(extra) and not np.any(extra):
            extra = None
        extra_at = (extra if callable(extra) else lambda at: extra if at is None else extra[at]) \
            if extra is not None else None
        # a known listener's query (learned bias, no prior) is searched as wide as listener samples need, a
        # content query (no bias) as wide as the liked and similar-items samples need
        query_kind = LISTENER_QUERIES if (bias_coef, prior_coef) == (1.0, 0.0) else \
            CONTENT_QUERIES if bias_coef == 0.0 else None
        if modality_weights is None and self.linear and extra is None:
            query = np.concatenate([vector, [bias_coef, prior_coef]]).astype(np.float32)
            rows, _ = self.index.search(query, k, exclude, kind=query_kind)
            return rows, self.index.kind
        if modality_weights is not None and self.linear and extra is None and self.index.kind != "exact" \
                and candidates:
            # a large catalog: the index's candidates for the query, re-ranked exactly under the weights
            query = np.concatenate([vector, [bias_coef, prior_coef]]).astype(np.float32)
            cands, _ = self.index.search(query, max(candidates, k), exclude, kind=query_kind)
            scores = self.scores(vector, rows=cands, modality_weights=modality_weights) + \
                self.shift(bias_coef, prior_coef, cands)
            order = self.whatif_order(cands, scores, modality_weights)[:k]
            return cands[order], f"{self.index.kind}+exact re-rank"
        terms_over = self.term_candidates if TERM_CANDIDATES is None else TERM_CANDIDATES
        if query_kind == LISTENER_QUERIES and terms_over and TERM_CANDIDATES is None:
            terms_over = max(terms_over, HISTORY_CANDIDATES)
        if modality_weights is None and self.linear and self.index.kind != "exact" and terms_over:
            # the index's candidates for the model-space part, re-ranked exactly with the other terms added
            query = np.concatenate([vector, [bias_coef, prior_coef]]).astype(np.float32)
            cands, cand_scores = self.index.search(query, max(terms_over, k), exclude, kind=query_kind)
            total = cand_scores.astype(np.float64) + np.asarray(extra_at(cands), np.float64)
            return cands[top_k_rows(total, k)], f"{self.index.kind}+exact re-rank"
        if modality_weights is None and self.linear:  # the terms beside the index: one scan, then add them
            query = np.concatenate([vector, [bias_coef, prior_coef]]).astype(np.float32)
            scores = self.exact_index.scores(query) + np.asarray(extra_at(None), np.float32)
            if exclude:
                scores[np.fromiter(exclude, dtype=np.int64, count=len(exclude))] = -np.inf
            return fast_top_k_rows(scores, k), "exact"
        scores = self.scores(vector, modality_weights=modality_weights) + self.shift(bias_coef, prior_coef)
        if extra is not None:
            scores = scores + np.asarray(extra_at(None), np.float64)
        if exclude:
            scores[np.fromiter(exclude, dtype=np.int64, count=len(exclude))] = -np.inf
        kind = "parts" if modality_weights is not None and self.weights_linear else "model"
        if modality_weights is None:
            return top_k_rows(scores, k), "exact" if self.linear else kind
        carries = self.carries(modality_weights)
        rows = top_k_rows(np.where(carries, scores, -np.inf), k)
        if len(rows) < k:  # too few items carry the weighted modalities: the others follow them
            rows = np.concatenate([rows, top_k_rows(np.where(carries, -np.inf, scores), k - len(rows))])
        return rows.astype(np.int64), kind

    def whatif_order(self, rows: np.ndarray, scores: np.ndarray, modality_weights: dict[str, float]) -> np.ndarray:
        """Positions of `rows` best first under what-if weights: items carrying a weighted modality before
        items that carry none (those have nothing the weights ask for), then by score, then by row."""
        rows = np.asarray(rows, dtype=np.int64)
        return np.lexsort((rows, -np.asarray(scores, np.float64), ~self.carries(modality_weights, rows)))

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
                                    and not encoded.known_listener else None)

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

    def score_item_variants(self, vector: np.ndarray, row: int, variants: dict[str, np.ndarray]) -> np.ndarray:
        """(n,) scores of item `row` for the query when some of its fields are replaced by the n rows of
        `variants[field]` (the other fields keep the item's stored rows)."""
        hook = getattr(self.model, "item_vectors_from_fields", None)
        if hook is None:
            raise MissingModalityError(f"{type(self.model).__name__} cannot score modified item features "
                                       "(it has no item_vectors_from_fields); feature attributions are off")
        n = len(next(iter(variants.values())))
        inputs = {f: np.asarray(variants[f], np.float32) if f in variants
                  else np.repeat(self.embeddings.matrices[f][row][None, :], n, axis=0)
                  for f in self.embeddings.fields}
        with single_threaded():
            vectors = np.asarray(hook(inputs, items=np.full(n, row, dtype=np.int64)), dtype=np.float64)
        return vectors @ np.asarray(vector, np.float64) + float(self.bias[row])

    def encoder_problem(self, field_name: str) -> str | None:
        """Why uploads of `field_name` cannot be encoded like the catalog was, or None when they can."""
        encoder = self.encoders.get(field_name)
        if encoder is None:
            return f"no encoder is loaded for field {field_name!r}"
        stored = self.embeddings.encoder_ids.get(field_name)
        if encoder.id != stored:
            return (f"field {field_name!r} was encoded with {stored} but the loaded encoder is {encoder.id}; "
                    "re-encode the catalog or load the same encoders")
        return None
