"""benchmarks.tune: its options, a 2-trial local run on a tiny stored catalog, and the engine × seed table."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from benchmarks import tune as bench
from benchmarks.quality import load_catalog
from core.cli.main import main as cli
from core.data.splits import build_interaction_data
from core.evaluation.suite import final_fit_value
from core.store.database import Store
from core.tuning import space
from core.tuning.store import load_tuned, tuned_path
from tests.catalog.test_mmrec import make_mmrec


def test_options_are_checked_before_any_work(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        bench.main(["--address", "auto"])  # a cluster address without the Ray engine
    assert e.value.code == 2 and "--address needs --engine ray" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        bench.main(["--engine", "spark"])
    assert e.value.code == 2 and "invalid choice: 'spark'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        bench.main(["--trials", "3", "--budget", "2"])  # one stop only
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        bench.main(["--jobs", "0"])
    assert e.value.code == 2 and "--jobs 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        bench.main(["--finalists", "0"])
    assert e.value.code == 2 and "--finalists 0: give at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        bench.main(["--finalists", "2", "--finalist-seeds", "0,x"])
    assert e.value.code == 2 and "--finalist-seeds '0,x': give whole numbers" in capsys.readouterr().err


def test_the_cpu_meter_counts_a_child_process_that_has_ended() -> None:
    with bench.CpuMeter(every=0.05) as meter:
        subprocess.run([sys.executable, "-c", "sum(i * i for i in range(6_000_000))"], check=True)
    assert meter.seconds > 0.2  # the child's CPU time, seen while it ran


def test_a_two_trial_local_run_reports_the_search_and_the_refit(tmp_path, capsys) -> None:
    store = tmp_path / "store"
    assert cli(["--data-dir", str(store), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    out = tmp_path / "tune-local-0.json"
    assert bench.main(["--catalog", "tiny", "--data-dir", str(store), "--trials", "2", "--trial-epochs", "2",
                       "--seed", "0", "--seeds", "0", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    s = report["search"]
    assert s["engine"] == "local" and s["trials"] == 2 and s["epochs"] == sum(h["epochs"] for h in report["history"])
    # two trials are the two starting points of every search, in order
    assert [h["params"] for h in report["history"]] == [space.params_of(p) for p in space.STARTING_POINTS.values()]
    assert s["best_valid"] == max(h["value"] for h in report["history"] if h["state"] == "complete")
    assert s["cpu_minutes"] > 0 and s["trial_cpu_minutes"] > 0 and len(s["load_average"]) == 2
    assert report["fits"][0]["seed"] == 0 and 0 < report["fits"][0]["valid ndcg@20"] <= 1
    assert not tuned_path(Store(store), "tiny").exists()  # nothing is stored unless --store-tuned asks
    capsys.readouterr()
    ray_copy = tmp_path / "tune-ray-0.json"  # the table's other engine: the same report relabelled
    other = json.loads(out.read_text())
    other["search"].update(engine="ray", best_valid=s["best_valid"] - 0.01)
    ray_copy.write_text(json.dumps(other))
    assert bench.main(["--summarise", str(out), str(ray_copy)]) == 0
    table = capsys.readouterr().out
    assert f"| local | 0 | 2 ({s['pruned']}) |" in table and f"{s['best_valid']:.4f}" in table
    assert f"{s['best_valid'] - 0.01:.4f}" in table and "ray: search best mean" in table


def test_reselect_chooses_among_the_stored_search_by_final_fits(tmp_path, capsys) -> None:
    store = tmp_path / "store"
    assert cli(["--data-dir", str(store), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    with pytest.raises(SystemExit, match="no stored search"):  # nothing stored yet: said, nothing written
        bench.main(["--catalog", "tiny", "--data-dir", str(store), "--reselect", "--finalists", "2", "--seeds", ""])
    assert not tuned_path(Store(store), "tiny").exists()
    with pytest.raises(SystemExit) as e:
        bench.main(["--catalog", "tiny", "--reselect", "--finalists", "1"])
    assert e.value.code == 2 and "--finalists 2 or more" in capsys.readouterr().err
    assert bench.main(["--catalog", "tiny", "--data-dir", str(store), "--trials", "2", "--trial-epochs", "2",
                       "--seeds", "", "--store-tuned"]) == 0
    searched = load_tuned(Store(store), "tiny")
    out = tmp_path / "reselect.json"
    assert bench.main(["--catalog", "tiny", "--data-dir", str(store), "--reselect", "--finalists", "2",
                       "--finalist-seeds", "0,1", "--seeds", "", "--store-tuned", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "finalists (valid ndcg@20, final model" in printed
    assert "the stored search, not run again: 2 trials" in printed
    final = json.loads(out.read_text())["finalists"]
    assert [f["trial"] for f in final["finalists"]] == [
        h["number"] for h in sorted(searched.history, key=lambda h: (-h["value"], h["number"]))]
    best = max(final["finalists"], key=lambda f: f["mean"])
    assert final["chosen_trial"] == best["trial"]
    stored = load_tuned(Store(store), "tiny")
    assert stored.history == searched.history  # the same search, another choice among its trials
    assert stored.metric["finalists"]["chosen_trial"] == best["trial"]
    assert stored.metric["value"] == best["search_value"]
    assert stored.config == space.apply(searched.config, best["params"])
    # a finalist's figure is the final model's validation figure: one of them fitted again gives it
    catalog, embeddings = load_catalog("tiny", Store(store))
    data = build_interaction_data(catalog, embeddings, split="auto", seed=0)
    again = final_fit_value(dataclasses.replace(stored.config, seed=1), data)
    assert again == pytest.approx(best["per_seed"]["1"], abs=1e-6)
