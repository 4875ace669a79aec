"""`python -m core train --engine`: the Ray options are refused without the Ray engine, before any work."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.cli.main import main
from core.store.database import Store


@pytest.mark.parametrize("argv", [("--workers", "2"), ("--address", "auto")])
def test_ray_options_without_the_ray_engine_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       argv: tuple[str, ...]) -> None:
    code = main(["--data-dir", str(tmp_path / "store"), "train", "--catalog", "tiny", *argv])
    _, err = capsys.readouterr()
    assert code == 2 and "--engine ray" in err
    assert Store(tmp_path / "store").list_models().empty


def test_worker_count_is_checked_while_parsing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["--data-dir", str(tmp_path / "store"), "train", "--engine", "ray", "--workers", "0"])
    _, err = capsys.readouterr()
    assert code == 2 and "--workers" in err
