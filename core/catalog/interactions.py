"""Import interactions (user_id, item_id[, rating, timestamp[, split]]) from CSV for a stored catalog."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.catalog.validation import ImportReport, Progress, parse_interactions, report_for
from core.errors import CatalogError
from core.store.database import Store


def read_interactions_file(path: Path | str, item_ids: list[str], warnings: list[str] | None = None
                           ) -> pd.DataFrame:
    """Validated canonical interactions from a CSV (or .tsv) file whose item ids must be in `item_ids`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CatalogError(f"{path} does not exist or is not a file; give the path of an interactions CSV")
    try:
        raw = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str,
                          keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise CatalogError(f"{path}: is not UTF-8 text (byte {e.start}); save it as UTF-8") from e
    except Exception as e:  # pandas raises several types for malformed files
        raise CatalogError(f"{path}: cannot be read as CSV ({type(e).__name__}: {e}); fix the file's "
                           "format (comma-separated, header line first)") from e
    if raw.empty:
        raise CatalogError(f"{path}: has no rows below the header; add one row per interaction "
                           "(user_id, item_id[, rating, timestamp, split])")
    return parse_interactions(raw, path, item_ids, warnings=warnings)


def import_interactions(csv_path: Path | str, store: Store, catalog: str, replace: bool = True, *,
                        progress: Progress | None = None) -> ImportReport:
    """Replace (or, with replace=False, extend) the interactions of the stored catalog `catalog`."""
    stored = store.load_catalog(catalog)
    warnings: list[str] = []
    if progress:
        progress(0, 2, f"reading {Path(csv_path).name}")
    new = read_interactions_file(csv_path, stored.item_ids, warnings)
    combined = new if replace else pd.concat([stored.interactions, new], ignore_index=True)
    labelled = int(combined["split"].notna().sum())
    if 0 < labelled < len(combined):
        warnings.append(f"{len(combined) - labelled:,} of {len(combined):,} interactions have no split label; "
                        "models split unlabelled catalogs themselves, so label all rows or none")
    if progress:
        progress(1, 2, f"storing {len(combined):,} interactions")
    store.replace_interactions(catalog, combined)
    stored.interactions = combined
    if progress:
        progress(2, 2, "done")
    report = report_for(stored, Path(csv_path), warnings)
    report.kind = "interactions"
    return report
