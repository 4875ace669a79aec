"""Top-k search of item vectors by inner product: an exact matrix product, an approximate HNSW graph
(hnswlib) and an inverted file (FAISS IVF-Flat, the default above AUTO_EXACT_BELOW items) behind one
`search(qvec, k, exclude) -> (rows, scores)` call. An approximate index is saved beside the model it
serves and reloaded with it (`ensure_index`), never rebuilt on each start.

Rows are indices into the matrix the index was built from (the caller maps them to item ids). Scores are
inner products; the recommend service appends each item's bias as one more column (and a 1 to the query)
so that an index score equals the model's score.

An index holds FIXED item vectors. What-if modality weights or masks change the item vectors themselves,
so the recommend service scores those queries exactly: over every item, or over a candidate set from the
index whose size it chose from measured recall when the index was built (saved in index.json).
An approximate index chooses its own search width (HNSW ef, IVF nprobe) when built, from recall@10
against exact search on sample queries, up to a stated ceiling (with a logged warning when the target is
not reached there), and saves it beside the index with what it was tuned on. The sample queries are the
caller's named sets of the queries it will send, with the rows it excludes (the recommend service: its
listeners' vectors, liked-items queries); IVF chooses per set an nprobe and a "head" of items scanned
exactly beside the visited cells (IVFIndex), and a query naming a kind (`kind`: a set's name or the kind
its sets stand for) is searched with those of its sets, any other with the widest. Without such sets:
the index's own vectors plus noise.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.store.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

AUTO_EXACT_BELOW = 50_000  # "auto" uses exact search below this many items: a (N, d) product is fast enough
AUTO_ANN = "ivf"  # the approximate index "auto" uses above that (benchmarks.scale, both parts: see README)
EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)  # candidate ef values, cheapest first
INDEX_DIR = "index"  # the folder of a saved index, beside the model's weights


_BLAS: list | None = None  # threadpoolctl's controllers of the loaded BLAS libraries, found once
_BLAS_LOCK = threading.Lock()
_BLAS_STATE: dict[str, Any] = {"depth": 0, "saved": []}


@contextmanager
def single_thread_blas() -> Iterator[None]:
    """A context that runs BLAS on one thread (nested and concurrent uses share one limit).

    One matrix-vector product is memory-bound; measured on two busy cores, OpenBLAS's two threads made
    a 10,000 × 65 product 30× slower (8.5 ms against 0.25 ms) than one thread. Only the outermost block
    sets the limit and the last one out restores it, through the libraries' own controllers found once
    (3 µs for both OpenBLAS copies, against 29 µs for a threadpoolctl `limit`, which re-reads them all).
    """
    global _BLAS
    with _BLAS_LOCK:
        if _BLAS is None:
            from threadpoolctl import ThreadpoolController

            _BLAS = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        if _BLAS_STATE["depth"] == 0:
            _BLAS_STATE["saved"] = [lib.get_num_threads() for lib in _BLAS]
            for lib in _BLAS:
                lib.set_num_threads(1)
        _BLAS_STATE["depth"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["depth"] -= 1
            if _BLAS_STATE["depth"] == 0:
                for lib, threads in zip(_BLAS, _BLAS_STATE["saved"]):
                    if threads is not None:
                        lib.set_num_threads(threads)
                _BLAS_STATE["saved"] = []


class VectorIndex(Protocol):
    """What the recommend service needs from an index."""

    kind: str
    n_items: int

    def search(self, qvec: np.ndarray, k: int, exclude: Collection[int] = (), kind: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The top `k` rows by inner product with `qvec` (not in `exclude`) and their scores, best first;
        `kind` names the sample set the query is like (an index may search such queries narrower)."""
        ...


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest finite scores, best first (ties broken by lower index)."""
    finite = int(np.isfinite(scores).sum())
    k = min(k, finite)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k]
    kth = scores[top].min()  # the k-th largest score: of the items tied at it, the lowest rows are kept
    above = np.flatnonzero(scores > kth)
    top = np.concatenate([above, np.flatnonzero(scores == kth)[:k - len(above)]])
    return top[np.lexsort((top, -scores[top]))].astype(np.int64)


THRESHOLD_STRIDE = 64  # fast_top_k_rows reads every 64th score to find a threshold the top k all pass


def fast_top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """top_k_rows(scores, k) for a long float32 array with no NaN, without partitioning all of it.

    The k-th largest of a strided sample is at most the k-th largest of the whole array, so every one of
    the top k is ≥ it: one comparison pass keeps about k × THRESHOLD_STRIDE candidates, which top_k_rows
    ranks. Falls back to top_k_rows when the sample cannot give a finite threshold.
    """
    n = len(scores)
    sample = scores[::THRESHOLD_STRIDE]
    if k <= 0 or n < 4 * THRESHOLD_STRIDE * max(k, 1) or len(sample) <= k:
        return top_k_rows(scores, k)
    threshold = np.partition(sample, len(sample) - k)[len(sample) - k]
    if not np.isfinite(threshold):
        return top_k_rows(scores, k)
    candidates = np.flatnonzero(scores >= threshold)
    return candidates[top_k_rows(scores[candidates], k)]


def not_excluded(rows: np.ndarray, exclude: Collection[int]) -> np.ndarray:
    """(n,) bool: which of a short list of rows are not in `exclude` (set lookups: np.isin sorts both
    arrays, about 0.3 ms per query for a listener's few dozen training items)."""
    exclude = exclude if isinstance(exclude, (set, frozenset)) else set(exclude)
    return np.fromiter((int(r) not in exclude for r in rows), dtype=bool, count=len(rows))


def merge_top_k(rows: np.ndarray, scores: np.ndarray, k: int, exclude: Collection[int] = ()
                ) -> tuple[np.ndarray, np.ndarray]:
    """The top `k` distinct rows (≥ 0, not in `exclude`) of candidate lists joined end to end, best first
    (ties: lower row); a row listed twice (in a visited cell and in the head) counts once."""
    if len(rows) <= 512:  # a query's few dozen candidates: one small sort, then a walk (7× faster than below)
        excluded = exclude if isinstance(exclude, (set, frozenset)) else set(exclude)
        listed, picked, seen = rows.tolist(), [], set()
        for j in np.lexsort((rows, -scores)).tolist():
            row = listed[j]
            if row >= 0 and row not in seen and row not in excluded:
                seen.add(row)
                picked.append(j)
                if len(picked) == k:
                    break
        at = np.asarray(picked, dtype=np.int64)
        return rows[at], scores[at]
    keep = rows >= 0
    if len(exclude):
        keep &= ~np.isin(rows, np.fromiter(exclude, dtype=np.int64, count=len(exclude)))
    rows, first = np.unique(rows[keep], return_index=True)  # by row: one sort, no pairwise lexsort
    scores = scores[keep][first]
    top = top_k_rows(scores, k)
    return rows[top], scores[top]


@dataclass
class SampleQueries:
    """Sample queries an index tunes its search width on, each with the rows its search excludes (as the
    caller sends them: e.g. a listener's training items, a query's liked items)."""

    vectors: np.ndarray  # (n, d) float32
    exclude: list[Collection[int]] | None = None  # per query; None = nothing excluded
    kind: str | None = None  # the `kind` the caller searches such queries with; None = the set's own name

    def __len__(self) -> int:
        return len(self.vectors)

    def items(self) -> Iterator[tuple[np.ndarray, Collection[int]]]:
        """(query, its excluded rows) pairs."""
        exclude = self.exclude if self.exclude is not None else [()] * len(self.vectors)
        return zip(self.vectors, exclude)


TuneQueries = dict[str, SampleQueries | np.ndarray]  # named sets of sample queries (arrays: nothing excluded)
ITEM_SAMPLE = "item vectors"  # the name of the fallback set: the index's own vectors plus noise


def named_queries(queries: TuneQueries | np.ndarray | None) -> dict[str, SampleQueries]:
    """`queries` as named non-empty sets (one unnamed array becomes the set "given")."""
    if queries is None:
        return {}
    if not isinstance(queries, dict):
        queries = {"given": queries}
    out = {}
    for name, q in queries.items():
        q = q if isinstance(q, SampleQueries) else SampleQueries(np.asarray(q, np.float32))
        if len(q):
            out[name] = SampleQueries(np.atleast_2d(np.asarray(q.vectors, np.float32)), q.exclude, q.kind)
    return out


def recall_per_set(search: Callable[..., tuple[np.ndarray, np.ndarray]], truth: dict[str, list[np.ndarray]],
                   queries: dict[str, SampleQueries], k: int) -> dict[str, float]:
    """Mean recall@k of `search` against the exact top-k rows `truth`, for each named set of queries."""
    return {name: float(np.mean([len(np.intersect1d(t, search(q, k, ex)[0])) / max(len(t), 1)
                                 for (q, ex), t in zip(queries[name].items(), truth[name])])) for name in queries}


def exact_truth(vectors: np.ndarray, queries: dict[str, SampleQueries], k: int) -> dict[str, list[np.ndarray]]:
    """The exact top-k rows of every sample query (its excluded rows left out), per named set."""
    exact = ExactIndex(vectors)
    return {name: [exact.search(q, k, ex)[0] for q, ex in qs.items()] for name, qs in queries.items()}


class ExactIndex:
    """Brute-force inner-product search: one float32 matrix-vector product over all items.

    One scan is memory-bound, so the layout is chosen for bandwidth: the vectors are stored transposed,
    (d, N) C-contiguous, and scored as q · V^T, which streams d long rows (BLAS's non-transposed GEMV).
    Measured in one run on 1M × 66 float32: 23.7 ms against 48.3 ms for the (N, d) row-major product
    (a row of 66 floats straddles cache lines). Scores go into a per-thread preallocated float32 buffer;
    no float64 copy is made.
    """

    kind = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        self.n_items, self.dim = vectors.shape
        self.columns = np.ascontiguousarray(vectors.T)  # (d, N)
        self._buffers = threading.local()

    @property
    def nbytes(self) -> int:
        """Bytes one full scan reads."""
        return self.columns.nbytes

    @property
    def vectors(self) -> np.ndarray:
        """(N, d) the indexed vectors (a view of the stored transpose)."""
        return self.columns.T

    def scores(self, qvec: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(N,) float32 inner products of every item with `qvec`, into `out` (default: this thread's buffer,
        overwritten by the next call on this thread)."""
        q = np.ascontiguousarray(np.asarray(qvec, dtype=np.float32).reshape(-1))
        if len(q) != self.dim:
            raise ValueError(f"the query has {len(q)} values; the index holds {self.dim}-d vectors")
        if out is None:
            out = getattr(self._buffers, "scores", None)
            if out is None or len(out) != self.n_items:
                out = self._buffers.scores = np.empty(self.n_items, np.float32)
        with single_thread_blas():
            np.dot(q, self.columns, out=out)
        return out

    def search(self, qvec: np.ndarray, k: int, exclude: Collection[int] = (), kind: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top `k` rows (not in `exclude`) and their scores, best first."""
        scores = self.scores(qvec)
        if len(exclude):
            scores[np.fromiter(exclude, dtype=np.int64, count=len(exclude))] = -np.inf
        rows = fast_top_k_rows(scores, k)
        return rows, scores[rows].copy()


@dataclass
class HNSWConfig:
    """Settings of the HNSW graph (hnswlib)."""

    M: int = 16  # graph degree: more = better recall, more memory
    ef_construction: int = 100  # build-time beam width (200 doubled the build for no recall at a tuned ef)
    ef: int | None = None  # query-time beam width; None = tuned at build time to reach target_recall
    target_recall: float = 0.97  # recall@tune_k against exact search that tuning aims for (≥ .95 + margin)
    tune_k: int = 10  # k used while tuning ef
    tune_queries: int = 200  # sample queries tuning ef when the caller gives none: own vectors plus noise
    sample_noise: float = 1.0  # that noise's norm relative to the item's (1: queries far from any item)
    seed: int = 0  # graph construction and tuning-sample seed
    threads: int = 1  # hnswlib threads for queries (one small query: threads only add hand-offs)
    build_threads: int = 2  # hnswlib threads while building the graph (1: the same graph for a seed; more:
    #   insertion order, hence the graph, depends on thread timing)


class HNSWIndex:
    """Approximate inner-product search over an HNSW graph (hnswlib's "ip" space).

    Items are indexed as they are. The textbook reduction of inner product to nearest-neighbour search
    (one extra coordinate that equalises the norms) was measured here and gave far lower recall on both
    equal- and mixed-norm data, so it is not used.
    """

    kind = "hnsw"

    def __init__(self, vectors: np.ndarray, config: HNSWConfig | None = None,
                 queries: TuneQueries | np.ndarray | None = None) -> None:
        """`queries`: named sets of sample queries to tune ef on, the target required on each (default:
        the index's own vectors plus noise)."""
        import hnswlib

        self.config = config or HNSWConfig()
        self.tuned_recall: float | None = None  # recall@tune_k at the chosen ef (the lowest over the sets)
        self.tuned_on: dict[str, dict[str, float]] = {}  # sample set -> {"queries": n, "recall": at the ef}
        vectors = np.asarray(vectors, dtype=np.float32)
        self.n_items, self.dim = vectors.shape
        self._index = hnswlib.Index(space="ip", dim=self.dim)
        self._index.init_index(max_elements=max(self.n_items, 1), M=self.config.M,
                               ef_construction=self.config.ef_construction, random_seed=self.config.seed)
        self._index.set_num_threads(self.config.build_threads)
        if self.n_items:
            self._index.add_items(np.ascontiguousarray(vectors), np.arange(self.n_items))
        self._index.set_num_threads(self.config.threads)
        self.ef = self.config.ef or self._tune(vectors, queries)
        self._index.set_ef(self.ef)

    def _tune(self, vectors: np.ndarray, queries: TuneQueries | np.ndarray | None) -> int:
        """The smallest ef on EF_LADDER whose recall@tune_k against exact search reaches target_recall on
        every set of sample queries; the ladder's top (its ceiling), with a warning, when none does."""
        if self.n_items == 0:
            return EF_LADDER[0]
        queries = named_queries(queries) or named_queries({
            ITEM_SAMPLE: example_queries(vectors, None, self.config.tune_queries, self.config.seed,
                                         self.config.sample_noise)})
        k = min(self.config.tune_k, self.n_items)
        truth = exact_truth(vectors, queries, k)
        for ef in EF_LADDER:
            self.ef = ef
            recalls = recall_per_set(self.search, truth, queries, k)
            self.tuned_recall = min(recalls.values())
            self.tuned_on = {name: {"queries": len(qs), "recall": recalls[name]} for name, qs in queries.items()}
            if self.tuned_recall >= self.config.target_recall:
                return ef
        log.warning("HNSW index over %d items: recall@%d %.3f at the ceiling ef %d, below the target %.2f; "
                    "searches stay at the ceiling (raise M or use exact search)", self.n_items, k,
                    self.tuned_recall, EF_LADDER[-1], self.config.target_recall)
        return EF_LADDER[-1]

    def save(self, path: Path) -> None:
        self._index.save_index(str(path))

    @classmethod
    def load(cls, path: Path, vectors: np.ndarray, ef: int | None, config: HNSWConfig | None = None,
             tuned_recall: float | None = None) -> "HNSWIndex":
        """A saved graph over `vectors`, with the ef chosen when it was built."""
        import hnswlib

        self = cls.__new__(cls)
        self.config = config or HNSWConfig()
        self.tuned_recall = tuned_recall
        self.tuned_on = {}
        self.n_items, self.dim = np.shape(vectors)
        self._index = hnswlib.Index(space="ip", dim=self.dim)
        self._index.load_index(str(path), max_elements=max(self.n_items, 1))
        self._index.set_num_threads(self.config.threads)
        self.ef = int(ef or EF_LADDER[-1])
        self._index.set_ef(self.ef)
        return self

    def search(self, qvec: np.ndarray, k: int, exclude: Collection[int] = (), kind: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
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
            keep = not_excluded(rows, exclude)
            rows, scores = rows[keep], scores[keep]
        order = np.lexsort((rows, -scores))[:k]
        return rows[order], scores[order]


@dataclass
class IVFConfig:
    """Settings of the inverted-file index (FAISS IndexIVFFlat, inner product)."""

    nlist: int | None = None  # coarse clusters; None = 4·√N
    nprobe: int | None = None  # clusters visited per query; None = tuned at build time (see IVFIndex._tune)
    train_per_list: int = 64  # k-means training sample per cluster
    seed: int = 0  # k-means and tuning-sample seed
    build_threads: int = 2  # threads for training and adding (queries run on one)
    target_recall: float = 0.97  # recall@10 against exact search that nprobe tuning aims for (≥ .95 + margin)
    tune_queries: int = 200  # sample queries when the caller gives none: own vectors plus noise (example_queries)
    sample_noise: float = 0.25  # its norm relative to the item's (cosine ≈ 0.97: like a mean of liked items)
    sample_tails: tuple[tuple[float, ...], ...] | None = None  # what sample queries hold in the columns after
    #   cell_columns, cycled over the samples (the service: (1, 0) a listener, (0, prior weight) a content
    #   query); None keeps the sampled item's own values there
    max_probe_share: float = 0.125  # ceiling: never visit more than this share of the cells per query
    cell_columns: int | None = None  # leading columns the cells are trained on (None = all); the service
    #   leaves out its bias and prior columns, which would otherwise split cells by popularity, not by
    #   direction (recall@10 at nprobe 64 of 565 rose from .64 to .89 on the benchmark's listener queries)
    head: bool = True  # also scan exactly the "head": the items of the largest score bound (IVFIndex); False =
    #   visited cells only
    head_min: int = 256  # the first non-zero rung of the head-size ladder (doubling from there)
    max_head_share: float = 0.125  # ceiling on the head as a share of the items


class IVFIndex:
    """Approximate inner-product search over an inverted file of k-means cells (FAISS IVF-Flat): vectors are
    stored uncompressed, so a visited cell is scored exactly.

    Beside the visited cells a query also scans exactly a "head": the items whose score can be largest
    wherever they lie. A cell is chosen by the query's product with its centroid, which misses items far
    from their centroid in norm: an item's content score q · v is at most |q| |v|, so items of large norm
    (hubs of inner-product search) and of large values in the columns after cell_columns (the service's
    bias or prior, zero in every centroid) win queries whose cells they are not in. The head of a sample set
    holds the H items of largest |q̄| |v[:c]| + t̄ · v[c:] (|q̄| the median norm of its queries' first c
    columns, t̄ their mean remaining columns), found once from the vectors; both lists are scored exactly
    and merged. (nprobe, H) per set is the cheapest pair (nprobe × mean cell size + H vectors scanned)
    whose recall@10 on that set reaches the target. On the benchmark's 1M-item world at nprobe 8 of 4,000,
    a 4,096-item head raised "similar items" recall@10 from .55 to .98 (a head by prior alone: .56).
    """

    kind = "ivf"

    def __init__(self, vectors: np.ndarray | None, config: IVFConfig | None = None, faiss_index=None,
                 queries: TuneQueries | np.ndarray | None = None) -> None:
        """`queries`: named sets of sample queries to tune nprobe on, the target required on each (default:
        the index's own vectors plus noise)."""
        import faiss

        self.config = config or IVFConfig()
        self.tuned_recall: float | None = None  # recall@10 at the chosen nprobe (the lowest over the sets)
        self.tuned_on: dict[str, dict[str, float]] = {}  # sample set -> {"queries": n, "recall", "nprobe", "head"}
        self.nprobe_for: dict[str, int] = {}  # sample set -> the nprobe its queries are searched with
        self.head_for: dict[str, int] = {}  # sample set -> its head size (0: cells only)
        self.head_key: dict[str, dict[str, Any]] = {}  # sample set -> {"query_norm": |q̄|, "tail": t̄}
        self.kind_of: dict[str, str] = {}  # sample set -> the query kind it stands for
        self._plans: dict[str | None, tuple[int, np.ndarray, ExactIndex | None]] = {}  # kind -> (nprobe, head
        #   rows, an exact index over their vectors); None: queries of no tuned kind
        if faiss_index is not None:  # a loaded index
            self._index = faiss_index
            self.n_items, self.dim = int(faiss_index.ntotal), int(faiss_index.d)
        else:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            self.n_items, self.dim = vectors.shape
            nlist = self.config.nlist or max(1, min(int(4 * np.sqrt(self.n_items)), self.n_items))
            quantiser = faiss.IndexFlatIP(self.dim)
            self._index = faiss.IndexIVFFlat(quantiser, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self._index.own_fields = True
            quantiser.this.disown()
            rng = np.random.default_rng(self.config.seed)
            sample = vectors[rng.choice(self.n_items, size=min(self.n_items, self.config.train_per_list * nlist),
                                        replace=False)]
            if self.config.cell_columns is not None and self.config.cell_columns < self.dim:
                sample[:, self.config.cell_columns:] = 0.0  # centroids with zeros there: cells by direction
            before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(self.config.build_threads)
            try:
                self._index.cp.seed = self.config.seed
                self._index.train(sample)
                self._index.add(vectors)
            finally:
                faiss.omp_set_num_threads(before)
        self.nprobe = self.config.nprobe or 1
        if faiss_index is None and self.config.nprobe is None:
            queries = named_queries(queries)
            if not queries:
                sample = example_queries(vectors, None, self.config.tune_queries, self.config.seed,
                                         self.config.sample_noise)
                tails, start = self.config.sample_tails, self.config.cell_columns
                if tails and start is not None and start < self.dim:
                    sample[:, start:] = np.asarray(tails, np.float32)[np.arange(len(sample)) % len(tails)]
                queries = named_queries({ITEM_SAMPLE: sample})
            self.nprobe = self._tune(vectors, queries)
            self._make_plans(vectors)
        self._index.nprobe = self.nprobe

    @property
    def nprobe_ceiling(self) -> int:
        """The most cells a query visits at the configured max_probe_share (at least 1)."""
        return max(1, int(self._index.nlist * self.config.max_probe_share))

    @property
    def head_ceiling(self) -> int:
        """The largest head at the configured max_head_share (0 when the head is off)."""
        return int(self.n_items * self.config.max_head_share) if self.config.head else 0

    @property
    def content_columns(self) -> int:
        """c: the leading columns the cells are trained on (the rest are zero in every centroid)."""
        c = self.config.cell_columns
        return self.dim if c is None or c >= self.dim else int(c)

    def head_order(self, vectors: np.ndarray, key: dict[str, Any], size: int) -> np.ndarray:
        """The `size` rows of largest score bound |q̄| |v[:c]| + t̄ · v[c:], largest first (ties: lower row)."""
        size = min(int(size), self.n_items)
        if size <= 0:
            return np.empty(0, dtype=np.int64)
        c = self.content_columns
        vectors = np.asarray(vectors, np.float32)
        bound = float(key["query_norm"]) * np.linalg.norm(vectors[:, :c], axis=1)
        if c < self.dim:
            bound = bound + vectors[:, c:] @ np.asarray(key["tail"], np.float32)
        return top_k_rows(bound.astype(np.float32), size)

    def _make_plans(self, vectors: np.ndarray) -> None:
        """Per query kind: the widest nprobe of its sets and the union of their heads (and a plan for queries
        of no tuned kind: the widest nprobe and every head)."""
        vectors = np.asarray(vectors, np.float32)
        heads = {name: self.head_order(vectors, self.head_key[name], size) if name in self.head_key else
                 np.empty(0, np.int64) for name, size in self.head_for.items()}
        groups: dict[str | None, list[str]] = {None: list(self.nprobe_for)}
        for name in self.nprobe_for:
            groups.setdefault(self.kind_of.get(name, name), []).append(name)
        self._plans = {}
        for kind, names in groups.items():
            rows = np.unique(np.concatenate([heads.get(n, np.empty(0, np.int64)) for n in names] +
                                            [np.empty(0, np.int64)])).astype(np.int64)
            nprobe = max([self.nprobe_for[n] for n in names], default=self.nprobe)
            # the head scored like an exact scan: stored transposed, one GEMV into a per-thread buffer (a
            # 4,096 × 66 head measured 53 µs against 130 µs as a row-major product)
            self._plans[kind] = (nprobe, rows, ExactIndex(vectors[rows]) if len(rows) else None)

    def _tune(self, vectors: np.ndarray, queries: dict[str, SampleQueries]) -> int:
        """For each set of sample queries, the cheapest (nprobe, head size) — nprobe 1, 2, 4, … up to
        nprobe_ceiling, head 0, head_min, 2 × head_min, … up to head_ceiling, cost nprobe × N / nlist + H
        vectors scanned — whose recall@10 against exact search reaches target_recall (both ceilings, with a
        warning, when none does), kept in nprobe_for and head_for; returns the largest nprobe, the width of
        queries of no named kind."""
        k = min(10, self.n_items)
        truth = exact_truth(vectors, queries, k)
        ceiling, head_ceiling = self.nprobe_ceiling, self.head_ceiling
        probes = sorted({min(ceiling, 2 ** i) for i in range(ceiling.bit_length() + 1)})
        sizes = [0] + sorted({min(head_ceiling, self.config.head_min * 2 ** i)
                              for i in range(max(head_ceiling, 1).bit_length() + 1)} - {0}) if head_ceiling else [0]
        cell = self.n_items / max(int(self._index.nlist), 1)
        c = self.content_columns
        self.nprobe_for, self.head_for, self.head_key, self.tuned_on = {}, {}, {}, {}
        self.kind_of = {name: qs.kind or name for name, qs in queries.items()}
        short = []
        for name, qs in queries.items():
            key = {"query_norm": float(np.median(np.linalg.norm(qs.vectors[:, :c], axis=1))),
                   "tail": qs.vectors[:, c:].mean(axis=0).astype(float).tolist()}
            order = self.head_order(vectors, key, sizes[-1])
            head_vectors = np.ascontiguousarray(np.asarray(vectors, np.float32)[order])
            pairs = list(qs.items())
            with single_thread_blas():
                head_scores = [head_vectors @ q for q, _ in pairs]  # (H_max,) per query, head rows largest first
            cells: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}

            def recall(nprobe: int, size: int) -> float:
                if nprobe not in cells:
                    cells[nprobe] = [self._cell_search(q, k + len(ex), nprobe) for q, ex in pairs]
                hits = 0.0
                for (q, ex), t, (rows, scores), hs in zip(pairs, truth[name], cells[nprobe], head_scores):
                    if size:
                        take = top_k_rows(hs[:size], k + len(ex))
                        rows, scores = np.concatenate([rows, order[take]]), np.concatenate([scores, hs[take]])
                    found, _ = merge_top_k(rows, scores, k, ex)
                    hits += len(np.intersect1d(t, found)) / max(len(t), 1)
                return hits / max(len(pairs), 1)

            best: tuple[float, int, int, float] | None = None
            for nprobe in probes:
                if best is not None and nprobe * cell >= best[0]:
                    break
                for size in sizes:
                    cost = nprobe * cell + size
                    if best is not None and cost >= best[0]:
                        break
                    got = recall(nprobe, size)
                    if got >= self.config.target_recall:
                        best = (cost, nprobe, size, got)
                        break
            if best is None:
                best = (ceiling * cell + sizes[-1], ceiling, sizes[-1], recall(ceiling, sizes[-1]))
                short.append(name)
            _, nprobe, size, got = best
            self.nprobe_for[name], self.head_for[name], self.head_key[name] = nprobe, size, key
            self.tuned_on[name] = {"queries": len(qs), "recall": got, "nprobe": nprobe, "head": size}
        self.tuned_recall = min(t["recall"] for t in self.tuned_on.values()) if self.tuned_on else None
        if short:
            log.warning("IVF index over %d items: recall@10 %s at the ceilings (%d of %d cells, a head of %d "
                        "items), below the target %.2f; those searches stay at the ceilings (raise "
                        "IVFConfig.max_probe_share or use exact search)", self.n_items,
                        ", ".join(f"{n} {self.tuned_on[n]['recall']:.3f}" for n in short), ceiling,
                        self._index.nlist, sizes[-1], self.config.target_recall)
        else:
            log.info("IVF index over %d items, %d cells: %s", self.n_items, self._index.nlist,
                     ", ".join(f"{n} nprobe {t['nprobe']} + head {t['head']} (recall@10 {t['recall']:.3f})"
                               for n, t in self.tuned_on.items()))
        return max(self.nprobe_for.values(), default=1)

    def _cell_search(self, q: np.ndarray, want: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, inner products) of the best `want` items in the `nprobe` cells nearest `q` (rows −1 pad)."""
        import faiss

        q = np.ascontiguousarray(np.asarray(q, dtype=np.float32)[None, :])
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # one small query: threads only add hand-offs (see single_thread_blas)
        try:
            scores, labels = self._index.search(q, want, params=faiss.SearchParametersIVF(nprobe=nprobe))
        finally:
            faiss.omp_set_num_threads(before)
        return labels[0].astype(np.int64), scores[0].astype(np.float32)

    def search(self, qvec: np.ndarray, k: int, exclude: Collection[int] = (), kind: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The approximate top `k` rows (not in `exclude`) and their inner products, best first: the visited
        cells and the head of the query's kind, merged."""
        want = min(k + len(exclude), self.n_items)
        if want <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        plan = self._plans.get(kind, self._plans.get(None))
        if plan is None:  # a loaded index without sample sets, or set through the config
            plan = (self.nprobe_for.get(kind, self.nprobe) if kind is not None else self.nprobe,
                    np.empty(0, np.int64), None)
        width, head_rows, head = plan
        # a long candidate list (what-if re-ranking) visits enough cells to hold about twice its length
        nlist = int(self._index.nlist)
        nprobe = min(nlist, max(width, int(np.ceil(2 * want * nlist / max(self.n_items, 1)))))
        rows, scores = self._cell_search(qvec, want, nprobe)
        if head is not None:
            head_scores = head.scores(qvec)  # this thread's buffer: the rows taken below are copied
            take = np.argpartition(-head_scores, want - 1)[:want] if len(head_rows) > want else \
                np.arange(len(head_rows))
            rows = np.concatenate([rows, head_rows[take]])
            scores = np.concatenate([scores, head_scores[take]])
        return merge_top_k(rows, scores, k, exclude)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, config: IVFConfig | None = None, tuned_recall: float | None = None,
             nprobe_for: dict[str, int] | None = None, vectors: np.ndarray | None = None,
             head_for: dict[str, int] | None = None, head_key: dict[str, dict[str, Any]] | None = None,
             kind_of: dict[str, str] | None = None) -> "IVFIndex":
        """A saved index with the nprobe given in `config` and per sample set `nprobe_for`, and the heads
        `head_for` found again from `vectors` by `head_key` (those chosen when it was built)."""
        import faiss

        self = cls(None, config, faiss_index=faiss.read_index(str(path)))
        self.tuned_recall = tuned_recall
        self.nprobe_for = {str(name): int(n) for name, n in (nprobe_for or {}).items()}
        self.head_for = {str(name): int(n) for name, n in (head_for or {}).items()}
        self.head_key = {str(name): dict(key) for name, key in (head_key or {}).items()}
        self.kind_of = {str(name): str(kind) for name, kind in (kind_of or {}).items()}
        if vectors is not None and self.nprobe_for:
            self._make_plans(vectors)
        return self


def example_queries(vectors: np.ndarray, given: np.ndarray | None, n: int, seed: int = 0,
                    noise: float = 1.0) -> np.ndarray:
    """(≤ n, d) queries to tune an index on: items plus Gaussian noise of `noise` × the item's norm (like
    an aggregate of liked items or an upload) and, when given, half from the caller's examples."""
    vectors = np.asarray(vectors, np.float32)
    if len(vectors) == 0:
        return np.empty((0, vectors.shape[1]), np.float32)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=min(n, len(vectors)), replace=False)
    scale = noise * np.linalg.norm(vectors[rows], axis=1, keepdims=True) / np.sqrt(vectors.shape[1])
    samples = vectors[rows] + rng.standard_normal((len(rows), vectors.shape[1])).astype(np.float32) * scale
    if given is not None and len(given):
        given = np.asarray(given, np.float32)
        samples = np.concatenate([samples[:n // 2], given[rng.permutation(len(given))[:n - n // 2]]])
    return samples


def resolve_kind(kind: str, n_items: int) -> str:
    """"auto" → "exact" below AUTO_EXACT_BELOW items, else AUTO_ANN; other kinds are checked and kept."""
    if kind == "auto":
        return "exact" if n_items < AUTO_EXACT_BELOW else AUTO_ANN
    if kind not in ("exact", "hnsw", "ivf"):
        raise ValueError(f"index kind {kind!r} is unknown; use 'auto', 'exact', 'hnsw' or 'ivf'")
    return kind


def build_index(vectors: np.ndarray, kind: str = "auto", config: HNSWConfig | IVFConfig | None = None,
                queries: TuneQueries | None = None) -> VectorIndex:
    """An index over `vectors`: "exact", "hnsw" (hnswlib), "ivf" (FAISS IVF-Flat), or "auto" (exact below
    AUTO_EXACT_BELOW items, else AUTO_ANN). An approximate index tunes its search width (ef, nprobe) on
    `queries`, named sets of the queries its caller sends (the target reached on each), else on sample
    queries drawn from `vectors` themselves (example_queries)."""
    kind = resolve_kind(kind, len(vectors))
    if kind == "exact":
        return ExactIndex(vectors)
    if kind == "ivf":
        return IVFIndex(vectors, config if isinstance(config, IVFConfig) else IVFConfig(), queries=queries)
    return HNSWIndex(vectors, config if isinstance(config, HNSWConfig) else None, queries=queries)


# -- saved beside the model ----------------------------------------------------------------------------
def fingerprint(vectors: np.ndarray) -> str:
    """sha256 of the vectors' shape and bytes: a saved index is reused only for exactly these vectors."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    digest = hashlib.sha256(f"{v.shape}".encode())
    digest.update(memoryview(v).cast("B"))
    return digest.hexdigest()


def save_index(index: VectorIndex, folder: Path, vectors: np.ndarray) -> None:
    """Write an approximate index (and what it was built from) to `folder`/index/; exact needs nothing."""
    if index.kind == "exact":
        return
    target = Path(folder) / INDEX_DIR
    target.mkdir(parents=True, exist_ok=True)
    meta = {"kind": index.kind, "n_items": index.n_items, "fingerprint": fingerprint(vectors),
            "ef": getattr(index, "ef", None), "nprobe": getattr(index, "nprobe", None),
            "tuned_recall": getattr(index, "tuned_recall", None), "tuned_on": getattr(index, "tuned_on", {}),
            "nprobe_for": getattr(index, "nprobe_for", None), "head_for": getattr(index, "head_for", None),
            "head_key": getattr(index, "head_key", None), "kind_of": getattr(index, "kind_of", None),
            "cell_columns": getattr(getattr(index, "config", None), "cell_columns", None)}
    with atomic_path(target / "index.bin", "index file") as tmp:
        index.save(tmp)
    write_text_atomic(target / "index.json", json.dumps(meta, indent=1), "index description")  # written last


def record_index_setting(folder: Path, name: str, value: Any) -> None:
    """Store a setting chosen for the index saved in `folder`/index/ (e.g. the recommend service's what-if
    candidate count) in its index.json, so the next start reloads it with the index."""
    target = Path(folder) / INDEX_DIR
    meta = json.loads((target / "index.json").read_text())
    meta.setdefault("settings", {})[name] = value
    write_text_atomic(target / "index.json", json.dumps(meta, indent=1), "index description")


def load_index(folder: Path, vectors: np.ndarray) -> VectorIndex | None:
    """The index saved in `folder`/index/ when it was built from exactly `vectors`, else None."""
    target = Path(folder) / INDEX_DIR
    try:
        meta = json.loads((target / "index.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("n_items") != len(vectors) or meta.get("fingerprint") != fingerprint(vectors):
        log.info("the index saved in %s was built from other vectors; it is rebuilt", target)
        return None
    try:
        index: VectorIndex | None = None
        if meta["kind"] == "ivf":
            index = IVFIndex.load(target / "index.bin", IVFConfig(nprobe=int(meta["nprobe"]),
                                                                  cell_columns=meta.get("cell_columns")),
                                  tuned_recall=meta.get("tuned_recall"), nprobe_for=meta.get("nprobe_for"),
                                  vectors=vectors, head_for=meta.get("head_for"), head_key=meta.get("head_key"),
                                  kind_of=meta.get("kind_of"))
        elif meta["kind"] == "hnsw":
            index = HNSWIndex.load(target / "index.bin", vectors, int(meta["ef"]),
                                   tuned_recall=meta.get("tuned_recall"))
        if index is not None:
            _check_loaded(index, vectors)
            index.settings = dict(meta.get("settings", {}))
            index.tuned_on = dict(meta.get("tuned_on") or {})
        return index
    except (RuntimeError, OSError, KeyError, TypeError, ValueError) as e:
        log.warning("the index saved in %s does not load (%s); it is rebuilt", target, e)
    return None


def _check_loaded(index: VectorIndex, vectors: np.ndarray) -> None:
    """ValueError unless a loaded index holds exactly the rows of `vectors` (an index file swapped for one
    built on other vectors would return rows beyond the catalog): its count, its width, a probe search and,
    for HNSW, a few stored vectors compared with the catalog's."""
    n, d = np.shape(vectors)
    stored = int(index._index.get_current_count()) if index.kind == "hnsw" else int(index._index.ntotal)
    width = int(index._index.dim) if index.kind == "hnsw" else int(index._index.d)
    if stored != n or width != d:
        raise ValueError(f"the index file holds {stored:,} rows of {width} values, the catalog {n:,} of {d}")
    if n == 0:
        return
    probe = np.linspace(0, n - 1, num=min(n, 8)).astype(np.int64)
    if index.kind == "hnsw":
        saved = np.asarray(index._index.get_items(probe.tolist()), np.float32)
        if not np.allclose(saved, np.asarray(vectors, np.float32)[probe], atol=1e-4):
            raise ValueError("the index file was built on other vectors than the catalog's")
    rows, _ = index.search(np.asarray(vectors, np.float32)[probe[0]], min(n, 10))
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"the index file returns row {int(rows.max())}, beyond the catalog's {n:,} rows")


def ensure_index(folder: Path | None, vectors: np.ndarray, kind: str = "auto",
                 config: HNSWConfig | IVFConfig | None = None,
                 queries: Callable[[], TuneQueries] | None = None) -> VectorIndex:
    """The index of `kind` over `vectors`: the one saved in `folder` when it matches, else built (and, when
    approximate and `folder` is given, saved there so the next start loads it). `queries` gives the named
    sample query sets to tune a new index's search width on (called only when one is built)."""
    kind = resolve_kind(kind, len(vectors))
    if kind == "exact":
        return ExactIndex(vectors)
    if folder is not None:
        saved = load_index(folder, vectors)
        if saved is not None and saved.kind == kind:
            return saved
    index = build_index(vectors, kind, config, queries() if queries is not None else None)
    if folder is not None:
        save_index(index, folder, vectors)
    return index


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
