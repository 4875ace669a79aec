"""Reading the store's catalogs: which are stored, and one catalog back as it was saved (items, interactions,
feature matrices, media folder). Writes stay in core.store.database.Store, which this class is part of."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pandas as pd

from core.catalog.model import Catalog, FeatureMatrix, Item, empty_interactions
from core.errors import DamagedFileError, StoreError


class CatalogReads:
    """The catalog reads of a Store (its `root`, `transaction()` and `catalog_dir()`)."""

    root: Path  # all three provided by Store
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    catalog_dir: Callable[[str], Path]

    def list_catalogs(self) -> pd.DataFrame:
        """One row per stored catalog: name, created_at, items, users, interactions, content_hash."""
        with self.transaction() as con:
            return pd.read_sql_query(
                """SELECT c.name, c.created_at, c.content_hash,
                          (SELECT COUNT(*) FROM items i WHERE i.catalog = c.name) AS items,
                          (SELECT COUNT(DISTINCT user_id) FROM interactions x WHERE x.catalog = c.name) AS users,
                          (SELECT COUNT(*) FROM interactions x WHERE x.catalog = c.name) AS interactions
                   FROM catalogs c ORDER BY c.created_at""",
                con,
            )

    def has_catalog(self, name: str) -> bool:
        with self.transaction() as con:
            return con.execute("SELECT 1 FROM catalogs WHERE name = ?", (name,)).fetchone() is not None

    def load_catalog(self, name: str) -> Catalog:
        """The stored catalog `name`; StoreError lists the stored names when it is unknown."""
        with self.transaction() as con:
            row = con.execute("SELECT metadata, has_media FROM catalogs WHERE name = ?", (name,)).fetchone()
            if row is None:
                known = [r[0] for r in con.execute("SELECT name FROM catalogs ORDER BY name")]
                raise StoreError(f"no catalog named {name!r} in {self.root}; stored: {known or 'none'}")
            meta, has_media = json.loads(row[0]), bool(row[1])
            items = [
                Item(id=r[0], title=r[1], text=r[2], image=r[3], audio=r[4], metadata=json.loads(r[5]))
                for r in con.execute(
                    "SELECT id, title, text, image, audio, metadata FROM items WHERE catalog = ? ORDER BY idx",
                    (name,))
            ]
            inter = pd.read_sql_query(
                "SELECT user_id, item_id, rating, timestamp, split FROM interactions WHERE catalog = ?",
                con, params=(name,))
            feats = con.execute("SELECT field, modality, source FROM features WHERE catalog = ?",
                                (name,)).fetchall()
        interactions = empty_interactions() if inter.empty else inter.astype(
            {"user_id": "string", "item_id": "string", "rating": "float64", "timestamp": "float64",
             "split": "string"})
        features = {}
        for field_name, modality, source in feats:
            path = self.catalog_dir(name) / "features" / f"{field_name}.npz"
            try:
                with np.load(path, allow_pickle=False) as z:
                    values, mask = z["values"], z["mask"]
                if values.ndim != 2 or len(values) != len(items) or mask.shape != (len(items),):
                    raise ValueError(f"shapes {values.shape} and {mask.shape} for {len(items)} items")
            except Exception as e:  # zipfile and numpy raise many types for a damaged file
                raise DamagedFileError(f"the feature file {path.name} of catalog {name!r} is damaged "
                                       f"({type(e).__name__}: {str(e)[:160]}); import the catalog again with "
                                       "--overwrite") from e
            features[field_name] = FeatureMatrix(modality, values, mask, source)
        media_root = self.catalog_dir(name) / "media" if has_media else (
            Path(meta["media_root"]) if meta.get("media_root") else None)
        return Catalog(name=name, items=items, interactions=interactions, features=features,
                       media_root=media_root, metadata=meta)
