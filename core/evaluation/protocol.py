"""The evaluation protocol: full ranking over all items, per-user metrics, bootstrap CIs, and run records.

Protocol (what every stored run means):
- Every user with at least one item in the target split (test, or valid) is evaluated; others are skipped.
- Each evaluated user's scores cover ALL catalog items ("full" ranking, no sampled negatives).
- Masking rule (`mask`, recorded as protocol["mask"] with the list of masked splits in protocol["masked"]):
  "train" (the MMRec / RecBole convention, the default): only the user's TRAIN items are masked; validation
  items stay candidates, so a figure can sit beside a published one measured that way.
  "train+valid": on the test target the user's VALID items are masked too (they were used for model
  selection and are known positives). For target "valid" only training items are ever masked.
- Ranking metrics (precision, recall, f1, map, ndcg, hit_rate @K; see core.data.metrics) and AUC
  are computed per user; each reported value is the mean over evaluated users with a 95% percentile
  bootstrap interval over users (seeded).
- Beyond accuracy: catalogue coverage@K and novelty@K (self-information from training popularity).
- Binary view @K: a user × item pair is predicted positive when its score is ≥ the user's K-th best score;
  negatives are all non-masked, non-target items (no sampling). Micro-averaged over all pairs, no CI.
"""
from __future__ import annotations

import math
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.catalog.model import Catalog
from core.encoders.embeddings import EmbeddingSet
from core.evaluation.bootstrap import bootstrap_ci
from core.data.metrics import (RANKING_METRICS, ConfusionCounts, auc_per_user, bounded_batch,
                                     catalogue_coverage,
                                     confusion_counts, item_self_information, kth_score_threshold, novelty,
                                     ranking_metrics, topk_indices)
from core.data.interactions import InteractionData
from core.models.base import Recommender

Progress = Callable[[int, int, str], None]  # (done, total, message)
ScoreBatch = Callable[[np.ndarray], np.ndarray]  # row indices (B,) -> scores (B, n_candidates)
KINDS = ("fusion", "single-modality", "baseline")
CURVE_METRICS = tuple(RANKING_METRICS) + ("coverage", "novelty")
MASKS = ("train", "train+valid")  # masking rules for the test target
DEFAULT_MASK = "train"  # MMRec / RecBole: one rule for every catalog, comparable with published figures
PAIRED_METRICS = ("recall", "ndcg")  # per-user values kept in run records (with AUC) for paired comparisons


@dataclass
class EvaluationResult:
    """Metric means, their 95% CIs, metric@K curves and (optionally) per-user values."""

    metrics: dict[str, float]  # e.g. {"recall@10": 0.21, "auc": 0.87, "coverage@10": 0.4, ...}
    ci: dict[str, tuple[float, float]]  # per-user metrics only: {"recall@10": (lo, hi), ...}
    curves: dict[str, list[float]]  # {"k": [5, 10, 20], "recall": [...], "ndcg": [...], ...}
    users_evaluated: int = 0
    users_skipped: int = 0  # users with no target items
    per_user: dict[str, np.ndarray] | None = None  # metric -> (users_evaluated,) when kept
    users: np.ndarray | None = None  # (users_evaluated,) row indices of the evaluated users
    protocol: dict[str, Any] = field(default_factory=dict)


def check_mask(mask: str) -> str:
    """`mask` when it is one of MASKS; otherwise a ValueError that names the choices."""
    if mask not in MASKS:
        raise ValueError(f"mask {mask!r} must be one of {list(MASKS)} ('train': only training items are masked "
                         "at test, the MMRec/RecBole convention; 'train+valid': validation items too)")
    return mask


def masks_for(data: InteractionData, target: str,
              mask: str = DEFAULT_MASK) -> tuple[sp.csr_matrix, sp.csr_matrix, list[str]]:
    """(truth, mask matrix, names of masked splits): target 'test' masks train (mask 'train') or train and
    valid (mask 'train+valid'); target 'valid' always masks train only."""
    check_mask(mask)
    if target == "test":
        if mask == "train":
            return data.test.tocsr(), data.train.tocsr(), ["train"]
        return data.test.tocsr(), (data.train + data.valid).tocsr(), ["train", "valid"]
    if target == "valid":
        return data.valid.tocsr(), data.train.tocsr(), ["train"]
    raise ValueError(f"target {target!r} must be 'test' or 'valid'")


