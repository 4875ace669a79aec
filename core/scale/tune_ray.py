"""Tuning trials on Ray Tune: the same define-by-run search space and Optuna search as the local tune, run
through Ray Tune's OptunaSearch with ASHA (or median-stopping) pruning on the per-epoch validation metric.

Locally the trials run concurrently within the CPU count; on a cluster ("auto" or "ray://HOST:PORT"),
one trial per worker CPU slot. The search space is `core.tuning.space.suggest(trial)` and each trial is
`core.tuning.objective.run_trial(params, data, report)` (see the tuning package); both can be replaced,
e.g. by a test's stand-ins. A trial reports `valid_metric` after each epoch; the scheduler stops trials
that trail, and the best configuration is the best validation value any trial reached.
`tune_study_on_ray` runs the local search (core.tuning.study.TuneConfig: seed, sampler, starting points,
trial epochs and patience) this way and returns its TuneResult.

With `trial_workers` set, each trial's fit runs on Ray Train (core.scale.ray_train.RayTrainEngine, that many
workers): the trial is the Train run's driver, and the epochs the workers report reach the scheduler as before.
Ray Train (v2) reserves its workers' CPUs in a placement group of its own, not the trial's, so the trial asks
for no CPU and the search runs as many trials at once as the CPUs hold Train runs (Ray Train's guidance for
Train inside Tune: the trial as a driver, max_concurrent_trials set from the workers' resources).
Such a trial is not stopped by Tune ending its process: that would leave its Train run's placement group
reserved (Ray Train's cleaner for it needs the dashboard's state API, which a local Prism session does not
start) and the next trials waiting for CPUs. The scheduler decides as before, and its decision reaches the
trial, which stops its Train run (after the epoch the workers are in) and returns.
"""
from __future__ import annotations

import logging
import math
import os
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
BEST = "best_valid"  # the trial's best validation metric so far: what the searcher and the scheduler compare,
#                      as the local study's objective returns its trial's best epoch
Space = Callable[[Any], dict[str, Any]]  # define-by-run: optuna.Trial -> params
Objective = Callable[..., float]  # (params, data, report) -> best validation metric
Progress = Callable[[int, int, str], None]
# a trial whose fit runs on Ray Train only drives the run: no CPU of its own (Ray Train reserves the workers'),
# a token of memory because a Tune trial must ask for some resource
TRAIN_DRIVER_RESOURCES = {"cpu": 0, "memory": 2 ** 20}
VERDICT_WAIT_S = 60.0  # how long a trial on Ray Train waits for the scheduler's decision on an epoch


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
    sampler: Any = None  # an Optuna sampler (None = Optuna's TPE seeded with `seed`)
    starting_points: list[dict[str, Any]] = field(default_factory=list)  # params tried first, in order
    trial_workers: int | None = None  # each trial's fit on Ray Train with this many workers, one CPU each
    #                                   (None = the trial trains in its own process, on cpus_per_trial)

    def __post_init__(self) -> None:
        if self.scheduler not in ("asha", "median"):
            raise ValueError(f"RayTuneConfig.scheduler={self.scheduler!r}; choose 'asha' or 'median'")
        if self.trials < 1 or self.max_epochs < 1 or self.grace_period < 1:
            raise ValueError("RayTuneConfig trials, max_epochs and grace_period must be ≥ 1")
        if self.trial_workers is not None and self.trial_workers < 1:
            raise ValueError(f"RayTuneConfig.trial_workers={self.trial_workers}; give at least 1 worker, or None "
                             "to train each trial in its own process")

    @property
    def trial_cpus(self) -> float:
        """CPUs one trial holds while it trains: its own, or its Ray Train workers'."""
        return float(self.trial_workers) if self.trial_workers else self.cpus_per_trial


@dataclass
class RayTuneResult:
    """The best trial's parameters and validation metric, and every trial's outcome."""

    best_params: dict[str, Any]
    best_metric: float
    history: list[dict[str, Any]] = field(default_factory=list)  # per trial: params, valid_metric, epochs,
    #                                                                 status, seconds, cpu_seconds, error,
    #                                                                 train_workers (trials on Ray Train)
    seconds: float = 0.0
    engine: str = "ray"


class _Verdicts:
    """The scheduler's decision on each epoch of the trials that train on Ray Train, which those trials read
    (a Ray actor in the search's session)."""

    def __init__(self) -> None:
        self.decided: dict[str, int] = {}  # trial id -> the last iteration decided
        self.stop_at: dict[str, int] = {}  # trial id -> the iteration the scheduler stopped it at

    def record(self, trial_id: str, iteration: int, stop: bool) -> None:
        self.decided[trial_id] = max(iteration, self.decided.get(trial_id, 0))
        if stop:
            self.stop_at.setdefault(trial_id, iteration)

    def read(self, trial_id: str, iteration: int) -> bool | None:
        """True: stop; False: go on; None: the scheduler has not seen this iteration yet."""
        if trial_id in self.stop_at:
            return True
        return False if self.decided.get(trial_id, 0) >= iteration else None


