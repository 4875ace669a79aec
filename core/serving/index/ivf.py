"""Approximate inner-product search over an inverted file of k-means cells (FAISS IVF-Flat) with an exactly
scanned head, its (nprobe, head) per sample set tuned on the caller's queries."""
from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.serving.index.exact import ExactIndex
from core.serving.index.samples import (ITEM_SAMPLE, SampleQueries, TuneQueries, exact_truth, example_queries,
                                        named_queries)
from core.serving.index.topk import merge_top_k, top_k_rows
from core.serving.threads import single_thread_blas

log = logging.getLogger(__name__)


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
