"""The popularity prior of content queries: one named, weighted, additive term of the score.

A query that is not a known listener (uploads, liked items) is scored as

    score_i = <q, item_i> + w · prior_i,    prior_i = log(1 + n_i) / log(1 + max_j n_j)  ∈ [0, 1]

where n_i is the number of training listeners of item i (0 for an item nobody played: a cold item). The
model's learned item bias is not part of that score: it follows how often an item was played and, left in,
it ranked an uploaded clip's results by popularity. A known listener keeps the learned bias, which the
model fitted for its known users together with their vectors.

`ScoreTerm` is the general shape of such a term (a name, a weight, one value per item), so further named
terms of the score sit beside the prior in the results and in the explanation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

PRIOR = "prior"  # the term's key in Recommendation.terms and Explanation.terms
PRIOR_LABEL = "popularity prior"
LEARNED_BIAS_LABEL = "learned item bias"
# Chosen by `python -m benchmarks.retrieval --catalog demo` on its validation half of the held-out items,
# together with core.serving.similarity's three weights; the criterion is flat in the prior there (.9302 at 0.05,
# .9306 at the grid's best 0.75, the other weights the same), and 0.05 is kept because the prior also
# scores liked-track queries, which the explain check measured at 0.05; see README.
DEFAULT_PRIOR_WEIGHT = 0.05
PRIOR_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)  # candidate weights the benchmark chooses from
PRIOR_MAX = 1.0  # the Recommend page's slider goes from 0 to this


@dataclass(frozen=True)
class ScoreTerm:
    """A named additive part of the score beside the modalities: weight × values[item]."""

    name: str  # key in Recommendation.terms, e.g. "prior"
    label: str  # what the card and the chart call it, e.g. "popularity prior"
    weight: float
    values: np.ndarray  # (I,) the term's value per item before weighting

    def part(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(n,) the term's share of the score of `rows` (all items when None)."""
        v = self.values if rows is None else self.values[np.asarray(rows, dtype=np.int64)]
        return self.weight * np.asarray(v, dtype=np.float64)


def popularity_counts(model: Any, train: sp.spmatrix | None, n_items: int) -> np.ndarray:
    """(I,) training listeners per item: the counts a fusion model keeps with its weights, else `train`'s."""
    net = getattr(model, "net", None)
    counts = getattr(net, "popularity", None)
    if counts is not None and len(counts) == n_items and float(counts.sum()) > 0:
        return np.asarray(counts.detach().cpu().numpy() if hasattr(counts, "detach") else counts, np.float64)
    if train is None:
        return np.zeros(n_items, np.float64)
    binary = sp.csr_matrix(train).astype(bool).astype(np.float64)
    return np.asarray(binary.sum(axis=0)).ravel()


def popularity_prior(counts: np.ndarray) -> np.ndarray:
    """(I,) log(1 + n_i) / log(1 + max n): 1 for the most played item, 0 for items nobody played."""
    counts = np.clip(np.asarray(counts, dtype=np.float64), 0, None)
    top = float(np.log1p(counts.max(initial=0.0)))
    return np.log1p(counts) / top if top > 0 else np.zeros_like(counts)


def check_term_weight(weight: float, what: str, zero_means: str) -> float:
    """A score term's weight as a float; QueryError naming `what` and the allowed range otherwise."""
    from core.errors import QueryError

    w = float(weight)
    if not np.isfinite(w) or w < 0:
        raise QueryError(f"the {what} weight must be a finite number ≥ 0 (got {weight!r}); 0 {zero_means}")
    return w


def check_prior_weight(weight: float) -> float:
    """The popularity prior's weight as a float; QueryError naming the allowed range otherwise."""
    return check_term_weight(weight, "popularity prior", "ranks content queries by content alone")
