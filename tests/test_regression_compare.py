"""benchmarks.regression's comparison: machine time is ignored, any other changed digit is reported."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.regression import COMMANDS, compare

TABLE = """model     kind     recall@20   ndcg@20   fit s  chosen on validation
fusion *  fusion      0.4515    0.3178   {fit}  —

done in {minutes} min; model demo-fusion-gated-{stamp}: best epoch {epoch}
"""


def write_record(folder: Path, fit: str = "333.8", minutes: str = "2.4", stamp: str = "20261207-051153-56ce",
                 epoch: int = 42, recall: float = 0.4515) -> Path:
    folder.mkdir()
    for name in COMMANDS:
        (folder / f"{name}.txt").write_text(TABLE.format(fit=fit, minutes=minutes, stamp=stamp, epoch=epoch))
    for name in ("retrieval", "quality"):
        record = {"models": {"fusion": {"recall@20": recall, "fit_seconds": float(fit),
                                        "note": f"1 trials in {minutes} min"}}}
        (folder / f"{name}.json").write_text(json.dumps(record))
    return folder


def test_machine_time_is_not_a_difference(tmp_path, capsys):
    before = write_record(tmp_path / "a")
    after = write_record(tmp_path / "b", fit="152.4", minutes="0.7", stamp="20261208-101010-9f3a")
    assert compare(before, after) == 0
    assert "0 differ" in capsys.readouterr().out


def test_a_changed_digit_is_reported(tmp_path, capsys):
    before = write_record(tmp_path / "a")
    after = write_record(tmp_path / "b", epoch=43, recall=0.4516)
    assert compare(before, after) == 1
    out = capsys.readouterr().out
    assert "best epoch 42" in out and "best epoch 43" in out
    assert "models.fusion.recall@20: 0.4515 -> 0.4516" in out
