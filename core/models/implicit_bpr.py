"""BPR from the `implicit` library (Rendle et al., 2009): matrix factorisation by pairwise SGD, CPU."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from core.data.interactions import InteractionData
from core.models.base import EpochReport, ProgressCallback
from core.models.early_stopping import EarlyStopping, validation_recall
from core.models.implicit_common import (binary_user_items, factor_scores, factors_of, fit_quietly,
                                         usable_threads)


@dataclass
class ImplicitBPRConfig:
    """implicit.bpr.BayesianPersonalizedRanking settings; factors, learning_rate and regularization are searched
    on validation (core.tuning.baselines), the number of iterations is chosen by early stopping."""

    factors: int = 64  # latent dimensions (implicit adds one for the item bias)
    learning_rate: float = 0.01  # SGD step
    regularization: float = 0.01  # L2 on the factors
    # passes over the training pairs: an upper bound when early stopping runs (validation data and
    # check_every > 0), all of them otherwise. Good points on Last.fm-2K peak after 1,000-1,500 passes.
    iterations: int = 3000
    check_every: int = 50  # passes between two validation checks (0: no early stopping, `iterations` passes)
    patience: int = 10  # checks in a row without a better validation Recall@20 before stopping
    threads: int = 0  # OpenMP threads (0 = the usable cores, at most 4); > 1 makes the Hogwild SGD vary run to run
    seed: int = 0  # implicit's random_state


class _Stop(Exception):
    """Raised from implicit's per-pass callback to end training (early stopping or a pruned trial)."""


class ImplicitBPR:
    """Ids only: implicit's BPR-MF (Hogwild SGD, one uniform negative per pair), early-stopped on validation
    Recall@20 checked every `check_every` passes; the best check's factors are kept."""

    name = "implicit-bpr"
    kind = "baseline"

    def __init__(self, config: ImplicitBPRConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or ImplicitBPRConfig(), **overrides)
        if self.config.iterations < 1 or self.config.check_every < 0 or self.config.patience < 1:
            raise ValueError(f"implicit-bpr needs iterations >= 1, check_every >= 0 and patience >= 1 (got "
                             f"{self.config.iterations}, {self.config.check_every}, {self.config.patience})")
        self.history: list[dict] = []  # one row per validation check
        self.best_iterations = 0  # the passes behind the kept factors
        self.train_seconds = 0.0
        self._user_vectors: np.ndarray | None = None
        self._item_vectors: np.ndarray | None = None

    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "ImplicitBPR":
        """Train on the binary training matrix with implicit's CPU BPR; with validation data, check validation
        Recall@20 every `check_every` passes, stop after `patience` checks without a better one and keep the
        best check's factors. `progress` gets one EpochReport per check (epoch = the check's number); returning
        True stops training."""
        from implicit.bpr import BayesianPersonalizedRanking

        c = self.config
        checking = c.check_every > 0 and data.valid.nnz > 0
        n_checks = math.ceil(c.iterations / c.check_every) if checking else 0
        stopper = EarlyStopping(c.patience)
        self.history = []
        made: list[Any] = []
        t0 = last = time.perf_counter()

        def make() -> Any:
            made.append(BayesianPersonalizedRanking(
                factors=c.factors, learning_rate=c.learning_rate, regularization=c.regularization,
                iterations=c.iterations, num_threads=usable_threads(c.threads), random_state=c.seed, use_gpu=False))
            return made[0]

        def check(iteration: int, _seconds: float, correct: int = 0, skipped: int = 0) -> None:
            nonlocal last
            done = iteration + 1
            if not checking or (done % c.check_every and done != c.iterations):
                return
            users, items = factors_of(made[0])
            value = validation_recall(lambda rows: users[rows] @ items.T, data, 20)
            epoch, now = len(self.history) + 1, time.perf_counter()
            # a pass samples one pair per training interaction and counts those it already ranked correctly
            # (skipping a negative the user liked): the share it got wrong stands in for a loss
            ranked = user_items.nnz - skipped
            loss = 1.0 - correct / ranked if ranked > 0 else float("nan")
            self.history.append({"epoch": epoch, "iterations": done, "loss": loss, "valid_metric": value,
                                 "metric_name": "recall@20", "seconds": now - last})
            last = now
            stop = stopper.update(done, value, lambda: (users.copy(), items.copy()))
            if progress is not None and progress(EpochReport(epoch=epoch, epochs=n_checks, loss=loss,
                                                             valid_metric=value, metric_name="recall@20",
                                                             seconds=self.history[-1]["seconds"])):
                stop = True
            if stop:
                raise _Stop

        user_items = binary_user_items(data)
        try:
            model = fit_quietly(make, user_items, check)
        except _Stop:
            model = made[0]
        if checking and stopper.best_state is not None:
            self._user_vectors, self._item_vectors = stopper.best_state
            self.best_iterations = stopper.best_epoch
        else:
            self._user_vectors, self._item_vectors = (np.array(a) for a in factors_of(model))
            self.best_iterations = c.iterations
        self.train_seconds = time.perf_counter() - t0
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or n_items) dot products of user and item factors (bias included)."""
        return factor_scores(self._user_vectors, self._item_vectors, users, items, "ImplicitBPR")

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **asdict(self.config)}
