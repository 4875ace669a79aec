"""Several model seeds on one split: the spread of each metric, and paired comparisons on per-user means.

Each model is trained once per seed on the same split; a user's value for a model is the mean of their
per-user metric over its seeds, and two models are compared by the paired bootstrap of those means over
the users both were evaluated on (the same resamples for both), so seed noise and user noise both count.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.evaluation.bootstrap import paired_difference_ci


def spread(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """mean, std (sample, ddof 1; 0 for one seed), min and max of one metric over seeds (None skipped)."""
    x = np.array([v for v in values if v is not None and math.isfinite(float(v))], dtype=np.float64)
    if x.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
            "min": float(x.min()), "max": float(x.max()), "n": int(x.size)}


def aggregate_metrics(per_seed: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{metric: spread over seeds} for every name present in at least one seed's metrics."""
    return {n: spread([m.get(n) for m in per_seed]) for n in names if any(n in m for m in per_seed)}


def mean_over_seeds(blocks: Sequence[dict[str, list]]) -> dict[str, list]:
    """Per-user means over seeds of run records' `per_user` blocks ({"users": ids, metric: values}).

    Users are those present in every block (the same split gives the same users); NaN/None values are left
    out of a user's mean, and a user with none left gets NaN.
    """
    if not blocks:
        return {}
    common = set(blocks[0]["users"])
    for b in blocks[1:]:
        common &= set(b["users"])
    users = [u for u in blocks[0]["users"] if u in common]
    metrics = [k for k in blocks[0] if k != "users" and all(k in b for b in blocks)]
    out: dict[str, list] = {"users": users}
    for m in metrics:
        stacked = []
        for b in blocks:
            pos = {u: i for i, u in enumerate(b["users"])}
            values = np.array([np.nan if v is None else v for v in b[m]], dtype=np.float64)
            stacked.append(values[[pos[u] for u in users]])
        with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
            sup.filter(RuntimeWarning)  # users with no finite value: NaN
            out[m] = np.nanmean(np.vstack(stacked), axis=0).tolist() if users else []
    return out


def paired_over_users(a: dict[str, list], b: dict[str, list], metric: str, n_bootstrap: int = 1000,
                      seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap of a − b for `metric` over the users both blocks hold: difference, 95% CI, users."""
    pos_b = {u: i for i, u in enumerate(b["users"])}
    pairs = [(i, pos_b[u]) for i, u in enumerate(a["users"]) if u in pos_b]
    ia = np.array([p[0] for p in pairs], dtype=np.int64)
    ib = np.array([p[1] for p in pairs], dtype=np.int64)
    va = np.array(a[metric], dtype=np.float64)[ia] if pairs else np.empty(0)
    vb = np.array(b[metric], dtype=np.float64)[ib] if pairs else np.empty(0)
    d = paired_difference_ci(va, vb, n_bootstrap=n_bootstrap, seed=seed)
    return {"difference": float(d.mean[0]), "ci": [float(d.lo[0]), float(d.hi[0])],
            "users": int((np.isfinite(va) & np.isfinite(vb)).sum())}
