"""Tuning trials on Ray Tune: the same define-by-run search space and Optuna search as the local tune, run
through Ray Tune's OptunaSearch with ASHA (or median-stopping) pruning on the per-epoch validation metric.

Locally the trials run concurrently within the CPU count; on a cluster ("auto" or "ray://HOST:PORT"),
one trial per worker CPU slot. The search space is `core.tuning.space.suggest(trial)` and each trial is
`core.tuning.objective.run_trial(params, data, report)` (see the tuning package); both can be replaced,
e.g. by a test's stand-ins. A trial reports `valid_metric` after each epoch; the scheduler stops trials
that trail, and the best configuration is the best validation value any trial reached.
"""
from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import EngineError
from core.scale.ray_session import connect

log = logging.getLogger(__name__)

METRIC = "valid_metric"  # what trials report after each epoch (higher is better)
Space = Callable[[Any], dict[str, Any]]  # define-by-run: optuna.Trial -> params
Objective = Callable[..., float]  # (params, data, report) -> best validation metric
Progress = Callable[[int, int, str], None]


@dataclass
class RayTuneConfig:
    """How a tune runs on Ray."""

    trials: int = 20  # Optuna trials in all
    max_epochs: int = 100  # ASHA's max_t: the most epochs a trial may report
    scheduler: str = "asha"  # "asha" (successive halving) | "median" (median stopping rule)
    grace_period: int = 3  # epochs every trial runs before it may be stopped
    reduction_factor: int = 2  # ASHA: share of trials promoted at each rung is 1 / this
    seed: int = 0  # Optuna sampler seed
    concurrent: int | None = None  # trials at once (None = the session's CPUs ÷ cpus_per_trial)
    cpus_per_trial: float = 1.0  # CPUs Ray reserves per trial
    time_budget_s: float | None = None  # stop starting trials after this long (None = no limit)
    address: str | None = None  # None = Ray on this machine; "auto" or "ray://HOST:PORT" = a cluster
    storage_path: Path | None = None  # where Ray Tune keeps trial results (None = a temporary folder)

    def __post_init__(self) -> None:
        if self.scheduler not in ("asha", "median"):
            raise ValueError(f"RayTuneConfig.scheduler={self.scheduler!r}; choose 'asha' or 'median'")
        if self.trials < 1 or self.max_epochs < 1 or self.grace_period < 1:
            raise ValueError("RayTuneConfig trials, max_epochs and grace_period must be ≥ 1")


@dataclass
class RayTuneResult:
    """The best trial's parameters and validation metric, and every trial's outcome."""

    best_params: dict[str, Any]
    best_metric: float
    history: list[dict[str, Any]] = field(default_factory=list)  # per trial: params, metric, epochs, status
    seconds: float = 0.0
    engine: str = "ray"


def _trial(params: dict[str, Any], data: Any = None, objective: Objective | None = None) -> None:
    """One trial inside a Ray worker: run the objective, reporting each epoch's validation metric."""
    from ray import tune

    best = -math.inf
    reported = 0

    def report(epoch: int, value: float) -> bool:
        nonlocal best, reported
        value = float(value)
        if math.isfinite(value):
            best = max(best, value)
        reported += 1
        tune.report({METRIC: value, "best_valid": best, "epoch": int(epoch)})
        return False  # Ray stops a pruned trial itself: it never returns from report

    final = objective(dict(params), data, report)
    if reported == 0:  # an objective without epochs still gives the searcher its value
        tune.report({METRIC: float(final), "best_valid": float(final), "epoch": 0})


def tune_on_ray(data: Any, config: RayTuneConfig | None = None, *, space: Space | None = None,
                objective: Objective | None = None, progress: Progress | None = None) -> RayTuneResult:
    """Run the search on Ray Tune; returns the best parameters (FusionConfig overrides) and the trials."""
    config = config or RayTuneConfig()
    if space is None or objective is None:
        try:
            from core.tuning.objective import run_trial
            from core.tuning.space import suggest
        except ImportError as e:
            raise EngineError("the tuning package (core.tuning) is missing; pass space= and objective=") from e
        space, objective = space or suggest, objective or run_trial
    ray = connect(config.address)
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    concurrent = config.concurrent or max(1, int(cpus // config.cpus_per_trial))
    searcher = ConcurrencyLimiter(OptunaSearch(space=space, metric=METRIC, mode="max", seed=config.seed), max_concurrent=concurrent)
    if config.scheduler == "asha":
        scheduler = ASHAScheduler(metric=METRIC, mode="max", time_attr="training_iteration", max_t=config.max_epochs,
                                  grace_period=config.grace_period, reduction_factor=config.reduction_factor)
    else:
        scheduler = MedianStoppingRule(metric=METRIC, mode="max", time_attr="training_iteration",
                                       grace_period=config.grace_period,
                                       min_samples_required=2)
    trainable = tune.with_resources(tune.with_parameters(_trial, data=data, objective=objective),
                                    {"cpu": config.cpus_per_trial})
    storage = config.storage_path or Path(tempfile.mkdtemp(prefix="prism-tune-"))
    callbacks = [_ProgressCallback(progress, config.trials)] if progress is not None else []
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=config.trials, time_budget_s=config.time_budget_s),
        run_config=tune.RunConfig(storage_path=str(Path(storage).resolve()), name=f"prism-{int(time.time())}",
                                  verbose=0, callbacks=callbacks))
    start = time.perf_counter()
    grid = tuner.fit()
    seconds = time.perf_counter() - start
    history = []
    for result in grid:
        frame = result.metrics_dataframe
        values = frame[METRIC].tolist() if frame is not None and METRIC in frame else []
        finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        history.append({"params": dict(result.config), "valid_metric": max(finite) if finite else None,
                        "epochs": len(values), "status": "error" if result.error else
                        ("stopped" if len(values) < config.max_epochs and _was_stopped(result) else "completed")})
    scored = [h for h in history if h["valid_metric"] is not None]
    if not scored:
        errors = [str(r.error) for r in grid if r.error]
        raise EngineError(f"no Ray Tune trial reported a validation metric ({len(history)} trials"
                          + (f"; first error: {errors[0][:300]}" if errors else "") + ")")
    best = max(scored, key=lambda h: h["valid_metric"])
    return RayTuneResult(best_params=best["params"], best_metric=float(best["valid_metric"]), history=history,
                         seconds=seconds)


def _was_stopped(result: Any) -> bool:
    """Whether the scheduler ended a trial early (it reported fewer epochs than its objective ran)."""
    return not bool((result.metrics or {}).get("done", False))


class _ProgressCallback:
    """Ray Tune callback → progress(trials finished, trials, message)."""

    def __new__(cls, progress: Progress, total: int):
        from ray.tune import Callback

        class Reporter(Callback):
            def __init__(self) -> None:
                self.finished = 0
                self.best = -math.inf

            def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
                value = result.get(METRIC)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.best = max(self.best, float(value))
                progress(self.finished, total, f"trial {trial.trial_id}: epoch {result.get('epoch')} "
                                               f"{METRIC} {value:.4f} · best {self.best:.4f}")

            def on_trial_complete(self, iteration, trials, trial, **info) -> None:
                self.finished += 1
                progress(self.finished, total, f"{self.finished}/{total} trials · best {self.best:.4f}")

        return Reporter()


def fusion_config_of(result: RayTuneResult, base: Any) -> Any:
    """The FusionConfig the best trial trained: `base` with its overrides."""
    from dataclasses import fields, replace

    known = {f.name for f in fields(base)}
    return replace(base, **{k: v for k, v in result.best_params.items() if k in known})
