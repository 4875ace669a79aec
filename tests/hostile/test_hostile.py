"""Every hostile case: refused with a message naming the cause (the store byte for byte as it was) or
handled as intended (masked and reported, padded, repaired), and never a crash, a hang or lost data."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.cases import CASES
from tests.hostile.runner import run_case


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_hostile_case(case, tmp_path: Path) -> None:
    outcome = run_case(case, tmp_path)
    assert outcome.status == ("clear error" if case.expect == "error" else "accepted"), outcome.detail
    assert not outcome.store_changed, "a refused input changed the store"
    assert not outcome.data_lost, "the catalog stored before is gone or changed"


def test_the_suite_covers_every_target() -> None:
    targets = {c.target for c in CASES}
    assert targets == {"zip", "store", "manifest", "media", "mmrec", "interactions", "export", "cli", "options",
                       "tour"}
    assert len({c.name for c in CASES}) == len(CASES)
