"""How a stored evaluation run record is read back: a JSON object with an id and object-valued blocks.

The store hands back records through `parse_record`; what the blocks mean is core.evaluation.runs' concern.
"""
from __future__ import annotations

import json
from typing import Any

from core.errors import DamagedFileError

RECORD_BLOCKS = ("protocol", "metrics", "model", "dataset", "ci", "per_user", "encoders")  # dicts when present


def parse_record(run_id: str, text: str) -> dict[str, Any]:
    """The stored record `text` of run `run_id`; DamagedFileError (with the command that removes it) when it
    is not a JSON object with an id and object-valued blocks."""
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
        if not isinstance(record.get("id"), str):
            raise ValueError("no run id")
        bad = [k for k in RECORD_BLOCKS if record.get(k) is not None and not isinstance(record[k], dict)]
        if bad:
            raise ValueError(f"{', '.join(bad)} must be JSON objects")
    except (TypeError, ValueError, RecursionError) as e:
        raise DamagedFileError(f"the stored record of run {run_id!r} is damaged ({str(e)[:160]}); remove it with "
                               f"`python -m core runs delete {run_id}` (or evaluate the model again)") from e
    return record
