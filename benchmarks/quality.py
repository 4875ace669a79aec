"""Quality benchmark: every fusion variant and every baseline, trained with early stopping on the validation
split and evaluated on the test split under one protocol (full ranking, train+valid items masked, 95%
bootstrap CIs over users). Prints a table, writes JSON, and stores each run in the store.

    HF_HUB_OFFLINE=1 python -m benchmarks.quality --catalog demo  --out benchmarks/results/quality-demo.json
    HF_HUB_OFFLINE=1 python -m benchmarks.quality --catalog lfm2k --out benchmarks/results/quality-lfm2k.json
    HF_HUB_OFFLINE=1 python -m benchmarks.quality --catalog lfm2k --models popularity,itemknn --epochs 20

`--catalog lfm2k` reads the Last.fm-2K MMRec folder under core.paths.shared_data_dir() in memory (its own
x_label split); `demo` builds (or reuses) the demo catalog and its embeddings; any other name is a stored
catalog. Model selection: each trained model stops early on validation Recall@20 and keeps its best epoch;
among the fusion variants the one with the best validation Recall@20 is reported as `selected_fusion`.
`comparisons` then holds, for every other model, the selected model's per-user difference in NDCG@10 and
NDCG@20 with its paired bootstrap 95% CI (the same users resampled for both), beside whether the two models'
separate CIs overlap.
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
BASELINES = ("popularity", "itemknn", "bprmf", "vbpr", "text-only", "image-only", "audio-only", "late-fusion")
REPORTED = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@10", "precision@20", "map@10", "map@20",
            "hit_rate@10", "auc", "coverage@10", "novelty@10")
SELECT_ON = "recall@20"  # validation metric the fusion variant is selected on
COMPARED = ("ndcg@10", "ndcg@20")  # metrics of the paired comparison of the selected fusion model


def load_catalog(name: str, store: Any) -> tuple[Any, Any]:
    """(catalog, embedding set) for 'demo', 'lfm2k' (read in memory from the shared data) or a stored name."""
    from core.encoders.pipeline import encode_catalog
    from core.workspace import prepare_embeddings

    if name == "lfm2k":
        from core.catalog.mmrec import read_mmrec
        from core.paths import shared_data_dir

        folder = shared_data_dir() / "lfm2k"
        if not folder.is_dir():
            raise SystemExit(f"{folder} is absent; set PRISM_SHARED_DATA to the folder that holds lfm2k/")
        catalog, _, _ = read_mmrec(folder, "lfm2k")
        return catalog, encode_catalog(catalog, {})  # precomputed text and audio features only
    if name == "demo":
        from core.catalog.demo import DemoConfig, ensure_demo_catalog

        catalog = ensure_demo_catalog(store, DemoConfig.from_env())
    else:
        catalog = store.load_catalog(name)
    return catalog, prepare_embeddings(store, catalog)


def model_plan(catalog_name: str, embeddings: Any, wanted: list[str] | None,
               epochs: int | None) -> list[tuple[str, str, Any]]:
    """[(report name, kind, builder)] for every fusion variant, the preset, and every baseline this data allows."""
    from core.models.fusion import FusionRecommender, preset_for
    from core.models.registry import build_model, list_models

    preset = preset_for(catalog_name)
    if epochs is not None:
        preset = dataclasses.replace(preset, epochs=min(preset.epochs, epochs))
    plan: list[tuple[str, str, Any]] = []
    for strategy in FUSION_VARIANTS:
        config = dataclasses.replace(preset, strategy=strategy)
        name = f"fusion-{strategy}" + (" (preset)" if config == preset else "")
        plan.append((name, "fusion", lambda c=config: FusionRecommender(c)))
    if preset.strategy not in FUSION_VARIANTS:
        plan.append(("fusion-preset", "fusion", lambda c=preset: FusionRecommender(c)))
    allowed = set(list_models(embeddings))
    for name in BASELINES:
        if name not in allowed:
            continue
        kind = "single-modality" if name.endswith("-only") else "baseline"
        plan.append((name, kind, lambda n=name: _build_capped(build_model, n, epochs)))
    if wanted:
        plan = [p for p in plan if p[0] in wanted or p[0].split(" ")[0] in wanted]
    return plan


def _build_capped(build_model: Any, name: str, epochs: int | None) -> Any:
    """A registry model, its epoch cap lowered when asked and when its config has one."""
    model = build_model(name)
    config = getattr(model, "config", None)
    if epochs is None or config is None:
        return model
    if hasattr(config, "epochs"):
        return build_model(name, epochs=min(config.epochs, epochs))
    member = getattr(config, "content", None)  # late fusion trains one content model per modality
    if member is not None and hasattr(member, "epochs"):
        return build_model(name, content=dataclasses.replace(member, epochs=min(member.epochs, epochs)))
    return model


def run(catalog_name: str, out: Path | None, data_dir: Path | None = None, models: list[str] | None = None,
        ks: tuple[int, ...] = (10, 20), n_bootstrap: int = 1000, seed: int = 0, epochs: int | None = None,
        save_runs: bool = True) -> dict[str, Any]:
    """Train and evaluate everything; returns (and writes to `out`) the benchmark JSON."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from core.evaluation.bootstrap import paired_difference_ci
    from core.evaluation.protocol import evaluate, run_evaluation
    from core.evaluation.splits import build_interaction_data
    from core.store import Store

    torch.set_num_threads(min(2, torch.get_num_threads()))
    store = Store(data_dir)
    catalog, embeddings = load_catalog(catalog_name, store)
    data = build_interaction_data(catalog, embeddings, split="auto", seed=seed)
    plan = model_plan(catalog.name, embeddings, models, epochs)
    print(f"{catalog.name}: {data.n_users:,} users × {data.n_items:,} items, split {data.split_name} "
          f"(train {data.train.nnz:,} · valid {data.valid.nnz:,} · test {data.test.nnz:,}); "
          f"{len(plan)} models", flush=True)

    results: dict[str, Any] = {}
    per_user: dict[str, dict[str, Any]] = {}  # model -> metric -> (test users,) values, for the comparisons
    protocol: dict[str, Any] = {}
    for name, kind, build in tqdm(plan, desc="models", unit="model", file=sys.stderr):
        model = build()
        t0 = time.perf_counter()
        with tqdm(desc=f"{name}: epochs", unit="epoch", file=sys.stderr, leave=False) as bar:
            def epoch_done(report: Any, bar: Any = bar) -> None:
                bar.total = report.epochs
                bar.update(report.epoch - bar.n)
                bar.set_postfix_str(f"loss {report.loss:.4f} valid {report.valid_metric or float('nan'):.4f}")

            model.fit(data, progress=epoch_done)
        fit_s = time.perf_counter() - t0
        record = run_evaluation(model, data, catalog, embeddings, ks=ks, n_bootstrap=n_bootstrap, seed=seed)
        valid = evaluate(model, data, ks=(20,), target="valid", n_bootstrap=0, seed=seed)
        per_user[name] = {m: record["per_user"][m] for m in COMPARED if m in record["per_user"]}
        record["name"] = name
        record["model"]["kind"] = kind
        record["fit_time_s"] = fit_s
        record["valid"] = {SELECT_ON: valid.metrics[SELECT_ON]}
        protocol = {k: v for k, v in record["protocol"].items() if k != "users_skipped"}
        run_id = store.save_run(record) if save_runs else None
        entry: dict[str, Any] = {"kind": kind}
        for key in REPORTED:
            if key in record["metrics"]:
                entry[key] = record["metrics"][key]
            if key in record["ci"]:
                entry[f"{key}_ci"] = record["ci"][key]
        entry.update({f"valid_{SELECT_ON}": valid.metrics[SELECT_ON], "fit_time_s": round(fit_s, 2),
                      "eval_time_s": round(record["wall_time_s"], 2),
                      "best_epoch": record["model"]["config"].get("best_epoch"), "run_id": run_id})
        results[name] = entry
        print(f"  {name:<24} recall@20 {entry.get('recall@20', float('nan')):.4f}  "
              f"ndcg@20 {entry.get('ndcg@20', float('nan')):.4f}  (fit {fit_s:.1f} s)", flush=True)

    fusion = {n: r for n, r in results.items() if r["kind"] == "fusion"}
    selected = max(fusion, key=lambda n: fusion[n][f"valid_{SELECT_ON}"]) if fusion else None
    comparisons: dict[str, Any] = {}
    for other in results if selected else []:
        if other == selected:
            continue
        comparisons[other] = {}
        for metric in per_user[selected].keys() & per_user[other].keys():
            d = paired_difference_ci(np.array(per_user[selected][metric], dtype=np.float64),
                                     np.array(per_user[other][metric], dtype=np.float64), n_bootstrap, seed=seed)
            own, theirs = results[selected].get(f"{metric}_ci"), results[other].get(f"{metric}_ci")
            overlap = None if not (own and theirs) else bool(own[0] <= theirs[1] and theirs[0] <= own[1])
            comparisons[other][metric] = {"difference": float(d.mean[0]), "ci": [float(d.lo[0]), float(d.hi[0])],
                                          "separate_cis_overlap": overlap}
    report = {
        "protocol": {**protocol, "catalog": catalog.name, "data_hash": catalog.content_hash()[:16],
                     "encoders": dict(embeddings.encoder_ids), "selection": f"early stopping on valid {SELECT_ON}; "
                     f"fusion variant chosen by valid {SELECT_ON}", "epochs_cap": epochs,
                     "created_at": time.strftime("%Y-%m-%d %H:%M:%S")},
        "selected_fusion": selected,
        "models": results,
        "comparisons": {"model": selected, "method": "paired bootstrap over test users: difference of the "
                        "selected fusion model minus each other model, same resamples for both", "vs": comparisons},
    }
    print()
    print(format_table(report))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, allow_nan=False, default=str))
        print(f"\nwrote {out}")
    return report


