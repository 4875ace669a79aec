"""Catalog commands: `python -m core demo`, `import manifest|mmrec|interactions`, `encode` and `info`."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from core.catalog.validation import split_line
from core.cli.command import Command, common_options
from core.cli.progress import TqdmProgress
from core.errors import PrismError
from core.store.database import Store


def _print_report(report: Any) -> None:
    """A validation report as the terminal shows it (every masked media cell in full)."""
    if getattr(report, "kind", "catalog") == "interactions":
        print(f"imported {report.interactions:,} interactions into catalog {report.catalog!r} from {report.source}")
    else:
        print(f"imported catalog {report.catalog!r} from {report.source}")
    print(f"  items {report.items:,} · users {report.users:,} · interactions {report.interactions:,}")
    if report.interactions:
        print("  splits: " + split_line(report.splits))
    print("  modalities: " + (", ".join(f"{m} {n:,}" for m, n in report.modalities.items() if n) or "none"))
    for field_name, source in report.features.items():
        print(f"  features: {field_name} <- {source}")
    for warning in report.warnings:
        print(f"  warning: {warning}")
    problems = getattr(report, "problems", [])
    if problems:
        print(f"  masked media cells ({len(problems):,}; imported without that modality):")
        for p in problems:
            print(f"    {p['file']} {p['row']}, column {p['column']}, {p['reference']}: {p['reason']}")


# -- demo -----------------------------------------------------------------------------------------
def _add_demo(p: argparse.ArgumentParser) -> None:
    from core.limits import option_type

    p.add_argument("--seed", type=option_type("seed", "--seed"),
                   help="random seed (default: $PRISM_DEMO_SEED or the built-in one)")
    p.add_argument("--tracks", type=option_type("demo_tracks", "--tracks"), help="number of tracks")
    p.add_argument("--listeners", type=option_type("demo_listeners", "--listeners"),
                   help="number of simulated listeners")
    p.add_argument("--no-encode", action="store_true", help="build the catalog only, do not encode or train")
    p.add_argument("--no-train", action="store_true", help="build and encode, but do not train the fusion model")


def _run_demo(args: argparse.Namespace, store: Store) -> int:
    from dataclasses import replace

    from core.catalog.demo import DemoConfig
    from core.workspace.imports import ensure_demo_catalog

    config = DemoConfig.from_env()
    overrides = {k: v for k, v in (("seed", args.seed), ("n_tracks", args.tracks),
                                   ("n_listeners", args.listeners)) if v is not None}
    config = replace(config, **overrides)
    t0 = time.perf_counter()
    if not args.no_encode:
        from core.encoders.factory import preload_encoder_libraries

        preload_encoder_libraries()  # imported while the catalog renders
    with TqdmProgress("demo catalog") as bar:
        catalog = ensure_demo_catalog(store, config, bar)
    print(f"demo catalog {catalog.name!r}: {len(catalog.items):,} tracks, {len(catalog.users):,} listeners, "
          f"{len(catalog.interactions):,} interactions (seed {config.seed}, {time.perf_counter() - t0:.1f} s)")
    if not args.no_encode:
        embeddings = _encode(store, catalog, force=False)
        if not args.no_train:
            _train_demo(store, catalog, embeddings)
    return 0


def _train_demo(store: Store, catalog: Any, embeddings: Any) -> None:
    """The demo's active fusion model, trained as the studio's first start trains it (kept when one exists)."""
    from core.workspace.prepare import ensure_model, load_active_model

    if load_active_model(store, catalog, embeddings) is not None:
        print(f"model: the active model of {catalog.name!r} is kept")
        return
    t0 = time.perf_counter()
    with TqdmProgress(f"training the fusion model of {catalog.name}") as bar:
        def progress(report: Any) -> None:
            valid = "" if report.valid_metric is None else f" · {report.metric_name} {report.valid_metric:.4f}"
            bar(report.epoch, report.epochs, f"loss {report.loss:.4f}{valid}")

        model = ensure_model(store, catalog, embeddings, progress=progress)
    record = store.active_model(catalog.name)
    epochs = len(getattr(model, "history", None) or [])
    best = getattr(model, "best_epoch", None)
    print(f"model {record['id'] if record else '?'}: trained and active ({epochs} epochs"
          + (f", best epoch {best}" if best is not None else "") + f", {time.perf_counter() - t0:.1f} s); "
          f"`python -m core report --catalog {catalog.name} --out report.html` now works")


# -- import ---------------------------------------------------------------------------------------
def _add_import(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="import_kind", metavar="{manifest,mmrec,interactions}", required=True)
    m = sub.add_parser("manifest", parents=[common_options()],
                       help="a folder or .zip with manifest.csv/.json/.parquet and media",
                       description="Import a folder or .zip holding manifest.csv, .json or .parquet (columns id, "
                                   "title, text, image, audio) with the media beside it.")
    m.add_argument("path", type=Path, help="catalog folder or .zip")
    m.add_argument("--name", help="catalog name (default: the folder or zip name)")
    m.add_argument("--overwrite", action="store_true", help="replace a stored catalog of that name")
    m.add_argument("--strict", action="store_true",
                   help="refuse the import when any media file cannot be used (default: mask that cell and "
                        "list it in the report)")
    r = sub.add_parser("mmrec", parents=[common_options()],
                       help="an MMRec folder: <name>.inter and .npy feature matrices",
                       description="Import an MMRec folder: <name>.inter (userID, itemID, rating, x_label) and one "
                                   ".npy matrix per modality (row = item id).")
    r.add_argument("folder", type=Path, help="folder with the .inter and .npy files")
    r.add_argument("--name", help="catalog name (default: the .inter file's name)")
    r.add_argument("--text", default="auto", help="text feature file (default: all-MiniLM-L6-v2.npy if present; "
                                                   "'none' to leave text out)")
    r.add_argument("--audio", default="auto", help="audio features: vggish, whisper or a .npy file name "
                                                    "(default: vggish if present; 'none' to leave audio out)")
    r.add_argument("--image", default=None, help="image feature file (default: none)")
    r.add_argument("--original-ids", action="store_true",
                   help="name users and items by the ids in <name>_og_ids.inter")
    r.add_argument("--text-tsv", metavar="FILE:COLUMN",
                   help="the raw text of each item: a TSV keyed by its first column (default: <name>_text.tsv)")
    r.add_argument("--titles", metavar="FILE:COLUMN",
                   help="item titles: a TSV keyed by its first column, or by its itemID column when that names "
                        "more items (default: the song mapping or i_id_mapping.tsv when they hold names)")
    r.add_argument("--metadata", metavar="FILE[:COL,COL]",
                   help="item metadata such as genre: a TSV (or .csv) keyed like --titles whose columns (all, or "
                        "the ones named) are kept on each item, e.g. for `benchmarks.retrieval --label genre`")
    r.add_argument("--ids-only", action="store_true",
                   help="import the interactions without any feature matrix (items are the ids that appear)")
    r.add_argument("--overwrite", action="store_true", help="replace a stored catalog of that name")
    i = sub.add_parser("interactions", parents=[common_options()],
                       help="user_id,item_id[,rating,timestamp,split] CSV for a stored catalog",
                       description="Replace (or with --append extend) the interactions of a stored catalog from a "
                                   "CSV with columns user_id, item_id[, rating, timestamp, split].")
    i.add_argument("csv", type=Path, help="interactions CSV")
    i.add_argument("--catalog", required=True, help="the stored catalog the interactions belong to")
    i.add_argument("--append", action="store_true", help="add to the stored interactions instead of replacing")


def _none(value: str | None) -> str | None:
    return None if value is None or value.lower() in ("none", "") else value


def _run_import(args: argparse.Namespace, store: Store) -> int:
    if args.import_kind == "manifest":
        from core.workspace.imports import import_manifest

        with TqdmProgress("checking media") as bar:
            report = import_manifest(args.path, store, name=args.name, overwrite=args.overwrite, progress=bar,
                                     strict=args.strict)
    elif args.import_kind == "mmrec":
        from core.workspace.imports import import_mmrec

        with TqdmProgress("importing") as bar:
            report = import_mmrec(args.folder, store, name=args.name, text=_none(args.text),
                                  audio=_none(args.audio), image=_none(args.image), overwrite=args.overwrite,
                                  original_ids=args.original_ids, progress=bar, ids_only=args.ids_only,
                                  text_tsv=args.text_tsv, titles=args.titles, metadata=args.metadata)
    else:
        from core.workspace.imports import import_interactions

        report = import_interactions(args.csv, store, args.catalog, replace=not args.append)
    _print_report(report)
    return 0


# -- encode ---------------------------------------------------------------------------------------
def _add_encode(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", required=True, help="stored catalog to encode")
    p.add_argument("--force", action="store_true", help="encode again even when a matching set is stored")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="where cache misses are encoded: this process (default) or Ray Data")
    p.add_argument("--address", default=None,
                   help="with --engine ray: 'auto' (a running cluster) or ray://HOST:PORT (default: Ray on this "
                        "machine)")
    from core.limits import option_type

    p.add_argument("--batch-size", type=option_type("encode_batch_size", "--batch-size"), default=32,
                   help="items per encoder batch (default 32)")


def _encode(store: Store, catalog: Any, force: bool, engine: str = "local", address: str | None = None,
            batch_size: int = 32) -> Any:
    from core.scale.progress import RateProgress
    from core.workspace.prepare import prepare_embeddings

    if batch_size < 1:
        raise PrismError(f"--batch-size {batch_size} must be at least 1")
    runner = None
    if engine == "ray":
        from core.scale.ray_encode import RayEncodeEngine

        runner = RayEncodeEngine(address=address)
    t0 = time.perf_counter()
    # one count over every (item, field) to encode; the message names the field and its own count of items.
    # The bar writes the plain line when stderr is a log, so the rate wrapper does not echo it a second time
    with TqdmProgress(f"encoding {catalog.name} (items × fields)") as bar:
        extra = {**({"engine": runner} if runner is not None else {}),
                 **({"batch_size": batch_size} if batch_size != 32 else {})}
        emb = prepare_embeddings(store, catalog, encoders=None, progress=RateProgress(bar, what="encodings", echo=False),
                                 force=force, **extra)
    print(f"embeddings for {catalog.name!r} ({time.perf_counter() - t0:.1f} s):")
    if runner is not None and runner.stats:
        print(f"  on Ray: {runner.stats['rows']:,} inputs encoded by {runner.stats['workers']} worker(s) "
              f"({int(runner.stats['gpus'])} GPU(s)) in {runner.stats['shards']} shards")
    for field_name in emb.fields:
        matrix = emb.matrices[field_name]
        print(f"  {field_name:<12} {emb.modality_of[field_name]:<6} {matrix.shape[1]:>5}-d  "
              f"{int(emb.masks[field_name].sum()):,}/{len(emb.item_ids):,} items  {emb.encoder_ids[field_name]}")
    return emb


def _run_encode(args: argparse.Namespace, store: Store) -> int:
    _encode(store, store.load_catalog(args.catalog), force=args.force, engine=args.engine, address=args.address,
            batch_size=args.batch_size)
    return 0


# -- info -----------------------------------------------------------------------------------------
def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", help="show only this catalog")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def catalog_summary(store: Store, name: str) -> dict[str, Any]:
    """Counts, modalities, splits, embedding sets, runs and models of one stored catalog."""
    catalog = store.load_catalog(name)
    inter = catalog.interactions
    counts = inter["split"].astype("string").fillna("none").value_counts().to_dict() if len(inter) else {}
    splits = {k: counts[k] for k in ("train", "valid", "test", "none") if k in counts}
    content_hash = catalog.content_hash()
    sets = store.list_embedding_sets(name)
    models = store.list_models(name)
    return {
        "name": name,
        "source": catalog.metadata.get("source", "?"),
        "items": len(catalog.items),
        "users": int(inter["user_id"].nunique()) if len(inter) else 0,
        "interactions": len(inter),
        "splits": {str(k): int(v) for k, v in splits.items()},
        "modalities": {m: n for m, n in catalog.modalities_present().items() if n},
        "features": {f: feat.source for f, feat in catalog.features.items()},
        "embedding_sets": [{"key": r.key, "encoder_ids": json.loads(r.encoder_ids),
                            "current": r.content_hash == content_hash} for r in sets.itertuples()],
        "runs": len(store.list_runs(name)),
        "models": [{"id": r.id, "name": r.name, "active": bool(r.active)} for r in models.itertuples()],
        "masked_media": list(catalog.metadata.get("import_problems") or []),
    }


MASKED_LISTED = 20  # masked media cells listed by `info` (all of them with --json)


def _run_info(args: argparse.Namespace, store: Store) -> int:
    names = [args.catalog] if args.catalog else store.list_catalogs()["name"].tolist()
    summaries = [catalog_summary(store, n) for n in names]
    if args.json:
        print(json.dumps({"store": str(store.root), "catalogs": summaries}, indent=1))
        return 0
    print(f"store: {store.root}")
    if not summaries:
        print("no catalogs stored yet; run `python -m core demo` or `python -m core import …`")
    for s in summaries:
        print(f"\ncatalog {s['name']} ({s['source']})")
        print(f"  items {s['items']:,} · users {s['users']:,} · interactions {s['interactions']:,}")
        if s["interactions"]:
            print("  splits: " + split_line(s["splits"]))
        print("  modalities: " + (", ".join(f"{m} {n:,}" for m, n in s["modalities"].items()) or "none"))
        for field_name, source in s["features"].items():
            print(f"  features: {field_name} <- {source}")
        if not s["embedding_sets"]:
            print(f"  embeddings: none (run `python -m core encode --catalog {s['name']}`)")
        for e in s["embedding_sets"]:
            state = "current" if e["current"] else "stale: the catalog changed since"
            ids = ", ".join(f"{f}={i}" for f, i in e["encoder_ids"].items())
            print(f"  embeddings [{e['key']}] ({state}): {ids}")
        masked = s["masked_media"]
        if masked:
            print(f"  masked media cells ({len(masked):,}; those items were imported without that modality):")
            for p in masked[:MASKED_LISTED]:
                print(f"    {p.get('file', '?')} {p.get('row', '?')}, column {p.get('column', '?')}, "
                      f"{p.get('reference', '?')}: {p.get('reason', '?')}")
            if len(masked) > MASKED_LISTED:
                print(f"    … and {len(masked) - MASKED_LISTED:,} more (`info --catalog {s['name']} --json` lists "
                      "them all)")
        print(f"  runs: {s['runs']}")
        if not s["models"]:
            print(f"  model: none trained (run `python -m core train --catalog {s['name']}`; the studio trains one "
                  "when the catalog is first opened)")
        elif not any(m["active"] for m in s["models"]):
            print("  model: none active (run `python -m core models activate ID`)")
        for m in s["models"]:
            print(f"  model {m['id']} ({m['name']}){' [active]' if m['active'] else ''}")
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("demo", "build (or reuse) the demo catalog, encode it and train its model", _add_demo, _run_demo),
    Command("import", "import a catalog (manifest or MMRec) or interactions", _add_import, _run_import),
    Command("encode", "compute (or reuse) a catalog's embeddings", _add_encode, _run_encode),
    Command("info", "show stored catalogs, embeddings, runs and models", _add_info, _run_info),
)
