"""Exports a spreadsheet opens safely: cells that a spreadsheet would run as a formula are neutralised."""
from __future__ import annotations

from typing import Any

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")  # what Excel, LibreOffice and Sheets evaluate


def neutralise_cell(value: Any) -> Any:
    """A text cell that starts like a formula gets a leading apostrophe, so it stays text; others unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells and column names cannot run as formulas."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralise_cell)
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    return out


def safe_csv(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV of `frame` with formula prefixes neutralised."""
    return neutralise_frame(frame).to_csv(index=False).encode("utf-8")
