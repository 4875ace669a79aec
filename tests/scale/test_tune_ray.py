"""A Ray Tune of 4 trials (Optuna search, ASHA pruning) over a stand-in space and objective that train real
fusion models on a tiny generated catalog; the best configuration is returned, stored and reloaded."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import scipy.sparse as sp

from core.encoders.embeddings import EmbeddingSet
from core.encoders.base import l2_normalise
from core.data.interactions import InteractionData
from core.models.fusion.config import FusionConfig

# The stand-ins follow the tuning interfaces (core.tuning.space.suggest, core.tuning.objective.run_trial).
BASE = FusionConfig(strategy="weighted", dim=8, hidden=0, use_item_id=False, user_mode="id", loss="bpr",
                    epochs=6, patience=6, batch_size=256, lr=0.01, align_weight=0.0, seed=0)


def standin_space(trial) -> dict:
    """Define-by-run: the learning rate and the dimension."""
    return {"lr": trial.suggest_float("lr", 1e-3, 5e-2, log=True), "dim": trial.suggest_categorical("dim", [4, 8])}


def standin_objective(params: dict, data: InteractionData, report=None) -> float:
    """Train one fusion model with `params` over BASE, reporting each epoch's validation metric."""
    from core.models.fusion.recommender import FusionRecommender
    from core.tuning.baselines import member_search

    def on_epoch(r) -> None:
        if report is not None and r.valid_metric is not None:
            report(r.epoch, r.valid_metric)

    model = FusionRecommender(replace(BASE, **params), member_search=member_search).fit(data, progress=on_epoch)
    return max(h["valid_metric"] for h in model.history)


