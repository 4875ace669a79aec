"""CLI `history` and `restore`: what a catalog's active model and tuned configuration were, and putting one back."""
from __future__ import annotations

import argparse
import time
from typing import Any

from core.errors import PrismError
from core.store.database import Store


def catalog_history(store: Store, catalog: str) -> dict[str, Any]:
    """The catalog's activations (newest first) and tuned configurations (current, then earlier ones)."""
    from core.tuning.history import tuned_history
    from core.tuning.store import tuned_path

    if not store.has_catalog(catalog):
        store.load_catalog(catalog)  # raises, listing the stored names
    return {"activations": store.activation_history(catalog).to_dict("records"),
            "tuned": tuned_history(tuned_path(store, catalog))}


def restore(store: Store, catalog: str, model: str | None = None, tuned: str | None = None) -> list[str]:
    """Put back an earlier active model and/or tuned configuration ("previous" or an id); one line per change."""
    from core.tuning.history import describe_entry, restore_tuned_file
    from core.tuning.store import tuned_path

    if model is None and tuned is None:
        raise PrismError("say what to restore: --model ID|previous and/or --tuned ID|previous "
                         f"(see `python -m core history --catalog {catalog}`)")
    if not store.has_catalog(catalog):
        store.load_catalog(catalog)
    done = []
    if model is not None:
        done.append(f"active model of {catalog!r} is now {store.restore_active_model(catalog, model)}")
    if tuned is not None:
        entry = restore_tuned_file(tuned_path(store, catalog), tuned)
        done.append(f"tuned configuration of {catalog!r} restored from {entry.id} ({describe_entry(entry)})")
    return done


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


def register_cli() -> None:
    """Register `history` and `restore` with core.cli.main."""
    from core.cli.main import register_command

    register_command("history", "list a catalog's earlier active models and tuned configurations",
                     _add_history, _run_history)
    register_command("restore", "make an earlier active model or tuned configuration current again",
                     _add_restore, _run_restore)


register_cli()