def _await_verdict(verdicts: Any, trial_id: str, iteration: int, wait_s: float = VERDICT_WAIT_S) -> bool:
    """Whether the scheduler stopped the trial at `iteration` (or before); False when no decision came in time."""
    import ray

    deadline = time.monotonic() + wait_s
    while True:
        stop = ray.get(verdicts.read.remote(trial_id, iteration))
        if stop is not None:
            return bool(stop)
        if time.monotonic() >= deadline:
            log.warning("trial %s: no scheduler decision on iteration %d within %.0f s; going on",
                        trial_id, iteration, wait_s)
            return False
        time.sleep(0.05)


def _trial(params: dict[str, Any], data: Any = None, objective: Objective | None = None,
           trial_workers: int | None = None, verdicts: Any = None) -> None:
    """One trial inside a Ray worker: run the objective, reporting each epoch's validation metric; with
    `trial_workers`, the objective's fit runs on that many Ray Train workers and stops when `verdicts` says
    the scheduler stopped the trial."""
    from contextlib import nullcontext

    from ray import tune

    best = -math.inf
    reported = 0
    cpu0 = time.process_time()  # the trial's own CPU time (the worker's start-up and imports excluded)
    on_train = 0  # Ray Train workers of the fit running now (0 = none): an epoch reported meanwhile came from them
    trial_id = tune.get_context().get_trial_id() if verdicts is not None else None

    def report(epoch: int, value: float) -> bool:
        nonlocal best, reported
        value = float(value)
        if math.isfinite(value):
            best = max(best, value)
        reported += 1
        row = {METRIC: value, BEST: best, "epoch": int(epoch)}
        if trial_workers:  # the workers' CPU is not this driver's: no cpu_seconds
            row["train_workers"] = on_train
        else:
            row["cpu_seconds"] = time.process_time() - cpu0
        tune.report(row)
        if verdicts is None:
            return False  # Ray stops a pruned trial itself: it never returns from report
        return _await_verdict(verdicts, trial_id, reported)  # True ends the Train run: the trial returns

    block = nullcontext()
    if trial_workers:
        from core.models.fusion.train import training_engine
        from core.scale.ray_train import RayTrainEngine

        engine = RayTrainEngine(workers=trial_workers)

        def on_ray_train(net: Any, train_data: Any, config: Any, progress: Any = None) -> Any:
            nonlocal on_train
            on_train = engine.workers
            try:
                return engine(net, train_data, config, progress)
            finally:
                on_train = 0

        block = training_engine(on_ray_train)
    with block:
        final = objective(dict(params), data, report)
    if reported == 0:  # an objective without epochs still gives the searcher its value
        row = {METRIC: float(final), BEST: float(final), "epoch": 0}
        if trial_workers:
            row["train_workers"] = 0
        else:
            row["cpu_seconds"] = time.process_time() - cpu0
        tune.report(row)


