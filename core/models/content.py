"""Single-modality content models: a user's profile is built from the content of the items they liked."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from core.encoders.embeddings import EmbeddingSet
from core.encoders.base import l2_normalise
from core.errors import CatalogError, MissingModalityError
from core.data.interactions import InteractionData
from core.models.base import ProgressCallback
from core.models.bpr_training import fit_bpr

MODALITIES = ("text", "image", "audio")


def aligned_embeddings(data: InteractionData, model_name: str) -> EmbeddingSet:
    """data.embeddings, checked to be present and row-aligned with data.item_ids."""
    emb = data.embeddings
    if emb is None:
        raise MissingModalityError(f"{model_name} needs item content, but this InteractionData has no "
                                   f"embedding set; build it with embeddings (e.g. splits.build_interaction_data"
                                   f"(catalog, embeddings))")
    if list(emb.item_ids) != list(data.item_ids):
        raise CatalogError(f"{model_name}: the embedding set's item_ids do not match the interaction data's "
                           f"item_ids ({len(emb.item_ids)} vs {len(data.item_ids)} items); re-index the "
                           f"embedding set to data.item_ids (EmbeddingSet.subset) before fitting")
    return emb


def field_features(emb: EmbeddingSet, fields: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, sum of dims) L2-normalised concatenation of `fields` (each L2-normalised first) and the (N,) presence mask.

    Rows of items missing a field are zero in that field's block; an item missing all of them is all zero.
    """
    if not fields:
        raise MissingModalityError(f"no fields were asked for; this embedding set has fields {emb.fields}")
    blocks, present = [], np.zeros(len(emb.item_ids), dtype=bool)
    for f in fields:
        mask = np.asarray(emb.masks[f], dtype=bool)
        # normalising per field first stops one wide field from drowning the others
        block = l2_normalise(np.nan_to_num(np.asarray(emb.matrices[f], dtype=np.float32)))
        block[~mask] = 0.0
        blocks.append(block)
        present |= mask
    return l2_normalise(np.concatenate(blocks, axis=1)), present


def modality_features(emb: EmbeddingSet, modality: str) -> tuple[np.ndarray, np.ndarray]:
    """The features of one modality (its fields concatenated) and the (N,) mask of items that have it."""
    fields = emb.fields_of(modality)
    if not fields:
        raise MissingModalityError(f"this embedding set has no {modality} field (it has {emb.modalities}); "
                                   f"choose one of those modalities or encode the catalog's {modality} first")
    return field_features(emb, fields)


def user_profiles(train: sp.csr_matrix, x: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U, F) mean features of each user's training items that have the modality, and (U,) how many there were."""
    r = sp.csr_matrix(train, dtype=np.float32)
    r.data[:] = 1.0
    r = r @ sp.diags(present.astype(np.float32))  # items without the modality say nothing about taste here
    counts = np.asarray(r.sum(axis=1), dtype=np.float32).ravel()
    profiles = np.asarray(r @ x, dtype=np.float32) / np.maximum(counts, 1.0)[:, None]
    return profiles.astype(np.float32), counts


