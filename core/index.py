"""Top-k search of item vectors by inner product: an exact matrix product and an approximate HNSW graph
behind one `search(qvec, k, exclude) -> (rows, scores)` call.

Rows are indices into the matrix the index was built from (the caller maps them to item ids). Scores are
inner products; the recommend service appends each item's bias as one more column (and a 1 to the query)
so that an index score equals the model's score.

An index holds FIXED item vectors. What-if modality weights or masks change the item vectors themselves,
so those queries are scored exactly over all items (the recommend service does so), never through a
prebuilt index.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

import numpy as np

AUTO_EXACT_BELOW = 50_000  # "auto" uses exact search below this many items: a (N, d) product is fast enough
EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)  # candidate ef values, cheapest first


_BLAS = None


def single_thread_blas():
    """A context that runs BLAS on one thread.

    One matrix-vector product is memory-bound; measured on two busy cores, OpenBLAS's two threads made
    a 10,000 × 65 product 30× slower (8.5 ms against 0.25 ms) than one thread.
    """
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


class VectorIndex(Protocol):
    """What the recommend service needs from an index."""

    kind: str
    n_items: int

    def search(self, qvec: np.ndarray, k: int, exclude: Collection[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """The top `k` rows by inner product with `qvec` (not in `exclude`) and their scores, best first."""
        ...


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest finite scores, best first (ties broken by lower index)."""
    finite = int(np.isfinite(scores).sum())
    k = min(k, finite)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.lexsort((top, -scores[top]))].astype(np.int64)


