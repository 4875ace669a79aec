"""The one reader and writer of tuned-settings files (the fusion model's tuned configuration, core.tuning.store,
and the baselines' tuned settings, core.tuning.baseline_store): versioned JSON written atomically, read back
with every problem turned into a StoreError that names the file and the fix."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from core.errors import StoreError
from core.store.atomic import write_text_atomic

T = TypeVar("T")


def write_versioned(path: Path, payload: dict[str, Any], label: str, failure: Callable[[Exception], str],
                    before_write: Callable[[Path], None] | None = None) -> None:
    """`payload` as indented JSON at `path`, moved into place atomically; `before_write(path)` runs once the text
    is ready (e.g. to archive the file it replaces). A failure raises StoreError(failure(error)) and leaves the
    previous file as it was."""
    try:
        text = json.dumps(payload, indent=1, default=plain)
        if before_write is not None:
            before_write(path)
        write_text_atomic(path, text, label)
    except (OSError, TypeError, ValueError, StoreError) as e:
        raise StoreError(failure(e)) from e


def read_versioned(path: Path, version: int, parse: Callable[[dict[str, Any]], T], damaged: Callable[[Exception], str],
                   data_hash: str | None = None, errors: tuple[type[Exception], ...] = ()) -> T | None:
    """What `parse` makes of the JSON file at `path` (format `version`); None when there is no file or, given
    `data_hash`, when the parsed value's data_hash names other data. An unreadable file, another format, or a
    payload `parse` refuses (KeyError, TypeError, ValueError, or one of `errors`) raises
    StoreError(damaged(error))."""
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
        if payload.get("format") != version:
            raise ValueError(f"format {payload.get('format')!r}, expected {version}")
        value = parse(payload)
    except (OSError, KeyError, TypeError, ValueError, *errors) as e:
        raise StoreError(damaged(e)) from e
    stored_hash = getattr(value, "data_hash", "")
    if data_hash is not None and stored_hash and stored_hash != data_hash:
        return None
    return value


def plain(value: Any) -> Any:
    """JSON for numpy scalars in trial params and values."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
