"""The one reader and writer both tuned-settings stores use: round trip, other data, damaged files, failed writes."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from core.errors import StoreError
from core.tuning.files import read_versioned, write_versioned


@dataclass
class Saved:
    value: float
    data_hash: str


def parse(payload: dict) -> Saved:
    return Saved(float(payload["value"]), str(payload.get("data_hash", "")))


def damaged(e: Exception) -> str:
    return f"damaged ({e}); delete it"


def test_round_trip_with_numpy_scalars_and_the_data_it_was_chosen_on(tmp_path):
    path = tmp_path / "tuned" / "x.json"
    assert read_versioned(path, 1, parse, damaged) is None  # nothing stored yet
    write_versioned(path, {"format": 1, "value": np.float32(0.25), "data_hash": "abc"}, "x", failure=str)
    assert read_versioned(path, 1, parse, damaged) == Saved(0.25, "abc")
    assert read_versioned(path, 1, parse, damaged, data_hash="abc") == Saved(0.25, "abc")
    assert read_versioned(path, 1, parse, damaged, data_hash="other") is None  # tuned on other data


@pytest.mark.parametrize("text, problem", [("{not json", "Expecting property name"),
                                           ('{"format": 2, "value": 1}', "format 2, expected 1"),
                                           ('{"format": 1}', "'value'"),
                                           ('{"format": 1, "value": "high"}', "could not convert")])
def test_a_damaged_file_raises_a_store_error_that_names_the_fix(tmp_path, text, problem):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(StoreError, match="delete it") as info:
        read_versioned(path, 1, parse, damaged)
    assert problem in str(info.value)


def test_a_failed_write_keeps_the_previous_file_and_says_so(tmp_path):
    path = tmp_path / "x.json"
    write_versioned(path, {"format": 1, "value": 1.0}, "x", failure=str)
    archived = []
    with pytest.raises(StoreError, match="previous one is unchanged"):
        write_versioned(path, {"format": 1, "value": object()}, "x", before_write=archived.append,
                        failure=lambda e: f"could not write: {e}; the previous one is unchanged")
    assert archived == []  # the text failed before anything was archived or moved
    assert json.loads(path.read_text()) == {"format": 1, "value": 1.0}
    write_versioned(path, {"format": 1, "value": 2.0}, "x", before_write=archived.append, failure=str)
    assert archived == [path] and read_versioned(path, 1, parse, damaged) == Saved(2.0, "")
