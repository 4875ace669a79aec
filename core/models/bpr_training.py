"""The BPR training loop shared by the trained baselines (BPRMF, VBPR, content models)."""
from __future__ import annotations

import copy
import time
from typing import Protocol

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from core.data.interactions import InteractionData
from core.models.base import EpochReport, ProgressCallback
from core.models.early_stopping import EarlyStopping, validation_recall


class BPRModule(Protocol):
    """What the loop needs from a torch module: pairwise scores for a batch and full scores for users."""

    def bpr_scores(self, users: torch.Tensor, pos: torch.Tensor,
                   neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B,) positive scores, (B,) negative scores, scalar regulariser."""
        ...

    def full_scores(self, users: torch.Tensor) -> torch.Tensor:
        """(B, n_items) scores."""
        ...


def sample_triples(train: sp.csr_matrix, rng: np.random.Generator,
                   max_tries: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of (user, positive, negative): every training pair once, shuffled, with a uniform unseen negative."""
    train = sp.csr_matrix(train)
    n_items = train.shape[1]
    users = np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(train.indptr))
    pos = train.indices.astype(np.int64)
    keys = np.sort(users * n_items + pos)
    order = rng.permutation(users.size)
    users, pos = users[order], pos[order]
    neg = rng.integers(0, n_items, size=users.size)
    # rejection sampling, vectorised: redraw only the negatives that hit a training positive
    for _ in range(max_tries):
        probe = users * n_items + neg
        at = np.minimum(np.searchsorted(keys, probe), keys.size - 1)
        bad = keys[at] == probe
        if not bad.any():
            break
        neg[bad] = rng.integers(0, n_items, size=int(bad.sum()))
    return users, pos, neg


def fit_bpr(module: torch.nn.Module, data: InteractionData, *, lr: float, epochs: int, batch_size: int,
            patience: int, seed: int, valid_k: int = 20, weight_decay: float = 0.0,
            progress: ProgressCallback | None = None) -> tuple[list[dict], int]:
    """Train `module` with BPR and Adam, early-stopping on validation Recall@valid_k; restores the best weights.

    Returns the per-epoch history and the best epoch (1-based; the last epoch when there is no validation data).
    """
    if data.train.nnz == 0:
        raise ValueError("the training matrix has no interactions; nothing to fit "
                         "(check the split: train = x_label 0 / the 'train' share)")
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    stopper = EarlyStopping(patience)
    has_valid = data.valid.nnz > 0
    metric_name = f"recall@{valid_k}"
    history: list[dict] = []

    def score_fn(users: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module.full_scores(torch.as_tensor(users, dtype=torch.long)).numpy()

    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        module.train()
        users, pos, neg = (torch.as_tensor(a) for a in sample_triples(data.train, rng))
        total, n = 0.0, 0
        for start in range(0, users.numel(), batch_size):
            u, i, j = users[start:start + batch_size], pos[start:start + batch_size], neg[start:start + batch_size]
            x_pos, x_neg, reg = module.bpr_scores(u, i, j)
            loss = -F.logsigmoid(x_pos - x_neg).mean() + reg
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * u.numel()
            n += u.numel()
        module.eval()
        valid = validation_recall(score_fn, data, valid_k) if has_valid else None
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch, "loss": total / max(n, 1), "valid_metric": valid,
                        "metric_name": metric_name, "seconds": seconds})
        if progress is not None:
            progress(EpochReport(epoch=epoch, epochs=epochs, loss=total / max(n, 1), valid_metric=valid,
                                 metric_name=metric_name, seconds=seconds))
        if has_valid and stopper.update(epoch, valid, lambda: copy.deepcopy(module.state_dict())):
            break
    if has_valid and stopper.best_state is not None:
        module.load_state_dict(stopper.best_state)
        return history, stopper.best_epoch
    return history, len(history)
