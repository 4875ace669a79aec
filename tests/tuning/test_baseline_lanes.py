"""benchmarks.baselines --lanes: the searches split into lanes of about equal budget, run at once in processes of
their own, store what one lane stores."""
from __future__ import annotations

import json

import pytest

from benchmarks import baselines as bench
from core.cli.main import main as cli
from core.store.database import Store
from core.tuning.baseline_store import load_baseline
from tests.catalog.test_mmrec import make_mmrec


def test_lanes_balance_the_budgets_and_keep_the_order() -> None:
    budgets = {"ease": 20, "als": 150, "implicit-bpr": 450, "itemknn": 60, "lightgcn": 150, "bprmf": 75, "vbpr": 90}
    names = list(budgets)
    lanes = bench.plan_lanes(names, budgets, 2)
    # longest first, each to the lighter lane: 450 | 150, 150, 90, 75 | then 60 to the first, 20 to the second
    assert lanes == [["implicit-bpr", "itemknn"], ["ease", "als", "lightgcn", "bprmf", "vbpr"]]
    assert sorted(sum(lanes, [])) == sorted(names)
    assert [sum(budgets[n] for n in g) for g in lanes] == [510, 485]
    assert bench.plan_lanes(names, budgets, 1) == [names]
    assert bench.plan_lanes(["ease"], budgets, 4) == [["ease"]]  # never an empty lane
    with pytest.raises(ValueError, match="lanes=0"):
        bench.plan_lanes(names, budgets, 0)


def test_two_lanes_store_what_one_lane_stores(tmp_path, capsys) -> None:
    outcome = {}
    for lanes in (1, 2):
        store = tmp_path / f"store{lanes}"
        assert cli(["--data-dir", str(store), "import", "mmrec", str(make_mmrec(tmp_path / f"tiny{lanes}"))]) == 0
        out = tmp_path / f"lanes{lanes}.json"
        assert bench.main(["--catalog", "tiny", "--data-dir", str(store), "--models", "ease,als",
                           "--lanes", str(lanes), "--scale", "0.25", "--out", str(out)]) == 0
        report = json.loads(out.read_text())
        assert list(report["models"]) == ["ease", "als"]
        outcome[lanes] = {m: load_baseline(Store(store), "tiny", m).settings for m in ("ease", "als")}
        assert [r["value"] for r in report["models"].values()] == [
            load_baseline(Store(store), "tiny", m).record["value"] for m in ("ease", "als")]
    assert outcome[2] == outcome[1]
    assert "2 at once (als | ease)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        bench.main(["--lanes", "0"])
    assert e.value.code == 2


def test_a_failed_lane_loses_nothing_the_other_lane_found(tmp_path, monkeypatch) -> None:
    store = tmp_path / "store"
    assert cli(["--data-dir", str(store), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0

    class Pool:  # the lanes run here, in order; the ALS lane fails
        def __init__(self, *args, **kwargs) -> None:
            pass

        def __enter__(self) -> "Pool":
            return self

        def __exit__(self, *exc) -> None:
            return None

        def submit(self, fn, *args):
            from concurrent.futures import Future

            job = Future()
            if "als" in args[2]:
                job.set_exception(MemoryError("out of memory"))
            else:
                job.set_result(fn(*args))
            return job

    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", Pool)
    with pytest.raises(SystemExit, match=r"a lane of searches failed \(the other lanes' settings are stored\): "
                                         r"als: MemoryError: out of memory"):
        bench.main(["--catalog", "tiny", "--data-dir", str(store), "--models", "ease,als", "--lanes", "2",
                    "--scale", "0.25", "--out", str(tmp_path / "out.json")])
    assert load_baseline(Store(store), "tiny", "ease") is not None
    assert load_baseline(Store(store), "tiny", "als") is None
