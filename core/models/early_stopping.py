"""Early stopping on validation Recall@K, shared by every trained baseline."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from core.data.metrics import bounded_batch, recall_at_k, topk_indices
from core.data.interactions import InteractionData

ScoreFn = Callable[[np.ndarray], np.ndarray]  # user indices (B,) -> scores (B, n_items)


def validation_recall(score_fn: ScoreFn, data: InteractionData, k: int = 20,
                      batch_users: int = 1024) -> float:
    """Mean Recall@k on `data.valid` over users with validation items; full ranking, train items masked."""
    users = np.flatnonzero(np.diff(data.valid.indptr) > 0)
    if users.size == 0:
        return float("nan")
    recalls = []
    batch_users = bounded_batch(batch_users, data.n_items)
    for start in range(0, users.size, batch_users):
        batch = users[start:start + batch_users]
        scores = np.asarray(score_fn(batch), dtype=np.float32)
        topk = topk_indices(scores, k, data.train[batch])
        recalls.append(recall_at_k(topk, data.valid[batch]))
    return float(np.nanmean(np.concatenate(recalls)))


class EarlyStopping:
    """Tracks the best validation value, keeps a snapshot of the best state, and says when to stop."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = patience  # epochs without improvement before stopping
        self.min_delta = min_delta  # an improvement must exceed this
        self.best_value = -np.inf
        self.best_epoch = -1
        self.best_state: Any = None
        self._since_best = 0

    def update(self, epoch: int, value: float, state: Callable[[], Any]) -> bool:
        """Record one epoch's value; `state()` is called only on improvement. Returns True to stop."""
        if np.isfinite(value) and value > self.best_value + self.min_delta:
            self.best_value, self.best_epoch = float(value), epoch
            self.best_state = state()
            self._since_best = 0
            return False
        self._since_best += 1
        return self._since_best >= self.patience