def _asking_scheduler(scheduler_class: type, verdicts: Any, stopped: set[str]) -> type:
    """`scheduler_class` whose decision to stop a trial is sent to the trial (through `verdicts`) instead of
    Tune ending the trial's process; the trial then ends by itself. Every other decision is unchanged."""
    from ray.tune.schedulers import TrialScheduler

    class AskingScheduler(scheduler_class):
        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            decision = super().on_trial_result(tune_controller, trial, result)
            stop = decision == TrialScheduler.STOP
            verdicts.record.remote(trial.trial_id, int(result.get("training_iteration", 0)), stop)
            if stop:
                stopped.add(trial.trial_id)
                return TrialScheduler.CONTINUE
            return decision

    AskingScheduler.__name__ = f"Asking{scheduler_class.__name__}"
    return AskingScheduler


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
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # Ray Tune's own lines say what Optuna's would
    # a failed trial is one line from the progress callback (cause and traceback file), not Ray's traceback
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    if config.trial_workers and config.address is None and config.trial_cpus > cpus:
        raise EngineError(f"each trial trains on {config.trial_workers} Ray Train workers (one CPU each) but this "
                          f"Ray session has {cpus:g} CPUs; use --trial-workers {max(1, int(cpus))} or fewer, or a "
                          "cluster (--address)")
    concurrent = config.concurrent or max(1, int(cpus // config.trial_cpus))
    optuna_search = OptunaSearch(space=space, metric=BEST, mode="max",
                                 points_to_evaluate=[dict(p) for p in config.starting_points] or None,
                                 sampler=config.sampler, seed=None if config.sampler is not None else config.seed)
    searcher = ConcurrencyLimiter(optuna_search, max_concurrent=concurrent)
    reporter = _ProgressCallback(progress, config.trials, config.max_epochs)
    verdicts = ray.remote(num_cpus=0)(_Verdicts).remote() if config.trial_workers else None
    asha, median = ASHAScheduler, MedianStoppingRule
    if verdicts is not None:
        asha, median = (_asking_scheduler(c, verdicts, reporter.stopped) for c in (asha, median))
    if config.scheduler == "asha":
        scheduler = asha(metric=BEST, mode="max", time_attr="training_iteration", max_t=config.max_epochs,
                         grace_period=config.grace_period, reduction_factor=config.reduction_factor)
    else:
        scheduler = median(metric=BEST, mode="max", time_attr="training_iteration",
                           grace_period=config.grace_period,
                           min_samples_required=2)
    trainable = tune.with_resources(
        tune.with_parameters(_trial, data=data, objective=objective, trial_workers=config.trial_workers,
                             verdicts=verdicts),
        dict(TRAIN_DRIVER_RESOURCES) if config.trial_workers else {"cpu": config.cpus_per_trial})
    storage = config.storage_path or Path(tempfile.mkdtemp(prefix="prism-tune-"))
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=config.trials, time_budget_s=config.time_budget_s),
        run_config=tune.RunConfig(storage_path=str(Path(storage).resolve()), name=f"prism-{int(time.time())}",
                                  verbose=0, callbacks=[reporter]))
    start = time.perf_counter()
    try:
        grid = tuner.fit()
    finally:
        if verdicts is not None:
            ray.kill(verdicts)
    seconds = time.perf_counter() - start
    history = []
    for result in grid:
        frame = result.metrics_dataframe
        values = frame[METRIC].tolist() if frame is not None and METRIC in frame else []
        finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        metrics = result.metrics or {}
        row = {"params": dict(result.config), "valid_metric": max(finite) if finite else None,
               "epochs": len(values), "status": "error" if result.error else
               ("stopped" if len(values) < config.max_epochs and metrics.get("trial_id") in reporter.stopped
                else "completed"),
               "seconds": metrics.get("time_total_s"), "cpu_seconds": metrics.get("cpu_seconds")}
        if config.trial_workers:
            row["train_workers"] = metrics.get("train_workers")
        if result.error:
            row["error"] = error_line(result.error)
        history.append(row)
    failed = [h for h in history if h["status"] == "error"]
    if failed:
        log.warning("%d of %d Ray Tune trials failed; first: %s", len(failed), len(history), failed[0]["error"])
    scored = [h for h in history if h["valid_metric"] is not None]
    if not scored:
        raise EngineError(f"no Ray Tune trial reported a validation metric ({len(history)} trials"
                          + (f", {len(failed)} failed; first error: {failed[0]['error']}" if failed else "")
                          + f"; the trials' logs are under {Path(storage).resolve()})")
    best = max(scored, key=lambda h: h["valid_metric"])
    return RayTuneResult(best_params=best["params"], best_metric=float(best["valid_metric"]), history=history,
                         seconds=seconds)


def error_line(error: BaseException | str) -> str:
    """The cause of a failed trial in one line: the innermost exception's type and message, not Ray's
    wrapper or its traceback."""
    cause = error
    while isinstance(cause, BaseException) and (cause.__cause__ is not None or
                                                getattr(cause, "cause", None) is not None):
        cause = cause.__cause__ if cause.__cause__ is not None else cause.cause
    if isinstance(cause, BaseException) and not type(cause).__name__.startswith(("RayTaskError", "TuneError")):
        text = f"{type(cause).__name__}: {cause}"
    else:  # Ray's wrapper: its text ends with the original exception's last traceback line
        lines = [ln.strip() for ln in str(cause).strip().splitlines() if ln.strip()]
        text = lines[-1] if lines else repr(cause)
    return text[:300]


