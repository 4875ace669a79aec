"""`python -m core evaluate` and `python -m benchmarks.quality` end to end on a tiny MMRec catalog: the
masking rule, model seeds, --set / --config, evaluating a saved model by id, progress in logs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli.main import main
from core.cli.progress import TqdmProgress
from core.store.database import Store
from tests.catalog.test_mmrec import make_mmrec

ROWS = [(u, i, x) for u in range(6)
        for i, x in ((u % 5, 0), ((u + 1) % 5, 0), ((u + 2) % 5, 0), ((u + 3) % 5, 1), ((u + 4) % 5, 2))]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A store holding catalog 'tiny': 6 users × 5 items, each user 3 train, 1 valid, 1 test items."""
    data_dir = tmp_path / "store"
    folder = make_mmrec(tmp_path / "tiny", ROWS, extras=False)
    assert main(["--data-dir", str(data_dir), "import", "mmrec", str(folder)]) == 0
    return data_dir


def _runs(data_dir: Path) -> list[dict]:
    store = Store(data_dir)
    return [store.load_run(i) for i in store.list_runs("tiny")["id"]]


def test_evaluate_with_mask_seeds_set_and_config(tiny: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"epochs": 2, "als": {"factors": 4, "iterations": 2}}))
    code = main(["--data-dir", str(tiny), "evaluate", "--catalog", "tiny",
                 "--models", "popularity,als,fusion-gated", "--mask", "train+valid", "--seeds", "0,1",
                 "--config", str(config), "--set", "dim=8", "--set", "als.threads=1", "--bootstrap", "50"])
    out, err = capsys.readouterr()
    assert code == 0, err
    runs = _runs(tiny)
    by_name: dict[str, list[dict]] = {}
    for r in runs:
        by_name.setdefault(r["name"], []).append(r)
    # popularity has no seed: one run; the seeded models one run per seed
    assert len(by_name["popularity"]) == 1 and by_name["popularity"][0]["protocol"]["model_seed"] is None
    assert sorted(r["protocol"]["model_seed"] for r in by_name["als"]) == [0, 1]
    assert sorted(r["protocol"]["model_seed"] for r in by_name["fusion-gated"]) == [0, 1]
    assert all(r["protocol"]["mask"] == "train+valid" and r["protocol"]["masked"] == ["train", "valid"]
               for r in runs)
    als = by_name["als"][0]["model"]["config"]
    assert als["factors"] == 4 and als["iterations"] == 2 and als["threads"] == 1  # --config, then --set
    fusion = by_name["fusion-gated"][0]
    assert fusion["model"]["config"]["dim"] == 8 and fusion["model"]["config"]["epochs"] == 2
    assert "tune" in fusion["model"]["base_config"]  # no tuned configuration stored: a short tune, said so
    als_selection = by_name["als"][0]["selection"]
    assert als_selection["trials"] >= 1 and als_selection["overrides"]["factors"] == 4
    assert "factors" not in als_selection["chosen"]  # a fixed setting is not searched
    assert "not stored" in als_selection["note"]  # and a search under a fixed setting is not stored as the tuned one
    assert all("recall@20" in r["valid"] for r in runs)
    # the validation figure is printed beside the test figures, with the spread over seeds
    assert "valid recall@20" in out and "±" in out and "paired bootstrap 95% CI" in out
    # the verdict: fusion-gated against the strongest of the two baselines on validation, Holm-corrected
    strongest = max(("popularity", "als"), key=lambda n: sum(r["valid"]["recall@20"] for r in by_name[n])
                    / len(by_name[n]))
    assert f"the strongest baseline, {strongest} (chosen on valid recall@20)" in out
    assert "Holm-corrected over 2 baseline(s)" in out


def test_evaluate_a_saved_model_by_id(tiny: Path, capsys) -> None:
    assert main(["--data-dir", str(tiny), "train", "--catalog", "tiny", "--set", "epochs=2", "--set", "dim=8"]) == 0
    model_id = Store(tiny).list_models("tiny")["id"].iloc[0]
    capsys.readouterr()
    code = main(["--data-dir", str(tiny), "evaluate", "--model-id", model_id, "--bootstrap", "20"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (run,) = _runs(tiny)
    assert run["name"] == f"fusion-gated [{model_id}]" and run["protocol"]["mask"] == "train"
    assert run["fit_time_s"] is None and "saved model" in out
    code = main(["--data-dir", str(tiny), "evaluate", "--model-id", "nope"])
    assert code == 2 and "no saved model 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (("--mask", "valid"), "invalid choice"),
    (("--seeds", "0,x"), "--seeds takes a whole number from 0 to"),
    (("--seeds", "1,1"), "--seeds '1,1' repeats a value"),
    (("--set", "colour=red"), "fusion has no setting 'colour'"),
    (("--set", "als.factors=many"), "factors takes a whole number"),
    (("--set", "nomodel.k=3"), "unknown model 'nomodel'"),
    (("--config", "missing.json"), "no such file"),
])
def test_evaluate_refuses_bad_flags(tiny: Path, capsys, argv: tuple[str, ...], message: str) -> None:
    capsys.readouterr()
    code = main(["--data-dir", str(tiny), "evaluate", "--catalog", "tiny", "--models", "popularity", *argv])
    assert code == 2 and message in capsys.readouterr().err
    assert _runs(tiny) == []


