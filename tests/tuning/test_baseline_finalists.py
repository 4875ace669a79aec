"""The final choice among a baseline search's best trials (core.tuning.baselines.refit_finalists,
`benchmarks.baselines --finalists`): the care the fusion model's search gets, given to every baseline."""
from __future__ import annotations

import json

import pytest

from benchmarks import baselines as bench
from core.cli.main import main as cli
from core.store.database import Store
from core.tuning import baselines as tb
from core.tuning.baseline_store import load_baseline
from tests.catalog.test_mmrec import make_mmrec


def _trial(number: int, value: float | None, state: str = "complete", **params) -> dict:
    return {"number": number, "value": value, "state": state, "params": {"factors": 32, **params}}


def test_models_whose_trials_are_their_final_fits_are_not_fitted_again() -> None:
    # EASE and ItemKNN have no seed and their trials fit them as the final model: the search's figure is final
    assert tb.fitted_as_in_trials("ease") and tb.fitted_as_in_trials("itemknn")
    # a seed (ALS), an epoch cap in trials (LightGCN, BPR-MF, VBPR) or one thread in trials (implicit BPR)
    assert not any(tb.fitted_as_in_trials(m) for m in ("als", "implicit-bpr", "lightgcn", "bprmf", "vbpr"))


def test_the_highest_final_mean_is_chosen_and_the_result_says_so(monkeypatch) -> None:
    # a known answer: the search's second trial (regularization 30) is the better final model over seeds 0, 1
    final = {(1.0, 0): 0.40, (1.0, 1): 0.38, (30.0, 0): 0.41, (30.0, 1): 0.40, (0.1, 0): 0.30, (0.1, 1): 0.31}
    calls = []

    def fake_final_fit(name, data, fixed=None, build=None):
        def value(params, seed):
            calls.append((name, params["regularization"], seed))
            return final[(params["regularization"], seed)]
        return value

    monkeypatch.setattr(tb, "final_fit", fake_final_fit)
    history = [_trial(0, 0.395, regularization=1.0), _trial(1, 0.392, regularization=30.0),
               _trial(2, 0.50, state="pruned", regularization=5.0), _trial(3, 0.31, regularization=0.1)]
    result = tb.SearchResult(params={"factors": 32, "regularization": 1.0}, value=0.395, metric=tb.METRIC,
                             ranges={"factors": [16, 512], "regularization": [1e-3, 1e3]}, extensions=[],
                             at_edge=[], history=history, seconds=1.0)
    data = type("Data", (), {"n_items": 100})()
    lines: list[str] = []
    chosen = tb.refit_finalists("als", data, result, k=3, seeds=(0, 1), log=lines.append)
    assert calls == [("als", r, s) for r in (1.0, 30.0, 0.1) for s in (0, 1)]
    assert chosen.params == {"factors": 32, "regularization": 30.0}
    assert chosen.value == 0.392  # the chosen trial's search figure
    record = chosen.record()
    assert record["chosen"] == chosen.params and record["value"] == 0.392
    assert record["finalists"]["chosen_trial"] == 1 and record["finalists"]["chosen_mean"] == pytest.approx(0.405)
    assert [f["trial"] for f in record["finalists"]["finalists"]] == [0, 1, 3]
    assert record["finalists"]["metric"] == "valid recall@20, final model, mean over seeds"
    assert lines[-1].startswith("als: chosen: trial 1") and "the search's best was trial 0" in lines[-1]
    assert result.params == {"factors": 32, "regularization": 1.0} and "finalists" not in result.record()
    # the edges are those of the chosen point: regularization 1e3 at the top of [1e-3, 1e3] is named
    final[(1000.0, 0)] = final[(1000.0, 1)] = 0.9
    history.append(_trial(4, 0.39, regularization=1000.0))
    assert tb.refit_finalists("als", data, result, k=4, seeds=(0, 1)).at_edge == ["regularization"]


def test_a_model_without_a_seed_keeps_the_search_best(monkeypatch) -> None:
    monkeypatch.setattr(tb, "final_fit", lambda *a, **k: pytest.fail("EASE was fitted again"))
    result = tb.SearchResult(params={"reg": 250.0}, value=0.3, metric=tb.METRIC, ranges={"reg": [1.0, 1e5]},
                             extensions=[], at_edge=[], history=[_trial(0, 0.3, reg=250.0)])
    assert tb.refit_finalists("ease", None, result, k=3, seeds=(0, 1, 2)) is result


