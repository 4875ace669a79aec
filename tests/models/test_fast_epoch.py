"""The large-catalog training path (batch-local steps, sparse id gradients, lazy Adam on the id rows): the same
loss and gradients as the former dense computation for the same sampled negatives, the id rows outside a batch
left alone, and the small-catalog path untouched (one dense optimiser, no sparse flags)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import core.models.fusion.train as train
from core.models.fusion.config import FusionConfig
from core.models.fusion.network import FusionNet
from core.models.fusion.recommender import FusionRecommender
from tests.models.test_large_data import small_data


def former_local_step_loss(net: FusionNet, config: FusionConfig, users: torch.Tensor, pos: torch.Tensor,
                           neg: torch.Tensor) -> torch.Tensor:
    """The batch-local loss as it was computed before the fast epoch (dense id gradients): the reference."""
    items, inverse = torch.unique(torch.cat([pos, neg.reshape(-1)]), return_inverse=True)
    pos_l, neg_l = inverse[:pos.numel()], inverse[pos.numel():].reshape(neg.shape)
    present = net.present[items]
    x = net.project({m: v[items] for m, v in net.inputs.items()}, len(items))
    fused, _ = net.fuse(x, present)
    items0 = net.item_layer0(fused, items)
    users0 = net.user_id(users)
    bias = net.biases()[items]
    s_pos = (users0 * items0[pos_l]).sum(-1) + bias[pos_l]
    s_neg = (users0[:, None, :] * items0[neg_l]).sum(-1) + bias[neg_l]
    loss = train.ranking_loss(s_pos, s_neg, config.loss)
    if config.emb_reg > 0:
        counts = torch.bincount(pos_l, minlength=len(items)) + torch.bincount(neg_l.reshape(-1),
                                                                              minlength=len(items)) / neg.shape[1]
        reg = users0.pow(2).sum() + (counts * items0.pow(2).sum(1)).sum()
        loss = loss + config.emb_reg * reg / users.numel()
    if config.l1 > 0:
        loss = loss + config.l1 * sum(h.first_layer.weight.abs().sum() for h in net.heads.values())
    projected = x * present[..., None]
    if config.align_weight > 0 and len(net.modalities) > 1:
        loss = loss + config.align_weight * train.alignment_loss(projected, present, config.align_temperature)
    if config.strategy == "adversarial" and config.adv_weight > 0:
        loss = loss + config.adv_weight * train.adversarial_loss(net, projected, present)
    return loss


def built(config: FusionConfig, seed: int = 0) -> tuple[FusionNet, object]:
    data = small_data(seed=seed)
    model = FusionRecommender(config)
    torch.manual_seed(config.seed)
    model._build(data.embeddings, data.n_users, data.user_ids)
    coo = data.train.tocoo()
    model.net.attach_graph(coo.row, coo.col)
    with torch.no_grad():
        model.net.item_bias.normal_()
    return model.net, data


def grads(net: FusionNet) -> dict[str, torch.Tensor]:
    return {name: (p.grad.to_dense() if p.grad.is_sparse else p.grad).clone()
            for name, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("strategy,loss,negatives", [("gated", "bpr", 1), ("adversarial", "softmax", 6),
                                                     ("concat", "bce", 3)])
def test_fast_step_has_the_former_loss_and_gradients_for_the_same_negatives(monkeypatch, strategy, loss,
                                                                            negatives) -> None:
    monkeypatch.setattr(train, "LOCAL_STEP_ITEMS", 10)  # 90 items: forced onto the large-catalog path
    config = FusionConfig(strategy=strategy, dim=8, hidden=16, dropout=0.2, user_mode="id", use_item_id=True,
                          loss=loss, negatives=negatives, emb_reg=0.01, l1=1e-4, align_weight=0.3,
                          adv_weight=0.2, seed=1, collaborative="none")
    net, data = built(config)
    with torch.no_grad():
        net.popularity.add_(1.0)  # every item gets some of its id embedding
    assert train.uses_local_steps(net)
    users, pos, neg = (torch.as_tensor(a) for a in train.sample_pairs(data.train, np.random.default_rng(0),
                                                                      negatives))
    u, i, j = users[:48], pos[:48], neg[:48]
    net.train()  # dropout on: the same torch seed gives both computations the same masks
    torch.manual_seed(7)
    want = former_local_step_loss(net, config, u, i, j)
    want.backward()
    want_grads = grads(net)
    net.zero_grad(set_to_none=True)
    with train.sparse_id_gradients(net, True):
        torch.manual_seed(7)
        got = train._local_step_loss(net, config, u, i, j)
        got.backward()
        assert net.user_id.weight.grad.is_sparse and net.item_id.weight.grad.is_sparse
        got_grads = grads(net)
    assert not net.user_id.sparse and not net.item_id.sparse  # restored after the block
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    assert got_grads.keys() == want_grads.keys() and len(got_grads) > 5
    for name in want_grads:
        torch.testing.assert_close(got_grads[name], want_grads[name], rtol=1e-5, atol=1e-7, msg=name)
    # the user rows outside the batch get no gradient at all
    untouched = np.setdiff1d(np.arange(net.n_users), u.numpy())
    assert untouched.size > 0 and float(got_grads["user_id.weight"][untouched].abs().sum()) == 0.0


def test_lazy_adam_moves_only_the_batch_rows_and_decays_them(monkeypatch) -> None:
    monkeypatch.setattr(train, "LOCAL_STEP_ITEMS", 10)
    config = FusionConfig(strategy="gated", dim=8, hidden=0, user_mode="id", loss="bpr", l2=0.1, seed=0,
                          collaborative="none")
    net, data = built(config)
    with train.sparse_id_gradients(net, True):
        optimisers = train.make_optimisers(net, config)
        assert [type(o).__name__ for o in optimisers] == ["Adam", "SparseAdam"]
        sparse_params = optimisers[1].param_groups[0]["params"]
        assert len(sparse_params) == 2 and sparse_params[0] is net.user_id.weight
        before = net.user_id.weight.detach().clone()
        u, i, j = torch.tensor([0, 3, 3]), torch.tensor([1, 2, 5]), torch.tensor([[7], [8], [9]])
        loss = train._local_step_loss(net, config, u, i, j)
        loss.backward()
        raw = net.user_id.weight.grad.coalesce()
        train.decay_sparse_rows(net, config.l2)
        decayed = net.user_id.weight.grad
        torch.testing.assert_close(decayed.values(), raw.values() + 0.1 * before[raw.indices()[0]])
        for o in optimisers:
            o.step()
    moved = (net.user_id.weight.detach() != before).any(1).nonzero().squeeze(1).tolist()
    assert moved == [0, 3]  # the batch's users; dense Adam would have moved only these too on step one,
    #                         but SparseAdam keeps no moments for the others, so later steps leave them alone


def test_small_catalogs_keep_one_dense_optimiser_and_dense_gradients() -> None:
    config = FusionConfig(strategy="gated", dim=8, hidden=0, user_mode="id", seed=0, collaborative="none")
    net, _ = built(config)
    assert not train.uses_local_steps(net)
    with train.sparse_id_gradients(net, train.uses_local_steps(net)):
        optimisers = train.make_optimisers(net, config)
    assert len(optimisers) == 1 and type(optimisers[0]) is torch.optim.Adam
    assert [id(p) for p in optimisers[0].param_groups[0]["params"]] == [id(p) for p in net.parameters()]
    assert not net.user_id.sparse


def test_large_catalog_path_steps_with_fused_adam_the_same_as_adam(monkeypatch) -> None:
    monkeypatch.setattr(train, "LOCAL_STEP_ITEMS", 10)
    config = FusionConfig(strategy="gated", dim=8, hidden=0, user_mode="id", loss="bpr", l2=0.01, seed=0,
                          collaborative="none")
    nets = [built(config)[0] for _ in range(2)]
    data = small_data()
    (fused,), plain = train.make_optimisers(nets[0], config), torch.optim.Adam(nets[1].parameters(), lr=config.lr,
                                                                              weight_decay=config.l2)
    assert fused.param_groups[0]["fused"] and not plain.param_groups[0]["fused"]
    users, pos, neg = (torch.as_tensor(a) for a in train.sample_pairs(data.train, np.random.default_rng(0), 1))
    for net, optimiser in zip(nets, (fused, plain)):
        net.eval()
        for s in range(0, 120, 40):
            optimiser.zero_grad()
            train._local_step_loss(net, config, users[s:s + 40], pos[s:s + 40], neg[s:s + 40]).backward()
            optimiser.step()
    moved = 0
    for (name, a), b in zip(nets[0].named_parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
        moved += int((a != built(config)[0].get_parameter(name)).any())
    assert moved > 3


@pytest.mark.parametrize("lazy", [False, True])
def test_fast_epochs_train_a_model_that_ranks_and_leave_dense_tables(monkeypatch, lazy) -> None:
    monkeypatch.setattr(train, "LOCAL_STEP_ITEMS", 10)
    monkeypatch.setattr(train, "LAZY_ID_ROWS", lazy)
    data = small_data(seed=2)
    model = FusionRecommender(FusionConfig(strategy="gated", dim=8, hidden=0, user_mode="id", epochs=4,
                                           batch_size=64, loss="bpr", lr=0.02, seed=0,
                                           collaborative="none")).fit(data)
    assert len(model.history) >= 2 and all(np.isfinite(h["loss"]) for h in model.history)
    assert model.history[-1]["loss"] < model.history[0]["loss"]
    assert not model.net.user_id.sparse and not model.net.item_id.sparse


def test_sorted_keys_sampler_accepts_a_non_canonical_matrix(monkeypatch) -> None:
    # rows with unsorted columns and (0, 3) twice: not canonical, as a matrix built by hand can be
    m = sp.csr_matrix((np.ones(6, np.float32), np.array([3, 1, 3, 4, 5, 0]), np.array([0, 3, 4, 6])), shape=(3, 8))
    assert not m.has_canonical_format
    table = train.sample_pairs(m.copy(), np.random.default_rng(1), 4)
    monkeypatch.setattr(train, "DENSE_MEMBERSHIP_MAX", 0)
    keys = train.sample_pairs(m, np.random.default_rng(1), 4)
    for a, b in zip(table, keys):
        np.testing.assert_array_equal(a, b)
    dense = m.toarray() > 0
    assert not dense[keys[0][:, None], keys[2]].any()


def test_replicas_share_out_the_users_rows_and_count_their_pairs() -> None:
    data = small_data(n_users=31, seed=3)
    shards = [train.Replica(rank=r, world=3).shard(data.train) for r in range(3)]
    for r, shard in enumerate(shards):
        rows = np.flatnonzero(np.diff(shard.indptr))
        assert rows.size > 0 and (rows % 3 == r).all()  # only its users, user u on replica u mod 3
        assert shard.shape == data.train.shape
    assert abs(shards[0] + shards[1] + shards[2] - data.train).sum() == 0  # every pair on exactly one replica
    counts = train.Replica(world=3).pairs_each(data.train)
    assert counts.tolist() == [s.nnz for s in shards] and counts.sum() == data.train.nnz
    assert train.Replica().shard(data.train) is data.train  # alone: the whole matrix, untouched


def test_the_large_catalog_path_trains_on_every_torch_thread_and_small_catalogs_on_one(monkeypatch) -> None:
    seen: dict[bool, int] = {}
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for large in (True, False):
            monkeypatch.setattr(train, "LOCAL_STEP_ITEMS", 10 if large else 20_000)
            model = FusionRecommender(FusionConfig(strategy="gated", dim=8, hidden=0, user_mode="id", epochs=1,
                                                   batch_size=64, loss="bpr", seed=0, collaborative="none"))
            model.fit(small_data(), progress=lambda report, large=large: seen.setdefault(large,
                                                                                      torch.get_num_threads()))
            assert train.uses_local_steps(model.net) is large
            assert torch.get_num_threads() == 2  # restored after the fit
    finally:
        torch.set_num_threads(before)
    assert seen == {True: 2, False: 1}


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_keeping_the_user_gradient_between_steps_trains_the_same_model(monkeypatch, l2) -> None:
    monkeypatch.setattr(train, "LOCAL_STEP_ITEMS", 10)  # the large-catalog path, where the gradient is kept
    data = small_data(seed=3)
    config = FusionConfig(strategy="gated", dim=8, hidden=0, user_mode="id", epochs=3, patience=3, batch_size=32,
                          loss="bpr", lr=0.02, l2=l2, dropout=0.0, seed=0, collaborative="none")
    models = []
    for keep in (False, True):
        monkeypatch.setattr(train, "KEEP_USER_GRADIENT", keep)
        models.append(FusionRecommender(config).fit(data))
    for (name, a), b in zip(models[0].net.named_parameters(), models[1].net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert [h["loss"] for h in models[0].history] == pytest.approx([h["loss"] for h in models[1].history], rel=1e-5)
    assert models[1].net.user_id.weight.grad is None  # the buffer is not left behind


def test_the_kept_user_gradient_holds_exactly_the_batch_rows(monkeypatch) -> None:
    monkeypatch.setattr(train, "LOCAL_STEP_ITEMS", 10)
    config = FusionConfig(strategy="gated", dim=8, hidden=0, user_mode="id", loss="bpr", seed=0, collaborative="none")
    net, _ = built(config)
    net.eval()  # no dropout: the two passes see the same inputs
    u, i, j = torch.tensor([0, 3, 3]), torch.tensor([1, 2, 5]), torch.tensor([[7], [8], [9]])
    train._local_step_loss(net, config, u, i, j).backward()
    want = net.user_id.weight.grad.clone()
    net.zero_grad(set_to_none=True)
    token = train.KEEP_USER_GRAD.set(True)
    try:
        train._local_step_loss(net, config, u, i, j).backward()
    finally:
        train.KEEP_USER_GRAD.reset(token)
    torch.testing.assert_close(net.user_id.weight.grad, want, rtol=1e-6, atol=1e-7)
    assert set(net.user_id.weight.grad.abs().sum(1).nonzero().squeeze(1).tolist()) == {0, 3}
