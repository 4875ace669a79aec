"""The machine's memory copy bandwidth: the bound an exact scan over item vectors is measured against
(benchmarks.scale and benchmarks.scale_service)."""
from __future__ import annotations

import time

import numpy as np


def copy_bandwidth(mib: int = 512, repeats: int = 5) -> float:
    """Measured memory copy bandwidth in bytes/s (read + write bytes ÷ time, best of `repeats`)."""
    a = np.ones(mib * 2**20 // 4, np.float32)
    b = np.empty_like(a)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.nbytes / best
