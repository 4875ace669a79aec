"""BPR from the `implicit` library (Rendle et al., 2009): matrix factorisation by pairwise SGD, CPU."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from core.data.interactions import InteractionData
from core.models.base import ProgressCallback
from core.models.implicit_common import (binary_user_items, factor_scores, factors_of, fit_quietly,
                                         usable_threads)


@dataclass
class ImplicitBPRConfig:
    """implicit.bpr.BayesianPersonalizedRanking settings; the benchmark chooses factors and learning_rate on
    validation (registry GRIDS)."""

    factors: int = 64  # latent dimensions (implicit adds one for the item bias)
    learning_rate: float = 0.01  # SGD step
    regularization: float = 0.01  # L2 on the factors
    iterations: int = 100  # passes over the training pairs
    threads: int = 0  # OpenMP threads (0 = the usable cores, at most 4); > 1 makes the Hogwild SGD vary run to run
    seed: int = 0  # implicit's random_state


class ImplicitBPR:
    """Ids only: implicit's BPR-MF (Hogwild SGD, one uniform negative per pair), no early stopping."""

    name = "implicit-bpr"
    kind = "baseline"

    def __init__(self, config: ImplicitBPRConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or ImplicitBPRConfig(), **overrides)
        self.history: list[dict] = []  # implicit trains without per-epoch reports
        self.train_seconds = 0.0
        self._user_vectors: np.ndarray | None = None
        self._item_vectors: np.ndarray | None = None

    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "ImplicitBPR":
        """Train on the binary training matrix with implicit's CPU BPR."""
        from implicit.bpr import BayesianPersonalizedRanking

        c = self.config
        t0 = time.perf_counter()
        model = fit_quietly(lambda: BayesianPersonalizedRanking(
            factors=c.factors, learning_rate=c.learning_rate, regularization=c.regularization,
            iterations=c.iterations, num_threads=usable_threads(c.threads), random_state=c.seed, use_gpu=False),
            binary_user_items(data))
        self._user_vectors, self._item_vectors = factors_of(model)
        self.train_seconds = time.perf_counter() - t0
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or n_items) dot products of user and item factors (bias included)."""
        return factor_scores(self._user_vectors, self._item_vectors, users, items, "ImplicitBPR")

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **asdict(self.config)}