def test_benchmark_reports_seeds_spread_and_paired_cis(tiny: Path, tmp_path: Path, capsys) -> None:
    from benchmarks import quality

    out = tmp_path / "q.json"
    assert quality.main(["--catalog", "tiny", "--data-dir", str(tiny), "--models", "fusion-gated,popularity,ease",
                         "--seeds", "0,1", "--epochs", "2", "--set", "dim=8", "--bootstrap", "50",
                         "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["protocol"]["mask"] == "train" and report["protocol"]["model_seeds"] == [0, 1]
    gated = report["models"]["fusion-gated"]
    assert [p["seed"] for p in gated["per_seed"]] == [0, 1] and len(gated["run_ids"]) == 2
    spread = gated["spread"]["ndcg@20"]
    assert spread["min"] <= spread["mean"] <= spread["max"] and spread["n"] == 2
    assert gated["ndcg@20"] == pytest.approx(sum(p["ndcg@20"] for p in gated["per_seed"]) / 2)
    ease = report["models"]["ease"]["selection"]
    assert ease["source"] == "searched and stored" and ease["chosen"]["reg"] > 0 and ease["trials"] >= 1
    assert report["selected_fusion"] == "fusion-gated"
    assert set(report["comparisons"]["vs"]) == {"popularity", "ease"}
    assert "ci" in report["comparisons"]["vs"]["ease"]["ndcg@20"]
    # the verdict: the fusion model against the baseline with the best validation figure, valid and test
    verdict = report["verdict"]
    best = max(("popularity", "ease"), key=lambda n: report["models"][n]["valid_recall@20"])
    assert verdict["best_baseline"] == best
    test = verdict["by_metric"]["ndcg@20"]
    assert test["strongest"] == best and test["family"] == 2 and test["outcome"] in ("leads", "ties", "trails")
    assert test["difference"] == pytest.approx(report["comparisons"]["vs"][best]["ndcg@20"]["difference"])
    assert test["ci"][0] <= test["difference"] <= test["ci"][1]
    printed = capsys.readouterr()
    assert "mask train" in printed.out and "model 1/3: fusion-gated" in printed.err
    assert f"{test['outcome']} the strongest baseline, {best} (chosen on valid recall@20)" in printed.out
    assert "Holm-corrected" in printed.out
    # a second run reuses the tuned settings the first stored
    assert quality.main(["--catalog", "tiny", "--data-dir", str(tiny), "--models", "ease", "--bootstrap", "20",
                         "--out", str(out), "--no-store"]) == 0
    again = json.loads(out.read_text())["models"]["ease"]["selection"]
    assert again["source"] == "stored" and again["chosen"] == ease["chosen"]


def test_evaluate_reuses_the_stored_baseline_settings(tiny: Path, capsys) -> None:
    from core.data.splits import build_interaction_data
    from core.tuning.baseline_store import load_baseline, save_baseline
    from core.tuning.store import data_fingerprint
    from core.workspace.prepare import prepare_embeddings

    store = Store(tiny)
    catalog = store.load_catalog("tiny")
    data = build_interaction_data(catalog, prepare_embeddings(store, catalog), split="auto", seed=0)
    save_baseline(store, "tiny", "ease", {"reg": 123.0}, {"metric": "valid recall@20", "value": 0.5, "trials": 7},
                  data_hash=data_fingerprint(data))
    capsys.readouterr()
    assert main(["--data-dir", str(tiny), "evaluate", "--catalog", "tiny", "--models", "ease",
                 "--bootstrap", "20"]) == 0
    (run,) = _runs(tiny)
    assert run["model"]["config"]["reg"] == 123.0  # fitted at the stored setting, no search
    assert run["selection"]["source"] == "stored" and run["selection"]["chosen"] == {"reg": 123.0}
    assert "tuned settings stored" in capsys.readouterr().out
    # settings tuned on other data are not reused: a search runs and stores its own
    save_baseline(store, "tiny", "ease", {"reg": 123.0}, {"trials": 7}, data_hash="other data")
    assert main(["--data-dir", str(tiny), "evaluate", "--catalog", "tiny", "--models", "ease",
                 "--bootstrap", "20"]) == 0
    assert load_baseline(store, "tiny", "ease").data_hash == data_fingerprint(data)


def test_progress_writes_plain_lines_when_not_a_terminal(capsys) -> None:
    bar = TqdmProgress("ranking")  # pytest's captured stderr is not a terminal
    for done in range(1, 4):
        bar(done, 3, "users")
    err = capsys.readouterr().err
    assert "ranking: 1/3 · users" in err and "ranking: 3/3 · users" in err and "\r" not in err
