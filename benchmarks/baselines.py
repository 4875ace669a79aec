"""Baseline searches: every baseline's declared space (core.tuning.baselines) searched on a catalog's
validation split within its time budget, the chosen settings stored as the catalog's tuned ones (reused by
`python -m core evaluate`, `benchmarks.quality`, the Evaluate page and the collaborative term). Prints one row
per model (trials, range extensions, seconds, validation Recall@20, the chosen point, any setting still at an
edge) and the total time.

    HF_HUB_OFFLINE=1 python -m benchmarks.baselines --catalog lfm2k
    HF_HUB_OFFLINE=1 python -m benchmarks.baselines --catalog demo --models als,ease --no-store
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


REFERENCE_BUDGET_SECONDS = 7 * 24 * 3600.0  # a --trials reference search is stopped by its trial count only


def run(catalog_name: str, data_dir: Path | None = None, models: list[str] | None = None, seed: int = 0,
        store_results: bool = True, out: Path | None = None, scale: float = 1.0,
        threads: int = 1, trials: int | None = None) -> dict[str, Any]:
    """Search every baseline with a space (or `models`) on the catalog's split; returns the JSON report.
    `scale` multiplies each space's time budget, trial cap and patience (a longer reference search);
    `trials`: a reference search of exactly that many trials per model (no time budget, no patience stop);
    `threads` is torch's thread count (one per search: on the 2-core machine an epoch of the small
    models ran 2-4x faster with one thread than with two)."""
    from dataclasses import replace

    import torch

    from benchmarks.quality import load_catalog
    from core.data.splits import build_interaction_data
    from core.models.registry import list_models
    from core.store.database import Store
    from core.tuning.baseline_store import save_baseline
    from core.tuning.baselines import SPACES, search_model
    from core.tuning.store import data_fingerprint

    if not scale > 0 or threads < 1:
        raise SystemExit(f"--scale must be positive and --threads at least 1 (got {scale}, {threads})")
    torch.set_num_threads(threads)
    store = Store(data_dir)
    catalog, embeddings = load_catalog(catalog_name, store)
    data = build_interaction_data(catalog, embeddings, split="auto", seed=seed)
    allowed = [m for m in SPACES if m in list_models(embeddings)]
    names = allowed if not models else [m for m in models if m in allowed]
    missing = sorted(set(models or []) - set(names))
    if missing:
        raise SystemExit(f"--models {missing} have no search space here; choose from {allowed}")
    print(f"{catalog.name}: {data.n_users:,} users × {data.n_items:,} items, split {data.split_name}; searching "
          f"{names} on valid recall@20 (seed {seed}, budgets × {scale:g}, {threads} torch thread(s))", flush=True)
    fingerprint = data_fingerprint(data)
    rows: dict[str, Any] = {}
    t0 = time.perf_counter()
    for name in names:
        space = SPACES[name]
        if scale != 1.0:
            space = replace(space, budget_seconds=space.budget_seconds * scale,
                            max_trials=max(1, round(space.max_trials * scale)),
                            patience=max(1, round(space.patience * scale)))
        if trials is not None:  # a reference search: this many trials, whatever they cost
            space = replace(space, budget_seconds=REFERENCE_BUDGET_SECONDS, max_trials=trials, patience=trials)
        result = search_model(name, data, seed=seed, space=space, log=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}",
                                                                         file=sys.stderr, flush=True))
        rows[name] = result.record()
        if store_results:
            save_baseline(store, catalog.name, name, result.params, result.record(), data_hash=fingerprint)
    total = time.perf_counter() - t0
    report = {"catalog": catalog.name, "split": data.split_name, "seed": seed, "metric": "valid recall@20",
              "budget_scale": scale, "trials": trials, "threads": threads,
              "total_seconds": round(total, 1), "stored": store_results, "models": rows,
              "created_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    print()
    print(format_table(report))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1, default=str))
        print(f"\nwrote {out}")
    return report


def format_table(report: dict[str, Any]) -> str:
    """One row per model, then the total."""
    lines = [f"{'model':<14}{'trials':>7}{'pruned':>7}{'ext.':>5}{'seconds':>9}{'valid R@20':>11}  chosen (at an edge)"]
    for name, r in report["models"].items():
        chosen = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["chosen"].items())
        edge = f"  AT EDGE: {', '.join(r['at_edge'])}" if r["at_edge"] else ""
        lines.append(f"{name:<14}{r['trials']:>7}{r['pruned']:>7}{len(r['extensions']):>5}{r['seconds']:>9.1f}"
                     f"{r['value']:>11.4f}  {chosen}{edge}")
    lines.append(f"\nall searches: {report['total_seconds']:.1f} s ({report['total_seconds'] / 60:.1f} min) on "
                 f"{report['catalog']}, split {report['split']}; "
                 + ("stored as the catalog's tuned settings" if report["stored"] else "not stored"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baselines", description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", default="demo", help="demo | lfm2k | a stored catalog name")
    parser.add_argument("--data-dir", type=Path, help="store folder (default $PRISM_DATA_DIR or .prism/)")
    parser.add_argument("--models", help="comma-separated subset, e.g. als,ease (default: every baseline with a space)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (random splits) and the samplers' seed")
    parser.add_argument("--no-store", action="store_true", help="do not store the chosen settings")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every budget, trial cap and patience (e.g. 4 for a reference search)")
    parser.add_argument("--trials", type=int, default=None,
                        help="a reference search: exactly this many trials per model, e.g. 200 (no time budget, no "
                             "patience stop; use with --no-store to compare with the stored settings)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/baselines-<catalog>.json)")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    out = args.out or REPO / "benchmarks" / "results" / f"baselines-{args.catalog}.json"
    if args.trials is not None and args.trials < 1:
        parser.error(f"--trials {args.trials}: give at least 1")
    run(args.catalog, args.data_dir, models, args.seed, not args.no_store, out, args.scale, args.threads, args.trials)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
