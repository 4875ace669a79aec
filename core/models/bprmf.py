"""BPR-MF: user and item id embeddings trained with the BPR pairwise loss; no content."""
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


@dataclass
class BPRMFConfig:
    """Matrix factorisation trained with BPR and early stopping on validation Recall@20."""

    dim: int = 64  # embedding size of users and items
    lr: float = 0.001  # Adam learning rate (selected on lfm2k validation)
    reg: float = 1e-4  # L2 weight on the batch's user/item embeddings
    epochs: int = 300  # upper bound; early stopping usually ends sooner
    batch_size: int = 2048  # (user, positive, negative) triples per step
    patience: int = 20  # epochs without a better validation Recall@20 before stopping
    seed: int = 0


class _MF(nn.Module):
    """score(u, i) = <p_u, q_i>."""

    def __init__(self, n_users: int, n_items: int, dim: int, reg: float) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users, dim)
        self.items = nn.Embedding(n_items, dim)
        nn.init.xavier_normal_(self.users.weight)
        nn.init.xavier_normal_(self.items.weight)
        self.reg = reg

    def bpr_scores(self, u: torch.Tensor, i: torch.Tensor,
                   j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pu, qi, qj = self.users(u), self.items(i), self.items(j)  # (B, D) each
        reg = self.reg * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / u.numel()
        return (pu * qi).sum(-1), (pu * qj).sum(-1), reg

    def full_scores(self, u: torch.Tensor) -> torch.Tensor:
        return self.users(u) @ self.items.weight.T  # (B, I)


class BPRMF:
    """Ids only: a strong collaborative baseline that cannot score items without interactions."""

    name = "bprmf"
    kind = "baseline"

    def __init__(self, config: BPRMFConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or BPRMFConfig(), **overrides)
        self.history: list[dict] = []
        self.best_epoch = 0
        self.train_seconds = 0.0
        self._user_vectors: np.ndarray | None = None  # (U, D)
        self._item_vectors: np.ndarray | None = None  # (I, D)

    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "BPRMF":
        """Train with BPR; keeps the epoch with the best validation Recall@20."""
        c = self.config
        t0 = time.perf_counter()
        torch.manual_seed(c.seed)
        module = _MF(data.n_users, data.n_items, c.dim, c.reg)
        self.history, self.best_epoch = fit_bpr(module, data, lr=c.lr, epochs=c.epochs,
                                                batch_size=c.batch_size, patience=c.patience,
                                                seed=c.seed, progress=progress)
        self._user_vectors = module.users.weight.detach().numpy().copy()
        self._item_vectors = module.items.weight.detach().numpy().copy()
        self.train_seconds = time.perf_counter() - t0
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or n_items) dot products of user and item embeddings."""
        if self._user_vectors is None or self._item_vectors is None:
            raise RuntimeError("BPRMF.score called before fit(); fit it on InteractionData first")
        q = self._item_vectors if items is None else self._item_vectors[np.asarray(items)]
        return (self._user_vectors[np.atleast_1d(users)] @ q.T).astype(np.float32)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **asdict(self.config), "best_epoch": self.best_epoch}
