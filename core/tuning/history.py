"""The history of a tuned-configuration file: every configuration it held before, kept and restorable.

Before a tuned configuration is replaced, the file it replaces is copied to
`<folder>/history/<stem>/<created_at in ms>-<random>.json`; `restore_tuned_file` puts one of those back (the
configuration it replaces is archived the same way), so no search ever loses an earlier, better one.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.store.atomic import write_bytes_atomic
from core.errors import DamagedFileError, StoreError

HISTORY = "history"


@dataclass(frozen=True)
class TunedEntry:
    """One tuned configuration a file held: `id` names it to `restore_tuned_file` ("current" for the file)."""

    id: str
    created_at: float  # when the search that chose it stored it
    metric: dict[str, Any]  # {"name", "value", "split", ...}; empty when the entry is damaged
    trials: int
    current: bool
    problem: str = ""  # why the entry cannot be restored (empty when it can)


def history_folder(path: Path) -> Path:
    """Where the earlier contents of the tuned-configuration file `path` are kept."""
    return path.parent / HISTORY / path.stem


def archive_current(path: Path) -> Path | None:
    """Copy the tuned-configuration file at `path` into its history before it is replaced; None when none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StoreError(f"the tuned configuration {path.name} cannot be read to keep it in its history "
                         f"({e.strerror}); nothing was changed") from e
    try:
        created = float(json.loads(data).get("created_at", 0.0))
    except (ValueError, AttributeError, TypeError):
        created = path.stat().st_mtime  # a damaged file is kept too: it may still be worth reading by hand
    target = history_folder(path) / f"{int(created * 1000):013d}-{uuid.uuid4().hex[:6]}.json"
    write_bytes_atomic(target, data, "tuned configuration history")
    return target


def _entry(entry_id: str, data: bytes, current: bool) -> TunedEntry:
    try:
        payload = json.loads(data)
        if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
            raise ValueError("no configuration in it")
        metric = dict(payload.get("metric") or {})
        trials = int(metric.get("trials", len(payload.get("history") or [])))
        return TunedEntry(entry_id, float(payload.get("created_at", 0.0)), metric, trials, current)
    except (ValueError, TypeError, AttributeError, RecursionError) as e:
        return TunedEntry(entry_id, 0.0, {}, 0, current, problem=f"damaged ({str(e)[:120]})")


def tuned_history(path: Path) -> list[TunedEntry]:
    """The current configuration in `path` (if any) and every earlier one, newest first."""
    entries = []
    if path.is_file():
        entries.append(_entry("current", path.read_bytes(), True))
    folder = history_folder(path)
    if folder.is_dir():
        for p in sorted(folder.glob("*.json"), reverse=True):
            entries.append(_entry(p.stem, p.read_bytes(), False))
    return entries


def restore_tuned_file(path: Path, entry_id: str) -> TunedEntry:
    """Make the earlier configuration `entry_id` ("previous": the newest earlier one) current again; the one it
    replaces is archived first. Returns the restored entry."""
    earlier = [e for e in tuned_history(path) if not e.current]
    if not earlier:
        raise StoreError(f"no earlier tuned configuration is kept for {path.stem!r}; nothing to restore")
    chosen = earlier[0] if entry_id == "previous" else next((e for e in earlier if e.id == entry_id), None)
    if chosen is None:
        raise StoreError(f"no earlier tuned configuration {entry_id!r} for {path.stem!r}; kept: "
                         f"{', '.join(e.id for e in earlier[:10])} (see `python -m core history`)")
    if chosen.problem:
        raise DamagedFileError(f"the earlier tuned configuration {chosen.id} of {path.stem!r} is {chosen.problem}; "
                               "choose another one (`python -m core history`)")
    data = (history_folder(path) / f"{chosen.id}.json").read_bytes()
    archive_current(path)
    write_bytes_atomic(path, data, "tuned configuration")
    return chosen


def describe_entry(entry: TunedEntry) -> str:
    """'ndcg@20 .3732 on valid after 20 trials, 2026-12-07 02:10' (or what is wrong with it)."""
    if entry.problem:
        return entry.problem
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.created_at)) if entry.created_at else "?"
    value = entry.metric.get("value")
    figure = f"{entry.metric.get('name', 'metric')} {float(value):.4f}" if value is not None else "no figure"
    return f"{figure} on {entry.metric.get('split', 'valid')} after {entry.trials} trials, {when}"
