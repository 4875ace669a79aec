"""`python -m core tune --finalists K`: the search's K best trials fitted as final models with several seeds, the
best mean stored with the record of the choice; bad values refused before any work."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.cli.main import main
from core.store.database import Store
from core.tuning import space
from core.tuning.store import load_tuned
from tests.catalog.test_mmrec import make_mmrec


def _tune_tiny(tmp_path: Path, seeds: str) -> Path:
    """A tiny imported catalog tuned with two 2-epoch trials and --finalists 2 over `seeds`: the store."""
    store = tmp_path / "store"
    assert main(["--data-dir", str(store), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    assert main(["--data-dir", str(store), "tune", "--catalog", "tiny", "--trials", "2", "--trial-epochs", "2",
                 "--finalists", "2", "--finalist-seeds", seeds]) == 0
    return store


def test_bad_finalist_options_are_refused_before_any_work(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert main(["--data-dir", str(store), "tune", "--trials", "2", "--finalists", "0"]) == 2
    assert "--finalists 0: give at least 1; nothing was searched or stored" in capsys.readouterr().err
    assert main(["--data-dir", str(store), "tune", "--trials", "2", "--finalists", "2", "--finalist-seeds", ""]) == 2
    assert "--finalist-seeds: give at least one seed" in capsys.readouterr().err
    assert main(["--data-dir", str(store), "tune", "--trials", "2", "--finalists", "2", "--finalist-seeds", "0,x"]) == 2
    assert "--finalist-seeds '0,x': give whole numbers separated by commas" in capsys.readouterr().err
    assert Store(store).list_catalogs().empty  # refused before the demo catalog was built


def test_the_best_final_model_of_the_finalists_is_stored(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    store = _tune_tiny(tmp_path, "0,1")
    out = capsys.readouterr().out
    assert "choosing among the 2 best trials: each fitted as the final model with seeds [0, 1]" in out
    tuned = load_tuned(Store(store), "tiny")
    final = tuned.metric["finalists"]
    assert len(final["finalists"]) == 2 and final["seeds"] == [0, 1]
    best = max(final["finalists"], key=lambda f: f["mean"])
    assert final["chosen_trial"] == best["trial"] and tuned.metric["value"] == best["search_value"]
    trial = next(h for h in tuned.history if h["number"] == best["trial"])
    assert space.params_of(tuned.config) == trial["params"]
    assert f"{final['chosen_mean']:.4f} as the final model (mean over seeds)" in out


def test_a_search_whose_finalists_all_fail_is_still_stored(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from core.evaluation import suite

    def diverged(config, data) -> float:
        raise ArithmeticError("the loss diverged")

    monkeypatch.setattr(suite, "final_fit_value", diverged)
    store = _tune_tiny(tmp_path, "0")
    out = capsys.readouterr().out
    assert "the final fit failed (seed 0: the loss diverged)" in out
    assert "every finalist's final fit failed" in out and "the search's best is stored, as without --finalists" in out
    tuned = load_tuned(Store(store), "tiny")
    assert "finalists" not in tuned.metric and len(tuned.history) == 2
