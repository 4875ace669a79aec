"""Baseline searches: every baseline's declared space (core.tuning.baselines) searched on a catalog's
validation split within its time budget, the chosen settings stored as the catalog's tuned ones (reused by
`python -m core evaluate`, `benchmarks.quality`, the Evaluate page and the collaborative term). Prints one row
per model (trials, range extensions, seconds, validation Recall@20, the chosen point, any setting still at an
edge) and the total time.

    HF_HUB_OFFLINE=1 python -m benchmarks.baselines --catalog lfm2k --lanes 2   # two searches at a time
    HF_HUB_OFFLINE=1 python -m benchmarks.baselines --catalog lfm2k --lanes 2 --finalists 3   # + a final choice
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


def plan_lanes(names: list[str], budgets: dict[str, float], lanes: int) -> list[list[str]]:
    """`names` split into at most `lanes` groups of about equal total budget (the longest budget first, each to
    the lane with the least so far); within a lane the models keep their order in `names`."""
    if lanes < 1:
        raise ValueError(f"lanes={lanes}; give at least 1")
    load = [0.0] * min(lanes, max(len(names), 1))
    member: dict[str, int] = {}
    for name in sorted(names, key=lambda n: (-budgets[n], names.index(n))):
        lane = min(range(len(load)), key=lambda i: (load[i], i))
        member[name] = lane
        load[lane] += budgets[name]
    return [g for g in ([n for n in names if member[n] == i] for i in range(len(load))) if g]


def _space_for(name: str, scale: float, trials: int | None) -> Any:
    """The space searched for `name`: its declared one, scaled, or a --trials reference search's."""
    from dataclasses import replace

    from core.tuning.baselines import SPACES

    space = SPACES[name]
    if scale != 1.0:
        space = replace(space, budget_seconds=space.budget_seconds * scale,
                        max_trials=max(1, round(space.max_trials * scale)),
                        patience=max(1, round(space.patience * scale)))
    if trials is not None:  # a reference search: this many trials, whatever they cost
        space = replace(space, budget_seconds=REFERENCE_BUDGET_SECONDS, max_trials=trials, patience=trials)
    return space


def search_lane(catalog_name: str, data_dir: Path | None, names: list[str], seed: int, scale: float,
                threads: int, trials: int | None, finalists: int = 1,
                finalist_seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """One lane's searches, one after the other, in this process (a lane started by `run` is a process of its
    own), each with its final choice among `finalists` best trials when above 1: model -> (chosen settings, the
    search's record)."""
    import torch

    from benchmarks.quality import load_catalog
    from core.data.splits import build_interaction_data
    from core.store.database import Store
    from core.tuning.baselines import search_model

    torch.set_num_threads(threads)
    catalog, embeddings = load_catalog(catalog_name, Store(data_dir))
    data = build_interaction_data(catalog, embeddings, split="auto", seed=seed)
    found = {}
    for name in names:
        result = search_model(name, data, seed=seed, space=_space_for(name, scale, trials), finalists=finalists,
                              finalist_seeds=finalist_seeds,
                              log=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True))
        found[name] = (result.params, result.record())
    return found


