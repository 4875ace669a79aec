"""Cold-start items: held-out items vanish from training and are ranked from content alone."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.catalog.model import Catalog, Item
from core.encoders.embeddings import EmbeddingSet
from core.evaluation.cold_start import cold_start_split, run_cold_start
from core.data.splits import build_interaction_data
from core.data.interactions import InteractionData


def _clustered() -> tuple[Catalog, EmbeddingSet]:
    """20 items in two clusters of 10 (one-hot content); 10 users, each listening to all of one cluster."""
    items = [Item(id=f"i{j:02d}", title=f"t{j}") for j in range(20)]
    rows = [(f"u{u}", f"i{j:02d}") for u in range(10) for j in range(10 * (u % 2), 10 * (u % 2) + 10)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(
        rating=1.0, timestamp=np.arange(len(rows), dtype=float), split=pd.NA)
    inter = inter.astype({"user_id": "string", "item_id": "string", "split": "string"})
    m = np.zeros((20, 2), np.float32)
    m[:10, 0] = m[10:, 1] = 1.0
    emb = EmbeddingSet(item_ids=[i.id for i in items], matrices={"text": m}, masks={"text": np.ones(20, bool)},
                       modality_of={"text": "text"}, encoder_ids={"text": "onehot"})
    return Catalog("clusters", items, inter), emb


class MeanContent:
    """Scores an item by the dot product of its content with the mean content of the user's train items."""

    name = "mean-content"
    kind = "single-modality"

    def __init__(self) -> None:
        self.history: list[dict] = []
        self.seen: InteractionData | None = None

    def fit(self, data: InteractionData, progress: Any = None) -> "MeanContent":
        self.seen = data
        x = data.embeddings.matrices["text"]
        counts = np.maximum(np.asarray(data.train.sum(axis=1)), 1)
        self.users = np.asarray(data.train @ x) / counts
        self.items = x
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        x = self.items if items is None else self.items[items]
        return (self.users[users] @ x.T).astype(np.float32)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


def test_split_removes_every_interaction_of_the_held_out_items():
    catalog, emb = _clustered()
    data = build_interaction_data(catalog, emb, split="random")
    split = cold_start_split(data, share=0.2, seed=1)
    assert split.cold_items.size == 4
    for m in (split.data.train, split.data.valid, split.data.test):
        assert m[:, split.cold_items].nnz == 0
    everything = (data.train + data.valid + data.test).tocsr()
    assert (split.truth != everything[:, split.cold_items]).nnz == 0
    assert split.data.train.nnz + split.data.valid.nnz + split.data.test.nnz + split.truth.nnz == everything.nnz
    with pytest.raises(ValueError, match="share"):
        cold_start_split(data, share=1.0)


def test_content_model_ranks_the_cold_items_of_its_cluster_first():
    catalog, emb = _clustered()
    data = build_interaction_data(catalog, emb, split="random")
    model = MeanContent()
    record = run_cold_start(model, data, catalog, emb, share=0.2, ks=(1, 4, 50), seed=1, n_bootstrap=50)
    split = cold_start_split(data, share=0.2, seed=1)
    # the model was fitted without the held-out items
    assert model.seen.train[:, split.cold_items].nnz == 0
    # every user's relevant cold items are exactly the cold items of its cluster, which score 1 vs 0:
    # they fill the top of the list -> recall@4 = ndcg@4 = precision@1 = 1 (K = 50 > 4 cold items is dropped)
    assert record["metrics"]["recall@4"] == pytest.approx(1.0)
    assert record["metrics"]["ndcg@4"] == pytest.approx(1.0)
    assert record["metrics"]["precision@1"] == pytest.approx(1.0)
    p = record["protocol"]
    assert p["name"] == "cold-start" and p["ks"] == [1, 4] and p["n_cold_items"] == 4
    users_with_cold = int((np.diff(split.truth.indptr) > 0).sum())
    assert p["users_evaluated"] == users_with_cold
    assert record["name"] == "mean-content (cold start)" and record["model"]["kind"] == "single-modality"
