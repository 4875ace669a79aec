"""The search: an Optuna study (TPE, seeded) over core.tuning.space on the validation split, pruning
trials on their per-epoch validation metric (median rule), starting from the hand-chosen configurations.

Runs in-process by default; every trial is one call of core.tuning.objective.run_trial, so the same
objective runs under any other trial scheduler.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from core.data.interactions import InteractionData
from core.models.fusion.config import FusionConfig
from core.tuning import objective, space
from core.tuning.ranges import extend, near_edge

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (done, total, message): trials, or seconds with a budget only
PRUNERS = ("median", "halving")
HALVING_FACTOR = 3  # successive halving keeps the best 1/HALVING_FACTOR of the trials at each rung


@dataclass
class TuneConfig:
    """How long and how a search runs."""

    trials: int | None = 30  # stop after this many trials (None: only the budget stops it)
    budget_minutes: float | None = None  # stop starting trials after this long (None: only `trials` stops it)
    seed: int = 0  # seeds the sampler and every trial's training
    metric: str = objective.METRIC  # validation metric maximised
    trial_epochs: int = objective.TRIAL_EPOCHS  # epoch cap of one trial
    trial_patience: int = objective.TRIAL_PATIENCE  # early-stopping patience within a trial
    startup_trials: int = 3  # trials completed before the pruner may prune
    warmup_epochs: int = 3  # epochs of a trial before it may be pruned
    starting_points: bool = True  # enqueue space.STARTING_POINTS as the first trials
    pruner: str = "median"  # "median": a trial below the median of earlier trials at the same epoch stops;
    #                         "halving": asynchronous successive halving, rungs at warmup_epochs × 3^k epochs,
    #                         where a trial goes on only among the best third of the trials that reached its rung
    n_jobs: int = 1  # trials run at once (threads; torch ops release the GIL). Above 1 the order in which
    #                  trials finish varies, so a search is only reproducible from its seed with n_jobs = 1

    def __post_init__(self) -> None:
        if self.trials is None and self.budget_minutes is None:
            raise ValueError("a search needs a stop: give trials (e.g. 30) or budget_minutes (e.g. 10)")
        if self.trials is not None and self.trials < 1:
            raise ValueError(f"trials={self.trials}; give at least 1")
        if self.n_jobs < 1:
            raise ValueError(f"n_jobs={self.n_jobs}; give at least 1")
        if self.pruner not in PRUNERS:
            raise ValueError(f"pruner={self.pruner!r}; choose one of {PRUNERS}")
        if self.trial_epochs < 1:
            raise ValueError(f"trial_epochs={self.trial_epochs}; give at least 1")
        if self.budget_minutes is not None and not self.budget_minutes > 0:
            raise ValueError(f"budget_minutes={self.budget_minutes}; give a positive number of minutes")
        from core.limits import check_option  # the declared upper ends (the CLI and the Train page read them too)

        for key, value in (("trials", self.trials), ("budget_minutes", self.budget_minutes), ("jobs", self.n_jobs),
                           ("trial_epochs", self.trial_epochs), ("seed", self.seed)):
            if value is not None:
                check_option(key, value, f"TuneConfig {key}")


@dataclass
class TuneResult:
    """What a search found."""

    config: FusionConfig  # the best trial's configuration, with the final fit's epochs and patience
    params: dict[str, Any]  # the best trial's params
    value: float  # its validation metric
    metric: str
    history: list[dict[str, Any]] = field(default_factory=list)  # number, state, value, params, epochs, seconds
    seconds: float = 0.0
    # every range extension: {"setting", "side", "after_trial", "from": [low, high], "to": [low, high]}
    extensions: list[dict[str, Any]] = field(default_factory=list)
    at_edge: list[str] = field(default_factory=list)  # settings whose best value still lies at an edge at the end

    @property
    def n_trials(self) -> int:
        return len(self.history)

    @property
    def n_pruned(self) -> int:
        return sum(h["state"] == "pruned" for h in self.history)

    def valid_metric(self) -> dict[str, Any]:
        """The figure stored beside the tuned configuration."""
        return {"name": self.metric, "value": self.value, "split": "valid", "trials": self.n_trials,
                "pruned": self.n_pruned, "seconds": round(self.seconds, 1), "extensions": self.extensions,
                "at_edge": self.at_edge}


def make_sampler(config: TuneConfig) -> Any:
    """The search's Optuna sampler: multivariate TPE seeded with config.seed (the Ray engine uses it too)."""
    import optuna

    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=max(config.startup_trials, 4),
                                      multivariate=True)