class ExactIndex:
    """Brute-force inner-product search: one matrix-vector product over all items."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # (N, d)
        self.n_items = len(self.vectors)

    def scores(self, qvec: np.ndarray) -> np.ndarray:
        """(N,) inner products of every item with `qvec`."""
        with single_thread_blas():
            return self.vectors @ np.asarray(qvec, dtype=np.float32)

    def search(self, qvec: np.ndarray, k: int, exclude: Collection[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """The exact top `k` rows (not in `exclude`) and their scores, best first."""
        scores = self.scores(qvec).astype(np.float64)
        if len(exclude):
            scores[np.fromiter(exclude, dtype=np.int64, count=len(exclude))] = -np.inf
        rows = top_k_rows(scores, k)
        return rows, scores[rows].astype(np.float32)


@dataclass
class HNSWConfig:
    """Settings of the HNSW graph (hnswlib)."""

    M: int = 16  # graph degree: more = better recall, more memory
    ef_construction: int = 200  # build-time beam width
    ef: int | None = None  # query-time beam width; None = tuned at build time to reach target_recall
    target_recall: float = 0.99  # recall@tune_k against exact search that tuning aims for
    tune_k: int = 10  # k used while tuning ef
    tune_queries: int = 200  # sample queries used while tuning ef (perturbed items, plus the caller's examples)
    seed: int = 0  # graph construction and tuning-sample seed
    threads: int = 1  # hnswlib threads for build and query (the app shares two cores)


class HNSWIndex:
    """Approximate inner-product search over an HNSW graph (hnswlib's "ip" space).

    Items are indexed as they are. The textbook reduction of inner product to nearest-neighbour search
    (one extra coordinate that equalises the norms) was measured here and gave far lower recall on both
    equal- and mixed-norm data, so it is not used.
    """

    kind = "hnsw"

    def __init__(self, vectors: np.ndarray, config: HNSWConfig | None = None,
                 queries: np.ndarray | None = None) -> None:
        """`queries`: examples of the queries to expect, for tuning ef (default: perturbed item vectors)."""
        import hnswlib

        self.config = config or HNSWConfig()
        vectors = np.asarray(vectors, dtype=np.float32)
        self.n_items, self.dim = vectors.shape
        self._index = hnswlib.Index(space="ip", dim=self.dim)
        self._index.init_index(max_elements=max(self.n_items, 1), M=self.config.M,
                               ef_construction=self.config.ef_construction, random_seed=self.config.seed)
        self._index.set_num_threads(self.config.threads)
        if self.n_items:
            self._index.add_items(np.ascontiguousarray(vectors), np.arange(self.n_items))
        self._exact = ExactIndex(vectors)
        self.ef = self.config.ef or self._tune(vectors, queries)
        self._index.set_ef(self.ef)

    def _tune(self, vectors: np.ndarray, queries: np.ndarray | None) -> int:
        """The smallest ef on the ladder whose recall@tune_k on sample queries reaches target_recall."""
        if self.n_items == 0:
            return EF_LADDER[0]
        rng = np.random.default_rng(self.config.seed)
        n = self.config.tune_queries
        # queries near real items, but not equal to them, like a new user's aggregate of liked items or uploads
        rows = rng.choice(self.n_items, size=min(n, self.n_items), replace=False)
        noise = rng.standard_normal((len(rows), self.dim)).astype(np.float32)
        scale = np.linalg.norm(vectors[rows], axis=1, keepdims=True) / np.sqrt(self.dim)
        samples = [vectors[rows] + noise * scale]
        if queries is not None and len(queries):  # and the caller's examples (e.g. known users), half each
            queries = np.asarray(queries, np.float32)
            samples = [samples[0][:n // 2], queries[rng.permutation(len(queries))[:n - n // 2]]]
        queries = np.concatenate(samples)
        k = min(self.config.tune_k, self.n_items)
        truth = [self._exact.search(q, k)[0] for q in queries]
        for ef in EF_LADDER:
            self.ef = ef
            found = [self.search(q, k)[0] for q in queries]
            recall = np.mean([len(np.intersect1d(t, f)) / max(len(t), 1) for t, f in zip(truth, found)])
            if recall >= self.config.target_recall:
                return ef
        return EF_LADDER[-1]

    def search(self, qvec: np.ndarray, k: int, exclude: Collection[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """The approximate top `k` rows (not in `exclude`) and their inner products, best first."""
        want = min(k + len(exclude), self.n_items)  # over-fetch so excluded rows can be dropped
        if want <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        self._index.set_ef(max(self.ef, want))
        q = np.asarray(qvec, dtype=np.float32)[None, :]
        labels, distances = self._index.knn_query(q, k=want, num_threads=self.config.threads)
        rows = labels[0].astype(np.int64)
        scores = (1.0 - distances[0]).astype(np.float32)  # hnswlib's "ip" distance is 1 − <q, x>
        if len(exclude):
            keep = ~np.isin(rows, np.fromiter(exclude, dtype=np.int64, count=len(exclude)))
            rows, scores = rows[keep], scores[keep]
        order = np.lexsort((rows, -scores))[:k]
        return rows[order], scores[order]


def build_index(vectors: np.ndarray, kind: str = "auto", config: HNSWConfig | None = None,
                queries: np.ndarray | Callable[[], np.ndarray] | None = None) -> VectorIndex:
    """An index over `vectors`: "exact", "hnsw", or "auto" (exact below AUTO_EXACT_BELOW items).

    `queries` (or a function making them, called only for HNSW) are example queries to tune ef on."""
    if kind == "auto":
        kind = "exact" if len(vectors) < AUTO_EXACT_BELOW else "hnsw"
    if kind == "exact":
        return ExactIndex(vectors)
    if kind == "hnsw":
        return HNSWIndex(vectors, config, queries() if callable(queries) else queries)
    raise ValueError(f"index kind {kind!r} is unknown; use 'auto', 'exact' or 'hnsw'")


def measure_recall(index: VectorIndex, exact: VectorIndex, queries: np.ndarray, k: int) -> float:
    """Mean recall@k of `index` against `exact` over the rows of `queries` (overlap of the top-k sets)."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if len(queries) == 0 or k <= 0:
        raise ValueError("measure_recall needs at least one query and k >= 1")
    hits = 0
    total = 0
    for q in queries:
        truth, _ = exact.search(q, k)
        found, _ = index.search(q, k)
        hits += len(np.intersect1d(truth, found))
        total += len(truth)
    return hits / max(total, 1)
