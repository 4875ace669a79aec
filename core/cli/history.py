"""CLI `history` and `restore` over core.workspace.history: a catalog's earlier active models and tuned
configurations, and putting one back."""
from __future__ import annotations

import argparse
import time

from core.cli.command import Command
from core.store.database import Store
from core.workspace.history import catalog_history, restore


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "?"


def _add_history(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", required=True, help="stored catalog name")


def _run_history(args: argparse.Namespace, store: Store) -> int:
    from core.tuning.history import describe_entry

    history = catalog_history(store, args.catalog)
    print(f"active models of {args.catalog!r}, newest first (restore one: python -m core restore --catalog "
          f"{args.catalog} --model ID|previous):")
    for a in history["activations"] or []:
        state = "active now" if a["active"] else ("stored" if a["stored"] else "deleted")
        print(f"  {_when(a['at'])}  {a['source']:<9}  {a['model_id']}  ({state})")
    if not history["activations"]:
        print("  none recorded")
    print(f"tuned configurations of {args.catalog!r} (restore one: --tuned ID|previous):")
    for e in history["tuned"]:
        print(f"  {e.id:<22} {describe_entry(e)}")
    if not history["tuned"]:
        print("  none stored")
    return 0


def _add_restore(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", required=True, help="stored catalog name")
    p.add_argument("--model", metavar="ID|previous", help="make this earlier model active again")
    p.add_argument("--tuned", metavar="ID|previous", help="make this earlier tuned configuration current again")


def _run_restore(args: argparse.Namespace, store: Store) -> int:
    for line in restore(store, args.catalog, model=args.model, tuned=args.tuned):
        print(line)
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("history", "list a catalog's earlier active models and tuned configurations", _add_history,
            _run_history),
    Command("restore", "make an earlier active model or tuned configuration current again", _add_restore,
            _run_restore),
)
