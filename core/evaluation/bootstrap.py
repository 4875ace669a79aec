"""Percentile bootstrap confidence intervals of per-user means, seeded and vectorised over metrics."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK_CELLS = 4_000_000  # resample × user counts held at once (32 MB of float64)


@dataclass(frozen=True)
class BootstrapResult:
    """Mean and percentile interval of each column."""

    mean: np.ndarray  # (M,)
    lo: np.ndarray  # (M,)
    hi: np.ndarray  # (M,)


def bootstrap_means(values: np.ndarray, n_bootstrap: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_bootstrap, M) means of resampled rows of `values` (n, M); NaN entries are left out of each mean.

    Each resample draws n users with replacement; it is expressed as multinomial counts so all metrics
    share the same resample and the work is one matrix product per chunk.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    n, m = x.shape
    if n == 0:
        return np.full((n_bootstrap, m), np.nan)
    valid = ~np.isnan(x)
    x0 = np.where(valid, x, 0.0)
    rng = np.random.default_rng(seed)
    out = np.empty((n_bootstrap, m))
    chunk = max(1, CHUNK_CELLS // n)
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)  # (b, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + b] = (counts @ x0) / (counts @ valid)
    return out


def bootstrap_ci(values: np.ndarray, n_bootstrap: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> BootstrapResult:
    """Mean (NaN-aware) and percentile bootstrap interval of each column of `values` (n,) or (n, M)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} must lie strictly between 0 and 1")
    x = np.asarray(values, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
        sup.filter(RuntimeWarning)  # all-NaN columns give NaN, as intended
        mean = np.nanmean(x, axis=0) if x.shape[0] else np.full(x.shape[1], np.nan)
        if n_bootstrap <= 0:
            nan = np.full(x.shape[1], np.nan)
            return BootstrapResult(mean, nan, nan.copy())
        means = bootstrap_means(x, n_bootstrap, seed)
        tail = (1 - confidence) / 2 * 100
        lo, hi = np.nanpercentile(means, [tail, 100 - tail], axis=0)
    return BootstrapResult(mean, lo, hi)


def paired_difference_ci(a: np.ndarray, b: np.ndarray, n_bootstrap: int = 1000, confidence: float = 0.95,
                         seed: int = 0) -> BootstrapResult:
    """Mean and percentile bootstrap interval of the per-user difference a − b of two models' metric.

    a and b (n,) hold the same users in the same order; users where either is NaN are left out. Resampling
    users once for both models keeps their pairing, so the interval reflects how often one model beats the
    other on the same users: it is much narrower than the gap two separate intervals would need to clear.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be two (n,) arrays over the same users; got {a.shape} and {b.shape}")
    diff = a - b  # NaN where either is NaN
    return bootstrap_ci(diff, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
