"""`python -m core tune --trial-workers N`: refused without the Ray engine and out of range before any work, and
passed to the Ray search when given (no Ray started here: the search is replaced by the local one)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import core.scale.tune_ray
from core.cli.main import main
from core.store.database import Store
from core.tuning.store import load_tuned


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to start or join Ray fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(core.scale.tune_ray, "connect", refuse)


def test_trial_workers_without_the_ray_engine_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                          no_ray: None) -> None:
    code = main(["--data-dir", str(tmp_path / "store"), "tune", "--trials", "2", "--trial-workers", "2"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "--trial-workers" in err and "needs --engine ray" in err
    assert Store(tmp_path / "store").list_catalogs().empty  # refused before the demo catalog was built


@pytest.mark.parametrize("value", ["0", "257", "two"])
def test_trial_worker_count_is_checked_while_parsing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     no_ray: None, value: str) -> None:
    code = main(["--data-dir", str(tmp_path / "store"), "tune", "--engine", "ray", "--trial-workers", value])
    _, err = capsys.readouterr()
    assert code == 2
    assert f"argument --trial-workers: takes a whole number from 1 to 256, not '{value}'" in err


def test_help_says_what_trial_workers_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--trial-workers N" in text and "train each trial on Ray Train with N workers" in text


def test_trial_workers_reach_the_ray_search(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, no_ray: None) -> None:
    from core.tuning.study import tune
    from tests.catalog.test_mmrec import make_mmrec

    asked: dict = {}

    def local_search(data, config, **options):  # the Ray search's signature, answered by the local search
        asked.update(options)
        return tune(data, replace(config, trials=1, trial_epochs=1, starting_points=False))

    monkeypatch.setattr(core.scale.tune_ray, "tune_study_on_ray", local_search)
    data_dir = tmp_path / "store"
    assert main(["--data-dir", str(data_dir), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    capsys.readouterr()
    code = main(["--data-dir", str(data_dir), "tune", "--catalog", "tiny", "--engine", "ray", "--trials", "2",
                 "--trial-workers", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert asked["trial_workers"] == 3 and asked["address"] is None
    assert "each trial trains on Ray Train: 3 worker(s)" in out
    assert load_tuned(Store(data_dir), "tiny") is not None
