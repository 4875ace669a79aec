"""Evaluation commands: `python -m core evaluate …` (train and evaluate models, store each run) and
`python -m core runs list|show|compare|delete` (the stored runs, read through core.evaluation.runs)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from core.cli.command import Command, common_options
from core.cli.models import _split_option
from core.cli.progress import TqdmProgress
from core.evaluation.runs import damaged_runs, paired_comparison, protocol_card, run_to_csv, run_to_json, runs_table
from core.store.database import Store


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    from core.evaluation.protocol import DEFAULT_MASK, MASKS
    from core.limits import option_type

    p.add_argument("--catalog", default="demo", help="stored catalog name, or 'demo' (built if missing)")
    p.add_argument("--models", default="all", help="comma-separated registry names, or 'all' (default)")
    p.add_argument("--model-id", help="evaluate this saved fusion model as it was trained (see `models list`) "
                                      "instead of training --models")
    _split_option(p)
    p.add_argument("--ks", default="10,20", help="comma-separated K values (default 10,20)")
    p.add_argument("--seed", type=option_type("seed", "--seed"), default=0, help="split and bootstrap seed")
    p.add_argument("--seeds", default="0", help="model seeds, e.g. 0,1,2: each seeded model is trained once "
                                                "per seed on the same split (default 0)")
    p.add_argument("--mask", choices=MASKS, default=DEFAULT_MASK,
                   help=f"items masked at test (default {DEFAULT_MASK!r}: training items only, as MMRec/RecBole; "
                        "'train+valid' masks validation items too)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a fusion setting (e.g. dim=128) or MODEL.NAME=VALUE for one model (e.g. als.factors=128); "
                        "repeatable")
    p.add_argument("--config", type=Path, help="JSON file of settings, e.g. {\"dim\": 128, \"als\": "
                                               "{\"factors\": 128}}; --set wins over it")
    p.add_argument("--no-grid", action="store_true", help="fit each baseline once at its defaults instead of "
                                                           "choosing its settings on validation")
    p.add_argument("--bootstrap", type=option_type("bootstrap", "--bootstrap"), default=1000,
                   help="bootstrap resamples for the CIs (0 = none)")


def _saved_model(store: Store, model_id: str, catalog_name: str | None) -> dict[str, Any]:
    """The stored row of a saved model, as a dict; a bad id or another catalog says what to do."""
    from core.errors import StoreError

    table = store.list_models()
    row = table[table["id"] == model_id]
    if row.empty:
        raise StoreError(f"no saved model {model_id!r}; `python -m core models list` shows the ids")
    found = row.iloc[0].to_dict()
    if catalog_name not in (None, found["catalog"]):
        raise StoreError(f"model {model_id} belongs to catalog {found['catalog']!r}, not {catalog_name!r}; "
                         f"pass --catalog {found['catalog']} or leave --catalog out")
    found["config"] = json.loads(found["config"])
    return found


def _run_evaluate(args: argparse.Namespace, store: Store) -> int:
    from core.errors import PrismError
    from core.evaluation.seeds import paired_over_users
    from core.data.splits import build_interaction_data
    from core.evaluation.suite import PlannedModel, fusion_base_config, registry_plan, run_model
    from core.models.registry import list_models
    from core.models.settings import load_config_file, merge_settings, parse_set
    from core.workspace.prepare import prepare_embeddings

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    from core.limits import parse_number_list

    try:
        ks = parse_number_list(args.ks, "k", "--ks", "ks_count")
        seeds = list(parse_number_list(args.seeds, "seed", "--seeds", "model_seeds", distinct=False))
        settings = merge_settings(load_config_file(args.config) if args.config else {}, parse_set(args.set))
        names = None if args.models.strip() == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
        if names == [] and not args.model_id:
            raise ValueError(f"--models {args.models!r} names no model; give registry names separated by commas "
                             "(`python -m core evaluate --help`), or 'all'")
    except ValueError as e:
        return fail(str(e))
    saved = _saved_model(store, args.model_id, None if args.catalog == "demo" and args.model_id
                         else args.catalog) if args.model_id else None
    catalog_name = saved["catalog"] if saved else args.catalog
    if catalog_name == "demo":
        from core.catalog.demo import DemoConfig
        from core.workspace.imports import ensure_demo_catalog

        with TqdmProgress("demo catalog") as bar:
            catalog = ensure_demo_catalog(store, DemoConfig.from_env(), bar)
    else:
        catalog = store.load_catalog(catalog_name)
    with TqdmProgress(f"embeddings of {catalog.name}") as bar:
        embeddings = prepare_embeddings(store, catalog, progress=bar)
    split_seed = int(saved["config"].get("seed", args.seed)) if saved else args.seed
    data = build_interaction_data(catalog, embeddings, split=args.split, seed=split_seed)
    print(f"{catalog.name}: {data.n_users:,} users × {data.n_items:,} items, split {data.split_name} "
          f"(train {data.train.nnz:,} · valid {data.valid.nnz:,} · test {data.test.nnz:,}); mask {args.mask!r}, "
          f"model seeds {seeds}", flush=True)
    if saved:
        from core.models.fusion.recommender import FusionRecommender

        trained_on = saved["config"].get("split")
        if trained_on and trained_on != data.split_name:
            return fail(f"model {args.model_id} was trained on split {trained_on!r} but --split {args.split!r} "
                        f"gives {data.split_name!r}; pass the split it was trained with")
        model = FusionRecommender.load(store.model_dir(args.model_id), embeddings)
        plan = [PlannedModel(f"{model.name} [{args.model_id}]", "fusion", build=lambda **kw: model, fitted=model,
                             note=f"saved model {args.model_id}")]
    else:
        available = list_models(embeddings)
        names = available if names is None else names
        unknown = [m for m in names if m not in available]
        if unknown:
            return fail(f"model(s) {unknown} cannot run on {catalog.name!r}; available: {available}")
        base, note = (fusion_base_config(store, catalog, embeddings, data,
                                         progress=lambda d, n, m: print(f"  {m}", flush=True))
                      if any(n.startswith("fusion-") for n in names) else (None, ""))
        if base is not None:
            print(f"fusion configuration: {note}", flush=True)
        try:
            plan = registry_plan(names, base, settings, note)
        except ValueError as e:
            return fail(str(e))

    def log(message: str) -> None:
        print(f"  {message}", flush=True)

    def epoch_progress(label: str) -> Any:
        bar = TqdmProgress(f"{label}: training")
        return lambda r: bar(r.epoch, r.epochs, f"loss {r.loss:.4f}" + (
            "" if r.valid_metric is None else f" · valid {r.metric_name} {r.valid_metric:.4f}"))

    outcomes, failed = [], 0
    for planned in plan:
        try:
            outcomes.append(run_model(planned, data, catalog, embeddings, seeds=seeds, mask=args.mask, ks=ks,
                                      n_bootstrap=args.bootstrap, bootstrap_seed=args.seed,
                                      use_grid=not args.no_grid, store=store, log=log,
                                      epoch_progress=epoch_progress))
        except (PrismError, ValueError) as e:
            print(f"  {planned.name}: failed: {e}")
            failed += 1
    shown = [f"{m}@{k}" for k in ks for m in ("recall", "ndcg")]
    if outcomes:
        print(f"\ntest ({args.mask} masked; mean ± std over model seeds) beside valid recall@20:")
        for o in outcomes:
            cells = "  ".join(f"{m} {o.summary[m]['mean']:.4f}±{o.summary[m]['std']:.4f}" for m in shown
                              if m in o.summary)
            valid = o.summary.get("valid_recall@20", {}).get("mean")
            chosen = ", ".join(f"{k}={v}" for k, v in (o.selection.get("chosen") or {}).items())
            print(f"  {o.name:<18} {cells}  valid recall@20 {valid if valid is not None else float('nan'):.4f}"
                  + (f"  (chosen: {chosen})" if chosen else ""))
    if len(outcomes) > 1:
        best = max(outcomes, key=lambda o: o.summary.get("valid_recall@20", {}).get("mean") or -1.0)
        metric = f"ndcg@{ks[-1]}"
        print(f"\n{best.name} (best on validation) minus each model, {metric}, paired bootstrap 95% CI over "
              "users of their values averaged over seeds:")
        for o in outcomes:
            if o is best or metric not in o.per_user or metric not in best.per_user:
                continue
            c = paired_over_users(best.per_user, o.per_user, metric, args.bootstrap, seed=args.seed)
            print(f"  vs {o.name:<18} {c['difference']:+.4f} [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}] "
                  f"({c['users']} users)")
        _print_verdict(outcomes, metric, args.bootstrap, args.seed)
    return 1 if failed and failed == len(plan) else 0


def _print_verdict(outcomes: list[Any], metric: str, n_bootstrap: int, seed: int) -> None:
    """The fusion model best on validation against the strongest baseline on validation, Holm-corrected over
    the baselines evaluated (core.evaluation.verdict); nothing without both kinds."""
    from core.evaluation.verdict import sentence, verdict

    valid = {o.name: o.summary.get("valid_recall@20", {}).get("mean") for o in outcomes}
    fusion = [o.name for o in outcomes if o.kind == "fusion" and valid[o.name] is not None]
    baselines = [o.name for o in outcomes if o.kind == "baseline"]
    if not fusion or not baselines:
        return
    lead = max(fusion, key=lambda n: valid[n])
    v = verdict(lead, {o.name: o.per_user for o in outcomes}, valid, baselines, metric, n_bootstrap=n_bootstrap,
                seed=seed)
    if v is not None:
        print(f"\nverdict: {sentence(v)}; {v['method']}")


def _add_runs(p: argparse.ArgumentParser) -> None:
    from core.limits import option_type

    sub = p.add_subparsers(dest="runs_action", metavar="{list,show,compare,delete}", required=True)
    ls = sub.add_parser("list", help="stored runs, newest first", parents=[common_options()])
    ls.add_argument("--catalog", help="only this catalog's runs")
    show = sub.add_parser("show", help="one run's protocol and metrics", parents=[common_options()])
    show.add_argument("id", help="run id (see `runs list`)")
    show.add_argument("--json", action="store_true", help="print the whole record as JSON")
    compare = sub.add_parser("compare", help="B − A user by user, with paired bootstrap 95%% CIs",
                             parents=[common_options()])
    compare.add_argument("a", help="run id A")
    compare.add_argument("b", help="run id B")
    compare.add_argument("--bootstrap", type=option_type("bootstrap", "--bootstrap"), default=1000,
                         help="bootstrap resamples (default 1000)")
    delete = sub.add_parser("delete", help="remove one stored run (e.g. a damaged one)", parents=[common_options()])
    delete.add_argument("id", help="run id (see `runs list`)")


def _run_runs(args: argparse.Namespace, store: Store) -> int:
    if args.runs_action == "delete":
        store.delete_run(args.id)
        print(f"deleted run {args.id}")
        return 0
    if args.runs_action == "list":
        table = runs_table(store, getattr(args, "catalog", None))
        for _, message in damaged_runs(store, getattr(args, "catalog", None)):
            print(f"warning: {message}", file=sys.stderr)
        if table.empty:
            print("no runs stored yet; run `python -m core evaluate --catalog demo`")
            return 0
        table = table.assign(created_at=[time.strftime("%Y-%m-%d %H:%M", time.localtime(t))
                                         for t in table["created_at"]])
        cols = ["id", "name", "kind", "catalog", "created_at", "split", "mask", "recall@10", "ndcg@10", "recall@20",
                "ndcg@20"]
        shown = table[cols].dropna(axis=1, how="all")  # metrics no listed run reports
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="—"))
        return 0
    if args.runs_action == "compare":
        table = paired_comparison(store, args.a, args.b, n_bootstrap=args.bootstrap)
        print(f"B = {args.b} minus A = {args.a}, same users resampled for both ({args.bootstrap} resamples)")
        shown = table.drop(columns=["metric", "k"]).rename(columns={"name": "metric", "difference": "B-A",
                                                                     "separate_cis_overlap": "own CIs overlap"})
        plain, signed = "{:.4f}".format, "{:+.4f}".format
        print(shown.to_string(index=False, formatters={"A": plain, "B": plain, "B-A": signed, "lo": signed,
                                                       "hi": signed}))
        return 0
    record = store.load_run(args.id)
    if args.json:
        print(run_to_json(record))
        return 0
    for key, value in protocol_card(record).items():
        print(f"{key:>9}: {value}")
    print(run_to_csv(record), end="")
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("evaluate", "train and evaluate models on a catalog; store each run", _add_evaluate, _run_evaluate),
    Command("runs", "list stored evaluation runs or show one", _add_runs, _run_runs),
)