def create_study(config: TuneConfig) -> Any:
    """The one study every search runs in (the fusion model's and each baseline's, core.tuning.baselines):
    maximising, the seeded TPE sampler of `make_sampler`, and either median pruning after `startup_trials`
    trials and `warmup_epochs` epochs, or successive halving (multi-fidelity: a trial's first rung is at
    `warmup_epochs` epochs, so a poor point costs a few epochs and a good one trains on)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if config.pruner == "halving":
        pruner: Any = optuna.pruners.SuccessiveHalvingPruner(min_resource=max(config.warmup_epochs, 1),
                                                             reduction_factor=HALVING_FACTOR)
    else:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=config.startup_trials,
                                             n_warmup_steps=config.warmup_epochs)
    return optuna.create_study(direction="maximize", sampler=make_sampler(config), pruner=pruner)


def tune(data: InteractionData, config: TuneConfig | None = None, base: FusionConfig | None = None,
         progress: Progress | None = None) -> TuneResult:
    """Search the fusion space on data.valid; returns the best configuration found."""
    import optuna

    config = config or TuneConfig()
    base = base or objective.base_config(data, config.metric, config.seed)
    base = replace(base, valid_metric=config.metric, seed=config.seed)
    study = create_study(config)
    if config.starting_points:
        for start in space.STARTING_POINTS.values():
            study.enqueue_trial(space.params_of(start), skip_if_exists=True)
    history: list[dict[str, Any]] = []  # in order of trial number
    rows: dict[int, dict[str, Any]] = {}
    t0 = time.perf_counter()
    budget_s = None if config.budget_minutes is None else 60.0 * config.budget_minutes

    ranges = space.initial_ranges()  # extended in place when the best point reaches an edge (see `after`)
    extensions: list[dict[str, Any]] = []

    def run(trial: Any) -> float:
        params = space.suggest(trial, dict(ranges))
        curve: list[float] = []
        pruned = False

        def report(epoch: int, value: float) -> bool:
            nonlocal pruned
            curve.append(float(value))
            trial.report(float(value), epoch)
            pruned = trial.should_prune()
            return pruned

        start, cpu_start = time.perf_counter(), time.thread_time()  # trials may share the process: its thread
        row = {"number": trial.number, "params": params, "state": "failed", "value": None, "epochs": 0,
               "seconds": 0.0, "cpu_seconds": 0.0, "curve": curve}
        rows[trial.number] = row
        try:
            value = objective.run_trial(params, data, report, base=base, max_epochs=config.trial_epochs,
                                        patience=config.trial_patience)
        except ValueError as e:  # diverged or an impossible combination: the search goes on
            row.update(seconds=time.perf_counter() - start, cpu_seconds=time.thread_time() - cpu_start,
                       error=str(e), epochs=len(curve))
            raise
        row.update(value=value if math.isfinite(value) else None, epochs=len(curve),
                   seconds=time.perf_counter() - start, cpu_seconds=time.thread_time() - cpu_start,
                   state="pruned" if pruned else "complete")
        if pruned:
            raise optuna.TrialPruned(f"pruned at epoch {len(curve)}")
        return value

    def after(study_: Any, trial: Any) -> None:
        row = rows[trial.number]
        history[:] = [rows[n] for n in sorted(rows)]
        best = best_trial(history)
        done, total = (len(history), config.trials) if config.trials is not None else \
            (int(time.perf_counter() - t0), int(budget_s or 0))
        value = "-" if row["value"] is None else f"{row['value']:.4f}"
        message = (f"trial {row['number']} {row['state']} after {row['epochs']} epochs ({row['seconds']:.0f} s): "
                   f"{config.metric} {value} · best {best['value']:.4f}" if best else
                   f"trial {row['number']} {row['state']}")
        if row.get("error"):
            message += f" ({row['error'][:200]})"
        if best is not None and row is best:
            for grown in extend_at_edges(best["params"], ranges, trial.number):
                extensions.append(grown)
                message += (f"; {grown['setting']} {best['params'][grown['setting']]:.3g} at the {grown['side']} "
                            f"edge: range extended to [{grown['to'][0]:.3g}, {grown['to'][1]:.3g}]")
        log.info(message)
        if progress is not None:
            progress(done, total, message)

    study.optimize(run, n_trials=config.trials, timeout=budget_s, catch=(ValueError,), callbacks=[after],
                   n_jobs=config.n_jobs)
    history[:] = [rows[n] for n in sorted(rows)]
    best = best_trial(history)
    if best is None:
        raise ValueError(f"no trial of the search finished with a {config.metric} on validation "
                         f"({len(history)} trial(s)); check the split and the embeddings")
    chosen = space.apply(base, best["params"])
    at_edge = [k for k, spec in space.EXTENDABLE.items() if near_edge(float(best["params"][k]), spec, *ranges[k])]
    return TuneResult(config=chosen, params=dict(best["params"]), value=float(best["value"]), metric=config.metric,
                      history=history, seconds=time.perf_counter() - t0, extensions=extensions, at_edge=at_edge)


def extend_at_edges(params: dict[str, Any], ranges: dict[str, tuple[float, float]],
                    after_trial: int) -> list[dict[str, Any]]:
    """Extend (in place) every extendable range whose edge `params` (a new best point) lies at; returns one
    record per extension. The trials after it draw from the wider range."""
    grown_records = []
    for k, spec in space.EXTENDABLE.items():
        low, high = ranges[k]
        side = near_edge(float(params[k]), spec, low, high)
        grown = extend(spec, low, high, side) if side else None
        if grown is not None:
            ranges[k] = grown
            grown_records.append({"setting": k, "side": side, "after_trial": after_trial, "from": [low, high],
                                  "to": list(grown)})
    return grown_records


def best_trial(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trial with the highest validation value (pruned trials count with their value so far only when
    no trial completed)."""
    done = [h for h in history if h["state"] == "complete" and h["value"] is not None]
    pool = done or [h for h in history if h["value"] is not None]
    return max(pool, key=lambda h: h["value"]) if pool else None
