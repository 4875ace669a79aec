"""Holm's step-down correction for a family of paired comparisons (Holm, 1979): adjusted p-values, and the
confidence level each comparison's interval is drawn at so that the intervals agree with the decisions."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values, in the input order: the i-th smallest p times (m − i + 1), made non-decreasing
    along that order and capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError(f"p-values must be a list of numbers in [0, 1], got {list(p_values)}")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def holm_alphas(p_values: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    """Per comparison, the two-sided error level its interval is drawn at: α/(m − i + 1) for the i-th smallest
    p-value up to the first one Holm keeps, and that comparison's level for every later one, so an interval
    excludes 0 exactly when Holm rejects (for p-values dual to the intervals, as the bootstrap's are)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha} must lie strictly between 0 and 1")
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    levels = np.empty(m)
    rejected = 0
    stopped = False
    for i, j in enumerate(order):
        level = alpha / (m - i) if not stopped else alpha / (m - rejected)
        if not stopped and p[j] <= level:
            rejected += 1
        else:
            stopped = True
            level = alpha / (m - rejected)
        levels[j] = level
    return levels
