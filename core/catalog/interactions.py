"""Read interactions (user_id, item_id[, rating, timestamp[, split]]) from CSV for a catalog's items."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.catalog.model import Catalog
from core.catalog.validation import parse_interactions
from core.errors import CatalogError


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


def merge_interactions(stored: Catalog, csv_path: Path | str, replace: bool = True
                       ) -> tuple[pd.DataFrame, list[str]]:
    """(the interactions `stored` will have, warnings): the CSV's rows instead of, or (replace=False) after,
    the stored ones. Writes nothing."""
    warnings: list[str] = []
    new = read_interactions_file(csv_path, stored.item_ids, warnings)
    combined = new if replace else pd.concat([stored.interactions, new], ignore_index=True)
    labelled = int(combined["split"].notna().sum())
    if 0 < labelled < len(combined):
        warnings.append(f"{len(combined) - labelled:,} of {len(combined):,} interactions have no split label; "
                        "models split unlabelled catalogs themselves, so label all rows or none")
    return combined, warnings
