"""The catalog: items with optional text, image and audio, plus interactions. Knows nothing of vectors
except precomputed feature matrices that an importer brings along."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MODALITIES: tuple[str, ...] = ("text", "image", "audio")
SPLITS: tuple[str, ...] = ("train", "valid", "test")
INTERACTION_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "rating", "timestamp", "split")


@dataclass
class Item:
    """One catalog item; any modality may be missing (None)."""

    id: str
    title: str
    text: str | None = None
    image: str | None = None  # path relative to Catalog.media_root (or absolute)
    audio: str | None = None  # path relative to Catalog.media_root (or absolute)
    metadata: dict[str, Any] = field(default_factory=dict)

    def has(self, modality: str) -> bool:
        """Whether the item carries raw media for `modality`."""
        value = getattr(self, modality)
        return value is not None and value != ""


@dataclass
class FeatureMatrix:
    """A precomputed feature matrix for one field, rows aligned with Catalog.items."""

    modality: str  # one of MODALITIES
    values: np.ndarray  # (N, D) float32; rows of missing items are zero
    mask: np.ndarray  # (N,) bool, True where the item has this feature
    source: str  # names what produced it, e.g. "precomputed:all-MiniLM-L6-v2.npy"


def empty_interactions() -> pd.DataFrame:
    """An interactions frame with the canonical columns and dtypes and no rows."""
    return pd.DataFrame(
        {
            "user_id": pd.Series(dtype="string"),
            "item_id": pd.Series(dtype="string"),
            "rating": pd.Series(dtype="float64"),
            "timestamp": pd.Series(dtype="float64"),
            "split": pd.Series(dtype="string"),  # "train" | "valid" | "test" | <NA>
        }
    )


@dataclass
class Catalog:
    """Items, optional precomputed features and interactions (user, item, rating, timestamp, split)."""

    name: str
    items: list[Item]
    interactions: pd.DataFrame = field(default_factory=empty_interactions)
    features: dict[str, FeatureMatrix] = field(default_factory=dict)  # field name -> matrix
    media_root: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # e.g. {"source": "demo", "seed": 7}

    def __post_init__(self) -> None:
        self._index = {item.id: i for i, item in enumerate(self.items)}

    @property
    def item_ids(self) -> list[str]:
        return [item.id for item in self.items]

    def index_of(self, item_id: str) -> int:
        """Row index of `item_id`; KeyError names the unknown id."""
        try:
            return self._index[item_id]
        except KeyError:
            raise KeyError(f"item id {item_id!r} is not in catalog {self.name!r}") from None

    def item(self, item_id: str) -> Item:
        return self.items[self.index_of(item_id)]

    def media_path(self, ref: str | None) -> Path | None:
        """Absolute path of a media reference, or None."""
        if not ref:
            return None
        p = Path(ref)
        if not p.is_absolute() and self.media_root is not None:
            p = self.media_root / p
        return p

    def modalities_present(self) -> dict[str, int]:
        """How many items carry each modality, raw media or precomputed features."""
        counts = {m: sum(item.has(m) for item in self.items) for m in MODALITIES}
        for feat in self.features.values():
            counts[feat.modality] = max(counts[feat.modality], int(feat.mask.sum()))
        return counts

    @property
    def users(self) -> list[str]:
        return sorted(self.interactions["user_id"].astype(str).unique().tolist())

    def content_hash(self) -> str:
        """sha256 over items, interactions and features: names exactly the data a result came from."""
        h = hashlib.sha256()
        for item in self.items:
            h.update(json.dumps([item.id, item.title, item.text, item.image, item.audio,
                                 item.metadata], sort_keys=True, default=str).encode())
        inter = self.interactions[list(INTERACTION_COLUMNS)]
        h.update(pd.util.hash_pandas_object(inter.astype(str), index=False).values.tobytes())
        for name in sorted(self.features):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.features[name].values).tobytes())
        return h.hexdigest()
