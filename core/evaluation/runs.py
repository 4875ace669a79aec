"""Read stored evaluation runs as plot-ready DataFrames, protocol cards and downloads; CLI `evaluate`/`runs`."""
from __future__ import annotations

import argparse
import io
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import DamagedFileError
from core.store.database import Store

# columns of runs_table beyond the identity ones, in display order (NaN where a run lacks one)
MAIN_METRICS: tuple[str, ...] = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@10", "map@10",
                                 "hit_rate@10", "auc", "coverage@10", "novelty@10")
_METRIC_AT_K = re.compile(r"^(?P<metric>.+)@(?P<k>\d+)$")


RECORD_BLOCKS = ("protocol", "metrics", "model", "dataset", "ci", "per_user", "encoders")  # dicts when present


def parse_record(run_id: str, text: str) -> dict[str, Any]:
    """The stored record `text` of run `run_id`; DamagedFileError (with the command that removes it) when it
    is not a JSON object with an id and object-valued blocks."""
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
        if not isinstance(record.get("id"), str):
            raise ValueError("no run id")
        bad = [k for k in RECORD_BLOCKS if record.get(k) is not None and not isinstance(record[k], dict)]
        if bad:
            raise ValueError(f"{', '.join(bad)} must be JSON objects")
    except (TypeError, ValueError, RecursionError) as e:
        raise DamagedFileError(f"the stored record of run {run_id!r} is damaged ({str(e)[:160]}); remove it with "
                               f"`python -m core runs delete {run_id}` (or evaluate the model again)") from e
    return record


def damaged_runs(store: Store, catalog: str | None = None) -> list[tuple[str, str]]:
    """(run id, message naming it and the fix) for every stored run record that cannot be read."""
    damaged: list[tuple[str, str]] = []
    _records(store, catalog, damaged=damaged)
    return damaged


