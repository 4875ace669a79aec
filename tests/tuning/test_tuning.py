"""Selection on validation: the search, its stored result, and the commands that use it, on tiny data."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from core.cli.main import main
from core.errors import StoreError
from core.models.fusion.config import FusionConfig
from core.store.database import Store
from core.tuning import quick_fusion_config, resolve_fusion_config, space
from core.tuning.objective import run_trial
from core.tuning.store import data_fingerprint, load_tuned, save_tuned, tuned_path
from core.tuning.study import TuneConfig, tune
from tests.catalog.test_mmrec import make_mmrec
from tests.models.test_fusion import make_data

FAST_TUNE = dict(trials=6, seed=3, trial_epochs=6, trial_patience=3, startup_trials=2, warmup_epochs=2)


@pytest.fixture(scope="module")
def generated():
    return make_data()[0]


@pytest.fixture(scope="module")
def searched(generated):
    return tune(generated, TuneConfig(**FAST_TUNE))


def test_space_covers_the_declared_knobs_and_starts_from_the_presets() -> None:
    import optuna

    trial = optuna.trial.FixedTrial(space.params_of(space.STARTING_POINTS["graph"]))
    params = space.suggest(trial)
    assert set(params) == set(space.TUNED_FIELDS)
    assert {"use_item_id", "graph_layers", "loss", "negatives", "dim", "l2", "emb_reg", "lr", "align_weight",
            "dropout", "strategy"} <= set(params)
    start = space.STARTING_POINTS["graph"]
    assert params["graph_layers"] == start.graph_layers and params["loss"] == start.loss
    assert space.apply(FusionConfig(), params).dim == start.dim


def test_a_search_beats_its_worst_trial_and_repeats_with_its_seed(generated, searched) -> None:
    done = [h["value"] for h in searched.history if h["state"] == "complete"]
    assert len(searched.history) == FAST_TUNE["trials"] and len(done) >= 2
    assert searched.value == max(done) and searched.value > min(done)
    # the first trials are the hand-chosen starting points
    assert searched.history[0]["params"] == space.params_of(space.STARTING_POINTS["graph"])
    assert searched.config.valid_metric == "ndcg@20" and searched.config.seed == FAST_TUNE["seed"]
    again = tune(generated, TuneConfig(**FAST_TUNE))
    assert [h["params"] for h in again.history] == [h["params"] for h in searched.history]
    assert [h["value"] for h in again.history] == pytest.approx([h["value"] for h in searched.history])
    assert again.config == searched.config


def test_run_trial_reports_every_epoch_and_stops_when_told(generated) -> None:
    seen: list[tuple[int, float]] = []

    def report(epoch: int, value: float) -> bool:
        seen.append((epoch, value))
        return epoch >= 2  # pruned after the second epoch

    params = space.params_of(space.STARTING_POINTS["content"])
    best = run_trial(params, generated, report, max_epochs=10)
    assert [e for e, _ in seen] == [1, 2]
    assert best == pytest.approx(max(v for _, v in seen))


def test_tuned_config_round_trips_and_a_failed_write_keeps_the_old_one(store: Store, generated, searched) -> None:
    fingerprint = data_fingerprint(generated)
    save_tuned(store, "tiny", searched.config, searched.valid_metric(), searched.history, data_hash=fingerprint)
    tuned = load_tuned(store, "tiny", data_hash=fingerprint)
    assert tuned.config == searched.config and tuned.metric["value"] == pytest.approx(searched.value)
    assert [h["number"] for h in tuned.history] == list(range(FAST_TUNE["trials"])) and tuned.created_at > 0
    assert load_tuned(store, "tiny", data_hash="other data") is None  # tuned on other data: not used
    assert load_tuned(store, "nothing-tuned") is None
    before = tuned_path(store, "tiny").read_text()
    with pytest.raises(StoreError, match="unchanged"):
        save_tuned(store, "tiny", searched.config, {"value": object()}, [])
    assert tuned_path(store, "tiny").read_text() == before
    tuned_path(store, "broken").write_text("{not json")
    with pytest.raises(StoreError, match="delete it"):
        load_tuned(store, "broken")
    with pytest.raises(StoreError, match="cannot name"):
        save_tuned(store, "../x", searched.config, {}, [])


def test_resolve_uses_the_stored_config_else_runs_a_short_tune(store: Store, generated) -> None:
    class Named:
        name = "gen"

    stored = dataclasses.replace(space.apply(FusionConfig(), space.params_of(space.STARTING_POINTS["content"])),
                                 epochs=3)
    config, source = quick_fusion_config(store, Named(), generated)
    assert "untuned starting point" in source and not config.use_item_id
    save_tuned(store, "gen", stored, {"name": "ndcg@20", "value": 0.5, "trials": 7}, [],
               data_hash=data_fingerprint(generated))
    config, source = resolve_fusion_config(store, Named(), None, generated)
    assert config == stored and source.startswith("tuned on validation: ndcg@20 0.5000 after 7 trials")
    assert quick_fusion_config(store, Named(), generated)[0] == stored


def test_cli_tune_then_train_uses_the_tuned_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    assert main(["--data-dir", str(data_dir), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    capsys.readouterr()
    code = main(["--data-dir", str(data_dir), "tune", "--catalog", "tiny", "--trials", "3", "--seed", "1",
                 "--trial-epochs", "4"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "trial 0 " in out and "trial 2 " in out and "best: validation ndcg@20" in out
    tuned = load_tuned(Store(data_dir), "tiny")
    assert tuned is not None and len(tuned.history) == 3
    code = main(["--data-dir", str(data_dir), "train", "--catalog", "tiny", "--set", "epochs=2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "configuration: tuned on validation" in out
    record = json.loads(Store(data_dir).list_models("tiny")["config"].iloc[0])
    assert record["config_source"].startswith("tuned on validation") and record["epochs"] == 2
    assert {k: record[k] for k in space.TUNED_FIELDS} == {k: getattr(tuned.config, k) for k in space.TUNED_FIELDS}


def test_cli_tune_refuses_bad_settings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--data-dir", str(tmp_path), "tune", "--catalog", "x", "--trials", "0"]) == 2
    assert "argument --trials: takes a whole number from 1" in capsys.readouterr().err
    assert main(["--data-dir", str(tmp_path), "tune", "--catalog", "x", "--metric", "mrr"]) == 2
    assert "recall@K" in capsys.readouterr().err


def test_a_short_tune_not_to_be_stored_leaves_the_store_as_it_was(store: Store, generated) -> None:
    """Evaluate in a browser that may not change what others see (the demo) runs the short tune for this
    evaluation only: nothing stored, and the source says so and why."""
    class Named:
        name = "gen-unstored"

    config, source = resolve_fusion_config(store, Named(), None, generated, budget_minutes=0.02,
                                           persist=False, not_stored_why="the demo changes only from the CLI")
    assert load_tuned(store, "gen-unstored") is None and not tuned_path(store, "gen-unstored").exists()
    assert "a short tune chose one (not stored: the demo changes only from the CLI)" in source
    assert isinstance(config, FusionConfig)
    _, stored_source = resolve_fusion_config(store, Named(), None, generated, budget_minutes=0.02)
    assert "a short tune stored one" in stored_source and load_tuned(store, "gen-unstored") is not None


def test_the_fusion_search_extends_a_range_whose_edge_its_best_point_reaches(generated, monkeypatch) -> None:
    import math

    from core.tuning import study

    # a known answer outside the initial learning-rate range (1e-3..3e-2): validation peaks at lr 0.2
    def run_trial(params, data, report, **_):
        value = 1.0 - (math.log(params["lr"]) - math.log(0.2)) ** 2 / 50
        report(1, value)
        return value

    monkeypatch.setattr(study.objective, "run_trial", run_trial)
    result = tune(generated, TuneConfig(trials=60, seed=0, startup_trials=3))
    lr_grown = [e for e in result.extensions if e["setting"] == "lr"]
    assert lr_grown and all(e["side"] == "high" for e in lr_grown)
    assert lr_grown[0]["from"] == [1e-3, 3e-2] and lr_grown[-1]["to"][1] > 0.2
    assert result.params["lr"] > 3e-2, "the best point lies beyond the initial top"
    assert result.valid_metric()["extensions"] == result.extensions
    # emb_reg does not matter here: whatever it extended, the record says so and every range only grew
    assert all(e["to"][0] <= e["from"][0] and e["to"][1] >= e["from"][1] for e in result.extensions)


def test_no_extendable_fusion_range_has_a_fixed_top() -> None:
    from core.tuning.ranges import extend

    for name, spec in space.EXTENDABLE.items():
        assert spec.log and spec.floor is None and spec.ceiling is None, name
        assert extend(spec, spec.low, spec.high, "high")[1] > spec.high
