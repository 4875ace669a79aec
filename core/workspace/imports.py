"""Imports into the store: what an importer of core.catalog reads and validates, written by the store.

The importers (core.catalog.manifest, .mmrec, .interactions, the demo generator) read files and return a
validated catalog; they know no store. Here each one is joined to the store: the name is checked against the
stored catalogs before anything is read, a zip is unpacked in a scratch folder inside the store (removed on
every exit, swept after a kill), and the catalog, its media copied into the store's media folder, goes in
with one atomic save, so a refused import loses nothing already stored.
"""
from __future__ import annotations

import logging
from pathlib import Path

from core.catalog.demo import CATALOG_NAME, DemoConfig, demo_is_current, generate_demo
from core.catalog.interactions import merge_interactions
from core.catalog.manifest import manifest_catalog_name, manifest_source, read_manifest_source
from core.catalog.mmrec import AUTO, read_mmrec
from core.catalog.model import Catalog
from core.catalog.validation import ImportReport, Progress, check_target, report_for
from core.encoders.cache import EmbeddingCache
from core.encoders.demo_vectors import seed_cache
from core.errors import StoreError
from core.store.database import Store

log = logging.getLogger(__name__)


def stored_names(store: Store) -> list[str]:
    """The names of the catalogs in `store`."""
    return list(store.list_catalogs()["name"])


def import_manifest(source: Path | str, store: Store, name: str | None = None, overwrite: bool = False,
                    *, progress: Progress | None = None, strict: bool = False,
                    max_unpacked_bytes: int | None = None) -> ImportReport:
    """Validate the manifest catalog at `source` (folder or .zip) and store it with its media.

    Unusable media cells are masked and reported (`strict=True`: refused). `max_unpacked_bytes`
    overrides $PRISM_MAX_UNPACKED_MB for a zip.
    """
    source, is_zip = manifest_source(source)
    name = manifest_catalog_name(source, is_zip, name)
    check_target(name, overwrite, lambda: stored_names(store))
    with store.scratch_dir("import") as tmp:  # inside the store: removed on every exit, swept after a kill
        catalog, media_files, warnings, problems = read_manifest_source(
            source, is_zip, name, Path(tmp), progress=progress, strict=strict, max_unpacked_bytes=max_unpacked_bytes)
        store.save_catalog(catalog, media_files=media_files, overwrite=overwrite)
    return report_for(catalog, source, warnings, problems)


def import_mmrec(folder: Path | str, store: Store, name: str | None = None, text: str | None = AUTO,
                 audio: str | None = AUTO, image: str | None = None, overwrite: bool = False, *,
                 original_ids: bool = False, progress: Progress | None = None, ids_only: bool = False,
                 text_tsv: str | None = None, titles: str | None = None,
                 metadata: str | None = None) -> ImportReport:
    """Validate the MMRec folder and store it as a catalog with precomputed text/audio/image features
    (the options are core.catalog.mmrec.read_mmrec's)."""
    catalog, warnings, source = read_mmrec(folder, name, text=text, audio=audio, image=image,
                                           original_ids=original_ids, progress=progress,
                                           check_name=lambda n: check_target(n, overwrite, lambda: stored_names(store)),
                                           ids_only=ids_only, text_tsv=text_tsv, titles=titles, metadata=metadata)
    if progress:
        progress(4, 5, f"storing {catalog.name}")
    store.save_catalog(catalog, overwrite=overwrite)
    if progress:
        progress(5, 5, f"stored {catalog.name}")
    return report_for(catalog, source.parent, warnings)


def import_interactions(csv_path: Path | str, store: Store, catalog: str, replace: bool = True, *,
                        progress: Progress | None = None) -> ImportReport:
    """Replace (or, with replace=False, extend) the interactions of the stored catalog `catalog`."""
    stored = store.load_catalog(catalog)
    if progress:
        progress(0, 2, f"reading {Path(csv_path).name}")
    combined, warnings = merge_interactions(stored, csv_path, replace)
    if progress:
        progress(1, 2, f"storing {len(combined):,} interactions")
    store.replace_interactions(catalog, combined)
    stored.interactions = combined
    if progress:
        progress(2, 2, "done")
    report = report_for(stored, Path(csv_path), warnings)
    report.kind = "interactions"
    return report


def ensure_demo_catalog(store: Store, config: DemoConfig = DemoConfig(),
                        progress: Progress | None = None) -> Catalog:
    """The stored "demo" catalog for `config`, generated and saved on first use, and rebuilt whenever it is
    broken: its media or ground truth gone, its rows unreadable, or a catalog of that name not made here."""
    if store.has_catalog(CATALOG_NAME):
        try:
            stored = store.load_catalog(CATALOG_NAME)
        except (StoreError, OSError, ValueError) as e:
            log.warning("the stored demo catalog does not load (%s); rebuilding it", e)
            stored = None
        if demo_is_current(stored, config):
            return stored
    out_dir = store.root / "media-cache" / f"demo-{config.seed}"
    catalog = generate_demo(out_dir, config, progress)
    store.save_catalog(catalog, overwrite=True)
    # the shipped encoder outputs of the default demo: encoding its rendered inputs becomes a cache lookup
    seed_cache(EmbeddingCache(store.embedding_cache_dir), config)
    return store.load_catalog(CATALOG_NAME)
