"""What the two `implicit` baselines share: the CSR they train on, thread settings, factor scoring."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.data.interactions import InteractionData


def usable_threads(requested: int) -> int:
    """`requested` when > 0, else the cores this process may use, at most 4 (implicit's OpenMP threads)."""
    if requested > 0:
        return requested
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def binary_user_items(data: InteractionData) -> sp.csr_matrix:
    """(U, I) float32 CSR of the training interactions, 1 per (user, item) pair: implicit's `user_items`."""
    x = sp.csr_matrix(data.train, dtype=np.float32)
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def fit_quietly(make: Callable[[], Any], user_items: sp.csr_matrix,
                callback: Callable[[int, float, Any], None] | None = None) -> Any:
    """make() then .fit(user_items), without implicit's own progress bar and with BLAS kept to one thread
    as implicit recommends (its OpenMP threads do the work); returns the fitted implicit model.
    `callback(iteration, seconds, loss)` is implicit's per-iteration hook."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        model = make()
        model.fit(user_items, show_progress=False, callback=callback)
    return model


def factors_of(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """(user factors, item factors) as float32 numpy arrays, whichever backend trained them."""
    users, items = model.user_factors, model.item_factors
    if hasattr(users, "to_numpy"):  # a GPU model
        users, items = users.to_numpy(), items.to_numpy()
    return np.asarray(users, dtype=np.float32), np.asarray(items, dtype=np.float32)


def factor_scores(user_vectors: np.ndarray | None, item_vectors: np.ndarray | None, users: np.ndarray,
                  items: np.ndarray | None, who: str) -> np.ndarray:
    """(len(users), len(items) or n_items) dot products of the fitted factors."""
    if user_vectors is None or item_vectors is None:
        raise RuntimeError(f"{who}.score called before fit(); fit it on InteractionData first")
    q = item_vectors if items is None else item_vectors[np.asarray(items)]
    return (user_vectors[np.atleast_1d(users)] @ q.T).astype(np.float32)