def evaluate(model: Recommender, data: InteractionData, ks: tuple[int, ...] | list[int] = (5, 10, 20),
             target: str = "test", batch_users: int = 512, n_bootstrap: int = 1000, seed: int = 0,
             keep_per_user: bool = False, progress: Progress | None = None,
             mask: str = DEFAULT_MASK) -> EvaluationResult:
    """Full-ranking evaluation of a fitted model on `target` under the masking rule `mask` (see MASKS)."""
    truth, masked_items, masked = masks_for(data, target, mask)
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    result = evaluate_ranking(lambda rows: model.score(rows), users, truth[users], masked_items[users],
                              item_self_information(data.train), ks, batch_users=batch_users,
                              n_bootstrap=n_bootstrap, seed=seed, keep_per_user=keep_per_user, progress=progress)
    result.users = users
    result.users_skipped = data.n_users - users.size
    result.protocol = {"split": data.split_name, "target": target, "ranking": "full",
                       "mask": mask if target == "test" else "train", "masked": masked,
                       "ks": sorted(set(int(k) for k in ks)), "seed": seed, "n_bootstrap": n_bootstrap,
                       "users_evaluated": int(users.size), "users_skipped": int(result.users_skipped),
                       "binary_view": "score ≥ user's K-th best score; negatives: all non-masked items"}
    return result


def evaluate_ranking(score_batch: ScoreBatch, users: np.ndarray, truth: sp.csr_matrix, mask: sp.csr_matrix,
                     self_information: np.ndarray, ks: tuple[int, ...] | list[int], *, batch_users: int = 512,
                     n_bootstrap: int = 1000, seed: int = 0, keep_per_user: bool = False,
                     progress: Progress | None = None) -> EvaluationResult:
    """Rank every candidate column for `users` (rows of truth/mask align with users) and summarise.

    `score_batch(users[a:b])` must return (b - a, n_candidates) scores; `self_information` is per candidate.
    """
    from core.limits import OPTION_BOUNDS, OptionError, check_option

    ks = sorted({int(check_option("k", int(k), "K")) for k in ks})  # bounded: K columns per user are kept below
    if not ks:
        raise OptionError("K values: give at least one, e.g. 10, 20")
    if len(ks) > OPTION_BOUNDS["ks_count"].high:
        raise OptionError(f"K values: {len(ks)} given, at most {OPTION_BOUNDS['ks_count'].high:,g} allowed")
    n_bootstrap = int(check_option("bootstrap", n_bootstrap, "bootstrap resamples"))
    truth, mask = sp.csr_matrix(truth), sp.csr_matrix(mask)
    n_users, n_items = truth.shape
    batch_users = bounded_batch(batch_users, n_items)  # no catalog-sized (users, items) block on large catalogs
    kmax = ks[-1]
    per_user: dict[str, list[np.ndarray]] = {}
    confusion = {k: ConfusionCounts() for k in ks}
    topks: list[np.ndarray] = []
    n_batches = max(1, math.ceil(n_users / batch_users))
    for b, start in enumerate(range(0, n_users, batch_users)):
        rows = slice(start, min(start + batch_users, n_users))
        scores = np.asarray(score_batch(users[rows]), dtype=np.float64)
        if scores.shape != (rows.stop - rows.start, n_items):
            raise ValueError(f"the model returned scores of shape {scores.shape}; expected "
                             f"{(rows.stop - rows.start, n_items)} (users × candidate items)")
        t, m = truth[rows], mask[rows]
        topk = topk_indices(scores, kmax, m)
        topks.append(topk)
        for name, values in ranking_metrics(topk, t, ks).items():
            per_user.setdefault(name, []).append(values)
        per_user.setdefault("auc", []).append(auc_per_user(scores, t, m))
        for k in ks:
            confusion[k] = confusion[k] + confusion_counts(scores, t, kth_score_threshold(scores, topk[:, :k]), m)
        if progress:
            progress(b + 1, n_batches, f"ranked {rows.stop:,}/{n_users:,} users")

    names = list(per_user)
    matrix = np.column_stack([np.concatenate(per_user[n]) for n in names]) if n_users else \
        np.empty((0, len(names)))
    boot = bootstrap_ci(matrix, n_bootstrap=n_bootstrap, seed=seed)
    metrics = {n: float(boot.mean[j]) for j, n in enumerate(names)}
    ci = {n: (float(boot.lo[j]), float(boot.hi[j])) for j, n in enumerate(names)}
    all_topk = np.concatenate(topks) if topks else np.empty((0, kmax), dtype=np.int64)
    for k in ks:
        metrics[f"coverage@{k}"] = catalogue_coverage(all_topk[:, :k], n_items)
        metrics[f"novelty@{k}"] = novelty(all_topk[:, :k], self_information)
        for stat, value in confusion[k].summary().items():
            metrics[f"binary_{stat}@{k}"] = value
    curves: dict[str, list[float]] = {"k": list(ks)}
    for name in CURVE_METRICS:
        curves[name] = [metrics[f"{name}@{k}"] for k in ks]
    return EvaluationResult(
        metrics=metrics, ci=ci, curves=curves, users_evaluated=int(n_users),
        per_user={n: matrix[:, j] for j, n in enumerate(names)} if keep_per_user else None, users=users)


