"""Popularity: every user gets the items ranked by their number of training interactions."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from core.data.interactions import InteractionData
from core.models.base import ProgressCallback


@dataclass
class PopularityConfig:
    """Popularity has nothing to tune; the config exists so every model records one."""


class Popularity:
    """Scores item j by its training interaction count, the same for every user."""

    name = "popularity"
    kind = "baseline"

    def __init__(self, config: PopularityConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or PopularityConfig(), **overrides)
        self.history: list[dict] = []
        self.counts: np.ndarray | None = None  # (I,) float32

    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "Popularity":
        """Count each item's training interactions."""
        self.counts = np.asarray(data.train.sum(axis=0), dtype=np.float32).ravel()
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or n_items) training counts, identical rows."""
        if self.counts is None:
            raise RuntimeError("Popularity.score called before fit(); fit it on InteractionData first")
        row = self.counts if items is None else self.counts[np.asarray(items)]
        return np.broadcast_to(row, (len(np.atleast_1d(users)), row.size)).astype(np.float32)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **asdict(self.config)}