def format_table(report: dict[str, Any]) -> str:
    """The benchmark as a fixed-width table, best test Recall@20 first."""
    cols = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "auc", "coverage@10")
    models = sorted(report["models"].items(), key=lambda kv: -(kv[1].get("recall@20") or 0.0))
    lines = [f"{'model':<26}{'kind':<17}" + "".join(f"{c:>12}" for c in cols) + f"{'ndcg@20 95% CI':>20}"
             f"{'fit s':>8}"]
    for name, r in models:
        ci = r.get("ndcg@20_ci") or [None, None]
        ci_text = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if None not in ci else "—"
        star = " *" if name == report.get("selected_fusion") else ""
        lines.append(f"{name + star:<26}{r['kind']:<17}" +
                     "".join(f"{r[c]:>12.4f}" if r.get(c) is not None else f"{'—':>12}" for c in cols) +
                     f"{ci_text:>20}{r.get('fit_time_s', 0):>8.1f}")
    comparisons = (report.get("comparisons") or {}).get("vs") or {}
    if comparisons:
        lines.append(f"\n{report['selected_fusion']} minus each model, per-user paired bootstrap 95% CI "
                     "(overlap = the two models' separate CIs overlap)")
        by_gap = sorted(comparisons.items(), key=lambda kv: kv[1].get("ndcg@10", {}).get("difference", 0))
        for other, by_metric in by_gap:
            parts = []
            for metric in COMPARED:
                c = by_metric.get(metric)
                if c:
                    parts.append(f"{metric} {c['difference']:+.4f} [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]"
                                 f"{' overlap' if c['separate_cis_overlap'] else ''}")
            lines.append(f"  vs {other:<22}" + "   ".join(parts))
    p = report["protocol"]
    lines.append(f"\nprotocol: split {p.get('split')}, target {p.get('target')}, ranking {p.get('ranking')}, "
                 f"masked {'+'.join(p.get('masked', []))}, {p.get('users_evaluated')} users, "
                 f"{p.get('n_bootstrap')} bootstrap resamples; * = fusion variant selected on validation")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", default="demo", help="demo | lfm2k | a stored catalog name")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/quality-<catalog>.json)")
    parser.add_argument("--data-dir", type=Path, help="store folder (default $PRISM_DATA_DIR or .prism/)")
    parser.add_argument("--models", help="comma-separated subset, e.g. fusion-gated,popularity (default: all)")
    parser.add_argument("--ks", default="10,20", help="K values (default 10,20)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="split and bootstrap seed")
    parser.add_argument("--epochs", type=int, help="cap every model's epochs (quick runs)")
    parser.add_argument("--no-store", action="store_true", help="do not save the runs in the store")
    args = parser.parse_args(argv)
    ks = tuple(sorted({int(k) for k in args.ks.split(",") if k.strip()}))
    out = args.out or REPO / "benchmarks" / "results" / f"quality-{args.catalog}.json"
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    run(args.catalog, out, args.data_dir, models, ks, args.bootstrap, args.seed, args.epochs, not args.no_store)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
