"""ALS: implicit-feedback matrix factorisation by alternating least squares (Hu, Koren & Volinsky, 2008),
trained by the `implicit` library (CPU)."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from core.data.interactions import InteractionData
from core.models.base import ProgressCallback
from core.models.implicit_common import (binary_user_items, factor_scores, factors_of, fit_quietly,
                                         usable_threads)

log = logging.getLogger(__name__)


@dataclass
class ALSConfig:
    """implicit.als.AlternatingLeastSquares settings; the benchmark chooses factors, regularization and alpha
    on validation (registry GRIDS)."""

    factors: int = 64  # latent dimensions
    regularization: float = 0.05  # L2 on user and item factors
    alpha: float = 10.0  # confidence of an observed pair: 1 + alpha
    iterations: int = 15  # ALS sweeps
    threads: int = 0  # OpenMP threads (0 = the usable cores, at most 4)
    seed: int = 0  # implicit's random_state


class ALS:
    """Ids only: user and item factors from weighted least squares over all (user, item) cells."""

    name = "als"
    kind = "baseline"

    def __init__(self, config: ALSConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or ALSConfig(), **overrides)
        self.history: list[dict] = []  # implicit trains without per-epoch reports
        self.train_seconds = 0.0
        self.iteration_seconds: list[float] = []  # wall time of each ALS sweep, as implicit reports it
        self._user_vectors: np.ndarray | None = None
        self._item_vectors: np.ndarray | None = None

    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "ALS":
        """Train on the binary training matrix with implicit's CPU ALS."""
        from implicit.als import AlternatingLeastSquares

        c = self.config
        t0 = time.perf_counter()
        self.iteration_seconds = []
        model = fit_quietly(lambda: AlternatingLeastSquares(
            factors=c.factors, regularization=c.regularization, alpha=c.alpha, iterations=c.iterations,
            num_threads=usable_threads(c.threads), random_state=c.seed, use_gpu=False), binary_user_items(data),
            callback=lambda iteration, seconds, loss: self._sweep_done(iteration, seconds))
        self._user_vectors, self._item_vectors = factors_of(model)
        self.train_seconds = time.perf_counter() - t0
        return self

    def _sweep_done(self, iteration: int, seconds: float) -> None:
        """Record one ALS sweep's time and log it (ALS has no loss or validation to report as an epoch)."""
        self.iteration_seconds.append(float(seconds))
        log.info("ALS sweep %d/%d: %.1f s", iteration + 1, self.config.iterations, seconds)

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or n_items) dot products of user and item factors."""
        return factor_scores(self._user_vectors, self._item_vectors, users, items, "ALS")

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **asdict(self.config)}
