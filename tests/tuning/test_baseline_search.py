"""The baselines' declared search spaces: a search finds an optimum outside its initial range by extending
it, no space has a fixed top, Holm's correction and the verdict against hand-computed answers, tuned settings
stored and reused."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from core.evaluation.holm import holm_adjust, holm_alphas
from core.evaluation.verdict import sentence, verdict
from core.models.collaborative import WEIGHT_GRID, _grow_top_weights
from core.models.registry import build_model
from core.tuning.baselines import MIN_GAIN, SPACES, BaselineSpace, Choice, Range, extend, near_edge, search


def test_search_extends_a_log_range_to_an_optimum_far_above_it() -> None:
    # known answer: the objective peaks at 5,000, fifty times the initial top of 100
    space = BaselineSpace({"reg": Range(1.0, 100.0, floor=1e-6)}, budget_seconds=60, max_trials=150, patience=30)
    result = search(space, lambda p, _r: -(math.log10(p["reg"]) - math.log10(5000.0)) ** 2, seed=0)
    assert abs(math.log10(result.params["reg"] / 5000.0)) < 0.05  # within 12% of the optimum
    assert result.ranges["reg"][1] >= 5000.0 and result.extensions  # found by extending, and recorded
    assert all(e["param"] == "reg" and e["to"][1] > e["from"][1] for e in result.extensions)
    assert result.at_edge == []


def test_search_extends_integer_and_low_edges() -> None:
    # an integer setting peaking at 9 (initial range 1..4) and a log setting peaking at 1e-5 (initial 1e-2..1)
    space = BaselineSpace({"layers": Range(1, 4, log=False, integer=True, floor=0),
                           "lr": Range(1e-2, 1.0, floor=1e-12), "kind": Choice(("a", "b"))},
                          budget_seconds=60, max_trials=160, patience=25)

    def objective(p: dict, _report) -> float:
        return -abs(p["layers"] - 9) - abs(math.log10(p["lr"]) + 5) - (p["kind"] != "b")

    result = search(space, objective, seed=1)
    assert result.params["layers"] == 9 and result.params["kind"] == "b"
    assert abs(math.log10(result.params["lr"]) + 5) < 0.3
    assert result.ranges["layers"][1] >= 9 and result.ranges["lr"][0] <= 1e-5


def test_a_range_stops_only_at_a_bound_of_the_setting_itself() -> None:
    r = Range(5, 1000, integer=True, floor=1, ceiling="items")
    assert near_edge(990, r, 5, 1000) == "high" and near_edge(100, r, 5, 1000) is None
    assert near_edge(5, r, 5, 1000) == "low"
    assert extend(r, 5, 1000, "high", n_items=600) == (5, 599)  # a neighbourhood holds the other items at most
    assert extend(r, 5, 599, "high", n_items=600) is None
    assert extend(r, 1, 100, "low") is None  # the floor
    shrink = Range(0.0, 100.0, log=False, floor=0.0)
    assert extend(shrink, 0.0, 100.0, "high") == (0.0, 150.0) and extend(shrink, 0.0, 100.0, "low") is None


def test_a_setting_that_does_not_count_is_neither_fitted_nor_recorded_nor_extended() -> None:
    # "k1" counts only under weighting "bm25"; the optimum is weighting "none", where k1 is irrelevant. Every
    # trial draws k1 (a fixed space), but trials under "none" pass no k1 and the search never extends its range
    seen: list[dict] = []
    space = BaselineSpace({"weighting": Choice(("none", "bm25")),
                           "k1": Range(0.1, 100.0, floor=0.0, when=("weighting", ("bm25",))),
                           "b": Range(0.0, 1.0, log=False, floor=0.0, ceiling="share", when=("weighting", ("bm25",)))},
                          budget_seconds=30, max_trials=40, patience=40)

    def objective(p: dict, _report) -> float:
        seen.append(dict(p))
        return 1.0 if p["weighting"] == "none" else 0.5 - abs(math.log10(p["k1"]))

    result = search(space, objective, seed=0)
    assert result.params == {"weighting": "none"} and result.at_edge == []
    assert all(("k1" in p) == ("b" in p) == (p["weighting"] == "bm25") for p in seen)
    assert any(p["weighting"] == "bm25" for p in seen) and result.extensions == []
    assert result.ranges["b"] == [0.0, 1.0]


def test_a_space_refuses_a_condition_on_a_setting_it_does_not_choose() -> None:
    with pytest.raises(ValueError, match="not a choice"):
        BaselineSpace({"k1": Range(0.1, 10.0, when=("weighting", ("bm25",)))}, budget_seconds=1)
    with pytest.raises(ValueError, match="not a choice"):
        BaselineSpace({"weighting": Choice(("none",)), "k1": Range(0.1, 10.0, when=("weighting", ("bm25",)))},
                      budget_seconds=1)
    with pytest.raises(ValueError, match="share"):
        Range(0.0, 2.0, log=False, ceiling="share")


def test_itemknn_settings_stored_before_the_weighting_load_and_fit_as_before(tmp_path) -> None:
    # a tuned ItemKNN file written before the weighting existed (k, shrink, similarity only) resolves to
    # those settings, builds, and fits the unweighted model
    import json
    from types import SimpleNamespace

    import scipy.sparse as sp

    from core.data.interactions import InteractionData
    from core.tuning.baseline_store import baseline_path, resolve_baseline
    from core.tuning.store import data_fingerprint

    rng = np.random.default_rng(0)
    train = sp.csr_matrix((rng.random((12, 9)) < 0.4).astype(np.float32))
    valid = sp.csr_matrix(([1.0], ([0], [0])), shape=(12, 9), dtype=np.float32)
    data = InteractionData([f"u{i}" for i in range(12)], [f"i{j}" for j in range(9)], train, valid, valid.copy())
    store = SimpleNamespace(root=tmp_path)
    path = baseline_path(store, "cat", "itemknn")
    path.parent.mkdir(parents=True)
    old = {"format": 1, "catalog": "cat", "model": "itemknn", "created_at": 0.0, "data_hash": data_fingerprint(data),
           "settings": {"k": 4, "shrink": 0.94, "similarity": "jaccard"}, "record": {"value": 0.38, "trials": 78}}
    path.write_text(json.dumps(old))
    settings, record, _note = resolve_baseline(store, "cat", "itemknn", data)
    assert settings == {"k": 4, "shrink": 0.94, "similarity": "jaccard"} and record["source"] == "stored"
    model = build_model("itemknn", **settings).fit(data)
    assert model.config.weighting == "none"
    plain = build_model("itemknn", k=4, shrink=0.94, similarity="jaccard", weighting="none").fit(data)
    np.testing.assert_array_equal(model.similarity.toarray(), plain.similarity.toarray())


@pytest.mark.parametrize("name", sorted(SPACES))
def test_no_baseline_space_has_a_fixed_top(name: str) -> None:
    space = SPACES[name]
    fields = {f.name for f in dataclasses.fields(build_model(name).config)}
    assert set(space.params) <= fields  # every searched setting is one the model has
    for key, spec in space.params.items():
        if isinstance(spec, Choice):
            continue
        assert spec.ceiling in (None, "items", "share"), f"{name}.{key} has a fixed top"
        if spec.ceiling == "share":  # a fraction: the whole of [0, 1] is searched from the start, nothing to pass
            assert (spec.low, spec.high) == (0.0, 1.0), f"{name}.{key} searches only part of [0, 1]"
            assert extend(spec, 0.0, 1.0, "high") is None and extend(spec, 0.0, 1.0, "low") is None
            continue
        low, high = spec.low, spec.high
        for _ in range(5):  # a best point at the top always moves the top up (far past the initial one)
            grown = extend(spec, low, high, "high", n_items=10**12)  # the items bound is the data's
            assert grown is not None and grown[1] > high, f"{name}.{key} stops at {high}"
            low, high = grown
        assert high >= 2 * spec.high


def test_every_baseline_with_settings_has_a_space() -> None:
    assert {"ease", "als", "implicit-bpr", "itemknn", "lightgcn", "bprmf", "vbpr"} <= set(SPACES)
    als = SPACES["als"].params
    assert als["regularization"].low <= 1e-3 and als["regularization"].high >= 1e3  # the floor
    assert SPACES["ease"].params["reg"].high / SPACES["ease"].params["reg"].low >= 1e4  # several decades
    assert isinstance(SPACES["itemknn"].params["similarity"], Choice)
    knn = SPACES["itemknn"].params
    assert set(knn["weighting"].options) == {"none", "tfidf", "bm25"} and "dot" in knn["similarity"].options
    assert knn["bm25_k1"].when == knn["bm25_b"].when == ("weighting", ("bm25",))
    assert knn["bm25_k1"].low <= 0.1 and knn["bm25_k1"].high >= 100 and knn["bm25_k1"].ceiling is None
    assert all(SPACES[m].epochs for m in ("lightgcn", "bprmf", "vbpr"))  # pruned on their epochs


def test_holm_against_a_hand_computed_example() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted .005 .01 .03 .04 times 4 3 2 1 = .02 .03 .06 .04, made non-decreasing: .02 .03 .06 .06
    assert np.allclose(holm_adjust(p), [0.03, 0.06, 0.06, 0.02])
    # .005 ≤ .05/4 and .01 ≤ .05/3 are rejected; .03 > .05/2 stops: it and .04 get level .05/2
    assert np.allclose(holm_alphas(p), [0.05 / 3, 0.025, 0.025, 0.0125])
    assert np.allclose(holm_adjust([0.2]), [0.2]) and np.allclose(holm_alphas([0.2]), [0.05])
    with pytest.raises(ValueError, match="p-values"):
        holm_adjust([0.5, 1.5])


def _block(values: np.ndarray) -> dict[str, list]:
    return {"users": list(range(len(values))), "ndcg@20": values.tolist()}


def test_verdict_names_the_strongest_on_validation_and_says_tie_or_lead() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 400)
    per_user = {"fusion": _block(base + 0.05), "als": _block(base), "pop": _block(base - 0.3),
                "ease": _block(base + 0.05 + rng.normal(0, 0.01, 400))}
    # ALS is the strongest on validation: fusion leads it by .05 on every user
    v = verdict("fusion", per_user, {"fusion": 0.5, "als": 0.45, "pop": 0.1, "ease": 0.40}, ["als", "pop", "ease"],
                "ndcg@20", n_bootstrap=500)
    assert v["strongest"] == "als" and v["outcome"] == "leads" and v["family"] == 3
    assert v["difference"] == pytest.approx(0.05) and v["ci"][0] > 0
    # EASE strongest: the same users' values up to noise, so a tie, printed as one
    v = verdict("fusion", per_user, {"fusion": 0.5, "als": 0.45, "pop": 0.1, "ease": 0.46}, ["als", "pop", "ease"],
                "ndcg@20", n_bootstrap=500)
    assert v["strongest"] == "ease" and v["outcome"] == "ties" and v["ci"][0] <= 0 <= v["ci"][1]
    assert "ties the strongest baseline, ease" in sentence(v) and "Holm-corrected" in sentence(v)
    # the corrected interval is wider than the plain 95% one of the same resamples
    plain = verdict("fusion", per_user, {"fusion": 0.5, "ease": 0.46}, ["ease"], "ndcg@20", n_bootstrap=500)
    assert plain["ci"][1] - plain["ci"][0] <= v["ci"][1] - v["ci"][0]


def test_collaborative_weights_grow_past_the_grid_top() -> None:
    # the validation figure of a one-member blend peaks at a relative weight of 2.0, far above the grid's top
    def blend(combo: tuple[float, ...]) -> float:
        return -abs(math.log(combo[0] / 2.0)) if combo[0] > 0 else -10.0

    best = max(((blend((w,)), (w,)) for w in WEIGHT_GRID if w), key=lambda b: b[0])
    assert best[1] == (WEIGHT_GRID[-1],)
    grown, extended = _grow_top_weights(blend, best, 1)
    assert 2.0 / 1.5 <= grown[1][0] <= 2.0 * 1.5 and extended == {0: grown[1][0]}


def test_stored_settings_round_trip_and_a_damaged_file_is_named(tmp_path) -> None:
    from types import SimpleNamespace

    from core.errors import StoreError
    from core.tuning.baseline_store import baseline_path, load_baseline, save_baseline

    store = SimpleNamespace(root=tmp_path)
    save_baseline(store, "cat", "als", {"factors": 63, "regularization": 40.6}, {"value": 0.42}, data_hash="h1")
    assert load_baseline(store, "cat", "als", data_hash="h1").settings == {"factors": 63, "regularization": 40.6}
    assert load_baseline(store, "cat", "als", data_hash="other") is None  # tuned on other data: not reused
    assert load_baseline(store, "cat", "ease") is None
    path = baseline_path(store, "cat", "als")
    path.write_text("{not json")
    with pytest.raises(StoreError, match="als.json is not a readable tuned setting.*delete it"):
        load_baseline(store, "cat", "als")
    with pytest.raises(StoreError, match="cannot name"):
        baseline_path(store, "cat", "../x")


def test_a_failed_write_keeps_the_stored_settings_and_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    import errno
    import os
    from types import SimpleNamespace

    from core.errors import StoreError
    from core.tuning.baseline_store import baseline_path, load_baseline, save_baseline

    store = SimpleNamespace(root=tmp_path)
    save_baseline(store, "cat", "als", {"factors": 63}, {"value": 0.42}, data_hash="h1")
    folder = baseline_path(store, "cat", "als").parent

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(StoreError, match="disk is full.*previous ones \\(if any\\) are unchanged"):
        save_baseline(store, "cat", "als", {"factors": 128}, {"value": 0.5}, data_hash="h1")
    monkeypatch.undo()
    assert load_baseline(store, "cat", "als").settings == {"factors": 63}
    assert [p.name for p in folder.iterdir()] == ["als.json"]  # no temporary file left beside it
def test_a_pruned_epoch_model_search_runs_many_cheap_trials() -> None:
    # BPR-MF on a tiny generated catalog under successive halving: several trials, some stopped at an early
    # rung after a few epochs, the completed ones trained on to the cap or early stopping
    from core.tuning.baselines import default_point, search_model
    from tests.models.test_baselines import make_data

    data = make_data(with_embeddings=False)
    space = dataclasses.replace(SPACES["bprmf"], budget_seconds=60, max_trials=14, patience=14,
                                trial_settings={"epochs": 18, "patience": 18, "batch_size": 256})
    assert space.pruner == "halving" and space.first_rung == 2
    result = search_model("bprmf", data, space=space, seed=0)
    states = [h["state"] for h in result.history]
    assert len(states) == 14  # the cap, not the time budget, ended it
    pruned = [h for h in result.history if h["state"] == "pruned"]
    complete = [h for h in result.history if h["state"] == "complete"]
    assert len(pruned) >= 3 and complete
    assert all(h["epochs"] < 18 for h in pruned)  # a pruned trial stopped before the epoch cap
    assert sum(h["epochs"] for h in pruned) / len(pruned) < 10  # and most of them at an early rung
    assert result.value == max(h["value"] for h in complete)
    assert result.history[0]["params"] == default_point("bprmf")  # the defaults are the first trial
    assert result.record()["pruned"] == len(pruned)


def test_the_study_names_its_pruners() -> None:
    import optuna

    from core.tuning.study import TuneConfig, create_study

    assert isinstance(create_study(TuneConfig()).pruner, optuna.pruners.MedianPruner)  # the fusion search's
    halving = create_study(TuneConfig(pruner="halving", warmup_epochs=2)).pruner
    assert isinstance(halving, optuna.pruners.SuccessiveHalvingPruner)
    with pytest.raises(ValueError, match="pruner='hyper'; choose one of"):
        TuneConfig(pruner="hyper")


def test_a_pruned_search_counts_patience_in_trials_that_ran_to_the_end() -> None:
    # an epoch model whose poor points the pruner stops after a rung: the search settles only once `patience`
    # trials *completed* without a better best, however many pruned probes came between (or at its cap)
    space = BaselineSpace({"x": Range(1e-3, 1e3, floor=1e-9)}, budget_seconds=60, max_trials=90, epochs=True,
                          pruner="halving", first_rung=1, patience=6)

    def objective(p: dict, report) -> float:
        value = -(math.log10(p["x"]) - 1.3) ** 2
        for epoch in range(1, 5):
            report(epoch, value - 0.01 / epoch)
        return value

    result = search(space, objective, seed=0)
    states = [h["state"] for h in result.history]
    assert "pruned" in states and "complete" in states
    best, last_gain = -math.inf, 0  # the last trial that raised the best by MIN_GAIN
    for h in result.history:
        if h["state"] == "complete" and h["value"] >= best + MIN_GAIN:
            best, last_gain = h["value"], h["number"]
    completed_after = sum(h["state"] == "complete" for h in result.history[last_gain + 1:])
    assert result.n_trials == 90 or completed_after == 6  # settled exactly when the sixth completed
    assert result.n_trials - 1 - last_gain > 6  # pruned probes came between: they did not end the search
    assert abs(math.log10(result.params["x"]) - 1.3) < 0.3