def test_the_benchmark_stores_the_final_choice(tmp_path, capsys) -> None:
    store = tmp_path / "store"
    assert cli(["--data-dir", str(store), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    out = tmp_path / "report.json"
    assert bench.main(["--catalog", "tiny", "--data-dir", str(store), "--models", "ease,bprmf", "--scale", "0.1",
                       "--finalists", "2", "--finalist-seeds", "0,1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["finalists"] == 2 and report["finalist_seeds"] == [0, 1]
    assert "finalists" not in report["models"]["ease"]
    final = report["models"]["bprmf"]["finalists"]
    assert len(final["finalists"]) == 2 and final["seeds"] == [0, 1]
    best = max(final["finalists"], key=lambda f: f["mean"])
    assert final["chosen_trial"] == best["trial"]
    for f in final["finalists"]:
        assert f["mean"] == pytest.approx(sum(f["per_seed"].values()) / 2, abs=1e-6)
    stored = load_baseline(Store(store), "tiny", "bprmf")
    assert stored.settings == best["params"] == report["models"]["bprmf"]["chosen"]
    assert stored.record["finalists"]["chosen_trial"] == best["trial"]
    printed = capsys.readouterr().out
    assert "bprmf: trial" in printed and "(chosen)" in printed and "final fits:" in printed
    # what evaluate, benchmarks.quality and the Evaluate page say about the stored settings names the choice
    from core.data.splits import build_interaction_data
    from benchmarks.quality import load_catalog
    from core.tuning.baseline_store import resolve_baseline

    catalog, embeddings = load_catalog("tiny", Store(store))
    data = build_interaction_data(catalog, embeddings, split="auto", seed=0)
    settings, record, note = resolve_baseline(Store(store), "tiny", "bprmf", data)
    assert settings == best["params"] and record["source"] == "stored"
    assert note.endswith(f"chosen among its 2 best by the final model's mean over seeds [0, 1] ({best['mean']:.4f})")
    # and benchmarks.quality's protocol card says how its settings were chosen
    from benchmarks import quality

    q = tmp_path / "quality.json"
    capsys.readouterr()
    assert quality.main(["--catalog", "tiny", "--data-dir", str(store), "--models", "bprmf,ease", "--seeds", "0",
                         "--bootstrap", "20", "--out", str(q), "--no-store"]) == 0
    protocol = json.loads(q.read_text())["protocol"]["selection"]
    assert ("kept for the other seeds; bprmf: chosen among the search's 2 best trials by the final model's mean "
            "valid recall@20 over seeds [0, 1];") in protocol and "ease" not in protocol.split("other seeds")[1]
    assert f"selection: {protocol}" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--finalists", "0"], ["--finalists", "2", "--finalist-seeds", ""],
                                  ["--finalist-seeds", "a,b"]])
def test_bad_finalist_options_are_refused_before_any_search(argv) -> None:
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2


def test_when_no_finalist_can_be_fitted_the_search_best_stands(monkeypatch) -> None:
    def diverging(name, data, fixed=None, build=None):
        def value(params, seed):
            raise ValueError("the fit diverged")
        return value

    monkeypatch.setattr(tb, "final_fit", diverging)
    result = tb.SearchResult(params={"factors": 32, "regularization": 1.0}, value=0.395, metric=tb.METRIC,
                             ranges={"factors": [16, 512], "regularization": [1e-3, 1e3]}, extensions=[],
                             at_edge=[], history=[_trial(0, 0.395, regularization=1.0)])
    lines: list[str] = []
    assert tb.refit_finalists("als", None, result, k=3, seeds=(0, 1), log=lines.append) is result
    assert lines[-1].startswith("als: every finalist's final fit failed") and "search's best is kept" in lines[-1]


def test_the_table_names_a_finalist_whose_fit_failed() -> None:
    final = {"metric": "m", "seeds": [0], "chosen_trial": 2, "chosen_mean": 0.41, "chosen_search_value": 0.40,
             "seconds": 3.0, "finalists": [
                 {"trial": 1, "params": {}, "search_value": 0.42, "per_seed": {}, "error": "seed 0: diverged",
                  "mean": None},
                 {"trial": 2, "params": {}, "search_value": 0.40, "per_seed": {"0": 0.41}, "mean": 0.41}]}
    row = {"trials": 5, "pruned": 0, "extensions": [], "seconds": 1.0, "value": 0.40, "chosen": {"k": 1},
           "at_edge": [], "finalists": final}
    table = bench.format_table({"models": {"als": row}, "total_seconds": 4.0, "catalog": "tiny", "split": "s",
                                "lanes": [["als"]], "stored": False, "finalists": 2, "finalist_seeds": [0]})
    assert "trial 1 search 0.4200 final failed (seed 0: diverged); trial 2 search 0.4000 final 0.4100 (chosen)" \
        in table
