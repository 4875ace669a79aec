"""VBPR: BPR-MF plus a learned linear projection of each item's content features (He & McAuley, 2016)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from core.data.interactions import InteractionData
from core.models.base import ProgressCallback
from core.models.bpr_training import fit_bpr
from core.models.content import aligned_embeddings, field_features


@dataclass
class VBPRConfig:
    """Id factors plus content factors; the content is every field of the embedding set, concatenated."""

    dim: int = 64  # id embedding size (gamma_u, gamma_i)
    content_dim: int = 64  # size of the projected content (theta_u, E f_i)
    lr: float = 0.001  # Adam learning rate
    reg: float = 1e-5  # L2 weight on the batch's user/item factors and item biases
    epochs: int = 300  # upper bound; early stopping usually ends sooner
    batch_size: int = 2048  # (user, positive, negative) triples per step
    patience: int = 20  # epochs without a better validation Recall@20 before stopping
    seed: int = 0


class _VBPR(nn.Module):
    """score(u, i) = <gamma_u, gamma_i> + <theta_u, E f_i> + beta_i + beta'·f_i."""

    def __init__(self, n_users: int, features: np.ndarray, dim: int, content_dim: int, reg: float) -> None:
        super().__init__()
        n_items, n_features = features.shape
        self.register_buffer("features", torch.as_tensor(features))  # (I, F)
        self.gamma_u = nn.Embedding(n_users, dim)
        self.gamma_i = nn.Embedding(n_items, dim)
        self.theta_u = nn.Embedding(n_users, content_dim)
        self.project = nn.Linear(n_features, content_dim, bias=False)  # E
        self.beta_i = nn.Embedding(n_items, 1)
        self.content_bias = nn.Linear(n_features, 1, bias=False)  # beta'
        for emb in (self.gamma_u, self.gamma_i, self.theta_u):
            nn.init.xavier_normal_(emb.weight)
        nn.init.zeros_(self.beta_i.weight)
        nn.init.zeros_(self.content_bias.weight)
        self.reg = reg

    def _items(self, i: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Id factors (B, D), projected content (B, C) and bias (B,) of items i (all items when None)."""
        f = self.features if i is None else self.features[i]
        gi = self.gamma_i.weight if i is None else self.gamma_i(i)
        bi = (self.beta_i.weight if i is None else self.beta_i(i)).squeeze(-1)
        return gi, self.project(f), bi + self.content_bias(f).squeeze(-1)

    def bpr_scores(self, u: torch.Tensor, i: torch.Tensor,
                   j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gu, tu = self.gamma_u(u), self.theta_u(u)  # (B, D), (B, C)
        if 2 * u.numel() >= self.features.shape[0]:
            # a batch's 2B items outnumber the catalog: project every item's content once and pick rows
            # (the same scores and gradients, fewer multiplications by the wide feature matrix)
            _, content, bias = self._items(None)
            gi, ci, bi = self.gamma_i(i), content[i], self.beta_i(i).squeeze(-1) + bias[i]
            gj, cj, bj = self.gamma_i(j), content[j], self.beta_i(j).squeeze(-1) + bias[j]
        else:
            gi, ci, bi = self._items(i)
            gj, cj, bj = self._items(j)
        pos = (gu * gi).sum(-1) + (tu * ci).sum(-1) + bi
        neg = (gu * gj).sum(-1) + (tu * cj).sum(-1) + bj
        reg = self.reg * (gu.pow(2).sum() + tu.pow(2).sum() + gi.pow(2).sum() + gj.pow(2).sum()
                          + bi.pow(2).sum() + bj.pow(2).sum()) / u.numel()
        return pos, neg, reg

    def full_scores(self, u: torch.Tensor) -> torch.Tensor:
        gi, ci, bi = self._items(None)
        return self.gamma_u(u) @ gi.T + self.theta_u(u) @ ci.T + bi  # (B, I)


class VBPR:
    """Ids + content: cold items still get a score from their projected content and content bias."""

    name = "vbpr"
    kind = "baseline"

    def __init__(self, config: VBPRConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or VBPRConfig(), **overrides)
        self.history: list[dict] = []
        self.best_epoch = 0
        self.train_seconds = 0.0
        self.fields: list[str] = []
        self._user_vectors: np.ndarray | None = None  # (U, D + C)
        self._item_vectors: np.ndarray | None = None  # (I, D + C)
        self._item_bias: np.ndarray | None = None  # (I,)

    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "VBPR":
        """Train with BPR on the concatenated, L2-normalised content of every field; keeps the best epoch."""
        c = self.config
        t0 = time.perf_counter()
        emb = aligned_embeddings(data, self.name)
        self.fields = emb.fields
        features, _ = field_features(emb, self.fields)
        torch.manual_seed(c.seed)
        module = _VBPR(data.n_users, features, c.dim, c.content_dim, c.reg)
        self.history, self.best_epoch = fit_bpr(module, data, lr=c.lr, epochs=c.epochs,
                                                batch_size=c.batch_size, patience=c.patience,
                                                seed=c.seed, progress=progress)
        with torch.no_grad():
            gi, ci, bi = module._items(None)
            self._user_vectors = torch.cat([module.gamma_u.weight, module.theta_u.weight], 1).numpy().copy()
            self._item_vectors = torch.cat([gi, ci], 1).numpy().copy()
            self._item_bias = bi.numpy().copy()
        self.train_seconds = time.perf_counter() - t0
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or n_items) id + content scores."""
        if self._user_vectors is None or self._item_vectors is None or self._item_bias is None:
            raise RuntimeError("VBPR.score called before fit(); fit it on InteractionData first")
        cols = slice(None) if items is None else np.asarray(items)
        return (self._user_vectors[np.atleast_1d(users)] @ self._item_vectors[cols].T
                + self._item_bias[cols]).astype(np.float32)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **asdict(self.config), "fields": self.fields,
                "best_epoch": self.best_epoch}
