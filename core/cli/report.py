"""`python -m core report --catalog NAME [--run ID] [--query TEXT] --out FILE.html`: a report for scripted use."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.command import Command
from core.store.database import Store
from core.tour.schema import tour_sentence


def _add_report(p: argparse.ArgumentParser) -> None:
    from core.limits import option_type

    p.add_argument("--catalog", required=True, help="stored catalog name")
    p.add_argument("--run", dest="run_id",
                   help="report this evaluation run only (default: the newest run of each model)")
    p.add_argument("--query", help="rank the catalog for this text and explain the top items (default: the "
                                   "shipped tour's sample sentence; --query '' for none)")
    p.add_argument("--explain", type=option_type("explain", "--explain"), default=3,
                   help="how many of the top items to explain (default 3)")
    p.add_argument("--k", type=option_type("report_k", "--k"), default=10,
                   help="how many ranked items to list (default 10)")
    p.add_argument("--out", type=Path, required=True, help="the HTML file to write")


def _run_report(args: argparse.Namespace, store: Store) -> int:
    from core.report import build_report, write_report

    if args.out.suffix.lower() not in (".html", ".htm"):
        print(f"error: --out {args.out} must end in .html", file=sys.stderr)
        return 2
    if args.query is None:
        args.query = tour_sentence()
        if args.query:
            print(f"query: the tour's sample sentence {args.query!r} (--query TEXT for another, --query '' for "
                  "none)")
    args.query = args.query.strip() if args.query else None
    steps = ["loading the catalog, model and runs"] + (["ranking and explaining the query"] if args.query else [])
    print(f"report of {args.catalog}: {' · '.join(steps)}…", flush=True)
    data = build_report(store, args.catalog, query_text=args.query, run_id=args.run_id, explain_top=args.explain,
                        k=args.k)
    path = write_report(data, args.out, store.load_catalog(args.catalog))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB: {len(data.items)} ranked items, "
          f"{len(data.explained)} explained, {len(data.runs)} runs)")
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("report", "write a self-contained HTML report of a catalog's ranking, explanations and runs",
            _add_report, _run_report),
)
