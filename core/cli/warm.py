"""`python -m core warm`: prepare a catalog for its first visitor (core.workspace.warm) and print the timings."""
from __future__ import annotations

import argparse
import sys

from core.cli.command import Command
from core.store.database import Store
from core.tour.schema import tour_sentence
from core.workspace.warm import DEFAULT_MAPS, warm


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", default="demo", help="the catalog to prepare (default: demo, built when missing)")
    p.add_argument("--query", default=None,
                   help="the first text query to run and explain (default: the shipped tour's sentence)")
    p.add_argument("--maps", default=",".join(DEFAULT_MAPS),
                   help="projections to compute for every space, comma-separated from PCA, UMAP, t-SNE, or "
                        "'none' (default: PCA,UMAP)")
    p.add_argument("--no-runs", action="store_true", help="skip the demo's reference evaluation runs")


def _run(args: argparse.Namespace, store: Store) -> int:
    from core.errors import PrismError
    from core.explain.projection import METHODS

    maps = () if args.maps.strip().lower() == "none" else tuple(m.strip() for m in args.maps.split(",") if m.strip())
    unknown = [m for m in maps if m not in METHODS]
    if unknown:
        raise PrismError(f"--maps {args.maps!r}: {unknown} not among {', '.join(METHODS)} (or 'none')")
    if args.query is None:
        args.query = tour_sentence() or "calm piano"
    if not args.query.strip():
        raise PrismError("--query is empty; give a sentence, e.g. --query 'calm piano'")
    report = warm(store, args.catalog, query=args.query, maps=maps, runs=not args.no_runs,
                  say=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"catalog {report.catalog!r} is warm ({report.total_s:.1f} s):")
    for name, seconds in report.stages.items():
        print(f"  {name:<30}{seconds:>8.1f} s")
    if report.maps:
        print(f"  maps cached: {', '.join(report.maps)}")
    print(f"  first query {args.query!r}: top item {report.top_item}")
    print("start the studio: streamlit run app.py (it reads all of this from the store)")
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("warm", "prepare a catalog for its first visitor (demo built, encoded, trained, maps cached)",
            _add_arguments, _run),
)
