"""Ranking, classification and beyond-accuracy metrics over top-K lists, vectorised over users.

Conventions (the MMRec / cornac definitions):
- `topk_indices` returns a (U, k) array of item columns best-first; `-1` pads a row when the user has fewer
  than k items left after exclusion (such slots never count as hits).
- `truth` is a (U, I) binary csr matrix of each user's relevant items.
- Per-user metrics are float64 arrays with NaN for users without relevant items; callers `np.nanmean`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

PAD = -1  # marks an empty slot in a top-K list
MAX_BATCH_ENTRIES = 2**24  # users × items scored at once: 16.8M entries, 134 MB per float64 copy
AUC_COMPARE_MAX_POSITIVES = 16  # users with more positives get AUC from a full sort of their row (fewer: comparisons)


def metric_k(name: str) -> tuple[str, int]:
    """("recall" | "ndcg", K) from a metric name such as "recall@20"."""
    kind, _, k = name.partition("@")
    if kind not in ("recall", "ndcg") or not k.isdigit() or int(k) < 1:
        raise ValueError(f"valid_metric={name!r}; write it as 'recall@K' or 'ndcg@K' with K ≥ 1")
    return kind, int(k)


def bounded_batch(batch_users: int, n_items: int, max_entries: int | None = None) -> int:
    """Users per scoring batch: at most `batch_users`, and few enough that a (users, items) score matrix
    holds at most `max_entries` entries (the metric code makes a few float64 copies of it)."""
    limit = MAX_BATCH_ENTRIES if max_entries is None else max_entries
    return max(1, min(int(batch_users), limit // max(int(n_items), 1)))


def _clean_scores(scores: np.ndarray) -> np.ndarray:
    """float64 copy where NaN/±inf become the finite extremes, so only exclusion yields -inf."""
    lowest, highest = np.finfo(np.float64).min, np.finfo(np.float64).max
    return np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=lowest, posinf=highest, neginf=lowest)


def _as_csr(matrix: sp.spmatrix | np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Binary csr with sorted indices and the expected shape."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    if m.shape != shape:
        raise ValueError(f"matrix has shape {m.shape}, expected {shape} (users × items of the scores)")
    m = m.copy()
    m.sum_duplicates()
    m.sort_indices()
    m.data[:] = 1.0
    m.eliminate_zeros()
    return m


def _mask_excluded(scores: np.ndarray, exclude: sp.csr_matrix | None) -> np.ndarray:
    """Cleaned scores with excluded (user, item) entries set to -inf."""
    s = _clean_scores(scores)
    if exclude is not None:
        ex = sp.csr_matrix(exclude)
        if ex.shape != s.shape:
            raise ValueError(f"exclude has shape {ex.shape}, expected {s.shape} (users × items of the scores)")
        rows, cols = ex.nonzero()
        s[rows, cols] = -np.inf
    return s


def topk_indices(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """(U, k) best item columns per user, best first; excluded entries never returned, ties broken by lower index."""
    return top_k_of_masked(_mask_excluded(np.atleast_2d(scores), exclude), k)


def top_k_of_masked(s: np.ndarray, k: int) -> np.ndarray:
    """topk_indices of (U, I) scores that are already clean (no NaN, no +inf) and carry -inf at excluded
    entries, in any float dtype: callers that rank many score matrices of the same users mask once."""
    n_users, n_items = s.shape
    if k <= 0 or n_users == 0:
        return np.zeros((n_users, max(k, 0)), dtype=np.int64)
    kk = min(k, n_items)
    # Candidates: every entry at least as good as the row's kk-th best value, so boundary ties are all kept
    # and the exact tie-break (lower index first) is decided by the sort below, not by argpartition.
    kth = np.partition(s, n_items - kk, axis=1)[:, n_items - kk]
    rows, cols = np.nonzero(s >= kth[:, None])
    order = np.lexsort((cols, -s[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    starts = np.searchsorted(rows, np.arange(n_users))
    rank = np.arange(rows.size) - starts[rows]
    keep = rank < kk
    out = np.full((n_users, k), PAD, dtype=np.int64)
    out[rows[keep], rank[keep]] = cols[keep]
    # Excluded entries (-inf) only surface when a row ran out of allowed items: blank them.
    picked = np.take_along_axis(s, np.where(out >= 0, out, 0)[:, :kk], axis=1)
    out[:, :kk][np.isneginf(picked)] = PAD
    return out


def hit_matrix(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """(U, k) bool: is the item in each top-K slot relevant for that user (padding never is)."""
    topk = np.asarray(topk, dtype=np.int64)
    truth = sp.csr_matrix(truth)
    n_users, n_items = truth.shape
    if topk.shape[0] != n_users:
        raise ValueError(f"topk has {topk.shape[0]} rows but truth has {n_users} users")
    # Linear keys row*I + col are sorted in a csr with sorted indices, so membership is a binary search.
    t = truth.copy()
    t.sum_duplicates()
    t.sort_indices()
    t.eliminate_zeros()
    t_rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(t.indptr))
    keys = t_rows * n_items + t.indices.astype(np.int64)
    if keys.size == 0:
        return np.zeros(topk.shape, dtype=bool)
    query = np.arange(n_users, dtype=np.int64)[:, None] * n_items + np.where(topk >= 0, topk, 0)
    pos = np.searchsorted(keys, query).clip(max=keys.size - 1)
    return (keys[pos] == query) & (topk >= 0)


def n_relevant(truth: sp.csr_matrix) -> np.ndarray:
    """(U,) number of relevant items per user."""
    t = sp.csr_matrix(truth).copy()
    t.sum_duplicates()
    t.eliminate_zeros()
    return np.diff(t.indptr).astype(np.float64)


def _per_user(values: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """NaN where the user has nothing relevant."""
    return np.where(n_rel > 0, values, np.nan)


# ---- metrics from a hit matrix (U, k) and |relevant| per user; K = the number of columns used --------

def precision_from_hits(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """hits@K / K."""
    k = hits.shape[1]
    return _per_user(hits.sum(axis=1) / max(k, 1), n_rel)


def recall_from_hits(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """hits@K / |relevant| (MMRec definition, not normalised by min(K, |relevant|))."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return _per_user(hits.sum(axis=1) / n_rel, n_rel)