def put_missing_last(scores: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Give items without the modality a finite score below every present item's, per row."""
    scores = np.asarray(scores, dtype=np.float32)
    if present.all():
        return scores
    if not present.any():
        return np.zeros_like(scores)
    floor = scores[:, present].min(axis=1, keepdims=True) - 1.0
    return np.where(present[None, :], scores, floor).astype(np.float32)


@dataclass
class ContentConfig:
    """A single-modality model: the user is the mean content of their items, optionally through a learned map."""

    modality: str = "text"  # "text" | "image" | "audio"
    learned: bool = True  # False: plain similarity of the profile to each item, nothing trained
    dim: int = 64  # size of the learned space
    lr: float = 0.01  # Adam learning rate (selected on lfm2k validation, text and audio)
    reg: float = 1e-5  # L2 weight on the batch's projected vectors
    epochs: int = 200  # upper bound; early stopping usually ends sooner
    batch_size: int = 2048  # (user, positive, negative) triples per step
    patience: int = 20  # epochs without a better validation Recall@20 before stopping
    seed: int = 0


class _ProfileProjection(nn.Module):
    """score(u, i) = <A p_u, B x_i> + w·x_i, p_u = mean content of u's items (the scored item left out in training)."""

    def __init__(self, x: np.ndarray, present: np.ndarray, profiles: np.ndarray, counts: np.ndarray, dim: int,
                 reg: float) -> None:
        super().__init__()
        self.register_buffer("x", torch.as_tensor(x))  # (I, F)
        self.register_buffer("profiles", torch.as_tensor(profiles))  # (U, F)
        self.register_buffer("counts", torch.as_tensor(counts))  # (U,)
        self.register_buffer("present", torch.as_tensor(present))  # (I,) bool
        self.user_map = nn.Linear(x.shape[1], dim, bias=False)
        self.item_map = nn.Linear(x.shape[1], dim, bias=False)
        self.item_bias = nn.Linear(x.shape[1], 1, bias=False)  # content-predicted popularity
        nn.init.zeros_(self.item_bias.weight)
        self.reg = reg

    def _leave_out_profile(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """(B, F) the user's profile without item i, so the model learns to predict an item from the others."""
        n = self.counts[u].unsqueeze(-1)  # (B, 1)
        has_i = self.present[i].float().unsqueeze(-1)  # (B, 1): i is in the profile only if it has the modality
        return (self.profiles[u] * n - self.x[i] * has_i) / torch.clamp(n - has_i, min=1.0)

    def _item(self, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xi = self.x[i]
        return self.item_map(xi), self.item_bias(xi).squeeze(-1)

    def bpr_scores(self, u: torch.Tensor, i: torch.Tensor,
                   j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pu = self.user_map(self._leave_out_profile(u, i))  # (B, D)
        qi, bi = self._item(i)
        qj, bj = self._item(j)
        reg = self.reg * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / u.numel()
        return (pu * qi).sum(-1) + bi, (pu * qj).sum(-1) + bj, reg

    def full_scores(self, u: torch.Tensor) -> torch.Tensor:
        pu = self.user_map(self.profiles[u])  # (B, D)
        scores = pu @ self.item_map(self.x).T + self.item_bias(self.x).T  # (B, I)
        # validation must rank like score(): items without the modality last
        return torch.as_tensor(put_missing_last(scores.numpy(), self.present.numpy()))


class ContentModel:
    """Recommends from one modality only ("text-only", "image-only", "audio-only")."""

    kind = "single-modality"

    def __init__(self, modality: str | None = None, config: ContentConfig | None = None, **overrides: Any) -> None:
        config = config or ContentConfig()
        if modality is not None:
            overrides["modality"] = modality
        self.config = replace(config, **overrides)
        if self.config.modality not in MODALITIES:
            raise ValueError(f"unknown modality {self.config.modality!r}; use one of {MODALITIES}")
        self.name = f"{self.config.modality}-only"
        self.history: list[dict] = []
        self.best_epoch = 0
        self.train_seconds = 0.0
        self.item_present: np.ndarray | None = None  # (I,) bool: items that have the modality
        self._user_vectors: np.ndarray | None = None  # (U, D)
        self._item_vectors: np.ndarray | None = None  # (I, D)
        self._item_bias: np.ndarray | None = None  # (I,)

    @property
    def modality(self) -> str:
        return self.config.modality

    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "ContentModel":
        """Build user profiles from training items; learn the projection with BPR when `learned`."""
        c = self.config
        t0 = time.perf_counter()
        emb = aligned_embeddings(data, self.name)
        if c.modality not in emb.modalities:
            raise MissingModalityError(f"{self.name} needs {c.modality} features, but the embedding set has only "
                                       f"{emb.modalities}; pick one of those or encode the {c.modality} first")
        x, present = modality_features(emb, c.modality)
        profiles, counts = user_profiles(data.train, x, present)
        self.item_present = present
        if c.learned:
            torch.manual_seed(c.seed)
            module = _ProfileProjection(x, present, profiles, counts, c.dim, c.reg)
            self.history, self.best_epoch = fit_bpr(module, data, lr=c.lr, epochs=c.epochs,
                                                    batch_size=c.batch_size, patience=c.patience,
                                                    seed=c.seed, progress=progress)
            with torch.no_grad():
                self._user_vectors = module.user_map(module.profiles).numpy().copy()
                self._item_vectors = module.item_map(module.x).numpy().copy()
                self._item_bias = module.item_bias(module.x).squeeze(-1).numpy().copy()
        else:
            self._user_vectors, self._item_vectors = profiles, x
            self._item_bias = np.zeros(x.shape[0], dtype=np.float32)
        self.train_seconds = time.perf_counter() - t0
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or n_items); items without the modality score below all others, never NaN."""
        if self._user_vectors is None or self._item_vectors is None or self.item_present is None:
            raise RuntimeError(f"{self.name}.score called before fit(); fit it on InteractionData first")
        cols = slice(None) if items is None else np.asarray(items)
        scores = self._user_vectors[np.atleast_1d(users)] @ self._item_vectors[cols].T + self._item_bias[cols]
        return put_missing_last(scores, self.item_present[cols])

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **asdict(self.config), "best_epoch": self.best_epoch}
