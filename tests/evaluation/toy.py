"""Small generated catalogs and a fixed-score model for the evaluation tests."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.catalog.model import Catalog, Item
from core.encoders.embeddings import EmbeddingSet
from core.data.interactions import InteractionData


def make_catalog(n_users: int = 30, n_items: int = 40, per_user: tuple[int, int] = (1, 15), seed: int = 0,
                 labelled: bool = False, duplicates: int = 10, name: str = "toy") -> Catalog:
    """Random interactions with distinct timestamps, some repeated pairs, and some users with 1–2 items."""
    rng = np.random.default_rng(seed)
    rows = []
    t = 1_000.0
    for u in range(n_users):
        n = int(rng.integers(per_user[0], per_user[1] + 1))
        for i in rng.choice(n_items - 2, size=n, replace=False):  # the last two items stay cold
            t += float(rng.integers(1, 100))
            rows.append((f"u{u:02d}", f"i{i:02d}", 1.0, t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    dup = frame.sample(n=min(duplicates, len(frame)), random_state=seed).assign(
        timestamp=lambda f: f["timestamp"] + 10_000)
    frame = pd.concat([frame, dup], ignore_index=True)
    frame["split"] = pd.Series(rng.choice(["train", "valid", "test"], size=len(frame), p=[0.7, 0.1, 0.2])
                               if labelled else [pd.NA] * len(frame), dtype="string")
    frame = frame.astype({"user_id": "string", "item_id": "string"})
    items = [Item(id=f"i{i:02d}", title=f"Item {i}", text=f"text {i}") for i in range(n_items)]
    return Catalog(name=name, items=items, interactions=frame)


def make_embeddings(item_ids: list[str], dim: int = 4, seed: int = 0) -> EmbeddingSet:
    """A one-field text embedding set over `item_ids` (in that order)."""
    m = np.random.default_rng(seed).normal(size=(len(item_ids), dim)).astype(np.float32)
    return EmbeddingSet(item_ids=list(item_ids), matrices={"text": m}, masks={"text": np.ones(len(item_ids), bool)},
                        modality_of={"text": "text"}, encoder_ids={"text": "toy-text"})


class FixedScores:
    """A recommender whose scores are a given (U, I) matrix; `history` mimics a trained model's."""

    name = "fixed"
    kind = "baseline"

    def __init__(self, scores: np.ndarray, history: list[dict] | None = None) -> None:
        self.scores = np.asarray(scores, dtype=np.float32)
        self.history = history or []
        self.fitted_on: InteractionData | None = None

    def fit(self, data: InteractionData, progress: Any = None) -> FixedScores:
        self.fitted_on = data
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        s = self.scores[np.asarray(users)]
        return s if items is None else s[:, np.asarray(items)]

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind}
