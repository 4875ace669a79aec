"""Approximate inner-product search over an HNSW graph (hnswlib), its beam width tuned on sample queries."""
from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.serving.index.samples import (ITEM_SAMPLE, TuneQueries, exact_truth, example_queries, named_queries,
                                        recall_per_set)
from core.serving.index.topk import not_excluded

log = logging.getLogger(__name__)


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
    ef_ladder: tuple[int, ...] = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)  # candidate ef values,
    #   cheapest first: tuning takes the first that reaches target_recall, else the last (the ceiling)
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
        """The smallest ef on config.ef_ladder whose recall@tune_k against exact search reaches target_recall on
        every set of sample queries; the ladder's top (its ceiling), with a warning, when none does."""
        if self.n_items == 0:
            return self.config.ef_ladder[0]
        queries = named_queries(queries) or named_queries({
            ITEM_SAMPLE: example_queries(vectors, None, self.config.tune_queries, self.config.seed,
                                         self.config.sample_noise)})
        k = min(self.config.tune_k, self.n_items)
        truth = exact_truth(vectors, queries, k)
        for ef in self.config.ef_ladder:
            self.ef = ef
            recalls = recall_per_set(self.search, truth, queries, k)
            self.tuned_recall = min(recalls.values())
            self.tuned_on = {name: {"queries": len(qs), "recall": recalls[name]} for name, qs in queries.items()}
            if self.tuned_recall >= self.config.target_recall:
                return ef
        log.warning("HNSW index over %d items: recall@%d %.3f at the ceiling ef %d, below the target %.2f; "
                    "searches stay at the ceiling (raise M or use exact search)", self.n_items, k,
                    self.tuned_recall, self.config.ef_ladder[-1], self.config.target_recall)
        return self.config.ef_ladder[-1]

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
        self.ef = int(ef or self.config.ef_ladder[-1])
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
