"""A catalog's tuned baseline settings in the store, one JSON file per catalog and model, beside the fusion
model's tuned configuration: <store>/tuned/baselines/<catalog>/<model>.json.

Each file holds the chosen settings, their validation figure, the search's record (ranges, extensions,
trials) and the fingerprint of the data it ran on; it is written to a temporary file and moved into place.
`resolve_baseline` is the one rule `evaluate`, `benchmarks.quality`, the Evaluate page and the
collaborative term follow: the stored settings for this data, else a search within the model's budget,
stored for next time.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import StoreError
from core.tuning.files import read_versioned, write_versioned
from core.tuning.store import FOLDER, data_fingerprint, tuned_path

FORMAT_VERSION = 1
SUBFOLDER = "baselines"


@dataclass
class TunedBaseline:
    """The settings a search chose for one model on one catalog."""

    model: str
    settings: dict[str, Any]
    record: dict[str, Any]  # core.tuning.baselines.SearchResult.record()
    created_at: float = 0.0
    data_hash: str = ""


def baseline_path(store: Any, catalog_name: str, model: str) -> Path:
    """Where the tuned settings of `model` on the catalog live."""
    tuned_path(store, catalog_name)  # refuses a name that cannot name a file
    if not model or any(c in model for c in "/\\") or model.startswith("."):
        raise StoreError(f"model name {model!r} cannot name a tuned setting")
    return Path(store.root) / FOLDER / SUBFOLDER / catalog_name / f"{model}.json"


def save_baseline(store: Any, catalog_name: str, model: str, settings: dict[str, Any], record: dict[str, Any],
                  *, data_hash: str = "") -> TunedBaseline:
    """Store `settings` as the catalog's tuned settings of `model` (replacing the previous ones atomically)."""
    path = baseline_path(store, catalog_name, model)
    tuned = TunedBaseline(model, dict(settings), dict(record), time.time(), data_hash)
    payload = {"format": FORMAT_VERSION, "catalog": catalog_name, "model": model, "created_at": tuned.created_at,
               "data_hash": data_hash, "settings": tuned.settings, "record": tuned.record}
    write_versioned(path, payload, "tuned baseline setting",
                    failure=lambda e: f"could not write the tuned settings of {model} on {catalog_name!r} to {path}: "
                                      f"{e}; the previous ones (if any) are unchanged")
    return tuned


def load_baseline(store: Any, catalog_name: str, model: str, data_hash: str | None = None) -> TunedBaseline | None:
    """The stored tuned settings of `model`, or None (none stored, or given `data_hash`, tuned on other data).
    A damaged file raises StoreError naming it and the fix."""
    path = baseline_path(store, catalog_name, model)

    def parse(payload: dict[str, Any]) -> TunedBaseline:
        if not isinstance(payload["settings"], dict):
            raise ValueError("settings is not an object")
        return TunedBaseline(model, dict(payload["settings"]), dict(payload.get("record", {})),
                             float(payload.get("created_at", 0.0)), str(payload.get("data_hash", "")))

    return read_versioned(path, FORMAT_VERSION, parse, data_hash=data_hash,
                          damaged=lambda e: f"{path} is not a readable tuned setting ({e}); delete it and the next "
                                            "evaluation searches again")


def resolve_baseline(store: Any, catalog_name: str, model: str, data: Any, *, fixed: dict[str, Any] | None = None,
                     build: Any = None, budget_seconds: float | None = None, seed: int = 0,
                     log: Any = None, persist: bool = True,
                     not_stored_why: str = "") -> tuple[dict[str, Any], dict[str, Any], str]:
    """(settings, search record, note) of `model` on the catalog's data: the stored tuned settings, else a
    search (stored when a store is given and `persist`; a browser session that may not change what others see
    passes persist=False and `not_stored_why`). Settings in `fixed` win over both and keep a search from moving
    them; when one of them is a searched setting, a new search is not stored (it answers another question)."""
    from core.tuning.baselines import search_model

    fixed = dict(fixed or {})
    fingerprint = data_fingerprint(data)
    tuned = load_baseline(store, catalog_name, model, data_hash=fingerprint) if store is not None else None
    if tuned is not None:
        kept = {k: v for k, v in tuned.settings.items() if k not in fixed}
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(tuned.created_at)) if tuned.created_at else "?"
        final = tuned.record.get("finalists") or {}
        chosen = (f"; chosen among its {len(final['finalists'])} best by the final model's mean over seeds "
                  f"{final['seeds']} ({float(final['chosen_mean']):.4f})" if final.get("finalists") else "")
        note = (f"tuned settings stored {when}: valid {tuned.record.get('metric', 'recall@20').removeprefix('valid ')} "
                f"{float(tuned.record.get('value', float('nan'))):.4f} after {tuned.record.get('trials', '?')} trials"
                + chosen)
        return {**kept, **fixed}, {**tuned.record, "source": "stored"}, note
    result = search_model(model, data, fixed=fixed, build=build, budget_seconds=budget_seconds, seed=seed, log=log)
    record = result.record()
    from core.tuning.baselines import SPACES

    settings_fixed = bool(set(fixed) & set(SPACES[model].params))  # a seed does not change the question
    stored = store is not None and persist and not settings_fixed
    if stored:
        save_baseline(store, catalog_name, model, result.params, record, data_hash=fingerprint)
    why = "settings were fixed" if settings_fixed else (not_stored_why or "not asked to store it")
    note = (f"no tuned configuration existed; a search of {result.n_trials} trials "
            f"({result.seconds:.0f} s) " + ("stored one" if stored else f"chose one (not stored: {why})")
            + f": valid recall@20 {result.value:.4f}")
    return {**result.params, **fixed}, {**record, "source": "searched" if not stored else "searched and stored"}, note
