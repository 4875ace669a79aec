"""Command line for fusion models: `python -m core train`, `models list|activate`.

`train` fits a fusion model on a stored catalog (the catalog's tuned configuration, or a short search on the
validation split when none is stored, with any setting overridden from the command line), selects it on the
validation split, saves it as safetensors + JSON and makes it the
catalog's active model, the one the app and the recommend service use.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Any

from core.cli.command import Command, common_options
from core.cli.progress import TqdmProgress
from core.store.database import Store


def _load_catalog(store: Store, name: str) -> Any:
    """A stored catalog; 'demo' is built (and encoded later) when missing."""
    if name == "demo":
        from core.catalog.demo import DemoConfig
        from core.workspace.imports import ensure_demo_catalog

        with TqdmProgress("demo catalog") as bar:
            return ensure_demo_catalog(store, DemoConfig.from_env(), bar)
    return store.load_catalog(name)


def load_training_data(store: Store, catalog_name: str, split: str, seed: int) -> tuple[Any, Any, Any]:
    """(catalog, embeddings, InteractionData) of a stored catalog, encoding what is missing with progress."""
    from core.data.splits import build_interaction_data
    from core.workspace.prepare import prepare_embeddings

    catalog = _load_catalog(store, catalog_name)
    with TqdmProgress(f"embeddings of {catalog.name}") as bar:
        embeddings = prepare_embeddings(store, catalog, progress=bar)
    return catalog, embeddings, build_interaction_data(catalog, embeddings, split=split, seed=seed)


def _split_option(p: argparse.ArgumentParser) -> None:
    """--split, its name checked while parsing (before anything is loaded or encoded)."""
    from core.data.splits import SPLIT_METHODS

    p.add_argument("--split", default="auto", choices=list(SPLIT_METHODS), help=" | ".join(SPLIT_METHODS))


def _add_train(p: argparse.ArgumentParser) -> None:
    from core.limits import option_type

    p.add_argument("--catalog", default="demo", help="stored catalog name, or 'demo' (built if missing)")
    p.add_argument("--budget", type=option_type("budget_minutes", "--budget"), default=None, metavar="MINUTES",
                   help="without a stored tuned configuration: the short search's budget (default 3 min)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override one fusion setting, e.g. --set strategy=weighted --set epochs=30 "
                        "(repeatable; see FusionConfig)")
    _split_option(p)
    p.add_argument("--seed", type=option_type("seed", "--seed"), default=0, help="split seed")
    p.add_argument("--no-activate", action="store_true", help="save the model without making it active")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): this process; ray: the same training loop on Ray Train workers "
                        "(DistributedDataParallel, users shared out among the workers), saved as a normal model")
    p.add_argument("--workers", type=option_type("workers", "--workers"), default=1, metavar="N",
                   help="with --engine ray: training workers, one CPU each (default 1)")
    p.add_argument("--address", default=None, help="with --engine ray: auto | ray://HOST:PORT (default: Ray on "
                                                   "this machine)")


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """{name: typed value} from NAME=VALUE strings; an unknown name or a bad value says what to write."""
    from core.models.settings import FUSION, parse_set

    for pair in pairs:
        name = pair.partition("=")[0].strip().replace("-", "_")
        if "." in name:
            raise ValueError(f"--set {pair!r}: train sets fusion settings only; write NAME=VALUE")
        if name == "collaborative_settings":  # the members' stored tuned settings, not a command-line value
            raise ValueError(f"--set {pair!r}: {name} cannot be set from the command line")
    return parse_set(pairs).get(FUSION, {})


def _run_train(args: argparse.Namespace, store: Store) -> int:
    from core.models.fusion.config import FusionConfig
    from core.tuning import SHORT_TUNE_MINUTES, resolve_fusion_config
    from core.workspace.prepare import train_model

    budget = SHORT_TUNE_MINUTES if args.budget is None else args.budget
    try:
        overrides = _parse_overrides(args.set)
        replace(FusionConfig(), **overrides)  # refuses bad values before anything is loaded
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.engine == "local" and (args.workers != 1 or args.address):
        print("error: --workers and --address apply to --engine ray; add --engine ray or leave them out",
              file=sys.stderr)
        return 2
    catalog, embeddings, data = load_training_data(store, args.catalog, args.split, args.seed)
    with TqdmProgress("fusion configuration") as bar:
        def tune_progress(done: int, total: int, message: str) -> None:
            bar(done, total, message)
            print(f"  {message}", flush=True)  # plain lines: the search shows in logs too

        base, source = resolve_fusion_config(store, catalog, embeddings, data, budget_minutes=budget,
                                             progress=tune_progress)
    config = replace(base, **overrides)
    if overrides:
        source += "; set on the command line: " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    print(f"configuration: {source}")
    t0 = time.perf_counter()
    with TqdmProgress(f"training {config.strategy}") as bar:
        def progress(report: Any) -> None:
            valid = "" if report.valid_metric is None else f" · {report.metric_name} {report.valid_metric:.4f}"
            bar(report.epoch, report.epochs, f"loss {report.loss:.4f}{valid}")

        with _engine(args):
            model_id, model = train_model(store, catalog, embeddings, config=config, progress=progress,
                                          split=args.split, seed=args.seed, activate=not args.no_activate,
                                          config_source=source)
    best = getattr(model, "best_epoch", None)
    print(f"model {model_id}: {config.strategy}, {config.dim}-d, loss {config.loss}, "
          f"{time.perf_counter() - t0:.1f} s" + (f", best epoch {best}" if best is not None else ""))
    print("  encoders: " + ", ".join(f"{f} {e}" for f, e in embeddings.encoder_ids.items()))
    print("  active" if not args.no_activate else "  saved (not active; `models activate` to use it)")
    return 0


def _engine(args: argparse.Namespace) -> Any:
    """The block in which the fit runs: here, or on Ray Train workers (--engine ray)."""
    from contextlib import nullcontext

    if args.engine != "ray":
        return nullcontext()
    from core.models.fusion.train import training_engine
    from core.scale.ray_train import RayTrainEngine

    print(f"training on Ray Train: {args.workers} worker(s)"
          + (f" at {args.address}" if args.address else " on this machine"), flush=True)
    return training_engine(RayTrainEngine(workers=args.workers, address=args.address))


def _add_models(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="models_action", metavar="{list,activate}", required=True)
    ls = sub.add_parser("list", help="saved fusion models", parents=[common_options()])
    ls.add_argument("--catalog", help="only this catalog's models")
    act = sub.add_parser("activate", help="make a saved model its catalog's active one",
                         parents=[common_options()])
    act.add_argument("id", help="model id (see `models list`)")


def _run_models(args: argparse.Namespace, store: Store) -> int:
    table = store.list_models(getattr(args, "catalog", None))
    if args.models_action == "list":
        if table.empty:
            print("no models saved yet; run `python -m core train --catalog demo`")
            return 0
        print(table[["id", "catalog", "name", "active"]].to_string(index=False))
        return 0
    row = table[table["id"] == args.id]
    if row.empty:
        print(f"error: no saved model {args.id!r}; `python -m core models list` shows the ids", file=sys.stderr)
        return 2
    store.set_active_model(str(row["catalog"].iloc[0]), args.id)
    print(f"{args.id} is now the active model of {row['catalog'].iloc[0]!r}")
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("train", "train a fusion model on a catalog and make it active", _add_train, _run_train),
    Command("models", "list saved fusion models or choose the active one", _add_models, _run_models),
)
