"""EASE, ALS and BPR (implicit) and LightGCN on a generated catalog: known answers, beating popularity,
settings chosen on validation."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from core.errors import ModelError
from core.models.als import ALS
from core.models.ease import EASE
from core.models.implicit_bpr import ImplicitBPR
from core.models.lightgcn import LightGCN
from core.models.popularity import Popularity
from core.models.baselines import GRIDS
from core.models.registry import build_model
from core.models.selection import grid_for, select_on_validation
from tests.models.test_baselines import held_out_recall, make_data

FAST_GCN = {"dim": 16, "epochs": 25, "patience": 5, "lr": 0.01, "batch_size": 256}


@pytest.fixture(scope="module")
def data():
    return make_data(with_embeddings=False)


@pytest.fixture(scope="module")
def popularity_recall(data) -> float:
    return held_out_recall(Popularity().fit(data), data)


def test_ease_solves_its_closed_form() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 1, 0]], dtype=np.float32))
    data = make_data(with_embeddings=False)
    data = type(data)(["a", "b", "c", "d"], ["i0", "i1", "i2", "i3"], x, sp.csr_matrix(x.shape), sp.csr_matrix(
        x.shape), split_name="hand")
    lam = 2.0
    model = EASE(reg=lam).fit(data)
    b = model.weights.astype(np.float64)
    assert np.allclose(np.diag(b), 0.0)
    # each column j minimises ||x_j − X b_j||² + λ||b_j||² with b_jj = 0: the reduced normal equations
    xd = x.toarray().astype(np.float64)
    for j in range(4):
        rest = [i for i in range(4) if i != j]
        a = xd[:, rest]
        expected = np.linalg.solve(a.T @ a + lam * np.eye(3), a.T @ xd[:, j])
        np.testing.assert_allclose(b[rest, j], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.score(np.array([0, 2])), xd[[0, 2]] @ b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score(np.array([1]), np.array([3, 0])), (xd[[1]] @ b)[:, [3, 0]], rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(ModelError, match="must be > 0"):
        EASE(reg=0.0).fit(data)


@pytest.mark.parametrize("make", [lambda: EASE(), lambda: ALS(factors=16, regularization=0.1, alpha=1.0, threads=1),
                                  lambda: ImplicitBPR(factors=16, learning_rate=0.05, threads=1),
                                  lambda: LightGCN(**FAST_GCN)],
                         ids=["ease", "als", "implicit-bpr", "lightgcn"])
def test_strong_baselines_beat_popularity(make, data, popularity_recall) -> None:
    model = make().fit(data)
    assert model.kind == "baseline" and model.get_config()["name"] == model.name
    scores = model.score(np.arange(5))
    assert scores.dtype == np.float32 and scores.shape == (5, data.n_items) and np.isfinite(scores).all()
    users, items = np.array([3, 1]), np.array([7, 2])
    np.testing.assert_allclose(model.score(users, items), model.score(users)[:, items], rtol=1e-5, atol=1e-6)
    assert held_out_recall(model, data) > popularity_recall + 0.05


def test_implicit_models_are_reproducible_for_a_seed(data) -> None:
    a = ALS(factors=8, iterations=3, threads=1).fit(data).score(np.arange(4))
    b = ALS(factors=8, iterations=3, threads=1).fit(data).score(np.arange(4))
    c = ALS(factors=8, iterations=3, threads=1, seed=1).fit(data).score(np.arange(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_implicit_bpr_keeps_its_best_check_and_stops_on_patience(data) -> None:
    fast = {"factors": 8, "learning_rate": 0.05, "threads": 1}
    model = ImplicitBPR(**fast, iterations=400, check_every=10, patience=3).fit(data)
    checks = [h["iterations"] for h in model.history]
    assert checks == list(range(10, 10 * len(checks) + 1, 10)) and all(0 <= h["loss"] <= 1 for h in model.history)
    best = max(model.history, key=lambda h: h["valid_metric"])
    assert model.best_iterations == best["iterations"]
    # stopped by patience: the last `patience` checks were no better than the best, and no check came after
    assert checks[-1] == best["iterations"] + 30 or checks[-1] == 400
    # the kept factors are those of the best check: the same as a run of exactly that many passes (one thread,
    # one seed: the passes are the same), scored without early stopping
    exact = ImplicitBPR(**fast, iterations=model.best_iterations, check_every=0).fit(data)
    assert exact.history == [] and exact.best_iterations == model.best_iterations
    np.testing.assert_array_equal(model.score(np.arange(6)), exact.score(np.arange(6)))


def test_implicit_bpr_stops_when_progress_says_so(data) -> None:
    seen = []
    model = ImplicitBPR(factors=8, threads=1, iterations=300, check_every=20).fit(
        data, progress=lambda r: seen.append((r.epoch, r.epochs, r.metric_name)) or r.epoch == 2)
    assert seen == [(1, 15, "recall@20"), (2, 15, "recall@20")] and len(model.history) == 2
    with pytest.raises(ValueError, match="check_every"):
        ImplicitBPR(check_every=-1)


def test_lightgcn_without_layers_is_matrix_factorisation(data) -> None:
    model = LightGCN(**{**FAST_GCN, "layers": 0, "epochs": 3}).fit(data)
    assert len(model.history) == 3 or model.best_epoch <= 3
    with pytest.raises(ValueError, match="layers"):
        LightGCN(layers=-1)


def test_grid_search_keeps_the_best_validation_point(data, monkeypatch) -> None:
    # the grid mechanism stays for models without a declared space: here EASE is given a grid for the test
    monkeypatch.setitem(GRIDS, "ease", [{"reg": r} for r in (50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0)])
    logged: list[str] = []
    sel = select_on_validation("ease", data, log=logged.append)
    assert sel.grid == GRIDS["ease"] and len(sel.valid) == len(sel.grid) == len(logged)
    assert sel.chosen == sel.grid[int(np.argmax(sel.valid))]
    assert sel.model.config.reg == sel.chosen["reg"]
    record = sel.record()
    assert record["chosen"] == sel.chosen and record["metric"] == "valid recall@20" and len(record["grid"]) == 6
    # settings fixed by the caller leave the grid
    assert grid_for("ease", {"reg": 0.1}) == []
    once = select_on_validation("ease", data, {"reg": 300.0})
    assert once.grid == [] and once.model.config.reg == 300.0 and once.valid == []


def test_search_keeps_the_best_validation_point(data) -> None:
    from core.models.early_stopping import validation_recall
    from core.tuning.baselines import search_model

    result = search_model("ease", data, budget_seconds=20, max_trials=12)
    done = [h for h in result.history if h["state"] == "complete"]
    assert result.value == max(h["value"] for h in done) and 1 <= len(done) <= 12
    model = build_model("ease", **result.params).fit(data)  # the chosen point gives the recorded figure again
    assert validation_recall(model.score, data, 20) == pytest.approx(result.value)
    fixed = search_model("als", data, fixed={"factors": 8, "threads": 1}, budget_seconds=20, max_trials=6)
    assert "factors" not in fixed.params and all("factors" not in h["params"] for h in fixed.history)


def test_registry_lists_the_strong_baselines_with_spaces() -> None:
    from core.tuning.baselines import SPACES

    for name in ("ease", "als", "implicit-bpr", "lightgcn"):
        assert name in SPACES and build_model(name).name == name
