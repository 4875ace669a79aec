"""Large interaction sets: batch-local training steps equal whole-catalog steps, and evaluation scores users
in batches bounded by users × items."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import core.data.metrics as metrics
import core.models.fusion.train as train
from core.encoders.embeddings import EmbeddingSet
from core.encoders.base import l2_normalise
from core.evaluation.protocol import evaluate
from core.data.interactions import InteractionData
from core.models.fusion.config import FusionConfig
from core.models.fusion.recommender import FusionRecommender
from core.tuning.baselines import member_search
from core.models.itemknn import ItemKNN


def small_data(n_items: int = 90, n_users: int = 30, seed: int = 0) -> InteractionData:
    rng = np.random.default_rng(seed)
    fields = {"text": "text", "image": "image", "audio": "audio"}
    masks = {f: rng.random(n_items) > 0.15 for f in fields}
    matrices = {f: l2_normalise(rng.normal(size=(n_items, 6)) * masks[f][:, None]) for f in fields}
    ids = [f"i{j}" for j in range(n_items)]
    emb = EmbeddingSet(item_ids=ids, matrices=matrices, masks=masks, modality_of=fields,
                       encoder_ids={f: f"t/{f}" for f in fields})
    dense = rng.random((n_users, n_items)) < 0.12
    part = rng.random((n_users, n_items))

    def m(sel):
        return sp.csr_matrix((dense & sel).astype(np.float32))

    return InteractionData(user_ids=[f"u{u}" for u in range(n_users)], item_ids=ids, train=m(part < 0.8),
                           valid=m((part >= 0.8) & (part < 0.9)), test=m(part >= 0.9), embeddings=emb)


@pytest.mark.parametrize("strategy", ["gated", "adversarial", "concat"])
def test_batch_local_step_loss_equals_the_whole_catalog_step(strategy, monkeypatch):
    data = small_data()
    config = FusionConfig(strategy=strategy, dim=8, hidden=16, user_mode="id", use_item_id=True, loss="softmax",
                          negatives=5, emb_reg=0.01, l1=1e-4, align_weight=0.3, adv_weight=0.2, seed=1)
    model = FusionRecommender(config, member_search=member_search)
    model._build(data.embeddings, data.n_users, data.user_ids)
    coo = data.train.tocoo()
    model.net.attach_graph(coo.row, coo.col)
    with torch.no_grad():
        model.net.item_bias.normal_()
        model.net.popularity.add_(1.0)
    model.net.eval()  # no dropout: both computations see the same network
    users, pos, neg = (torch.as_tensor(a) for a in train.sample_pairs(data.train, np.random.default_rng(0), 5))
    u, i, j = users[:64], pos[:64], neg[:64]
    f = model.net()
    bias = model.net.biases()
    full = train.ranking_loss((f.users[u] * f.items[i]).sum(-1) + bias[i],
                              train.negative_scores(f.users[u], f.items, j) + bias[j], "softmax") \
        + train._penalties(model.net, config, f, u, i, j)
    local = train._local_step_loss(model.net, config, u, i, j)
    assert torch.allclose(local, full, rtol=1e-5, atol=1e-6), (float(local), float(full))
    monkeypatch.setattr(train, "LOCAL_STEP_ITEMS", 10)
    assert train.uses_local_steps(model.net)
    model.net.config = FusionConfig(strategy=strategy, dim=8, graph_layers=1)
    assert not train.uses_local_steps(model.net)  # propagation needs the whole graph


def test_local_steps_train_a_model_that_ranks(monkeypatch):
    monkeypatch.setattr(train, "LOCAL_STEP_ITEMS", 10)
    data = small_data(seed=2)
    model = FusionRecommender(FusionConfig(strategy="weighted", dim=8, hidden=0, user_mode="id", epochs=3,
                                           batch_size=64, loss="bpr", seed=0), member_search=member_search).fit(data)
    assert len(model.history) == 3 and all(np.isfinite(h["loss"]) for h in model.history)
    assert model.history[-1]["loss"] < model.history[0]["loss"]


def test_evaluation_batches_are_bounded_and_give_the_same_metrics(monkeypatch):
    data = small_data(n_items=100, n_users=40, seed=3)
    rng = np.random.default_rng(0)
    table = rng.normal(size=(data.n_users, data.n_items)).astype(np.float32)

    class Table:
        name = "table"
        shapes: list = []

        def score(self, users, items=None):
            self.shapes.append(len(users))
            return table[users]

    whole = evaluate(Table(), data, ks=(5, 10), n_bootstrap=50)
    monkeypatch.setattr(metrics, "MAX_BATCH_ENTRIES", 1000)  # at most 10 users of 100 items at once
    model = Table()
    model.shapes = []
    bounded = evaluate(model, data, ks=(5, 10), n_bootstrap=50)
    assert max(model.shapes) <= 10 and sum(model.shapes) == bounded.users_evaluated
    for name in ("recall@10", "ndcg@10", "auc", "coverage@10", "binary_f1@5"):
        assert bounded.metrics[name] == pytest.approx(whole.metrics[name], rel=1e-12, nan_ok=True)


def _dense_itemknn(train: np.ndarray, k: int, shrink: float) -> np.ndarray:
    """The item–item similarity computed densely: shrunk cosine, zero diagonal, top k per row (ties: lower column)."""
    r = (train > 0).astype(np.float32)
    co = r.T @ r
    norms = np.sqrt(np.diag(co)).astype(np.float32)
    np.fill_diagonal(co, 0.0)
    sim = np.where(co > 0, co / (norms[:, None] * norms[None, :] + np.float32(shrink)), 0.0).astype(np.float32)
    out = np.zeros_like(sim)
    for j in range(sim.shape[0]):
        nz = np.flatnonzero(sim[j])
        keep = nz[np.lexsort((nz, -sim[j, nz]))][:k]
        out[j, keep] = sim[j, keep]
    return out


def test_itemknn_built_in_item_blocks_equals_the_dense_computation():
    data = small_data(n_items=120, n_users=300, seed=4)
    dense = _dense_itemknn(data.train.toarray(), k=7, shrink=0.5)
    blocked = ItemKNN(k=7, shrink=0.5, max_block_products=300).fit(data)
    whole = ItemKNN(k=7, shrink=0.5, max_block_products=1 << 40).fit(data)
    assert blocked.blocks > 10 and whole.blocks == 1
    assert blocked.similarity.nnz <= 7 * data.n_items
    np.testing.assert_allclose(blocked.similarity.toarray(), dense, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(blocked.similarity.toarray(), whole.similarity.toarray())
    users = np.arange(0, data.n_users, 7)
    np.testing.assert_allclose(blocked.score(users), (data.train.toarray()[users] > 0) @ dense, rtol=1e-5)


def test_sampled_negatives_are_the_same_with_the_sorted_key_lookup(monkeypatch):
    data = small_data(n_items=60, n_users=200, seed=6)
    table = train.sample_pairs(data.train, np.random.default_rng(7), 3)
    monkeypatch.setattr(train, "DENSE_MEMBERSHIP_MAX", 0)  # the path large sets take: sorted keys
    keys = train.sample_pairs(data.train, np.random.default_rng(7), 3)
    for a, b in zip(table, keys):
        np.testing.assert_array_equal(a, b)
    users, _, neg = keys
    assert not (data.train.toarray()[users[:, None], neg] > 0).any()
