"""Top-k selection over score arrays: the k best rows (ties to the lower row), a fast path for long float32
arrays, and the merge of candidate lists from several sources (an index's cells and its head)."""
from __future__ import annotations

from collections.abc import Collection

import numpy as np


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
