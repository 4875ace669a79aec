"""One tuning trial: train a fusion model with a trial's params on the training split, report the
validation metric after every epoch, return the best one. Only data.train and data.valid are read."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from core.data.interactions import InteractionData
from core.models.base import EpochReport
from core.models.fusion.config import FusionConfig
from core.tuning.space import apply

Report = Callable[[int, float], bool]  # (epoch, validation metric) -> True when the trial should stop

TRIAL_EPOCHS = 20  # epoch cap of one trial: trials must be cheap (pruned ones stop sooner), the final fit
#                   trains longer
TRIAL_PATIENCE = 6  # epochs without a better validation metric before a trial stops
FINAL_EPOCHS = 200  # epoch cap of the fit with the chosen configuration (early stopping ends sooner)
FINAL_PATIENCE = 15
METRIC = "ndcg@20"  # what the search maximises on the validation split
STEPS_PER_EPOCH = 8  # the batch size follows the data: about this many optimiser steps per epoch


def batch_size_for(data: InteractionData) -> int:
    """Training pairs per step: about STEPS_PER_EPOCH steps per epoch, between 1,024 and 8,192."""
    return int(min(8192, max(1024, math.ceil(data.train.nnz / STEPS_PER_EPOCH))))


def base_config(data: InteractionData, metric: str = METRIC, seed: int = 0) -> FusionConfig:
    """What every trial shares: id users, the data's batch size, the final fit's epochs and patience."""
    return FusionConfig(user_mode="id", batch_size=batch_size_for(data), epochs=FINAL_EPOCHS,
                        patience=FINAL_PATIENCE, valid_metric=metric, seed=seed)


def run_trial(params: dict[str, Any], data: InteractionData, report: Report | None = None, *,
              base: FusionConfig | None = None, max_epochs: int = TRIAL_EPOCHS,
              patience: int = TRIAL_PATIENCE) -> float:
    """Train one fusion model with `params` over the base config, calling report(epoch, valid_metric)
    after each epoch (True from it stops the trial: pruned); returns the best validation metric."""
    from core.models.fusion.recommender import FusionRecommender

    if data.valid.nnz == 0:
        raise ValueError("the validation split is empty: tuning needs validation interactions (use a split "
                         "with a valid share, e.g. --split random)")
    config = apply(base or base_config(data), params)
    # a trial scores the network alone: the collaborative term is fitted once, after the final fit
    config = replace(config, epochs=min(config.epochs, max_epochs), patience=min(config.patience, patience),
                     collaborative="none")
    best = -math.inf

    def on_epoch(r: EpochReport) -> bool:
        nonlocal best
        if r.valid_metric is None or not math.isfinite(r.valid_metric):
            return False
        best = max(best, r.valid_metric)
        return bool(report(r.epoch, r.valid_metric)) if report is not None else False

    FusionRecommender(config).fit(data, progress=on_epoch)
    return float(best)
