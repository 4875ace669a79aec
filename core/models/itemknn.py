"""ItemKNN: item–item similarity on training co-occurrence; a user's score is their row times it.

Before the similarity, the binary user–item matrix may be weighted as `implicit`'s item–item recommenders
weight it (its `tfidf_weight` and `bm25_weight`, so BM25 with the dot product is its BM25Recommender):
TF-IDF scales each user's column by the user's inverse frequency (listeners of many items count less), BM25
also damps popular items (saturation K1, length normalisation B). The similarity is built in blocks of items
whose co-occurrence rows are bounded, and only each item's top k neighbours are kept, so it stays sparse
(I × k entries) at any catalog size: the sparse replacement for EASE, whose item–item matrix is dense. A
user's score sums the similarities of their (unweighted) training items."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from core.data.interactions import InteractionData
from core.models.base import ProgressCallback


@dataclass
class ItemKNNConfig:
    """Neighbourhood size, similarity, its shrinkage and the weighting of the user–item matrix under it."""

    k: int = 50  # neighbours kept per item (the k most similar items of each item)
    shrink: float = 0.0  # added to the similarity's denominator to damp rare co-occurrences (no effect on "dot")
    # on item columns a, b of the (weighted) matrix; binary columns give the set forms:
    # "cosine" a·b/(|a||b|) = |a∩b|/√(|a||b|) · "jaccard" a·b/(|a|²+|b|²−a·b) = |a∩b|/|a∪b| (Tanimoto) ·
    # "conditional" a·b/|a|² = |a∩b|/|a| · "dot" a·b (implicit's BM25Recommender)
    similarity: str = "cosine"
    weighting: str = "none"  # the matrix under the similarity: "none" (binary) · "tfidf" · "bm25"
    bm25_k1: float = 1.2  # BM25 saturation (≥ 0; 0: the inverse user frequency alone); "bm25" only
    bm25_b: float = 0.75  # BM25 item-length normalisation, 0 (none) to 1 (full); "bm25" only
    max_block_products: int = 1 << 24  # user-level co-occurrence products per item block (bounds its memory)


SIMILARITIES = ("cosine", "jaccard", "conditional", "dot")
WEIGHTINGS = ("none", "tfidf", "bm25")


class ItemKNN:
    """score(u, i) = sum over u's training items j of sim(j, i), sim = shrunk similarity pruned to each j's top k."""

    name = "itemknn"
    kind = "baseline"

    def __init__(self, config: ItemKNNConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or ItemKNNConfig(), **overrides)
        if self.config.similarity not in SIMILARITIES:
            raise ValueError(f"ItemKNN similarity={self.config.similarity!r}; choose one of {list(SIMILARITIES)}")
        if self.config.weighting not in WEIGHTINGS:
            raise ValueError(f"ItemKNN weighting={self.config.weighting!r}; choose one of {list(WEIGHTINGS)}")
        if self.config.k < 1 or self.config.shrink < 0:
            raise ValueError(f"ItemKNN needs k ≥ 1 and shrink ≥ 0 (got k={self.config.k}, shrink={self.config.shrink})")
        if self.config.bm25_k1 < 0 or not 0 <= self.config.bm25_b <= 1:
            raise ValueError(f"ItemKNN needs bm25_k1 ≥ 0 and 0 ≤ bm25_b ≤ 1 (got {self.config.bm25_k1}, "
                             f"{self.config.bm25_b})")
        self.history: list[dict] = []
        self.similarity: sp.csr_matrix | None = None  # (I, I), row j = neighbours of item j
        self._train: sp.csr_matrix | None = None
        self.blocks = 0  # item blocks the last fit built the similarity in

    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "ItemKNN":
        """Build the pruned item–item similarity from the training matrix, one bounded block of items at a time."""
        r = sp.csr_matrix(data.train, dtype=np.float32, copy=True)
        r.sum_duplicates()
        r.data[:] = 1.0  # binary: repeated interactions do not weigh more
        w = self._weighted(r)  # (U, I): r itself when unweighted
        wt = w.T.tocsr()  # (I, U): row j = the (weighted) users of item j
        counts = np.asarray(wt.multiply(wt).sum(axis=1), dtype=np.float32).ravel()  # |a|²: binary, a's user count
        norms = np.sqrt(counts.astype(np.float64)).astype(np.float32)  # |a| (cosine)
        blocks = item_blocks(r.T.tocsr(), r, self.config.max_block_products)
        parts = []
        for a, b in tqdm(blocks, desc="itemknn item blocks", disable=len(blocks) < 8, mininterval=10):
            co = (wt[a:b] @ w).tocoo()  # (b - a, I) (weighted) co-occurrence of the block's items
            keep = co.col != co.row + a  # no self-similarity
            rows, cols = co.row[keep], co.col[keep]
            below = (self._denominator(counts, norms, rows + a, cols, co.data[keep])
                     + np.float32(self.config.shrink))
            # an item whose users all weigh 0 (TF-IDF of a listener of every item) has no similarity
            sim = np.divide(co.data[keep], below, out=np.zeros_like(below), where=below > 0)
            parts.append(top_k_entries(rows + a, cols, sim.astype(np.float32), self.config.k))
            del co, keep, rows, cols, sim
        n = data.n_items
        if parts:
            rows, cols, vals = (np.concatenate(x) for x in zip(*parts))
            self.similarity = sp.csr_matrix((vals, (rows, cols)), shape=(n, n), dtype=np.float32)
        else:
            self.similarity = sp.csr_matrix((n, n), dtype=np.float32)
        self.blocks = len(blocks)
        self._train = r
        return self

    def _weighted(self, r: sp.csr_matrix) -> sp.csr_matrix:
        """The binary (U, I) matrix `r` under the configured weighting (implicit's item–item weightings: the
        items are its documents and the users its terms, so a user's weight is their inverse frequency)."""
        kind = self.config.weighting
        if kind == "none":
            return r
        from implicit.nearest_neighbours import bm25_weight, tfidf_weight

        items_users = r.T  # (I, U)
        weighted = (tfidf_weight(items_users) if kind == "tfidf"
                    else bm25_weight(items_users, K1=self.config.bm25_k1, B=self.config.bm25_b))
        return sp.csr_matrix(weighted.T, dtype=np.float32)

    def _denominator(self, counts: np.ndarray, norms: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                     together: np.ndarray) -> np.ndarray:
        """The similarity's denominator for item pairs (rows, cols) with (weighted) co-occurrence `together`;
        `counts` are the items' squared norms (their user counts when binary)."""
        kind = self.config.similarity
        if kind == "jaccard":
            return counts[rows] + counts[cols] - together
        if kind == "conditional":  # sim(j, i) = P(i | j): the share of j's users who also have i
            return counts[rows]
        if kind == "dot":
            return np.ones_like(together)
        return norms[rows] * norms[cols]

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or n_items) summed similarities to each user's training items."""
        if self.similarity is None or self._train is None:
            raise RuntimeError("ItemKNN.score called before fit(); fit it on InteractionData first")
        scores = np.asarray((self._train[np.atleast_1d(users)] @ self.similarity).todense(), dtype=np.float32)
        return scores if items is None else scores[:, np.asarray(items)]

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **asdict(self.config)}


def item_blocks(rt: sp.csr_matrix, r: sp.csr_matrix, max_products: int) -> list[tuple[int, int]]:
    """Consecutive item ranges [a, b) whose co-occurrence rows cost at most `max_products` user-level products
    each (a single item costing more gets a block of its own), so no block's sparse product outgrows memory."""
    user_counts = np.diff(r.indptr).astype(np.float64)
    cost = rt @ user_counts  # (I,): products item j's row of rᵀr takes = Σ over its users of their item counts
    blocks, a, acc = [], 0, 0.0
    for j, c in enumerate(cost):
        if j > a and acc + c > max_products:
            blocks.append((a, j))
            a, acc = j, 0.0
        acc += c
    if a < rt.shape[0]:
        blocks.append((a, rt.shape[0]))
    return blocks


def top_k_entries(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray,
                  k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k largest entries of each row among (rows, cols, vals) triplets (ties: lower column first)."""
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if rows.size else np.empty(0, np.int64)
    rank = np.arange(rows.size) - np.repeat(starts, np.diff(np.r_[starts, rows.size]))
    keep = rank < k
    return rows[keep], cols[keep], vals[keep]
