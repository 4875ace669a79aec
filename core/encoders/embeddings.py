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

from core.store.atomic import atomic_path
from core.errors import DamagedFileError, MissingModalityError


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
        with atomic_path(path, "embeddings file") as tmp:  # never a half-written .npz, even on a full disk
            np.savez(tmp, **arrays)

    @classmethod
    def load(cls, path: Path, fix: str = "encode the catalog again") -> "EmbeddingSet":
        """The set saved at `path`; a damaged or inconsistent file raises StoreError naming it and `fix`."""
        try:
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
            emb = cls(item_ids=[str(i) for i in header["item_ids"]], matrices=matrices, masks=masks,
                      modality_of=dict(header["modality_of"]), encoder_ids=dict(header["encoder_ids"]),
                      feature_names=dict(header["feature_names"]), stats=stats,
                      content_hash=str(header["content_hash"]), warnings=list(header.get("warnings", [])))
            emb._check_shapes()
        except FileNotFoundError:
            raise
        except Exception as e:  # zipfile, numpy and json raise many types for a damaged file
            raise DamagedFileError(f"the embeddings file {path.name} of catalog {path.parent.name!r} is damaged "
                             f"({type(e).__name__}: {str(e)[:200]}); {fix}") from e
        return emb

    def _check_shapes(self) -> None:
        """ValueError unless every matrix is finite (N, D) over the N items, with an (N,) mask and a modality."""
        n = len(self.item_ids)
        if set(self.matrices) != set(self.masks) or set(self.matrices) != set(self.modality_of):
            raise ValueError(f"fields disagree: matrices {sorted(self.matrices)}, masks {sorted(self.masks)}, "
                             f"modalities {sorted(self.modality_of)}")
        for f, m in self.matrices.items():
            if m.ndim != 2 or m.shape[0] != n or m.dtype.kind != "f":
                raise ValueError(f"field {f!r} is a {m.dtype} array of shape {m.shape}, expected ({n}, D) floats")
            if self.masks[f].shape != (n,):
                raise ValueError(f"the mask of field {f!r} has shape {self.masks[f].shape}, expected ({n},)")
            if not all(np.isfinite(m[i:i + 65536]).all() for i in range(0, n, 65536)):  # bounded memory
                raise ValueError(f"field {f!r} holds NaN or infinite values")