class _ProgressCallback:
    """Ray Tune callback: records the trials the scheduler stopped, and calls progress(trials finished, trials,
    message) once per finished or failed trial and between them at most every `every` seconds."""

    def __new__(cls, progress: Progress | None, total: int, max_epochs: int, every: float = 30.0):
        from ray.tune import Callback

        def say(done: int, message: str) -> None:
            if progress is not None:
                progress(done, total, message)

        class Reporter(Callback):
            def __init__(self) -> None:
                self.finished = 0
                self.best = -math.inf
                self.last_line = time.monotonic()
                self.stopped: set[str] = set()  # trial ids the scheduler ended early

            def _best_text(self) -> str:
                return f"best {self.best:.4f}" if math.isfinite(self.best) else "no metric yet"

            def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
                if result.get("done"):  # only a stop decision marks a reported result done (Ray's controller)
                    self.stopped.add(trial.trial_id)
                value = result.get(BEST)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.best = max(self.best, float(value))
                now = time.monotonic()
                if now - self.last_line >= every:
                    self.last_line = now
                    epoch_of = {t.trial_id: (t.last_result or {}).get("epoch", 0) for t in trials
                                if t.status == "RUNNING"}
                    epoch_of[trial.trial_id] = result.get("epoch", 0)  # last_result is not yet this one
                    running = [f"{t} epoch {e}" for t, e in sorted(epoch_of.items())]
                    say(self.finished, f"{self.finished}/{total} trials done · running: "
                                       f"{', '.join(running) or '-'} · {self._best_text()}")

            def on_trial_complete(self, iteration, trials, trial, **info) -> None:
                self.finished += 1
                last = trial.last_result or {}
                value = last.get(BEST)
                shown = f"{value:.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"
                epochs = int(last.get("training_iteration", 0))
                how = "stopped by the scheduler" if trial.trial_id in self.stopped and epochs < max_epochs else "ended"
                say(self.finished, f"trial {trial.trial_id} {how} after {epochs} epochs "
                                   f"({last.get('time_total_s', 0):.0f} s): validation {shown} · "
                                   f"{self.finished}/{total} trials · {self._best_text()}")

            def on_trial_error(self, iteration, trials, trial, **info) -> None:
                self.finished += 1
                where = trial.error_file  # the traceback, written here before this call
                try:
                    why = error_line(Path(where).read_text()) if where else "no error file"
                except OSError:
                    why = "its error file is unreadable"
                say(self.finished, f"trial {trial.trial_id} failed: {why} (traceback: {where}) · "
                                   f"{self.finished}/{total} trials · {self._best_text()}")

        return Reporter()


def tune_study_on_ray(data: Any, config: Any, *, address: str | None = None, concurrent: int | None = None,
                      scheduler: str = "asha", storage_path: Path | None = None,
                      progress: Progress | None = None, trial_workers: int | None = None) -> Any:
    """The local search of core.tuning.study (its TuneConfig: seed, trials or budget, metric, trial epochs and
    patience, starting points, TPE sampler) run on Ray Tune; returns the local search's TuneResult. With
    `trial_workers`, each trial's fit runs on that many Ray Train workers."""
    from functools import partial

    from core.tuning import objective, space
    from core.tuning.study import TuneResult, best_trial, make_sampler

    if data.valid.nnz == 0:  # every trial would fail on it: say so before starting workers
        raise ValueError("the validation split is empty: tuning needs validation interactions (use a split "
                         "with a valid share, e.g. --split random)")
    if trial_workers:
        from core.scale.ray_train import check_workers

        check_workers(data, trial_workers)
    base = objective.base_config(data, config.metric, config.seed)
    trial = partial(objective.run_trial, base=base, max_epochs=config.trial_epochs, patience=config.trial_patience)
    starting = [space.params_of(s) for s in space.STARTING_POINTS.values()] if config.starting_points else []
    ray_config = RayTuneConfig(trials=config.trials or 10_000, seed=config.seed, max_epochs=config.trial_epochs,
                               grace_period=min(config.warmup_epochs, config.trial_epochs), scheduler=scheduler,
                               time_budget_s=None if config.budget_minutes is None else config.budget_minutes * 60,
                               address=address, concurrent=concurrent, storage_path=storage_path,
                               sampler=make_sampler(config), starting_points=starting, trial_workers=trial_workers)
    found = tune_on_ray(data, ray_config, space=space.suggest, objective=trial, progress=progress)
    states = {"completed": "complete", "stopped": "pruned", "error": "failed"}
    history = [{"number": n, "state": states[h["status"]], "value": h["valid_metric"], "params": h["params"],
                "epochs": h["epochs"], "seconds": h["seconds"], "cpu_seconds": h["cpu_seconds"],
                **({"error": h["error"]} if "error" in h else {}),
                **({"train_workers": h["train_workers"]} if "train_workers" in h else {})}
               for n, h in enumerate(found.history)]
    best = best_trial(history)  # the local search's rule: completed trials first
    return TuneResult(config=space.apply(base, best["params"]), params=dict(best["params"]), value=best["value"],
                      metric=config.metric, history=history, seconds=found.seconds)


def fusion_config_of(result: RayTuneResult, base: Any) -> Any:
    """The FusionConfig the best trial trained: `base` with its overrides."""
    from dataclasses import fields, replace

    known = {f.name for f in fields(base)}
    return replace(base, **{k: v for k, v in result.best_params.items() if k in known})
