"""ItemKNN: item–item cosine similarity on training co-occurrence; a user's score is their row times it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.models.base import InteractionData, ProgressCallback


@dataclass
class ItemKNNConfig:
    """Neighbourhood size and similarity shrinkage."""

    k: int = 50  # neighbours kept per item (the k most similar items of each item)
    shrink: float = 0.0  # added to the cosine denominator to damp rare co-occurrences; 0 was best on lfm2k valid


class ItemKNN:
    """score(u, i) = sum over u's training items j of sim(j, i), sim = shrunk cosine pruned to each j's top k."""

    name = "itemknn"
    kind = "baseline"

    def __init__(self, config: ItemKNNConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or ItemKNNConfig(), **overrides)
        self.history: list[dict] = []
        self.similarity: sp.csr_matrix | None = None  # (I, I), row j = neighbours of item j
        self._train: sp.csr_matrix | None = None

    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "ItemKNN":
        """Build the pruned item–item similarity from the training matrix."""
        r = sp.csr_matrix(data.train, dtype=np.float32)
        r.data[:] = 1.0  # binary: repeated interactions do not weigh more
        co = (r.T @ r).tocsr()  # (I, I) co-occurrence counts
        norms = np.sqrt(co.diagonal()).astype(np.float32)  # sqrt of each item's count
        co.setdiag(0.0)
        co.eliminate_zeros()
        co = co.tocoo()
        sim = co.data / (norms[co.row] * norms[co.col] + self.config.shrink)
        self.similarity = self._top_k_rows(sp.csr_matrix((sim.astype(np.float32), (co.row, co.col)),
                                                         shape=co.shape), self.config.k)
        self._train = r
        return self

    @staticmethod
    def _top_k_rows(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
        """Keep the k largest entries of each row (ties: lower column first)."""
        rows, cols, vals = [], [], []
        for j in range(m.shape[0]):
            lo, hi = m.indptr[j], m.indptr[j + 1]
            if hi == lo:
                continue
            c, v = m.indices[lo:hi], m.data[lo:hi]
            keep = np.lexsort((c, -v))[:k]
            rows.append(np.full(keep.size, j))
            cols.append(c[keep])
            vals.append(v[keep])
        if not rows:
            return sp.csr_matrix(m.shape, dtype=np.float32)
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=m.shape, dtype=np.float32)

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or n_items) summed similarities to each user's training items."""
        if self.similarity is None or self._train is None:
            raise RuntimeError("ItemKNN.score called before fit(); fit it on InteractionData first")
        scores = np.asarray((self._train[np.atleast_1d(users)] @ self.similarity).todense(), dtype=np.float32)
        return scores if items is None else scores[:, np.asarray(items)]

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **asdict(self.config)}
