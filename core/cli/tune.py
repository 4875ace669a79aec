"""`python -m core tune --catalog NAME [--trials N | --budget MINUTES] [--seed S]`: search the fusion
space on the catalog's validation split and store the best configuration as the catalog's tuned one."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from core.cli.command import Command
from core.cli.models import _split_option, load_training_data
from core.cli.progress import TqdmProgress
from core.store.database import Store


def _add_tune(p: argparse.ArgumentParser) -> None:
    from core.limits import option_type

    p.add_argument("--catalog", default="demo", help="stored catalog name, or 'demo' (built if missing)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--trials", type=option_type("trials", "--trials"), help="number of trials (default 30)")
    stop.add_argument("--budget", type=option_type("budget_minutes", "--budget"), metavar="MINUTES",
                      help="stop starting trials after this long")
    p.add_argument("--seed", type=option_type("seed", "--seed"), default=0,
                   help="seeds the sampler and every trial (default 0)")
    _split_option(p)
    p.add_argument("--jobs", type=option_type("jobs", "--jobs"), default=None, metavar="N",
                   help="trials at once (default 1, with --engine ray the CPUs; above 1 a search no longer repeats "
                        "exactly from its seed)")
    p.add_argument("--trial-epochs", type=option_type("trial_epochs", "--trial-epochs"), default=None, metavar="N",
                   help="epoch cap of one trial (default 20; the final fit trains longer)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): Optuna in this process; ray: the same space and objective on Ray Tune "
                        "(Optuna search, ASHA pruning), concurrent trials within the CPUs or one per worker")
    p.add_argument("--address", default=None, help="with --engine ray: auto | ray://HOST:PORT (default: Ray on "
                                                   "this machine)")
    p.add_argument("--trial-workers", type=option_type("workers", "--trial-workers"), default=None, metavar="N",
                   help="with --engine ray: train each trial on Ray Train with N workers, one CPU each (DDP over "
                        "gloo, as `train --engine ray`); trials run at once as the CPUs hold N workers each, and "
                        "the scheduler still prunes on each epoch's validation metric (a stopped trial ends after "
                        "the epoch its workers are in). Default: each trial trains in its own process")
    p.add_argument("--metric", default=None, help="validation metric to maximise, e.g. ndcg@20 (default) or "
                                                  "recall@20")
    p.add_argument("--finalists", type=int, default=1, metavar="K",
                   help="after the search, fit its K best trials as final models (collaborative term included) "
                        "with each of --finalist-seeds and store the best mean validation figure (default 1: "
                        "the search's best as it is)")
    p.add_argument("--finalist-seeds", default="0,1,2", metavar="SEEDS",
                   help="seeds of each finalist's fits (default 0,1,2)")


def _config_line(config: Any) -> str:
    from core.tuning.space import TUNED_FIELDS

    values = {k: getattr(config, k) for k in TUNED_FIELDS}
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def _run_tune(args: argparse.Namespace, store: Store) -> int:
    from core.tuning.finalists import finalist_options
    from core.tuning.objective import METRIC, TRIAL_EPOCHS
    from core.tuning.store import data_fingerprint, save_tuned, tuned_path
    from core.tuning.study import TuneConfig, tune

    try:
        from core.models.fusion.config import metric_k

        for option, value in (("--jobs", args.jobs), ("--trial-epochs", args.trial_epochs)):
            if value is not None and value < 1:  # 0 once fell back to the default and overwrote the tuned one
                raise ValueError(f"{option} {value}: give at least 1; nothing was searched or stored")
        try:
            finalist_seeds = finalist_options(args.finalists, args.finalist_seeds)
        except ValueError as e:
            raise ValueError(f"{e}; nothing was searched or stored") from None
        if args.trial_workers is not None and args.engine != "ray":
            raise ValueError("--trial-workers trains each trial on Ray Train and needs --engine ray; add "
                             "--engine ray or leave --trial-workers out")
        trials = args.trials if args.trials is not None else (None if args.budget is not None else 30)
        config = TuneConfig(trials=trials, budget_minutes=args.budget, seed=args.seed,
                            metric=args.metric or METRIC,
                            trial_epochs=TRIAL_EPOCHS if args.trial_epochs is None else args.trial_epochs,
                            n_jobs=1 if args.jobs is None else args.jobs)

        metric_k(config.metric)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    catalog, _, data = load_training_data(store, args.catalog, args.split, args.seed)
    stop = f"{config.trials} trials" if config.trials is not None else f"{config.budget_minutes:g} min"
    print(f"tuning {catalog.name}: {data.n_users:,} users × {data.n_items:,} items, split {data.split_name}, "
          f"maximising validation {config.metric} over {stop} (seed {config.seed})", flush=True)
    t0 = time.perf_counter()
    with TqdmProgress("tuning") as bar:
        def progress(done: int, total: int, message: str) -> None:
            bar(done, total, message)
            print(f"  {message}", flush=True)  # a plain line per trial: shows in logs too

        if args.engine == "ray":
            if args.trial_workers is not None:
                print(f"each trial trains on Ray Train: {args.trial_workers} worker(s)", flush=True)
            result = _tune_on_ray(data, config, args.address, progress, concurrent=args.jobs,
                                  trial_workers=args.trial_workers)
        else:
            result = tune(data, config, progress=progress)
    chosen, metric = result.config, result.valid_metric()
    if args.finalists > 1:
        from core.evaluation.suite import final_choice

        print(f"choosing among the {args.finalists} best trials: each fitted as the final model with seeds "
              f"{list(finalist_seeds)}", flush=True)
        from core.tuning.finalists import NoFinalistFitted

        try:
            chosen, final = final_choice(store, catalog.name, data, result, args.finalists, finalist_seeds,
                                         lambda m: print(f"  {m}", flush=True))
            metric = {**metric, "value": final["chosen_search_value"], "finalists": final}
        except NoFinalistFitted as e:  # the search is not lost: its best is stored, as without --finalists
            print(f"  {e}; the search's best is stored, as without --finalists", flush=True)
    save_tuned(store, catalog.name, chosen, metric, result.history, data_hash=data_fingerprint(data))
    minutes = (time.perf_counter() - t0) / 60
    print(f"best: validation {result.metric} {result.value:.4f} ({result.n_trials} trials, {result.n_pruned} "
          f"pruned, {minutes:.1f} min, {result.n_trials / max(minutes, 1e-9):.1f} trials/min)")
    if chosen is not result.config:
        print(f"stored: the finalist with validation {result.metric} {metric['value']:.4f} in the search, "
              f"{metric['finalists']['chosen_mean']:.4f} as the final model (mean over seeds)")
    print(f"  {_config_line(chosen)}")
    for e in getattr(result, "extensions", []):
        print(f"  range extended after trial {e['after_trial']}: {e['setting']} [{e['from'][0]:.3g}, {e['from'][1]:.3g}]"
              f" → [{e['to'][0]:.3g}, {e['to'][1]:.3g}] (best point at its {e['side']} edge)")
    if getattr(result, "at_edge", []):
        print(f"  still at a range edge when the search stopped: {', '.join(result.at_edge)} (a longer search "
              "extends it further)")
    failed = [h for h in result.history if h["state"] == "failed"]
    if failed:
        print(f"{len(failed)} of {result.n_trials} trials failed; the first: {failed[0].get('error', 'no message')}")
    print(f"stored as the tuned configuration of {catalog.name!r} ({tuned_path(store, catalog.name)}); "
          f"`python -m core train --catalog {catalog.name}` trains it")
    return 0


def _tune_on_ray(data: Any, config: Any, address: str | None, progress: Any, concurrent: int | None = None,
                 trial_workers: int | None = None) -> Any:
    """The same search on Ray Tune (core.scale.tune_ray), returned as the local search's TuneResult; with
    `trial_workers`, each trial's fit on Ray Train."""
    from core.scale.tune_ray import tune_study_on_ray

    return tune_study_on_ray(data, config, address=address, concurrent=concurrent, progress=progress,
                             trial_workers=trial_workers)


COMMANDS: tuple[Command, ...] = (
    Command("tune", "search fusion settings on the validation split and store the best", _add_tune, _run_tune),
)