def run(catalog_name: str, data_dir: Path | None = None, models: list[str] | None = None, seed: int = 0,
        store_results: bool = True, out: Path | None = None, scale: float = 1.0,
        threads: int = 1, trials: int | None = None, lanes: int = 1, finalists: int = 1,
        finalist_seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, Any]:
    """Search every baseline with a space (or `models`) on the catalog's split; returns the JSON report.
    `scale` multiplies each space's time budget, trial cap and patience (a longer reference search);
    `trials`: a reference search of exactly that many trials per model (no time budget, no patience stop);
    `threads` is torch's thread count (one per search: on the 2-core machine an epoch of the small
    models ran 2-4x faster with one thread than with two); `lanes` searches run at once, each in a process of
    its own with the models of about equal total budget (plan_lanes), each search within its own budget as
    alone; the settings are stored by this process. `finalists` above 1: each search ends with the final choice
    among that many best trials, each fitted as the final model with `finalist_seeds` (the care the fusion
    model's search gets with --finalists; core.tuning.baselines.refit_finalists)."""
    import torch

    from benchmarks.quality import load_catalog
    from core.data.splits import build_interaction_data
    from core.models.registry import list_models
    from core.store.database import Store
    from core.tuning.baseline_store import save_baseline
    from core.tuning.baselines import SPACES
    from core.tuning.store import data_fingerprint

    if not scale > 0 or threads < 1 or lanes < 1 or finalists < 1:
        raise SystemExit(f"--scale must be positive, --threads, --lanes and --finalists at least 1 (got {scale}, "
                         f"{threads}, {lanes}, {finalists})")
    if finalists > 1 and not finalist_seeds:
        raise SystemExit("--finalists needs at least one seed in --finalist-seeds")
    torch.set_num_threads(threads)
    store = Store(data_dir)
    catalog, embeddings = load_catalog(catalog_name, store)
    data = build_interaction_data(catalog, embeddings, split="auto", seed=seed)
    allowed = [m for m in SPACES if m in list_models(embeddings)]
    names = allowed if not models else [m for m in models if m in allowed]
    missing = sorted(set(models or []) - set(names))
    if missing:
        raise SystemExit(f"--models {missing} have no search space here; choose from {allowed}")
    groups = plan_lanes(names, {n: _space_for(n, scale, trials).budget_seconds for n in names}, lanes)
    print(f"{catalog.name}: {data.n_users:,} users × {data.n_items:,} items, split {data.split_name}; searching "
          f"{names} on valid recall@20 (seed {seed}, budgets × {scale:g}, {threads} torch thread(s)"
          + (f"; {len(groups)} at once: " + " | ".join(", ".join(g) for g in groups) if len(groups) > 1 else "")
          + (f"; then the final choice among each search's {finalists} best trials, seeds {list(finalist_seeds)}"
             if finalists > 1 else "")
          + ")", flush=True)
    fingerprint = data_fingerprint(data)
    rows: dict[str, Any] = {}
    t0 = time.perf_counter()
    failed: list[str] = []
    if len(groups) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        found = {}
        with ProcessPoolExecutor(len(groups), mp_context=multiprocessing.get_context("spawn")) as pool:
            done = [pool.submit(search_lane, catalog_name, data_dir, g, seed, scale, threads, trials, finalists,
                                tuple(finalist_seeds)) for g in groups]
            for group, job in zip(groups, done):
                try:
                    found.update(job.result())
                except Exception as e:  # the other lane's searches are still stored
                    failed.append(f"{', '.join(group)}: {type(e).__name__}: {e}")
    else:
        found = search_lane(catalog_name, data_dir, names, seed, scale, threads, trials, finalists,
                            tuple(finalist_seeds))
    for name in (n for n in names if n in found):  # stored here, in the order of `names`, once all have ended
        params, record = found[name]
        rows[name] = record
        if store_results:
            save_baseline(store, catalog.name, name, params, record, data_hash=fingerprint)
    if failed:
        raise SystemExit("a lane of searches failed (the other lanes' settings are "
                         + ("stored" if store_results else "in hand") + "): " + "; ".join(failed))
    total = time.perf_counter() - t0
    report = {"catalog": catalog.name, "split": data.split_name, "seed": seed, "metric": "valid recall@20",
              "budget_scale": scale, "trials": trials, "threads": threads, "lanes": [list(g) for g in groups],
              "finalists": finalists, "finalist_seeds": list(finalist_seeds) if finalists > 1 else [],
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
    finals = any(r.get("finalists") for r in report["models"].values())
    lines = [f"{'model':<14}{'trials':>7}{'pruned':>7}{'ext.':>5}{'seconds':>9}{'valid R@20':>11}"
             + (f"{'final':>8}{'seconds':>9}" if finals else "") + "  chosen (at an edge)"]
    for name, r in report["models"].items():
        chosen = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["chosen"].items())
        edge = f"  AT EDGE: {', '.join(r['at_edge'])}" if r["at_edge"] else ""
        final = r.get("finalists")
        extra = ((f"{final['chosen_mean']:>8.4f}{final['seconds']:>9.1f}" if final else f"{'—':>8}{'—':>9}")
                 if finals else "")
        lines.append(f"{name:<14}{r['trials']:>7}{r['pruned']:>7}{len(r['extensions']):>5}{r['seconds']:>9.1f}"
                     f"{r['value']:>11.4f}{extra}  {chosen}{edge}")
    if finals:
        from core.tuning.finalists import mean_text

        lines.append(f"\nvalid R@20: the chosen trial's search figure; final: its final model's valid R@20, mean over "
                     f"seeds {report.get('finalist_seeds')}, the best of the search's {report.get('finalists')} best "
                     "trials so fitted (— : no seed, trials fitted as the final model: the search's best is final)")
        for name, r in report["models"].items():
            final = r.get("finalists")
            if final:
                lines.append(f"  {name}: " + "; ".join(
                    f"trial {f['trial']} search {f['search_value']:.4f} final {mean_text(f)}"
                    + (" (chosen)" if f["trial"] == final["chosen_trial"] else "") for f in final["finalists"]))
        total_final = sum(r["finalists"]["seconds"] for r in report["models"].values() if r.get("finalists"))
        lines.append(f"  final fits: {total_final:.1f} s in all (within the total below)")
    at_once = len(report.get("lanes") or [])
    lines.append(f"\nall searches{' and final choices' if finals else ''}: {report['total_seconds']:.1f} s ({report['total_seconds'] / 60:.1f} min) on "
                 f"{report['catalog']}, split {report['split']}"
                 + (f", {at_once} at once ({' | '.join(', '.join(g) for g in report['lanes'])})" if at_once > 1 else "")
                 + "; "
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
    parser.add_argument("--lanes", type=int, default=1,
                        help="searches at once, each in a process of its own (2 uses both cores of a 2-core machine; "
                             "default 1: one after the other)")
    parser.add_argument("--finalists", type=int, default=1, metavar="K",
                        help="after each search, fit its K best trials as the final model with every seed of "
                             "--finalist-seeds and keep the best mean valid Recall@20 (default 1: the search's best)")
    parser.add_argument("--finalist-seeds", default="0,1,2", help="seeds of the finalists' fits (default 0,1,2)")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/baselines-<catalog>.json)")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    out = args.out or REPO / "benchmarks" / "results" / f"baselines-{args.catalog}.json"
    if args.trials is not None and args.trials < 1:
        parser.error(f"--trials {args.trials}: give at least 1")
    if args.lanes < 1:
        parser.error(f"--lanes {args.lanes}: give at least 1")
    from core.tuning.finalists import finalist_options

    try:
        finalist_seeds = finalist_options(args.finalists, args.finalist_seeds)
    except ValueError as e:
        parser.error(str(e))
    run(args.catalog, args.data_dir, models, args.seed, not args.no_store, out, args.scale, args.threads, args.trials,
        args.lanes, args.finalists, finalist_seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
