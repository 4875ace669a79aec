"""EmbeddingSet: one matrix per field over a catalog's items, a presence mask, and the encoder ids.

This is all the models ever see of media. A *field* is one input matrix; each belongs to one modality
(e.g. fields "image" (CNN features) and "image_desc" (named colour/texture descriptor) both belong to
the image modality). Precomputed features (MMRec .npy) enter here directly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import MissingModalityError


@dataclass
class EmbeddingSet:
    """Per-field matrices aligned with `item_ids`; rows of items missing a field are zero and masked."""

    item_ids: list[str]
    matrices: dict[str, np.ndarray]  # field -> (N, D_f) float32
    masks: dict[str, np.ndarray]  # field -> (N,) bool
    modality_of: dict[str, str]  # field -> "text" | "image" | "audio"
    encoder_ids: dict[str, str]  # field -> encoder id (or "precomputed:<file>")
    feature_names: dict[str, list[str]] = field(default_factory=dict)  # named fields only
    stats: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # field -> {"mean", "std"}
    content_hash: str = ""  # hash of the catalog content it was computed from
    warnings: list[str] = field(default_factory=list)  # items encoded without a field, and why

    @property
    def fields(self) -> list[str]:
        return list(self.matrices)

    @property
    def modalities(self) -> list[str]:
        """Modalities present, in the canonical order text, image, audio."""
        present = set(self.modality_of.values())
        return [m for m in ("text", "image", "audio") if m in present]

    def fields_of(self, modality: str) -> list[str]:
        return [f for f, m in self.modality_of.items() if m == modality]

    def modality_mask(self, modality: str) -> np.ndarray:
        """(N,) bool: the item has at least one field of `modality`."""
        fields = self.fields_of(modality)
        if not fields:
            raise MissingModalityError(f"this embedding set has no {modality} field; "
                                       f"it has {self.modalities}")
        return np.logical_or.reduce([self.masks[f] for f in fields])

    def standardise(self, field_name: str, raw: np.ndarray) -> np.ndarray:
        """Apply the stored standardisation of a named field to raw descriptor rows, then L2-normalise."""
        from core.encoders.base import l2_normalise

        s = self.stats[field_name]
        return l2_normalise((np.asarray(raw, np.float32) - s["mean"]) / s["std"])

    def subset(self, rows: np.ndarray) -> "EmbeddingSet":
        """A new set holding only `rows` (indices into item_ids)."""
        rows = np.asarray(rows)
        return EmbeddingSet(
            item_ids=[self.item_ids[i] for i in rows],
            matrices={f: m[rows] for f, m in self.matrices.items()},
            masks={f: m[rows] for f, m in self.masks.items()},
            modality_of=dict(self.modality_of), encoder_ids=dict(self.encoder_ids),
            feature_names=dict(self.feature_names), stats=dict(self.stats), content_hash=self.content_hash,
            warnings=list(self.warnings),
        )

    # -- persistence (npz arrays + JSON header; no pickle) ----------------------------------------
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for f in self.fields:
            arrays[f"m::{f}"] = self.matrices[f]
            arrays[f"k::{f}"] = self.masks[f]
            for stat, value in self.stats.get(f, {}).items():
                arrays[f"s::{f}::{stat}"] = value
        header = {"item_ids": self.item_ids, "modality_of": self.modality_of,
                  "encoder_ids": self.encoder_ids, "feature_names": self.feature_names,
                  "content_hash": self.content_hash, "warnings": self.warnings}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "EmbeddingSet":
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes().decode())
            matrices, masks, stats = {}, {}, {}
            for key in z.files:
                parts = key.split("::")
                if parts[0] == "m":
                    matrices[parts[1]] = z[key]
                elif parts[0] == "k":
                    masks[parts[1]] = z[key]
                elif parts[0] == "s":
                    stats.setdefault(parts[1], {})[parts[2]] = z[key]
        return cls(item_ids=header["item_ids"], matrices=matrices, masks=masks,
                   modality_of=header["modality_of"], encoder_ids=header["encoder_ids"],
                   feature_names=header["feature_names"], stats=stats,
                   content_hash=header["content_hash"], warnings=header.get("warnings", []))