def tiny_data(n_items: int = 60, n_users: int = 40, seed: int = 0) -> InteractionData:
    """Items in 4 clusters with text and image fields; each user likes one cluster."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(4, size=n_items)
    matrices = {f: l2_normalise(rng.normal(size=(4, 12))[cluster] + 0.5 * rng.normal(size=(n_items, 12)))
                for f in ("text", "image")}
    item_ids = [f"i{j}" for j in range(n_items)]
    emb = EmbeddingSet(item_ids=item_ids, matrices=matrices, masks={f: np.ones(n_items, bool) for f in matrices},
                       modality_of={"text": "text", "image": "image"}, encoder_ids={"text": "t", "image": "i"})
    rows, cols = [], []
    for u in range(n_users):
        liked = rng.choice(np.flatnonzero(cluster == u % 4), size=8, replace=False)
        rows += [u] * 8
        cols += liked.tolist()
    rows, cols = np.array(rows), np.array(cols)
    part = np.tile(np.array([0, 0, 0, 0, 0, 0, 1, 2]), n_users)

    def m(k: int) -> sp.csr_matrix:
        sel = part == k
        return sp.csr_matrix((np.ones(sel.sum(), np.float32), (rows[sel], cols[sel])), shape=(n_users, n_items))

    return InteractionData(user_ids=[f"u{u}" for u in range(n_users)], item_ids=item_ids, train=m(0), valid=m(1),
                           test=m(2), embeddings=emb, split_name="fixed", seed=seed)


@pytest.mark.slow  # four trial processes each import torch: about a minute on two idle cores
def test_ray_tune_of_four_trials_returns_and_stores_the_best(ray_session, tmp_path):
    from core.scale.tune_ray import RayTuneConfig, fusion_config_of, tune_on_ray

    steps = []
    config = RayTuneConfig(trials=4, max_epochs=BASE.epochs, grace_period=2, seed=0, storage_path=tmp_path / "ray")
    result = tune_on_ray(tiny_data(), config, space=standin_space, objective=standin_objective,
                         progress=lambda done, total, msg: steps.append((done, total)))
    assert len(result.history) == 4 and all(h["status"] != "error" for h in result.history)
    assert all(1 <= h["epochs"] <= BASE.epochs for h in result.history)
    assert result.best_metric == max(h["valid_metric"] for h in result.history)
    assert 0 < result.best_metric <= 1 and set(result.best_params) == {"lr", "dim"}
    assert steps[-1] == (4, 4)
    # the best trial's configuration, stored and reloaded, trains to the metric the trial reported
    best = fusion_config_of(result, BASE)
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps({"config": asdict(best), "valid_metric": result.best_metric,
                                "history": result.history}, default=str))
    reloaded = FusionConfig.from_dict(json.loads(path.read_text())["config"])
    assert reloaded == best and reloaded.lr == result.best_params["lr"]
    again = standin_objective({"lr": reloaded.lr, "dim": reloaded.dim}, tiny_data())
    assert math.isclose(again, result.best_metric, rel_tol=1e-6)  # seeded: the trial is reproducible


@pytest.mark.slow  # Ray trial processes each import torch
def test_cli_tune_on_ray_stores_the_best_configuration(ray_session, tmp_path, capsys):
    """`python -m core tune --engine ray` runs the project's own space and objective on Ray Tune and stores the
    best trial as the catalog's tuned configuration, which `train` then uses."""
    from core.cli.main import main
    from core.store.database import Store
    from core.tuning import space
    from core.tuning.store import load_tuned
    from tests.catalog.test_mmrec import make_mmrec

    data_dir = tmp_path / "store"
    assert main(["--data-dir", str(data_dir), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    capsys.readouterr()
    code = main(["--data-dir", str(data_dir), "tune", "--catalog", "tiny", "--engine", "ray", "--trials", "4",
                 "--trial-epochs", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "best: validation ndcg@20" in out and "(4 trials" in out
    tuned = load_tuned(Store(data_dir), "tiny")
    assert tuned is not None and len(tuned.history) == 4
    best = max((h for h in tuned.history if h["value"] is not None), key=lambda h: h["value"])
    assert tuned.metric["value"] == pytest.approx(best["value"])
    # the stored configuration is the best trial's: every searched setting it drew is the one stored
    assert best["params"] and all(getattr(tuned.config, k) == v for k, v in best["params"].items()
                                  if k in space.TUNED_FIELDS)
    assert main(["--data-dir", str(data_dir), "train", "--catalog", "tiny", "--set", "epochs=2"]) == 0
    assert "configuration: tuned on validation" in capsys.readouterr().out


def failing_objective(params: dict, data: InteractionData, report=None) -> float:
    """The stand-in objective, except that a 4-d model 'diverges'."""
    if params["dim"] == 4:
        raise ValueError(f"diverged: lr {params['lr']:.3g} gave a NaN loss")
    return standin_objective(params, data, report)


@pytest.mark.slow  # Ray trial processes each import torch
def test_a_failed_trial_is_named_in_one_line_and_the_search_goes_on(ray_session, tmp_path):
    from core.scale.tune_ray import RayTuneConfig, tune_on_ray

    messages = []
    config = RayTuneConfig(trials=2, max_epochs=2, grace_period=2, seed=0, concurrent=1,
                           storage_path=tmp_path / "ray", starting_points=[{"lr": 0.01, "dim": 4},
                                                                           {"lr": 0.01, "dim": 8}])
    result = tune_on_ray(tiny_data(), config, space=standin_space, objective=failing_objective,
                         progress=lambda done, total, msg: messages.append(msg))
    failed = [h for h in result.history if h["status"] == "error"]
    assert len(failed) == 1 and failed[0]["params"] == {"lr": 0.01, "dim": 4}
    assert failed[0]["error"] == "ValueError: diverged: lr 0.01 gave a NaN loss"
    assert any("failed: ValueError: diverged: lr 0.01 gave a NaN loss" in m for m in messages)
    assert result.best_params == {"lr": 0.01, "dim": 8} and result.best_metric > 0


@pytest.mark.slow  # Ray trial processes each import torch
def test_ray_runs_the_local_search_trial_for_trial(ray_session, tmp_path):
    """The first trials of both engines are the search's starting points, trained with the search's seed and
    epoch cap: the same validation figure on Ray as in the local study."""
    import torch

    from core.scale.tune_ray import tune_study_on_ray
    from core.tuning.study import TuneConfig, tune

    torch.set_num_threads(1)  # as the Ray trial workers
    data = tiny_data()
    config = TuneConfig(trials=2, seed=1, trial_epochs=2, trial_patience=2)
    local = tune(data, config)
    on_ray = tune_study_on_ray(data, config, concurrent=1, storage_path=tmp_path / "ray")
    assert [h["params"] for h in on_ray.history] == [h["params"] for h in local.history]
    assert [h["value"] for h in on_ray.history] == pytest.approx([h["value"] for h in local.history], rel=1e-6)
    assert all(h["state"] == "complete" and h["epochs"] == 2 and h["cpu_seconds"] > 0 for h in on_ray.history)
    assert on_ray.value == pytest.approx(local.value, rel=1e-6) and on_ray.config == local.config
    assert on_ray.config.seed == 1


def test_an_empty_validation_split_is_refused_before_ray_starts():
    from core.scale.tune_ray import tune_study_on_ray
    from core.tuning.study import TuneConfig

    data = tiny_data()
    data = replace(data, valid=sp.csr_matrix(data.valid.shape, dtype=np.float32))
    with pytest.raises(ValueError, match="the validation split is empty"):
        tune_study_on_ray(data, TuneConfig(trials=2))


def test_error_line_is_the_innermost_cause():
    from core.scale.tune_ray import error_line

    try:
        try:
            raise ValueError("diverged at epoch 3")
        except ValueError as e:
            raise RuntimeError("trial failed") from e
    except RuntimeError as outer:
        assert error_line(outer) == "ValueError: diverged at epoch 3"
    traceback_text = ('Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
                      "ray.exceptions.RayTaskError(ValueError): ray::ImplicitFunc.train()\n"
                      "ValueError: the validation split is empty\n\n")
    assert error_line(traceback_text) == "ValueError: the validation split is empty"


def curve_space(trial) -> dict:
    return {"kind": trial.suggest_categorical("kind", ["good", "poor", "short"])}


def curve_objective(params: dict, data: InteractionData, report=None) -> float:
    """Known validation curves: 'good' climbs for 6 epochs, 'poor' stays low, 'short' ends itself at epoch 3."""
    values = {"good": [e / 7 for e in range(1, 7)], "poor": [0.01 * e for e in range(1, 7)],
              "short": [1.0, 1.0, 1.0]}[params["kind"]]
    for epoch, value in enumerate(values, start=1):
        report(epoch, value)
    return max(values)


@pytest.mark.slow  # a Ray session and three trial processes
def test_a_trial_the_scheduler_stops_counts_as_stopped_and_one_that_ends_itself_does_not(ray_session, tmp_path):
    from core.scale.tune_ray import RayTuneConfig, tune_on_ray

    config = RayTuneConfig(trials=3, max_epochs=6, grace_period=2, reduction_factor=2, concurrent=1,
                           storage_path=tmp_path / "ray",
                           starting_points=[{"kind": "good"}, {"kind": "poor"}, {"kind": "short"}])
    result = tune_on_ray(None, config, space=curve_space, objective=curve_objective)
    outcome = {h["params"]["kind"]: (h["status"], h["epochs"]) for h in result.history}
    # 'poor' trails 'good' at ASHA's first rung (epoch 2) and is stopped there; 'short' returns by itself
    assert outcome == {"good": ("completed", 6), "poor": ("stopped", 2), "short": ("completed", 3)}
    assert result.best_params == {"kind": "short"} and result.best_metric == 1.0


def obedient_curve_objective(params: dict, data: InteractionData, report=None) -> float:
    """curve_objective, stopping when report says the scheduler stopped the trial (as run_trial does)."""
    values = {"good": [e / 7 for e in range(1, 7)], "poor": [0.01 * e for e in range(1, 7)],
              "short": [1.0, 1.0, 1.0]}[params["kind"]]
    for epoch, value in enumerate(values, start=1):
        if report(epoch, value):
            break
    return max(values)


@pytest.mark.slow  # a Ray session and three trial processes
def test_trials_on_ray_train_are_stopped_by_asking_them(ray_session, tmp_path):
    """With trial_workers the scheduler's decision to stop reaches the trial, which returns by itself (Tune
    ending its process would leave its Train run's placement group reserved): the same outcome as above."""
    from core.scale.tune_ray import RayTuneConfig, tune_on_ray

    config = RayTuneConfig(trials=3, max_epochs=6, grace_period=2, reduction_factor=2, concurrent=1,
                           trial_workers=1, storage_path=tmp_path / "ray",
                           starting_points=[{"kind": "good"}, {"kind": "poor"}, {"kind": "short"}])
    messages = []
    result = tune_on_ray(None, config, space=curve_space, objective=obedient_curve_objective,
                         progress=lambda done, total, msg: messages.append(msg))
    outcome = {h["params"]["kind"]: (h["status"], h["epochs"]) for h in result.history}
    assert outcome == {"good": ("completed", 6), "poor": ("stopped", 2), "short": ("completed", 3)}
    assert any("stopped by the scheduler after 2 epochs" in m for m in messages)


@pytest.mark.slow  # two trials, each a Ray Train run of one worker process: about a minute on two idle cores
def test_cli_tune_with_trials_on_ray_train_stores_the_best_and_frees_the_workers(ray_session, tmp_path, capsys):
    """`tune --engine ray --trial-workers 1`: every trial's epochs come from its Ray Train run, the best trial is
    stored as the tuned configuration, and each Train run ends by itself (no CPU left reserved)."""
    import time

    from ray.util import placement_group_table

    from core.cli.main import main
    from core.store.database import Store
    from core.tuning.store import load_tuned
    from tests.catalog.test_mmrec import make_mmrec

    data_dir = tmp_path / "store"
    assert main(["--data-dir", str(data_dir), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    capsys.readouterr()
    groups_before = set(placement_group_table())
    code = main(["--data-dir", str(data_dir), "tune", "--catalog", "tiny", "--engine", "ray", "--trials", "2",
                 "--trial-epochs", "2", "--trial-workers", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "each trial trains on Ray Train: 1 worker(s)" in out and "(2 trials" in out
    tuned = load_tuned(Store(data_dir), "tiny")
    assert tuned is not None and len(tuned.history) == 2
    # the epochs each trial reported arrived while its fit ran on one Ray Train worker
    assert all(h["train_workers"] == 1 and h["epochs"] == 2 and h["cpu_seconds"] is None for h in tuned.history)
    best = max((h for h in tuned.history if h["value"] is not None), key=lambda h: h["value"])
    assert tuned.metric["value"] == pytest.approx(best["value"])
    # the trials' placement groups (the trial's own and its Train run's) are gone and every CPU is free again
    deadline = time.monotonic() + 20
    while ray_session.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray_session.available_resources().get("CPU", 0) == 2
    new_groups = {k: v for k, v in placement_group_table().items() if k not in groups_before}
    assert new_groups and all(v["state"] == "REMOVED" for v in new_groups.values())


def test_verdicts_say_stop_once_stopped_and_wait_for_undecided_epochs():
    from core.scale.tune_ray import _Verdicts

    verdicts = _Verdicts()
    assert verdicts.read("a", 1) is None  # not decided yet: the trial waits
    verdicts.record("a", 1, False)
    verdicts.record("b", 1, True)
    assert (verdicts.read("a", 1), verdicts.read("a", 2), verdicts.read("b", 1)) == (False, None, True)
    verdicts.record("a", 2, True)
    verdicts.record("a", 3, False)  # a later decision does not take a stop back
    assert verdicts.read("a", 2) is True and verdicts.read("a", 3) is True


def test_a_stop_decision_is_sent_to_the_trial_and_tune_told_to_go_on():
    pytest.importorskip("ray.tune", reason="Ray Tune is not installed")
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from core.scale.tune_ray import _asking_scheduler, _Verdicts

    class Rung(TrialScheduler):  # stops every trial at its second result
        def on_trial_result(self, tune_controller, trial, result):
            return TrialScheduler.STOP if result["training_iteration"] == 2 else TrialScheduler.CONTINUE

    recorded = _Verdicts()
    verdicts = SimpleNamespace(record=SimpleNamespace(remote=recorded.record))  # an actor handle's shape
    stopped: set[str] = set()
    scheduler = _asking_scheduler(Rung, verdicts, stopped)()
    trial = SimpleNamespace(trial_id="t1")
    decisions = [scheduler.on_trial_result(None, trial, {"training_iteration": i}) for i in (1, 2)]
    assert decisions == [TrialScheduler.CONTINUE, TrialScheduler.CONTINUE]
    assert stopped == {"t1"} and recorded.read("t1", 1) is True and recorded.stop_at == {"t1": 2}


@pytest.mark.slow  # a Ray session
def test_more_trial_workers_than_local_cpus_are_refused(ray_session):
    from core.errors import EngineError
    from core.scale.tune_ray import RayTuneConfig, tune_on_ray

    with pytest.raises(EngineError, match="trial-workers 2 or fewer"):
        tune_on_ray(None, RayTuneConfig(trials=1, trial_workers=3), space=curve_space, objective=curve_objective)