# -- run records -------------------------------------------------------------------------------------------

def model_kind(model: Recommender) -> str:
    """'fusion', 'single-modality' or 'baseline' from the model's `kind` (or its name when it has none)."""
    kind = getattr(model, "kind", None)
    if kind in KINDS:
        return str(kind)
    name = str(getattr(model, "name", ""))
    if name.startswith("fusion"):
        return "fusion"
    return "single-modality" if name.endswith("-only") else "baseline"


def _finite_or_none(value: Any) -> Any:
    """JSON-safe copy: NaN/inf → None, numpy scalars/arrays → Python, recursively."""
    if isinstance(value, dict):
        return {str(k): _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite_or_none(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def dataset_card(catalog: Catalog, data: InteractionData) -> dict[str, Any]:
    """The dataset block of a run record."""
    return {"name": catalog.name, "content_hash": catalog.content_hash(), "n_users": data.n_users,
            "n_items": data.n_items, "n_interactions": int(data.train.nnz + data.valid.nnz + data.test.nnz)}


def build_record(model: Recommender, result: EvaluationResult, catalog: Catalog,
                 embeddings: EmbeddingSet | None, data: InteractionData, wall_time_s: float,
                 peak_memory_mb: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run record (JSON-safe) that Store.save_run keeps."""
    config = model.get_config() if hasattr(model, "get_config") else {}
    history = list(getattr(model, "history", None) or [])
    train_s = sum(float(h.get("seconds", 0.0) or 0.0) for h in history if isinstance(h, dict))
    record = {
        "name": model.name,
        "catalog": catalog.name,
        "created_at": time.time(),
        "model": {"name": model.name, "kind": model_kind(model), "config": config},
        "dataset": dataset_card(catalog, data),
        "protocol": result.protocol,
        "encoders": dict(embeddings.encoder_ids) if embeddings is not None else {},
        "metrics": result.metrics,
        "ci": {k: list(v) for k, v in result.ci.items()},
        "curves": result.curves,
        "training": history,
        "training_time_s": train_s or None,
        "wall_time_s": wall_time_s,
        "peak_memory_mb": peak_memory_mb,
        "process_peak_rss_mb": _peak_rss_mb(),
        **(extra or {}),
    }
    return _finite_or_none(record)


def run_evaluation(model: Recommender, data: InteractionData, catalog: Catalog, embeddings: EmbeddingSet | None,
                   ks: tuple[int, ...] | list[int] = (5, 10, 20), target: str = "test", batch_users: int = 512,
                   n_bootstrap: int = 1000, seed: int = 0, fit: bool = False,
                   progress: Progress | None = None, mask: str = DEFAULT_MASK) -> dict[str, Any]:
    """Evaluate a model (fitting it first when `fit`) and return its run record for Store.save_run.

    wall_time_s and peak_memory_mb (tracemalloc: Python and numpy allocations, not torch's) cover the
    evaluation, plus the fit when `fit` is True (then fit_time_s is recorded separately as well).
    """
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    fit_s = None
    try:
        if fit:
            model.fit(data)
            fit_s = time.perf_counter() - t0
        result = evaluate(model, data, ks=ks, target=target, batch_users=batch_users, n_bootstrap=n_bootstrap,
                          seed=seed, keep_per_user=True, progress=progress, mask=mask)
        wall = time.perf_counter() - t0
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        if not tracing:
            tracemalloc.stop()
    result.protocol["split_seed"] = data.seed
    extra = {"fit_time_s": fit_s} if fit_s is not None else {}
    extra["per_user"] = per_user_block(result, data)
    return build_record(model, result, catalog, embeddings, data, wall, peak_mb, extra)


def per_user_block(result: EvaluationResult, data: InteractionData) -> dict[str, list]:
    """The per-user values a run keeps for paired comparisons: user ids, then recall@K, ndcg@K and AUC,
    rounded to 6 decimals (about 13 floats per user at three K)."""
    if result.per_user is None or result.users is None:
        return {}
    kept = [m for m in result.per_user if m == "auc" or m.split("@")[0] in PAIRED_METRICS]
    block: dict[str, list] = {"users": [data.user_ids[u] for u in result.users]}
    for m in kept:
        block[m] = np.round(result.per_user[m], 6).tolist()
    return block
