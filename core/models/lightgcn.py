"""LightGCN on ids (He et al., 2020): user and item id embeddings propagated over the training graph, BPR
loss; no content. The propagation is core.models.graph's, the training loop core.models.bpr_training's."""
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
from core.models.graph import bipartite_adjacency, propagate, to_torch_sparse


@dataclass
class LightGCNConfig:
    """LightGCN with early stopping on validation Recall@20; the benchmark chooses layers and reg on
    validation (registry GRIDS)."""

    dim: int = 64  # embedding size of users and items
    layers: int = 2  # propagation steps; the final vector is the mean over steps 0..layers
    reg: float = 1e-4  # L2 on the batch's layer-0 embeddings (the LightGCN convention)
    lr: float = 0.005  # Adam learning rate
    epochs: int = 300  # upper bound; early stopping usually ends sooner
    batch_size: int = 2048  # (user, positive, negative) triples per step
    patience: int = 10  # epochs without a better validation Recall@20 before stopping
    seed: int = 0


class _LightGCN(nn.Module):
    """score(u, i) = <e_u, e_i> with e = mean_l Â^l E0 over the user–item graph."""

    def __init__(self, data: InteractionData, dim: int, layers: int, reg: float) -> None:
        super().__init__()
        self.n_users, self.n_items = data.n_users, data.n_items
        self.embedding = nn.Embedding(self.n_users + self.n_items, dim)  # users first, then items
        nn.init.xavier_uniform_(self.embedding.weight)
        users, items = data.train.nonzero()
        self.adjacency = to_torch_sparse(bipartite_adjacency(users, items, self.n_users, self.n_items))
        self.layers, self.reg = layers, reg

    def propagated(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, D) user and (I, D) item vectors after propagation."""
        e = propagate(self.adjacency, self.embedding.weight, self.layers)
        return e[: self.n_users], e[self.n_users:]

    def bpr_scores(self, u: torch.Tensor, i: torch.Tensor,
                   j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        users, items = self.propagated()
        pu, qi, qj = users[u], items[i], items[j]
        e0 = self.embedding.weight
        reg = self.reg * (e0[u].pow(2).sum() + e0[self.n_users + i].pow(2).sum()
                          + e0[self.n_users + j].pow(2).sum()) / (2 * u.numel())
        return (pu * qi).sum(-1), (pu * qj).sum(-1), reg

    def full_scores(self, u: torch.Tensor) -> torch.Tensor:
        users, items = self.propagated()
        return users[u] @ items.T  # (B, I)


class LightGCN:
    """Ids only: the graph-propagated collaborative baseline the fusion model's graph option builds on."""

    name = "lightgcn"
    kind = "baseline"

    def __init__(self, config: LightGCNConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or LightGCNConfig(), **overrides)
        if self.config.layers < 0:
            raise ValueError(f"LightGCN layers must be ≥ 0, got {self.config.layers}")
        self.history: list[dict] = []
        self.best_epoch = 0
        self.train_seconds = 0.0
        self._user_vectors: np.ndarray | None = None
        self._item_vectors: np.ndarray | None = None

    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "LightGCN":
        """Train with BPR; keeps the epoch with the best validation Recall@20."""
        c = self.config
        t0 = time.perf_counter()
        torch.manual_seed(c.seed)
        module = _LightGCN(data, c.dim, c.layers, c.reg)
        self.history, self.best_epoch = fit_bpr(module, data, lr=c.lr, epochs=c.epochs, batch_size=c.batch_size,
                                                patience=c.patience, seed=c.seed, progress=progress)
        with torch.no_grad():
            users, items = module.propagated()
        self._user_vectors, self._item_vectors = users.detach().numpy().copy(), items.detach().numpy().copy()
        self.train_seconds = time.perf_counter() - t0
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or n_items) dot products of the propagated vectors."""
        if self._user_vectors is None or self._item_vectors is None:
            raise RuntimeError("LightGCN.score called before fit(); fit it on InteractionData first")
        q = self._item_vectors if items is None else self._item_vectors[np.asarray(items)]
        return (self._user_vectors[np.atleast_1d(users)] @ q.T).astype(np.float32)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **asdict(self.config), "best_epoch": self.best_epoch}