def f1_from_hits(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """Harmonic mean of precision@K and recall@K (0 when both are 0)."""
    p, r = precision_from_hits(hits, n_rel), recall_from_hits(hits, n_rel)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return _per_user(f, n_rel)


def map_from_hits(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """AP@K: sum of precision@i at each hit position i, divided by min(K, |relevant|)."""
    k = hits.shape[1]
    h = hits.astype(np.float64)
    prec_at_i = np.cumsum(h, axis=1) / np.arange(1, k + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _per_user((prec_at_i * h).sum(axis=1) / np.minimum(k, n_rel), n_rel)


def ndcg_from_hits(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """Binary-relevance DCG@K over the ideal DCG of min(K, |relevant|) hits at the top."""
    k = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cum[np.minimum(k, n_rel).astype(np.int64)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return _per_user(dcg / idcg, n_rel)


def hit_rate_from_hits(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """1 if any of the top K is relevant, else 0."""
    return _per_user(hits.any(axis=1).astype(np.float64), n_rel)


HitMetric = Callable[[np.ndarray, np.ndarray], np.ndarray]

RANKING_METRICS: dict[str, HitMetric] = {
    "precision": precision_from_hits,
    "recall": recall_from_hits,
    "f1": f1_from_hits,
    "map": map_from_hits,
    "ndcg": ndcg_from_hits,
    "hit_rate": hit_rate_from_hits,
}


@dataclass(frozen=True)
class RankingMetric:
    """A named metric@K; `compute(topk, truth)` gives per-user values (NaN for users without truth)."""

    name: str
    k: int

    def compute(self, topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
        """Per-user metric@K over the first K columns of `topk`."""
        hits = hit_matrix(np.asarray(topk)[:, : self.k], truth)
        return RANKING_METRICS[self.name](hits, n_relevant(truth))

    @property
    def label(self) -> str:
        """e.g. 'ndcg@10'."""
        return f"{self.name}@{self.k}"


def ranking_metrics(topk: np.ndarray, truth: sp.csr_matrix, ks: tuple[int, ...] | list[int],
                    names: tuple[str, ...] | list[str] | None = None) -> dict[str, np.ndarray]:
    """Per-user values of every metric@K (keys like 'recall@10') from one top-max(ks) list."""
    names = list(names or RANKING_METRICS)
    if max(ks) > np.asarray(topk).shape[1]:
        raise ValueError(f"topk has {np.asarray(topk).shape[1]} columns; need max(ks) = {max(ks)}")
    hits_all = hit_matrix(topk, truth)
    n_rel = n_relevant(truth)
    return {f"{name}@{k}": RANKING_METRICS[name](hits_all[:, :k], n_rel) for k in ks for name in names}


# ---- convenience wrappers with the conventional names ---------------------------------------------

def precision_at_k(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Per-user Precision@K with K = topk.shape[1]."""
    return precision_from_hits(hit_matrix(topk, truth), n_relevant(truth))


def recall_at_k(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Per-user Recall@K (hits / |relevant|) with K = topk.shape[1]; NaN for users without truth."""
    return recall_from_hits(hit_matrix(topk, truth), n_relevant(truth))


def f1_at_k(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Per-user F1@K with K = topk.shape[1]."""
    return f1_from_hits(hit_matrix(topk, truth), n_relevant(truth))


def map_at_k(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Per-user AP@K (normalised by min(K, |relevant|)); its mean is MAP@K."""
    return map_from_hits(hit_matrix(topk, truth), n_relevant(truth))


def ndcg_at_k(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Per-user NDCG@K with binary relevance."""
    return ndcg_from_hits(hit_matrix(topk, truth), n_relevant(truth))


def hit_rate_at_k(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Per-user HitRate@K."""
    return hit_rate_from_hits(hit_matrix(topk, truth), n_relevant(truth))


# ---- AUC and the binary-classification view ----------------------------------------------------------

def auc_per_user(scores: np.ndarray, truth: sp.csr_matrix, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Per-user ROC AUC over all non-excluded items (relevant vs the rest; tied pairs count ½).

    NaN for users with no relevant or no non-relevant item left. An item both relevant and excluded is excluded.
    """
    s = _mask_excluded(np.atleast_2d(scores), exclude)
    shape = s.shape
    t = _as_csr(truth, shape)
    excluded = s == -np.inf  # (faster than np.isneginf)
    pos = t.toarray().astype(bool) & ~excluded
    n_ex = excluded.sum(axis=1)
    n_pos = pos.sum(axis=1).astype(np.float64)
    n_neg = shape[1] - n_ex - n_pos
    u_stat = np.zeros(shape[0])
    many = n_pos > AUC_COMPARE_MAX_POSITIVES
    if many.any():
        # Excluded entries are -inf, below every cleaned score, so they occupy ranks 1..n_ex of each row and
        # shifting by n_ex gives each positive's (tie-averaged) rank among the allowed items only.
        ranks = rankdata(s[many], method="average", axis=1) - n_ex[many, None]
        u_stat[many] = (ranks * pos[many]).sum(axis=1) - n_pos[many] * (n_pos[many] + 1) / 2
    few = np.flatnonzero(~many & (n_pos > 0))
    if few.size:
        u_stat[few] = _u_by_comparison(s[few], pos[few])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u_stat / (n_pos * n_neg), np.nan)


def _u_by_comparison(s: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Mann–Whitney U per row (negatives scored below each positive, ties ½) by comparing each positive's
    score with the row's negatives: a few passes per positive instead of sorting a catalog-long row."""
    negatives = np.where(pos | (s == -np.inf), np.nan, s)  # NaN compares False: positives, excluded drop out
    rows, cols = np.nonzero(pos)  # row-major: each row's positives are consecutive
    starts = np.searchsorted(rows, np.arange(s.shape[0]))
    slot = np.arange(rows.size) - starts[rows]
    pos_scores = np.full((s.shape[0], int(slot.max()) + 1 if slot.size else 0), np.nan)
    pos_scores[rows, slot] = s[rows, cols]
    u = np.zeros(s.shape[0])
    for j in range(pos_scores.shape[1]):
        v = pos_scores[:, j:j + 1]  # (B, 1); NaN where the row has fewer positives
        u += np.count_nonzero(negatives < v, axis=1) + 0.5 * np.count_nonzero(negatives == v, axis=1)
    return u


@dataclass
class ConfusionCounts:
    """True/false positives/negatives over user × item pairs; adds up across batches."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        return ConfusionCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    def summary(self) -> dict[str, float]:
        """accuracy, precision, recall, f1 (NaN where a denominator is 0)."""
        total = self.tp + self.fp + self.fn + self.tn
        nan = float("nan")
        acc = (self.tp + self.tn) / total if total else nan
        prec = self.tp / (self.tp + self.fp) if self.tp + self.fp else nan
        rec = self.tp / (self.tp + self.fn) if self.tp + self.fn else nan
        f1 = 2 * prec * rec / (prec + rec) if (self.tp and prec + rec > 0) else (0.0 if total else nan)
        return {"accuracy": acc, "precision": prec, "recall": rec, "f1": f1}


def confusion_counts(scores: np.ndarray, truth: sp.csr_matrix, threshold: float | np.ndarray,
                     exclude: sp.csr_matrix | None = None) -> ConfusionCounts:
    """Confusion counts of `score >= threshold` against relevance, over every non-excluded user × item pair.

    Negatives are ALL non-excluded, non-relevant items of each user (no sampling), so accuracy is dominated by
    true negatives on sparse data. `threshold` is one global value or one per user (shape (U,)).
    """
    s = _mask_excluded(np.atleast_2d(scores), exclude)
    allowed = s != -np.inf
    rel = _as_csr(truth, s.shape).toarray().astype(bool) & allowed
    thr = np.asarray(threshold, dtype=np.float64)
    thr = thr[:, None] if thr.ndim == 1 else thr
    pred = (s >= thr) & allowed
    tp = int((pred & rel).sum())
    fp = int((pred & ~rel).sum())
    fn = int((~pred & rel).sum())
    tn = int((~pred & ~rel & allowed).sum())
    return ConfusionCounts(tp, fp, fn, tn)


def kth_score_threshold(scores: np.ndarray, topk: np.ndarray) -> np.ndarray:
    """(U,) each user's score at their K-th (last non-padded) top-K slot: `score >= it` ⇔ in the top K up to ties."""
    s = _clean_scores(np.atleast_2d(scores))
    valid = topk >= 0
    last = np.where(valid.any(axis=1), valid.sum(axis=1) - 1, 0)
    items = topk[np.arange(topk.shape[0]), last]
    return np.where(valid.any(axis=1), s[np.arange(topk.shape[0]), np.where(items >= 0, items, 0)], np.inf)


# ---- beyond accuracy ---------------------------------------------------------------------------------

def catalogue_coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the catalogue's items that appear in at least one top-K list."""
    if n_items <= 0:
        return float("nan")
    items = np.asarray(topk).ravel()
    return float(np.unique(items[items >= 0]).size / n_items)


def item_self_information(train: sp.csr_matrix) -> np.ndarray:
    """(I,) −log2 p(i) with p(i) = (users who had i in train + 1) / (users + 1); smoothing keeps cold items finite."""
    t = sp.csc_matrix(train)
    counts = np.diff(t.indptr).astype(np.float64)
    return -np.log2((counts + 1.0) / (t.shape[0] + 1.0))


def novelty(topk: np.ndarray, self_information: np.ndarray) -> float:
    """Mean self-information (−log2 popularity) of every recommended item over all top-K slots."""
    items = np.asarray(topk).ravel()
    items = items[items >= 0]
    return float(self_information[items].mean()) if items.size else float("nan")
