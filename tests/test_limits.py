"""Declared bounds of every value set in the browser or on the command line (core.limits): each refused
before any work, with a message naming the option and its range; the store unchanged."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.cli.main import main
from core.limits import (OPTION_BOUNDS, SETTING_BOUNDS, Bound, OptionError, check_bounded, check_option,
                         parse_number_list)
from core.models.settings import load_config_file, parse_set
from core.store.database import Store


@pytest.mark.parametrize("value, bound, expected", [
    ("10", Bound(1, 500), 10), (7, Bound(1, 500), 7), ("1e3", Bound(1, 5000), 1000), (0.5, Bound(0, 1, False), 0.5),
    ("1_000", Bound(1, 5000), 1000), (1.0, Bound(0, 1, False), 1.0),
])
def test_values_inside_the_range_come_back_typed(value, bound, expected) -> None:
    got = check_bounded(value, bound, "--x")
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value, bound", [
    ("501", Bound(1, 500)), ("0", Bound(1, 500)), ("-5", Bound(0, 10)), ("1.5", Bound(1, 500)), ("ten", Bound(1, 5)),
    (True, Bound(0, 5)), (None, Bound(0, 5)), (float("nan"), Bound(0, 5, False)), ("inf", Bound(0, 5, False)),
    (0.0, Bound(0, 5, False, low_open=True)), ("1e400", Bound(0, 5)), ([1], Bound(0, 5)),
])
def test_values_outside_the_range_are_refused_by_name(value, bound) -> None:
    with pytest.raises(OptionError) as e:
        check_bounded(value, bound, "--x")
    assert str(e.value).startswith("--x takes ") and repr(value) in str(e.value)
    assert isinstance(e.value, ValueError)  # the callers that refuse bad settings catch it


def test_the_upper_end_says_what_it_protects() -> None:
    with pytest.raises(OptionError, match=r"K takes a whole number from 1 to 500, not 1000000 \(every K keeps"):
        check_option("k", 1_000_000, "K")


def test_number_lists_are_bounded_in_count_and_value() -> None:
    assert parse_number_list(" 20, 5,10,10 ", "k", "K values", "ks_count") == (5, 10, 20)
    assert parse_number_list("2,0,1", "seed", "--seeds", "model_seeds", distinct=False) == (2, 0, 1)
    with pytest.raises(OptionError, match="at most 20 allowed"):
        parse_number_list(",".join(str(i) for i in range(1, 30)), "k", "K values", "ks_count")
    with pytest.raises(OptionError, match="is empty"):
        parse_number_list(" , ", "k", "K values", "ks_count")
    with pytest.raises(OptionError, match="repeats a value"):
        parse_number_list("1,1", "seed", "--seeds", "model_seeds", distinct=False)


def test_every_bound_is_a_sane_interval() -> None:
    for bound in [*OPTION_BOUNDS.values(), *SETTING_BOUNDS.values()]:
        assert bound.low <= bound.high and bound.holds(bound.high)


@pytest.mark.parametrize("pair, message", [
    ("use_item_id=maybe", "use_item_id takes true or false"),
    ("dim=1000000", "dim takes a whole number from 1 to 4,096"),
    ("epochs=0", "epochs takes a whole number from 1"),
    ("lr=nan", "lr takes a number above 0"),
    ("dropout=1.5", "dropout takes a number from 0 to 0.99"),
    ("als.factors=1e9", "factors takes a whole number from 1 to 4,096"),
])
def test_set_refuses_out_of_range_settings(pair: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_set([pair])


def test_set_reads_booleans_both_ways() -> None:
    assert parse_set(["use_item_id=no", "item_bias=ON"]) == {"fusion": {"use_item_id": False, "item_bias": True}}


def test_fusion_config_refuses_an_unbounded_dim_in_core() -> None:
    from core.models.fusion.config import FusionConfig

    with pytest.raises(OptionError, match="FusionConfig.dim"):
        FusionConfig(dim=1_000_000)


def test_config_file_is_bounded_in_kind_size_and_depth(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    three = tmp_path / "three.json"
    three.write_text(json.dumps({"als": {"factors": {"x": 1}}}))
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"dim": 64, "pad": "x" * (2 << 20)}))
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"dim": 32, "als": {"factors": 16}}))
    cases = {tmp_path: "is a folder", Path("/dev/zero"): "not a regular file", deep: "nested too deeply",
             three: "nested 3 levels deep", big: "over 1,024 KB"}
    for path, message in cases.items():
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match=message):
            load_config_file(path)
        assert time.perf_counter() - t0 < 5  # refused at once, never read without limit
    assert load_config_file(good) == {"fusion": {"dim": 32}, "als": {"factors": 16}}


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    store = Store(tmp_path / "store")
    return store.root


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("argv, message", [
    (("evaluate", "--bootstrap", "-5"), "argument --bootstrap: takes a whole number from 0 to 100,000, not '-5'"),
    (("evaluate", "--bootstrap", "1e8"), "argument --bootstrap: takes a whole number from 0 to 100,000"),
    (("evaluate", "--ks", "100000000"), "--ks takes a whole number from 1 to 500"),
    (("evaluate", "--ks", "0"), "--ks takes a whole number from 1 to 500"),
    (("evaluate", "--models", ""), "--models '' names no model"),
    (("evaluate", "--models", " , "), "names no model"),
    (("evaluate", "--split", "evil"), "argument --split: invalid choice: 'evil'"),
    (("evaluate", "--seed", "-1"), "argument --seed: takes a whole number from 0"),
    (("evaluate", "--set", "use_item_id=maybe"), "use_item_id takes true or false"),
    (("evaluate", "--config", "/dev/zero"), "not a regular file"),
    (("evaluate", "--config", "."), "is a folder"),
    (("train", "--split", "evil"), "argument --split: invalid choice: 'evil'"),
    (("train", "--set", "dim=1000000"), "dim takes a whole number from 1 to 4,096"),
    (("tune", "--jobs", "0"), "argument --jobs: takes a whole number from 1 to 256, not '0'"),
    (("tune", "--trial-epochs", "0"), "argument --trial-epochs: takes a whole number from 1"),
    (("tune", "--trials", "-3"), "argument --trials: takes a whole number from 1"),
    (("tune", "--split", "evil"), "invalid choice: 'evil'"),
    (("report", "--catalog", "x", "--explain", "-3", "--out", "r.html"),
     "argument --explain: takes a whole number from 0 to 50"),
    (("report", "--catalog", "x", "--k", "0", "--query", "piano", "--out", "r.html"),
     "argument --k: takes a whole number from 1 to 1,000, not '0'"),
    (("runs", "compare", "a", "b", "--bootstrap", "100000000"), "argument --bootstrap: takes a whole number"),
    (("demo", "--tracks", "100000000"), "argument --tracks: takes a whole number from 2 to 200,000"),
    (("encode", "--catalog", "x", "--batch-size", "0"),
     "argument --batch-size: takes a whole number from 1 to 4,096"),
    (("explain-check", "--k", "100000000"), "argument --k: takes a whole number from 1 to 1,000"),
])
def test_cli_refuses_out_of_range_values_before_work(capsys, data_dir: Path, argv: tuple[str, ...],
                                                     message: str) -> None:
    before = _files(data_dir)
    t0 = time.perf_counter()
    code = main(["--data-dir", str(data_dir), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert "Traceback" not in err
    assert time.perf_counter() - t0 < 10  # before any catalog is built, encoded or trained
    assert _files(data_dir) == before


def test_tune_config_refuses_out_of_range_values_in_core() -> None:
    from core.tuning.study import TuneConfig

    assert TuneConfig(trials=5, n_jobs=2, trial_epochs=3).n_jobs == 2
    for kwargs, message in (({"n_jobs": 100_000}, "jobs takes a whole number from 1 to 256"),
                            ({"trials": 10 ** 9}, "trials takes a whole number from 1 to 10,000"),
                            ({"trials": None, "budget_minutes": 1e9}, "budget_minutes takes a number above 0"),
                            ({"trial_epochs": 10 ** 7}, "trial_epochs takes a whole number")):
        with pytest.raises(ValueError, match=message):
            TuneConfig(**kwargs)


@pytest.mark.parametrize("argv, message", [
    (["--prior-weight", "nan"], "--prior-weight"),
    (["--prior-weight", "1e308"], "--prior-weight"),
    (["--k", "0"], "--k"),
    (["--max-listeners", "-1"], "--max-listeners"),
])
def test_explain_check_refuses_out_of_range_values_before_work(capsys, argv: list[str], message: str) -> None:
    from core.cli.explain import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "takes" in err


def test_nesting_depth_counts_levels_without_recursion() -> None:
    from core.limits import nesting_depth

    assert nesting_depth(7) == 0 and nesting_depth({}) == 1 and nesting_depth([1, 2]) == 1
    assert nesting_depth({"als": {"factors": 128}}) == 2
    assert nesting_depth([{"a": [1]}, 3]) == 3  # the deepest branch counts
    deep: list = []
    node = deep
    for _ in range(50_000):  # far past Python's recursion limit
        node.append([])
        node = node[0]
    assert nesting_depth(deep) == 50_001
