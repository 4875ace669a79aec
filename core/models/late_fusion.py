"""Late fusion: one single-modality model per modality, per-user z-scored and averaged with tuned weights."""
from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from core.errors import MissingModalityError
from core.data.interactions import InteractionData
from core.models.base import ProgressCallback
from core.models.content import ContentConfig, ContentModel, aligned_embeddings
from core.models.early_stopping import validation_recall


@dataclass
class LateFusionConfig:
    """Which modalities to fuse, how finely to search their weights, and how each member model is trained."""

    modalities: tuple[str, ...] | None = None  # None: every modality the embedding set has
    grid_step: float = 0.25  # weights searched on the simplex in steps of this (0.25 and 3 models: 15 points)
    content: ContentConfig = field(default_factory=ContentConfig)  # member settings; its modality is overridden


def weight_grid(n: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector of n non-negative multiples of `step` summing to 1."""
    units = round(1.0 / step)
    if n < 1 or units < 1 or abs(units * step - 1.0) > 1e-9:
        raise ValueError(f"grid_step must divide 1 (e.g. 0.25, 0.1); got {step}")
    return [tuple(c / units for c in combo) for combo in itertools.product(range(units + 1), repeat=n)
            if sum(combo) == units]


def zscore_rows(scores: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per-row z-scores over the present items; absent items are NaN (handled by the caller)."""
    s = np.asarray(scores, dtype=np.float32)[:, present]
    z = np.full(scores.shape, np.nan, dtype=np.float32)
    mean = s.mean(axis=1, keepdims=True)
    std = s.std(axis=1, keepdims=True)
    z[:, present] = (s - mean) / np.where(std > 0, std, 1.0)  # a constant row carries no preference: all 0
    return z


def combine(zs: list[np.ndarray], weights: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Weighted mean of z-scores over the models that score each item; items no weighted model scores go last."""
    num = np.zeros(zs[0].shape, dtype=np.float32)
    den = np.zeros(zs[0].shape, dtype=np.float32)
    for z, w in zip(zs, weights):
        if w <= 0:
            continue
        ok = ~np.isnan(z)
        num += np.where(ok, w * z, 0.0)
        den += np.where(ok, w, 0.0)
    scored = den > 0
    out = np.where(scored, num / np.where(scored, den, 1.0), 0.0).astype(np.float32)
    if (~scored).any():
        # finite and below every scored item of the row, never NaN
        floor = np.where(scored, out, np.inf).min(axis=1, keepdims=True)
        floor = np.where(np.isfinite(floor), floor - 1.0, 0.0)
        out = np.where(scored, out, floor).astype(np.float32)
    return out


class LateFusion:
    """Fits a ContentModel per modality and averages their z-scored scores with weights tuned on validation."""

    name = "late-fusion"
    kind = "baseline"

    def __init__(self, modalities: list[str] | tuple[str, ...] | None = None,
                 config: LateFusionConfig | None = None, **overrides: Any) -> None:
        config = config or LateFusionConfig()
        if modalities is not None:
            overrides["modalities"] = tuple(modalities)
        self.config = replace(config, **overrides)
        self.history: list[dict] = []  # late fusion has no epochs of its own; see member_histories
        self.member_histories: dict[str, list[dict]] = {}
        self.weight_search: list[dict] = []  # {"weights": {...}, "valid_recall@20": r} per grid point
        self.members: list[ContentModel] = []
        self.weights: dict[str, float] = {}
        self.train_seconds = 0.0

    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "LateFusion":
        """Fit each member, then pick the weights with the best validation Recall@20 (equal weights without it)."""
        t0 = time.perf_counter()
        emb = aligned_embeddings(data, self.name)
        wanted = list(self.config.modalities or emb.modalities)
        missing = [m for m in wanted if m not in emb.modalities]
        if missing or not wanted:
            raise MissingModalityError(f"late fusion asked for modalities {wanted}, but the embedding set has "
                                       f"{emb.modalities}; pass modalities from that list")
        self.members = [ContentModel(config=replace(self.config.content, modality=m)).fit(data, progress)
                        for m in wanted]
        self.member_histories = {m.name: m.history for m in self.members}
        grid = weight_grid(len(self.members), self.config.grid_step)
        best = tuple(1.0 / len(self.members) for _ in self.members)
        self.weight_search = []
        if data.valid.nnz > 0 and len(self.members) > 1:
            users = np.flatnonzero(np.diff(data.valid.indptr) > 0)
            position = {int(u): k for k, u in enumerate(users)}
            zs = self._zscores(users)  # computed once; each grid point only recombines them
            best_value = -np.inf
            for w in grid:
                value = validation_recall(
                    lambda batch, w=w: combine([z[[position[int(u)] for u in batch]] for z in zs], w), data)
                self.weight_search.append({"weights": dict(zip(wanted, w)), "valid_recall@20": value})
                if value > best_value:
                    best_value, best = value, w
        self.weights = dict(zip(wanted, best))
        self.train_seconds = time.perf_counter() - t0
        return self

    def _zscores(self, users: np.ndarray) -> list[np.ndarray]:
        return [zscore_rows(m.score(users), m.item_present) for m in self.members]

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or n_items) fused z-scores; items no member can score go last, never NaN."""
        if not self.members:
            raise RuntimeError("LateFusion.score called before fit(); fit it on InteractionData first")
        fused = combine(self._zscores(np.atleast_1d(users)), tuple(self.weights[m.modality] for m in self.members))
        return fused if items is None else fused[:, np.asarray(items)]

    def get_config(self) -> dict[str, Any]:
        cfg = asdict(self.config)
        cfg["modalities"] = [m.modality for m in self.members] or cfg["modalities"]
        return {"name": self.name, "kind": self.kind, **cfg, "weights": self.weights}
