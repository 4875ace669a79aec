"""Quality benchmark: every fusion variant and every baseline, each baseline's settings chosen on the
validation split by a search of its declared space (core.tuning.baselines) and every trained model stopped
early on validation, then evaluated on
the test split under one protocol (full ranking, 95% bootstrap CIs over users). Prints a table, writes JSON,
and stores each run (one per model seed) in the store.

    HF_HUB_OFFLINE=1 python -m benchmarks.quality --catalog demo  --out benchmarks/results/quality-demo.json
    HF_HUB_OFFLINE=1 python -m benchmarks.quality --catalog lfm2k --seeds 0,1,2
    HF_HUB_OFFLINE=1 python -m benchmarks.quality --catalog lfm2k --models bprmf,ease,als,fusion-gated \\
        --set dim=128 --set als.factors=128 --mask train

Protocol. Masking rule `--mask train` (the default, for every catalog): only training items are masked at
test and validation items stay candidates, the MMRec/RecBole convention under which the published Last.fm-2K
figures were measured; one rule for every catalog, so no figure depends on the catalog's name and every one
can be set beside a published one. `--mask train+valid` also masks validation items. The split is the
dataset's own (`x_label`) where it has one, else per-user random 8:1:1 drawn with `--seed`; `--seeds 0,1,2`
retrains every seeded model once per model seed on that same split (deterministic models run once), reports
each metric's mean, std and min–max over seeds, and computes the paired CIs on each user's values averaged
over seeds. The JSON keeps every seed's figures.

`--catalog lfm2k` reads the Last.fm-2K MMRec folder under core.store.paths.shared_data_dir() in memory; `demo`
builds (or reuses) the demo catalog and its embeddings; any other name is a stored catalog. Selection: each
baseline with a declared space keeps the catalog's stored tuned settings, or (none stored) searches its space on
validation Recall@20 with the first seed and stores the result; among the fusion variants the one with the best mean validation Recall@20 is `selected_fusion`,
`comparisons` holds its per-user paired difference to every other model with a bootstrap 95% CI, and
`verdict` pairs it against the strongest baseline on validation with the CIs Holm-corrected over the baselines. The
fusion models start from ONE base configuration, `fusion_base_config` below; `--set`/`--config` override it
(bare names) or a baseline's settings (`MODEL.NAME`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FUSION_VARIANTS = ("concat", "weighted", "gated", "adversarial")
BASELINES = ("popularity", "itemknn", "bprmf", "ease", "als", "implicit-bpr", "lightgcn", "vbpr", "text-only",
             "image-only", "audio-only", "late-fusion")
REPORTED = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@10", "precision@20", "map@10", "map@20",
            "hit_rate@10", "auc", "coverage@10", "novelty@10")
SELECT_ON = "recall@20"  # validation metric the fusion variant is selected on
COMPARED = ("recall@20", "ndcg@10", "ndcg@20")  # metrics of the paired comparison of the selected fusion model


def load_catalog(name: str, store: Any) -> tuple[Any, Any]:
    """(catalog, embedding set) for 'demo', 'lfm2k' (read in memory from the shared data) or a stored name."""
    from core.encoders.pipeline import encode_catalog
    from core.workspace.prepare import prepare_embeddings

    if name == "lfm2k":
        from core.catalog.mmrec import read_mmrec
        from core.store.paths import shared_data_dir

        folder = shared_data_dir() / "lfm2k"
        if not folder.is_dir():
            raise SystemExit(f"{folder} is absent; set PRISM_SHARED_DATA to the folder that holds lfm2k/")
        catalog, _, _ = read_mmrec(folder, "lfm2k")
        return catalog, encode_catalog(catalog, {})  # precomputed text and audio features only
    if name == "demo":
        from core.catalog.demo import DemoConfig
        from core.workspace.imports import ensure_demo_catalog

        catalog = ensure_demo_catalog(store, DemoConfig.from_env())
    else:
        catalog = store.load_catalog(name)
    return catalog, prepare_embeddings(store, catalog)


def fusion_base_config(store: Any, catalog: Any, embeddings: Any, data: Any,
                       budget_minutes: float | None = None) -> tuple[Any, str]:
    """The fusion models' base configuration and where it came from: core.evaluation.suite.fusion_base_config
    (the catalog's tuned configuration, or a short tune within `budget_minutes` when none is stored), as
    `python -m core evaluate`."""
    from core.evaluation.suite import fusion_base_config as base_config

    return base_config(store, catalog, embeddings, data, progress=lambda d, n, m: print(f"  {m}", flush=True),
                       budget_minutes=budget_minutes)


def verdict(results: dict[str, Any], selected: str | None, per_user: dict[str, dict[str, list]],
            n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any] | None:
    """The selected fusion model against the strongest baseline (best validation figure, after each baseline's
    search), per metric of COMPARED, the paired CIs Holm-corrected over every baseline (core.evaluation.verdict)."""
    from core.evaluation.verdict import verdict as holm_verdict

    baselines = [n for n, r in results.items() if r["kind"] == "baseline" and r.get(f"valid_{SELECT_ON}") is not None]
    if selected is None or not baselines:
        return None
    valid = {n: r.get(f"valid_{SELECT_ON}") for n, r in results.items()}
    by_metric = {m: holm_verdict(selected, per_user, valid, baselines, m, chosen_by=f"valid {SELECT_ON}",
                                 n_bootstrap=n_bootstrap, seed=seed) for m in COMPARED}
    by_metric = {m: v for m, v in by_metric.items() if v is not None}
    if not by_metric:
        return None
    first = next(iter(by_metric.values()))
    return {"fusion": selected, "best_baseline": first["strongest"], "chosen_by": first["chosen_by"],
            "method": first["method"], "by_metric": by_metric}


def model_plan(base: Any, embeddings: Any, wanted: list[str] | None, epochs: int | None,
               settings: dict[str, dict[str, Any]] | None = None, note: str = "") -> list[Any]:
    """[PlannedModel] for every fusion variant over `base` and every baseline this data allows, with the
    `--set`/`--config` settings and the epoch cap applied."""
    from core.evaluation.suite import registry_plan
    from core.models.registry import build_model, list_models

    allowed = set(list_models(embeddings))
    strategies = list(FUSION_VARIANTS) + ([base.strategy] if base.strategy not in FUSION_VARIANTS else [])
    names = [f"fusion-{s}" for s in strategies if f"fusion-{s}" in allowed] + [n for n in BASELINES if n in allowed]
    if wanted:
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise SystemExit(f"--models {unknown} are not available here; choose from {names}")
        names = [n for n in wanted if n in names]  # in the order asked for
    plan = registry_plan(names, base, settings, note)
    for p in plan:  # the epoch cap, below any epochs the settings give
        if p.kind == "fusion" and epochs is not None:
            p.settings["epochs"] = min(p.settings.get("epochs", base.epochs), epochs)
        elif p.kind != "fusion":
            p.settings = {**_epoch_cap(build_model, p.name, epochs), **p.settings}
    return plan


def _epoch_cap(build_model: Any, name: str, epochs: int | None) -> dict[str, Any]:
    """The settings that lower a registry model's epoch cap to `epochs` (none when it has no epochs)."""
    if epochs is None:
        return {}
    config = getattr(build_model(name), "config", None)
    if config is None:
        return {}
    if hasattr(config, "epochs"):
        return {"epochs": min(config.epochs, epochs)}
    member = getattr(config, "content", None)  # late fusion trains one content model per modality
    if member is not None and hasattr(member, "epochs"):
        return {"content": dataclasses.replace(member, epochs=min(member.epochs, epochs))}
    return {}


def _log(message: str) -> None:
    """A plain progress line on stderr (readable in a log file as on a terminal)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _epoch_progress(label: str) -> Any:
    """An epoch callback for one fit: a tqdm bar on a terminal, a plain line every 10 s in a log."""
    from core.cli.progress import TqdmProgress

    bar = TqdmProgress(f"{label}: epochs")

    def report(r: Any) -> None:
        valid = "" if r.valid_metric is None else f" · valid {r.metric_name} {r.valid_metric:.4f}"
        bar(r.epoch, r.epochs, f"loss {r.loss:.4f}{valid}")

    return report


def run(catalog_name: str, out: Path | None, data_dir: Path | None = None, models: list[str] | None = None,
        ks: tuple[int, ...] = (10, 20), n_bootstrap: int = 1000, seed: int = 0, epochs: int | None = None,
        save_runs: bool = True, mask: str | None = None, seeds: list[int] | None = None,
        settings: dict[str, dict[str, Any]] | None = None, use_grid: bool = True,
        tune_budget: float | None = None) -> dict[str, Any]:
    """Train and evaluate everything; returns (and writes to `out`) the benchmark JSON.

    `seed` is the split seed (random splits) and the bootstrap seed; `seeds` are the model seeds.
    """
    import numpy as np
    import torch

    from core.evaluation.bootstrap import bootstrap_ci
    from core.evaluation.protocol import DEFAULT_MASK, check_mask
    from core.evaluation.seeds import paired_over_users
    from core.data.splits import build_interaction_data
    from core.evaluation.suite import VALID_METRIC, run_model
    from core.store.database import Store

    mask = check_mask(mask or DEFAULT_MASK)
    seeds = list(seeds) if seeds else [0]
    torch.set_num_threads(min(2, torch.get_num_threads()))
    store = Store(data_dir)
    catalog, embeddings = load_catalog(catalog_name, store)
    data = build_interaction_data(catalog, embeddings, split="auto", seed=seed)
    base, note = fusion_base_config(store, catalog, embeddings, data, tune_budget)
    plan = model_plan(base, embeddings, models, epochs, settings, note)
    print(f"{catalog.name}: {data.n_users:,} users × {data.n_items:,} items, split {data.split_name} "
          f"(train {data.train.nnz:,} · valid {data.valid.nnz:,} · test {data.test.nnz:,}); {len(plan)} models, "
          f"model seeds {seeds}, mask {mask!r}; fusion base: {note}", flush=True)

    results: dict[str, Any] = {}
    per_user: dict[str, dict[str, list]] = {}  # model -> per-user values averaged over its seeds
    protocol: dict[str, Any] = {}
    for n, planned in enumerate(plan):
        _log(f"model {n + 1}/{len(plan)}: {planned.name}")
        outcome = run_model(planned, data, catalog, embeddings, seeds=seeds, mask=mask, ks=ks,
                            n_bootstrap=n_bootstrap, bootstrap_seed=seed, use_grid=use_grid,
                            store=store if save_runs else None, log=_log, epoch_progress=_epoch_progress,
                            tuning_store=store)
        protocol = {k: v for k, v in outcome.records[0]["protocol"].items()
                    if k not in ("users_skipped", "model_seed")}
        per_user[planned.name] = outcome.per_user
        entry: dict[str, Any] = {"kind": planned.kind, "seeds": outcome.seeds}
        for key in REPORTED:
            if key in outcome.summary:
                entry[key] = outcome.summary[key]["mean"]
        # CIs: over users of each user's mean over seeds (the per-user metrics kept), else the first seed's
        for key in REPORTED:
            if key in outcome.per_user and len(outcome.seeds) > 1:
                ci = bootstrap_ci(np.array(outcome.per_user[key], dtype=np.float64), n_bootstrap, seed=seed)
                entry[f"{key}_ci"] = [float(ci.lo[0]), float(ci.hi[0])]
            elif key in outcome.per_seed[0]["ci"]:
                entry[f"{key}_ci"] = outcome.per_seed[0]["ci"][key]
        valid = outcome.summary[f"valid_{VALID_METRIC}"]
        entry.update({
            f"valid_{SELECT_ON}": valid["mean"],
            "fit_time_s": round(outcome.summary["fit_time_s"].get("mean") or 0.0, 2),
            "eval_time_s": round(float(np.mean([p["eval_time_s"] for p in outcome.per_seed])), 2),
            "best_epoch": outcome.per_seed[0]["best_epoch"],
            "spread": {k: outcome.summary[k] for k in (*REPORTED, f"valid_{VALID_METRIC}") if k in outcome.summary},
            "per_seed": [{"seed": p["seed"], "run_id": p["run_id"], "fit_time_s": p["fit_time_s"],
                          "best_epoch": p["best_epoch"], f"valid_{SELECT_ON}": p["valid"][VALID_METRIC],
                          **{k: p["metrics"][k] for k in REPORTED if k in p["metrics"]}}
                         for p in outcome.per_seed],
            "selection": outcome.selection,
            "run_ids": [p["run_id"] for p in outcome.per_seed],
        })
        if planned.note:
            entry["base_config"] = planned.note
        results[planned.name] = entry

    fusion = {n: r for n, r in results.items() if r["kind"] == "fusion"}
    selected = max(fusion, key=lambda n: fusion[n][f"valid_{SELECT_ON}"] or -1.0) if fusion else None
    comparisons: dict[str, Any] = {}
    for other in results if selected else []:
        if other == selected:
            continue
        comparisons[other] = {}
        for metric in COMPARED:
            if metric not in per_user[selected] or metric not in per_user[other]:
                continue
            c = paired_over_users(per_user[selected], per_user[other], metric, n_bootstrap, seed=seed)
            own, theirs = results[selected].get(f"{metric}_ci"), results[other].get(f"{metric}_ci")
            c["separate_cis_overlap"] = None if not (own and theirs) else \
                bool(own[0] <= theirs[1] and theirs[0] <= own[1])
            comparisons[other][metric] = c
    finals = {n: r["selection"]["finalists"] for n, r in results.items()
              if isinstance(r.get("selection"), dict) and r["selection"].get("finalists")}
    groups: dict[tuple[int, str], list[str]] = {}  # (finalists, seeds) -> the models so chosen
    for n, f in finals.items():
        groups.setdefault((len(f["finalists"]), str(f["seeds"])), []).append(n)
    final_text = "".join(f"; {', '.join(names)}: chosen among the search's {k} best trials by the final model's "
                         f"mean valid {SELECT_ON} over seeds {seeds}" for (k, seeds), names in groups.items())
    report = {
        "protocol": {**protocol, "catalog": catalog.name, "data_hash": catalog.content_hash()[:16],
                     "encoders": dict(embeddings.encoder_ids), "model_seeds": seeds, "split_seed": data.seed,
                     "selection": f"each baseline's declared space searched on valid {SELECT_ON} (ranges "
                     "extended past any edge its best point reached; the catalog's stored tuned settings reused "
                     f"when they exist), early stopping on valid {SELECT_ON}, searched on model seed {seeds[0]} "
                     f"and kept for the other seeds{final_text}; fusion variant chosen by mean valid {SELECT_ON}; verdict "
                     "against the strongest baseline on validation, paired CIs Holm-corrected over the baselines", "fusion_base_config": note, "settings": settings or {},
                     "epochs_cap": epochs, "created_at": time.strftime("%Y-%m-%d %H:%M:%S")},
        "selected_fusion": selected,
        "verdict": verdict(results, selected, per_user, n_bootstrap, seed),
        "models": results,
        "comparisons": {"model": selected, "method": "paired bootstrap over test users of each user's value "
                        "averaged over the model seeds: the selected fusion model minus each other model, the "
                        "same resamples for both", "vs": comparisons},
    }
    print()
    print(format_table(report))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        from core.evaluation.protocol import _finite_or_none

        out.write_text(json.dumps(_finite_or_none(report), indent=2, allow_nan=False, default=str))
        print(f"\nwrote {out}")
    return report


def format_table(report: dict[str, Any]) -> str:
    """The benchmark as a fixed-width table, best test Recall@20 first (± std over seeds when several)."""
    cols = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
    several = len(report["protocol"].get("model_seeds") or [0]) > 1
    width = 17 if several else 10
    models = sorted(report["models"].items(), key=lambda kv: -(kv[1].get("recall@20") or 0.0))
    lines = [f"{'model':<24}{'kind':<16}" + "".join(f"{c:>{width}}" for c in cols) + f"{'ndcg@20 95% CI':>19}"
             f"{'valid R@20':>11}{'fit s':>8}  chosen on validation"]
    for name, r in models:
        ci = r.get("ndcg@20_ci") or [None, None]
        ci_text = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if None not in ci else "—"
        star = " *" if name == report.get("selected_fusion") else ""
        cells = []
        for c in cols:
            value, sd = r.get(c), (r.get("spread", {}).get(c) or {}).get("std")
            text = "—" if value is None else f"{value:.4f}" + (f" ±{sd:.4f}" if several and sd is not None else "")
            cells.append(f"{text:>{width}}")
        valid = r.get(f"valid_{SELECT_ON}")
        selection = r.get("selection") or {}
        chosen = selection.get("chosen") or {}
        chosen_text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in chosen.items()) \
            or "—"
        if selection.get("at_edge"):
            chosen_text += f" (at the edge of its searched range: {', '.join(selection['at_edge'])})"
        lines.append(f"{name + star:<24}{r['kind']:<16}" + "".join(cells) + f"{ci_text:>19}"
                     f"{(f'{valid:.4f}' if valid is not None else '—'):>11}{r.get('fit_time_s', 0):>8.1f}  "
                     f"{chosen_text}")
    comparisons = (report.get("comparisons") or {}).get("vs") or {}
    if comparisons:
        lines.append(f"\n{report['selected_fusion']} minus each model, paired bootstrap 95% CI over users"
                     + (" (each user's values averaged over seeds)" if several else "")
                     + " (overlap = the two models' separate CIs overlap)")
        by_gap = sorted(comparisons.items(), key=lambda kv: kv[1].get("ndcg@20", {}).get("difference", 0))
        for other, by_metric in by_gap:
            parts = []
            for metric in COMPARED:
                c = by_metric.get(metric)
                if c:
                    parts.append(f"{metric} {c['difference']:+.4f} [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]"
                                 f"{' overlap' if c['separate_cis_overlap'] else ''}")
            lines.append(f"  vs {other:<20}" + "   ".join(parts))
    v = report.get("verdict")
    if v:
        from core.evaluation.verdict import sentence

        lines.append(f"\nverdict ({v['method']}):")
        lines.extend(f"  {sentence(by)}" for by in v["by_metric"].values())
    p = report["protocol"]
    lines.append(f"\nprotocol: split {p.get('split')} (split seed {p.get('split_seed')}), target {p.get('target')}, "
                 f"ranking {p.get('ranking')}, mask {p.get('mask')} (masked {'+'.join(p.get('masked', []))}), "
                 f"{p.get('users_evaluated')} users, model seeds {p.get('model_seeds')}, {p.get('n_bootstrap')} "
                 f"bootstrap resamples; fusion base: {p.get('fusion_base_config')}; * = fusion variant selected "
                 "on validation")
    if p.get("selection"):
        lines.append(f"selection: {p['selection']}")
    return "\n".join(lines)


def parse_seeds(text: str) -> list[int]:
    """[0, 1, 2] from '0,1,2'; a bad list says what to write."""
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds {text!r}: write distinct whole numbers separated by commas, e.g. 0,1,2")
    return seeds


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    from core.evaluation.protocol import DEFAULT_MASK, MASKS
    from core.models.settings import load_config_file, merge_settings, parse_set

    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", default="demo", help="demo | lfm2k | a stored catalog name")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/quality-<catalog>.json)")
    parser.add_argument("--data-dir", type=Path, help="store folder (default $PRISM_DATA_DIR or .prism/)")
    parser.add_argument("--models", help="comma-separated subset, e.g. fusion-gated,popularity (default: all)")
    parser.add_argument("--ks", default="10,20", help="K values (default 10,20)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (random splits) and bootstrap seed")
    parser.add_argument("--seeds", default="0", help="model seeds, e.g. 0,1,2 (default 0)")
    parser.add_argument("--mask", choices=MASKS, default=DEFAULT_MASK,
                        help=f"items masked at test (default {DEFAULT_MASK!r}: training items only, as MMRec)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a fusion setting (dim=128) or a baseline's (als.factors=128); repeatable")
    parser.add_argument("--config", type=Path, help="JSON file of settings, e.g. {\"dim\": 128, \"als\": "
                                                    "{\"factors\": 128}}; --set wins over it")
    parser.add_argument("--no-grid", action="store_true", help="fit each baseline once at its defaults (no search)")
    parser.add_argument("--epochs", type=int, help="cap every model's epochs (quick runs)")
    parser.add_argument("--no-store", action="store_true", help="do not save the runs in the store")
    parser.add_argument("--budget", type=float, metavar="MINUTES",
                        help="minutes of the fusion model's short tune when the catalog has no tuned configuration "
                        "(default 3; `python -m core tune` stores a longer one); baselines search their spaces")
    args = parser.parse_args(argv)
    ks = tuple(sorted({int(k) for k in args.ks.split(",") if k.strip()}))
    out = args.out or REPO / "benchmarks" / "results" / f"quality-{args.catalog}.json"
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    try:
        settings = merge_settings(load_config_file(args.config) if args.config else {}, parse_set(args.set))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    run(args.catalog, out, args.data_dir, models, ks, args.bootstrap, args.seed, args.epochs, not args.no_store,
        mask=args.mask, seeds=parse_seeds(args.seeds), settings=settings, use_grid=not args.no_grid,
        tune_budget=args.budget)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
