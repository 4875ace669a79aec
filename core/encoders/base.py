"""The encoder protocol every encoder in this package follows."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """Turns a batch of one modality's inputs into a float32, L2-normalised (N, dim) matrix.

    `id` names the weights exactly (e.g. "sentence-transformers/all-MiniLM-L6-v2@53aa5117",
    "timm/tf_efficientnet_lite0@57934424", "librosa-descriptor-v3"); it keys the embedding cache
    and is recorded in every embedding set and run. An encoder whose `encode` may be called from several
    threads at once says so with a class attribute `concurrent_batches = True`; the catalog pipeline then
    spreads its batches over the cores (without it, its batches run one after the other).
    """

    id: str
    dim: int
    modality: str  # "text" | "image" | "audio"

    def encode(self, batch: Sequence[Any]) -> np.ndarray: ...


@runtime_checkable
class DescriptorEncoder(Encoder, Protocol):
    """An encoder whose raw features have human-readable names (audio descriptor, image descriptor).

    `describe` returns the raw (N, F) features; `encode` standardises them with statistics fitted on a
    catalog (kept in the EmbeddingSet) and L2-normalises.
    """

    feature_names: list[str]

    def describe(self, batch: Sequence[Any]) -> np.ndarray: ...


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation in float32; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32)