def _records(store: Store, catalog: str | None = None, run_ids: list[str] | None = None,
             damaged: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Stored run records, newest first, filtered by catalog or picked by id (in the order given). A damaged
    record is left out (and appended to `damaged` as (id, message)): one bad run never hides the others."""
    with store.transaction() as con:
        if run_ids is not None:
            rows = {r[0]: r[1] for r in con.execute(
                f"SELECT id, record FROM runs WHERE id IN ({','.join('?' * len(run_ids))})", list(run_ids))}
            found = [(i, rows[i]) for i in run_ids if i in rows]
        else:
            q = ("SELECT id, record FROM runs" + (" WHERE catalog = ?" if catalog else "")
                 + " ORDER BY created_at DESC")
            found = con.execute(q, (catalog,) if catalog else ()).fetchall()
    records = []
    for run_id, text in found:
        try:
            records.append(parse_record(run_id, text))
        except DamagedFileError as e:
            if damaged is not None:
                damaged.append((run_id, str(e)))
    return records


def _num(value: Any) -> float:
    """A float, NaN for None/missing."""
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


MASK_TEXT = {"train": "train items only (MMRec/RecBole: validation items stay candidates)",
             "train+valid": "train and valid items (validation items are not candidates)",
             "none": "nothing (held-out items ranked among themselves)"}


def mask_of(record: dict[str, Any]) -> str:
    """The run's masking rule ('train', 'train+valid', 'none'); older runs without one are read from their
    list of masked splits."""
    p = record.get("protocol", {})
    if p.get("mask"):
        return str(p["mask"])
    masked = list(p.get("masked") or [])
    return "+".join(masked) if masked else "none"


def _encoders_text(encoders: dict[str, str] | None) -> str:
    """'text=minilm, audio=vggish' (empty when none)."""
    return ", ".join(f"{f}={e}" for f, e in (encoders or {}).items())


def runs_table(store: Store, catalog: str | None = None) -> pd.DataFrame:
    """One row per stored run, newest first: identity, protocol, MAIN_METRICS, cost and encoders."""
    rows = []
    for r in _records(store, catalog):
        proto, metrics, model = r.get("protocol", {}), r.get("metrics", {}), r.get("model", {})
        rows.append({
            "id": r.get("id"), "name": r.get("name"), "kind": model.get("kind", "baseline"),
            "catalog": r.get("catalog"), "created_at": _num(r.get("created_at")),
            "split": proto.get("split"), "target": proto.get("target"), "mask": mask_of(r),
            **{m: _num(metrics.get(m)) for m in MAIN_METRICS},
            "users_evaluated": proto.get("users_evaluated"), "wall_time_s": _num(r.get("wall_time_s")),
            "encoders": _encoders_text(r.get("encoders")),
            "data_hash": str(r.get("dataset", {}).get("content_hash", ""))[:12],
        })
    columns = ["id", "name", "kind", "catalog", "created_at", "split", "target", "mask", *MAIN_METRICS,
               "users_evaluated", "wall_time_s", "encoders", "data_hash"]
    return pd.DataFrame(rows, columns=columns)


def metrics_long(store: Store, run_ids: list[str]) -> pd.DataFrame:
    """One row per (run, metric@K): run_id, model, metric, k, value, lo, hi (CI NaN where none).

    Only metrics with a K are listed (AUC has none; it is a column of runs_table).
    """
    rows = []
    for r in _records(store, run_ids=list(run_ids)):
        ci = r.get("ci", {})
        for key, value in r.get("metrics", {}).items():
            match = _METRIC_AT_K.match(key)
            if match is None:
                continue
            lo, hi = (ci.get(key) or [None, None])[:2]
            rows.append({"run_id": r["id"], "model": r.get("name"), "metric": match["metric"],
                         "k": int(match["k"]), "value": _num(value), "lo": _num(lo), "hi": _num(hi)})
    frame = pd.DataFrame(rows, columns=["run_id", "model", "metric", "k", "value", "lo", "hi"])
    return frame.astype({"k": "int64"})


def training_curves(store: Store, run_ids: list[str]) -> pd.DataFrame:
    """One row per (run, epoch): run_id, model, epoch, loss, valid_metric (runs without training are absent)."""
    rows = []
    for r in _records(store, run_ids=list(run_ids)):
        for i, h in enumerate(r.get("training") or []):
            if not isinstance(h, dict):
                continue
            rows.append({"run_id": r["id"], "model": r.get("name"), "epoch": int(h.get("epoch", i + 1)),
                         "loss": _num(h.get("loss")), "valid_metric": _num(h.get("valid_metric"))})
    return pd.DataFrame(rows, columns=["run_id", "model", "epoch", "loss", "valid_metric"])


def paired_comparison(store: Store, run_a: str, run_b: str, n_bootstrap: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
    """Per metric kept per user (recall@K, ndcg@K, auc): the two runs' means over their common users and
    the difference B − A with its paired bootstrap 95% CI (the same users resampled for both runs), beside
    whether the runs' own CIs overlap. Columns: name ("ndcg@10", "auc"), metric, k (NA for AUC), A, B,
    difference, lo, hi, users, separate_cis_overlap.

    Raises ComparisonError when the runs were made on different data, splits, targets or masking rules, or
    when one was stored without per-user values.
    """
    import numpy as np

    from core.errors import ComparisonError
    from core.evaluation.bootstrap import paired_difference_ci
    from core.limits import check_option

    n_bootstrap = int(check_option("bootstrap", n_bootstrap, "bootstrap resamples"))

    records = {r["id"]: r for r in _records(store, run_ids=[run_a, run_b])}
    for rid in (run_a, run_b):
        if rid not in records:
            raise ComparisonError(f"no run with id {rid!r}; list them with `python -m core runs list`")
        if not (records[rid].get("per_user") or {}).get("users"):
            raise ComparisonError(f"run {rid} ({records[rid].get('name')}) was stored without per-user values; "
                                  "evaluate that model again to compare it user by user")
    a, b = records[run_a], records[run_b]
    checks = {"data": lambda r: r.get("dataset", {}).get("content_hash"),
              "split": lambda r: (r.get("protocol", {}).get("split"), r.get("protocol", {}).get("split_seed")),
              "target": lambda r: r.get("protocol", {}).get("target"),
              "masking rule": mask_of}
    for what, get in checks.items():
        if get(a) != get(b):
            raise ComparisonError(f"runs {run_a} and {run_b} differ in {what} ({get(a)} vs {get(b)}); a paired "
                                  "comparison needs both evaluated on the same users and held-out items")
    users_a, users_b = a["per_user"]["users"], b["per_user"]["users"]
    common = sorted(set(users_a) & set(users_b))
    pos_a = {u: i for i, u in enumerate(users_a)}
    pos_b = {u: i for i, u in enumerate(users_b)}
    rows_a = np.array([pos_a[u] for u in common], dtype=np.int64)
    rows_b = np.array([pos_b[u] for u in common], dtype=np.int64)
    rows = []
    for key in a["per_user"]:
        if key == "users" or key not in b["per_user"]:
            continue
        va = np.array(a["per_user"][key], dtype=np.float64)[rows_a]  # None (non-finite) → NaN
        vb = np.array(b["per_user"][key], dtype=np.float64)[rows_b]
        d = paired_difference_ci(vb, va, n_bootstrap=n_bootstrap, seed=seed)
        ci_a, ci_b = a.get("ci", {}).get(key), b.get("ci", {}).get(key)
        overlap = None
        if ci_a and ci_b and None not in (*ci_a, *ci_b):
            overlap = bool(ci_a[0] <= ci_b[1] and ci_b[0] <= ci_a[1])
        match = _METRIC_AT_K.match(key)
        with np.errstate(invalid="ignore"):
            rows.append({"name": key, "metric": match["metric"] if match else key,
                         "k": int(match["k"]) if match else None,
                         "A": float(np.nanmean(va)) if np.isfinite(va).any() else math.nan,
                         "B": float(np.nanmean(vb)) if np.isfinite(vb).any() else math.nan,
                         "difference": float(d.mean[0]), "lo": float(d.lo[0]), "hi": float(d.hi[0]),
                         "users": int((np.isfinite(va) & np.isfinite(vb)).sum()), "separate_cis_overlap": overlap})
    frame = pd.DataFrame(rows, columns=["name", "metric", "k", "A", "B", "difference", "lo", "hi", "users",
                                        "separate_cis_overlap"])
    return frame.astype({"k": "Int64"}).sort_values(["metric", "k"], na_position="last").reset_index(drop=True)


def protocol_card(record: dict[str, Any]) -> dict[str, str]:
    """Human-readable protocol of one run: split, target, ranking, masking, K, seeds, data and encoders."""
    p, d = record.get("protocol", {}), record.get("dataset", {})
    seeds = f"split {p.get('split_seed', p.get('seed', '?'))}, bootstrap {p.get('seed', '?')}"
    created = record.get("created_at")
    card = {
        "model": f"{record.get('name', '?')} ({record.get('model', {}).get('kind', '?')})",
        "split": str(p.get("split", "?")),
        "target": str(p.get("target", "?")),
        "ranking": "full (all items)" if p.get("ranking") == "full" else str(p.get("ranking", "?")),
        "mask": MASK_TEXT.get(mask_of(record), mask_of(record)),
        "masked": ", ".join(p.get("masked") or []) or "nothing",
        "K": ", ".join(str(k) for k in p.get("ks", [])),
        "seeds": seeds,
        "CI": f"95% percentile bootstrap over users, {p.get('n_bootstrap', '?')} resamples",
        "users": f"{p.get('users_evaluated', '?')} evaluated of {d.get('n_users', '?')}",
        "data": f"{d.get('name', record.get('catalog', '?'))} · {str(d.get('content_hash', ''))[:10]} · "
                f"{d.get('n_items', '?')} items · {d.get('n_interactions', '?')} interactions",
        "encoders": _encoders_text(record.get("encoders")) or "none (ids only)",
    }
    if created is not None:
        card["created"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(created)))
    return card


def run_to_csv(record: dict[str, Any]) -> str:
    """The run's metrics as CSV: run_id, model, metric, k, value, ci_low, ci_high (k empty for AUC)."""
    ci = record.get("ci", {})
    rows = []
    for key, value in record.get("metrics", {}).items():
        match = _METRIC_AT_K.match(key)
        lo, hi = (ci.get(key) or [None, None])[:2]
        rows.append({"run_id": record.get("id", ""), "model": record.get("name"),
                     "metric": match["metric"] if match else key, "k": int(match["k"]) if match else None,
                     "value": _num(value), "ci_low": _num(lo), "ci_high": _num(hi)})
    frame = pd.DataFrame(rows, columns=["run_id", "model", "metric", "k", "value", "ci_low", "ci_high"])
    frame["k"] = frame["k"].astype("Int64")
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()


def _json_safe(value: Any) -> Any:
    """NaN/inf → None so the output is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_to_json(record: dict[str, Any]) -> str:
    """The whole run record as indented, strict JSON."""
    return json.dumps(_json_safe(record), indent=2, allow_nan=False, default=str)


# -- command line: `python -m core evaluate …`, `python -m core runs list|show ID` ------------------------

def _add_evaluate(p: argparse.ArgumentParser) -> None:
    from core.evaluation.protocol import DEFAULT_MASK, MASKS
    from core.limits import option_type
    from core.cli.models import _split_option

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
    from core.cli.main import TqdmProgress
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
        from core.catalog.demo import DemoConfig, ensure_demo_catalog

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
    from core.cli.main import common_options
    from core.limits import option_type

    sub = p.add_subparsers(dest="runs_action", metavar="{list,show,compare,delete}", required=True)
    ls = sub.add_parser("list", help="stored runs, newest first", parents=[common_options()])
    ls.add_argument("--catalog", help="only this catalog's runs")
    show = sub.add_parser("show", help="one run's protocol and metrics", parents=[common_options()])
    show.add_argument("id", help="run id (see `runs list`)")
    show.add_argument("--json", action="store_true", help="print the whole record as JSON")
    compare = sub.add_parser("compare", help="B − A user by user, with paired bootstrap 95% CIs",
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


def register_cli() -> None:
    """Register the `evaluate` and `runs` commands with core.cli.main (when the command line exists)."""
    try:
        from core.cli.main import register_command
    except ImportError:  # the command line is optional for the read API
        return
    register_command("evaluate", "train and evaluate models on a catalog; store each run", _add_evaluate,
                     _run_evaluate)
    register_command("runs", "list stored evaluation runs or show one", _add_runs, _run_runs)


register_cli()
