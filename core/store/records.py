"""The store's rows beside the catalogs: embedding sets, evaluation runs (JSON records), saved models and
their activation history. A part of core.store.database.Store, which brings the root folder and transactions."""
from __future__ import annotations

import json
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import StoreError
from core.store.run_records import parse_record


class RecordTables:
    """Embedding sets, runs and models of a Store (its `root` and `transaction()`)."""

    root: Path  # both provided by Store
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    # -- embedding sets ---------------------------------------------------------------------------
    def embedding_path(self, catalog: str, key: str) -> Path:
        return self.root / "embeddings" / catalog / f"{key}.npz"

    @property
    def embedding_cache_dir(self) -> Path:
        """The folder of the embedding cache (core.encoders.cache), shared by every catalog."""
        return self.root / "embedding-cache"

    def record_embedding_set(self, catalog: str, key: str, encoder_ids: dict[str, str],
                             content_hash: str, path: Path) -> None:
        with self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO embedding_sets VALUES (?, ?, ?, ?, ?, ?)",
                        (catalog, key, time.time(), json.dumps(encoder_ids), content_hash, str(path)))

    def list_embedding_sets(self, catalog: str | None = None) -> pd.DataFrame:
        with self.transaction() as con:
            q = "SELECT * FROM embedding_sets" + (" WHERE catalog = ?" if catalog else "")
            return pd.read_sql_query(q, con, params=(catalog,) if catalog else ())

    # -- runs and models (JSON records) -----------------------------------------------------------
    def save_run(self, record: dict[str, Any]) -> str:
        """Store an evaluation run record (must carry 'catalog' and 'name'); returns its id."""
        run_id = record.get("id") or f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        record = {**record, "id": run_id}
        with self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
                        (run_id, record.get("created_at", time.time()), record["catalog"], record["name"],
                         json.dumps(record, default=_json_default)))
        return run_id

    def load_run(self, run_id: str) -> dict[str, Any]:
        with self.transaction() as con:
            row = con.execute("SELECT record FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run with id {run_id!r}; list them with `python -m core runs list`")
        return parse_record(run_id, row[0])

    def list_runs(self, catalog: str | None = None) -> pd.DataFrame:
        with self.transaction() as con:
            q = "SELECT id, created_at, catalog, name FROM runs" + (" WHERE catalog = ?" if catalog else "")
            return pd.read_sql_query(q + " ORDER BY created_at DESC", con,
                                     params=(catalog,) if catalog else ())

    def delete_run(self, run_id: str) -> None:
        with self.transaction() as con:
            if con.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount == 0:
                raise StoreError(f"no run with id {run_id!r}; list them with `python -m core runs list`")

    def model_dir(self, model_id: str) -> Path:
        return self.root / "models" / model_id

    def record_model(self, model_id: str, catalog: str, name: str, config: dict[str, Any],
                     path: Path, active: bool = False) -> None:
        with self.transaction() as con:
            if active:
                con.execute("UPDATE models SET active = 0 WHERE catalog = ?", (catalog,))
            con.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (model_id, time.time(), catalog, name, json.dumps(config, default=_json_default),
                         str(path), int(active)))
            if active:
                con.execute("INSERT INTO activations VALUES (?, ?, ?, ?)", (catalog, model_id, time.time(), "trained"))

    def list_models(self, catalog: str | None = None) -> pd.DataFrame:
        with self.transaction() as con:
            q = "SELECT * FROM models" + (" WHERE catalog = ?" if catalog else "")
            return pd.read_sql_query(q + " ORDER BY created_at DESC", con,
                                     params=(catalog,) if catalog else ())

    def delete_model(self, model_id: str) -> None:
        """Remove a saved model that is not active: its row, then its folder (weights, index, maps). The
        activation history keeps its entries (shown as no longer stored). StoreError for an unknown id or the
        catalog's active model, and nothing is changed."""
        with self.transaction() as con:
            row = con.execute("SELECT catalog, active FROM models WHERE id = ?", (model_id,)).fetchone()
            if row is None:
                raise StoreError(f"no saved model with id {model_id!r}; list them with "
                                 "`python -m core models list`. Nothing was removed")
            catalog, active = row
            if active:
                raise StoreError(f"model {model_id!r} is the active model of catalog {catalog!r} and cannot be "
                                 f"removed; activate another one first (`python -m core models list --catalog "
                                 f"{catalog}`). Nothing was removed")
            con.execute("DELETE FROM models WHERE id = ?", (model_id,))
        folder = self.model_dir(model_id)
        if folder.resolve().parent == (self.root / "models").resolve():  # never outside the store's models/
            shutil.rmtree(folder, ignore_errors=True)

    def set_active_model(self, catalog: str, model_id: str, source: str = "activated") -> None:
        """Make `model_id` the catalog's active model; the change is kept in the activation history."""
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM models WHERE id = ? AND catalog = ?", (model_id, catalog)).fetchone() is None:
                raise StoreError(f"no saved model with id {model_id!r} for catalog {catalog!r}; list them with "
                                 f"`python -m core models list --catalog {catalog}`")
            con.execute("UPDATE models SET active = (id = ?) WHERE catalog = ?", (model_id, catalog))
            con.execute("INSERT INTO activations VALUES (?, ?, ?, ?)", (catalog, model_id, time.time(), source))

    def activation_history(self, catalog: str) -> pd.DataFrame:
        """Every activation of the catalog's models, newest first: model_id, at, source ("trained",
        "activated", "restored"), and whether the model is still stored and active now."""
        with self.transaction() as con:
            return pd.read_sql_query(
                """SELECT a.model_id, a.at, a.source, m.id IS NOT NULL AS stored, COALESCE(m.active, 0) AS active
                   FROM activations a LEFT JOIN models m ON m.id = a.model_id
                   WHERE a.catalog = ? ORDER BY a.at DESC, a.rowid DESC""", con, params=(catalog,))

    def restore_active_model(self, catalog: str, model_id: str = "previous") -> str:
        """Make an earlier active model active again: `model_id`, or "previous" (the last one active before the
        current one that is still stored). Returns the id now active."""
        history = self.activation_history(catalog)
        current = self.active_model(catalog)
        if model_id == "previous":
            earlier = [m for m, stored in zip(history["model_id"], history["stored"])
                       if stored and m != (current or {}).get("id")]
            if not earlier:
                raise StoreError(f"catalog {catalog!r} has no earlier active model still stored; nothing to restore "
                                 f"(saved models: `python -m core models list --catalog {catalog}`)")
            model_id = earlier[0]
        self.set_active_model(catalog, model_id, source="restored")
        return model_id

    def active_model(self, catalog: str) -> dict[str, Any] | None:
        with self.transaction() as con:
            row = con.execute("SELECT id, name, config, path FROM models WHERE catalog = ? AND active = 1",
                              (catalog,)).fetchone()
        return None if row is None else {"id": row[0], "name": row[1], "config": json.loads(row[2]),
                                         "path": row[3]}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a JSON record")
