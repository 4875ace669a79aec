"""A catalog's tuned configuration in the store: one JSON file per catalog under <store>/tuned/.

The file holds the configuration, its validation figure, the trial history and the fingerprint of the
data the search ran on; it is written to a temporary file and moved into place, so a failed write
leaves the previous tuned configuration as it was, and the one it replaces is kept in its history.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError, StoreError
from core.data.interactions import InteractionData
from core.models.fusion.config import FusionConfig
from core.tuning.files import read_versioned, write_versioned
from core.tuning.history import archive_current

FORMAT_VERSION = 1
FOLDER = "tuned"


@dataclass
class TunedConfig:
    """The configuration a search chose for one catalog, and what it rests on."""

    config: FusionConfig
    metric: dict[str, Any]  # e.g. {"name": "ndcg@20", "value": 0.31, "split": "valid"}
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per trial
    created_at: float = 0.0  # seconds since the epoch
    data_hash: str = ""  # data_fingerprint of the InteractionData it was tuned on
    catalog: str = ""


def data_fingerprint(data: InteractionData) -> str:
    """sha256 over item ids, the train/valid matrices and the encoders: names the data a search saw."""
    h = hashlib.sha256()
    h.update(json.dumps([list(map(str, data.item_ids)), data.n_users, data.split_name]).encode())
    for matrix in (data.train, data.valid):
        m = matrix.tocsr()
        h.update(np.ascontiguousarray(m.indptr, np.int64).tobytes())
        h.update(np.ascontiguousarray(m.indices, np.int64).tobytes())
    if data.embeddings is not None:
        h.update(json.dumps(data.embeddings.encoder_ids, sort_keys=True).encode())
    return h.hexdigest()


def tuned_path(store: Any, catalog_name: str) -> Path:
    """Where the catalog's tuned configuration lives."""
    if not catalog_name or "/" in catalog_name or "\\" in catalog_name or catalog_name.startswith("."):
        raise StoreError(f"catalog name {catalog_name!r} cannot name a tuned configuration; use letters, "
                         "digits, '-' or '_'")
    return Path(store.root) / FOLDER / f"{catalog_name}.json"


def save_tuned(store: Any, catalog_name: str, config: FusionConfig, valid_metric: dict[str, Any],
               history: list[dict[str, Any]], *, data_hash: str = "") -> TunedConfig:
    """Store `config` as the catalog's tuned configuration (replacing the previous one atomically; the one
    replaced is kept in its history, see core.tuning.history)."""
    path = tuned_path(store, catalog_name)
    tuned = TunedConfig(config=config, metric=dict(valid_metric), history=list(history), created_at=time.time(),
                        data_hash=data_hash, catalog=catalog_name)
    payload = {"format": FORMAT_VERSION, "catalog": catalog_name, "created_at": tuned.created_at,
               "data_hash": data_hash, "config": asdict(config), "metric": tuned.metric, "history": tuned.history}
    # the configuration replaced stays restorable (core.tuning.history)
    write_versioned(path, payload, "tuned configuration", before_write=archive_current,
                    failure=lambda e: f"could not write the tuned configuration of {catalog_name!r} to {path}: {e}; "
                                      "the previous one (if any) is unchanged")
    return tuned


def load_tuned(store: Any, catalog_name: str, data_hash: str | None = None) -> TunedConfig | None:
    """The catalog's tuned configuration, or None when there is none (or, given `data_hash`, when it was
    tuned on other data). A damaged file raises StoreError naming it."""
    path = tuned_path(store, catalog_name)

    def parse(payload: dict[str, Any]) -> TunedConfig:
        return TunedConfig(config=FusionConfig.from_dict(payload["config"]), metric=dict(payload["metric"]),
                           history=list(payload.get("history", [])),
                           created_at=float(payload.get("created_at", 0.0)),
                           data_hash=str(payload.get("data_hash", "")), catalog=catalog_name)

    return read_versioned(path, FORMAT_VERSION, parse, data_hash=data_hash, errors=(ModelError,),
                          damaged=lambda e: f"{path} is not a readable tuned configuration ({e}); delete it and run "
                                            f"`python -m core tune --catalog {catalog_name}` again")
