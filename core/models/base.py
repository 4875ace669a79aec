"""The one recommender surface every model (fusion or baseline) offers (the data it trains on is
core.data.interactions.InteractionData)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from core.data.interactions import InteractionData


@dataclass
class EpochReport:
    """What a training loop reports after each epoch (shown by the CLI and the app)."""

    epoch: int
    epochs: int
    loss: float
    valid_metric: float | None = None  # the early-stopping metric on the validation split
    metric_name: str = ""
    seconds: float = 0.0


ProgressCallback = Callable[[EpochReport], "bool | None"]  # returning True stops training (a pruned trial)


@runtime_checkable
class Recommender(Protocol):
    """fit → self; score users against items; recommend the top k unseen items."""

    name: str

    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "Recommender": ...

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or n_items) float32 scores; higher is better."""
        ...

    def get_config(self) -> dict[str, Any]: ...


def recommend_top_k(model: Recommender, data: InteractionData, user: int, k: int,
                    exclude_seen: bool = True) -> list[tuple[int, float]]:
    """The top k (item index, score) for one known user, training items removed."""
    scores = model.score(np.array([user]))[0].astype(np.float64)
    if exclude_seen:
        seen = data.train[user].indices
        scores[seen] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    top = np.argpartition(-scores, k - 1)[:k] if k > 0 else np.array([], dtype=int)
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(i), float(scores[i])) for i in top]
