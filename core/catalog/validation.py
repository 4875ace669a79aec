"""Checks shared by the importers and the report they return: column checks, row labels that a person
can find in the file, interaction parsing, and the counts the app shows as a validation report."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.catalog.model import INTERACTION_COLUMNS, MODALITIES, SPLITS, Catalog, empty_interactions
from core.errors import CatalogError, StoreError

Progress = Callable[[int, int, str], None]
RowLabel = Callable[[int], str]  # 0-based data row -> how the user finds it in the file

MAX_LISTED = 5  # ids and rows named in one message before "and N more"
MAX_NAME_LENGTH = 100  # characters in a catalog name (it becomes a folder name)
RESERVED_NAMES = frozenset({"demo"})  # made only by the demo generator, never by an import
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class MediaProblem:
    """One media cell that cannot be used: imported with that modality masked, and why."""

    file: str  # the manifest file
    row: str  # as the user finds it in the file ("row 5", "record 3")
    column: str  # image or audio
    reference: str  # the path in the cell
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "row": self.row, "column": self.column, "reference": self.reference,
                "reason": self.reason}


@dataclass
class ImportReport:
    """What an import stored: counts per split and modality, and the warnings worth a look."""

    catalog: str  # the stored catalog's name
    source: str  # the file or folder imported
    items: int = 0
    users: int = 0
    interactions: int = 0
    splits: dict[str, int] = field(default_factory=dict)  # "train" / "valid" / "test" / "none" -> rows
    modalities: dict[str, int] = field(default_factory=dict)  # modality -> items carrying it
    features: dict[str, str] = field(default_factory=dict)  # precomputed field -> source
    warnings: list[str] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)  # masked media cells (MediaProblem.as_dict)
    kind: str = "catalog"  # "catalog", or "interactions" for an interactions import
    notes: list[str] = field(default_factory=list)  # facts worth a line (columns kept / ignored, …)


def report_for(catalog: Catalog, source: Path | str, warnings: Sequence[str] = (),
               problems: Sequence[MediaProblem] = ()) -> ImportReport:
    """The report of a catalog as it will be stored."""
    inter = catalog.interactions
    split = inter["split"].astype("string").fillna("none") if len(inter) else pd.Series(dtype="string")
    counts = split.value_counts()
    splits = {s: int(counts.get(s, 0)) for s in (*SPLITS, "none") if counts.get(s, 0) or s in SPLITS}
    return ImportReport(
        catalog=catalog.name, source=str(source), items=len(catalog.items),
        users=int(inter["user_id"].nunique()) if len(inter) else 0, interactions=len(inter),
        splits=splits, modalities=catalog.modalities_present(),
        features={f: feat.source for f, feat in catalog.features.items()}, warnings=list(warnings),
        problems=[p.as_dict() for p in problems])


def split_line(splits: dict[str, int]) -> str:
    """The splits of a catalog's interactions in one line: "no split" when none is labelled."""
    labelled = {k: v for k, v in splits.items() if k != "none" and v}
    if not labelled:
        return "no split (evaluation and training draw a seeded split of each listener's interactions)"
    return ", ".join(f"{k} {v:,}" for k, v in splits.items() if v or k != "none")


# -- small message helpers --------------------------------------------------------------------------
def listing(values: Iterable[Any], limit: int = MAX_LISTED) -> str:
    """'a, b, c and 4 more': names the first few of many values."""
    values = list(values)
    head = ", ".join(str(v) for v in values[:limit])
    return head + (f" and {len(values) - limit} more" if len(values) > limit else "")


def csv_row(i: int) -> str:
    """Spreadsheet row of 0-based data row `i` in a file with one header row."""
    return f"row {i + 2}"


def record_row(i: int) -> str:
    """1-based position of data row `i` in a list of records (JSON) or a table without header rows."""
    return f"record {i + 1}"


def table_row(i: int) -> str:
    """1-based row of data row `i` in a table whose header is not a row (Parquet)."""
    return f"row {i + 1}"


CSV_ROWS_NOTE = "rows counted as a spreadsheet shows them, header = row 1"
RECORD_ROWS_NOTE = "records counted from 1"
TABLE_ROWS_NOTE = "rows counted from 1, header not counted"


def catalog_name(requested: str | None, fallback: str) -> str:
    """The catalog name to use: `requested`, else `fallback` made safe (letters, digits, '-', '_')."""
    if requested:
        if _NAME_CHARS.search(requested) or requested.startswith((".", "-")):
            raise CatalogError(f"catalog name {requested[:120]!r} is not usable: use only letters, digits, '-' "
                               "or '_'")
        if len(requested) > MAX_NAME_LENGTH:
            raise CatalogError(f"catalog name {requested[:40]!r}… has {len(requested)} characters, over the limit "
                               f"of {MAX_NAME_LENGTH}; choose a shorter name")
        return requested
    name = _NAME_CHARS.sub("-", fallback).strip("-_")[:MAX_NAME_LENGTH].strip("-_") or "catalog"
    return name


def check_target(name: str, overwrite: bool, stored_names: Callable[[], Sequence[str]]) -> None:
    """Refuse early (before any reading) a reserved name, or a taken one when overwriting was not asked for.

    `stored_names` lists the catalogs stored already; it is asked only once the name is not a reserved one."""
    if name.lower() in RESERVED_NAMES:  # on a case-insensitive disk "DEMO" would share the demo's folder
        raise StoreError(f"the name {name!r} belongs to the built-in demo catalog, which imports never replace "
                         "(names differing only in case are one name; rebuild it with `python -m core demo`); "
                         "choose another name")
    names = list(stored_names())
    twin = next((n for n in names if n.lower() == name.lower() and n != name), None)
    if twin is not None:
        raise StoreError(f"the name {name!r} differs from the stored catalog {twin!r} only in case, and on a "
                         "case-insensitive disk the two would share one folder; choose another name")
    if name in names and not overwrite:
        raise StoreError(f"a catalog named {name!r} exists already; choose another name, or replace it with "
                         "--overwrite (the Overwrite box in the app, where the operator allows it)")


def check_inside(path: Path, folder: Path, shown: Path | str) -> None:
    """Refuse a file of a folder import that is, or passes through, a symbolic link leading out of `folder`."""
    if not path.resolve().is_relative_to(folder.resolve()):
        raise CatalogError(f"{shown}: is a symbolic link that leads outside the catalog folder; refused. Copy "
                           "the real file into the folder")


def require_columns(frame: pd.DataFrame, required: Sequence[str], file: Path | str) -> None:
    """CatalogError naming the missing columns and listing the ones present."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CatalogError(
            f"{file}: missing column(s) {', '.join(missing)}; the file has columns "
            f"{', '.join(map(str, frame.columns)) or '(none)'}. Rename or add them (the first line is the header).")


def blank(value: Any) -> bool:
    """Whether a cell holds nothing (None, NaN, empty or whitespace-only string)."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def check_unique_ids(ids: Sequence[str], file: Path | str, row_label: RowLabel, note: str,
                     what: str = "id") -> None:
    """CatalogError naming duplicated ids and the rows where each first appears twice."""
    seen: dict[str, int] = {}
    dupes: dict[str, list[int]] = {}
    for i, value in enumerate(ids):
        if value in seen:
            dupes.setdefault(value, [seen[value]]).append(i)
        else:
            seen[value] = i
    if dupes:
        detail = listing(f"{v!r} ({' and '.join(row_label(r) for r in rows[:2])})" for v, rows in dupes.items())
        raise CatalogError(f"{file}: {len(dupes)} duplicated {what}(s): {detail} ({note}); "
                           f"every {what} must appear once")


def check_feature_matrix(values: np.ndarray, file: Path | str, n_items: int) -> np.ndarray:
    """A (n_items, D) float32 copy of `values`; CatalogError on wrong shape or NaN/inf rows."""
    if values.ndim != 2:
        raise CatalogError(f"{file}: a feature matrix must be 2-D (items × features), got shape {values.shape}")
    if values.shape[0] != n_items:
        raise CatalogError(
            f"{file}: has {values.shape[0]:,} rows but the catalog has {n_items:,} items; row i must hold "
            "the features of item i, so the counts must match")
    if not np.issubdtype(values.dtype, np.number):
        raise CatalogError(f"{file}: holds {values.dtype} values; a feature matrix must be numeric")
    out = values.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if bad.size:
        raise CatalogError(f"{file}: {bad.size} row(s) hold NaN or infinite values (rows counted from 0 = item "
                           f"id): {listing(bad.tolist())}; recompute or drop those items' features")
    return out


# -- interactions -----------------------------------------------------------------------------------
_SPLIT_ALIASES = {"train": "train", "valid": "valid", "validation": "valid", "val": "valid", "test": "test"}


def parse_interactions(frame: pd.DataFrame, file: Path | str, item_ids: Iterable[str],
                       row_label: RowLabel = csv_row, note: str = CSV_ROWS_NOTE,
                       warnings: list[str] | None = None) -> pd.DataFrame:
    """Canonical interactions from a frame with user_id, item_id[, rating, timestamp, split].

    Item ids must all be in `item_ids`; ratings and timestamps must be numbers (timestamps may also be
    dates); split labels must be train, valid (or validation) or test, or empty.
    """
    frame = frame.rename(columns=lambda c: str(c).strip())
    require_columns(frame, ("user_id", "item_id"), file)
    kept = [c for c in frame.columns if c in INTERACTION_COLUMNS]
    ignored = [c for c in frame.columns if c not in INTERACTION_COLUMNS]
    if warnings is not None and ignored:
        warnings.append(f"{file}: columns kept: {', '.join(kept)}; ignored: {listing(ignored, 10)} (only "
                        "user_id, item_id, rating, timestamp and split are read)")
    n = len(frame)
    users = frame["user_id"].map(lambda v: None if blank(v) else _id_text(v))
    items = frame["item_id"].map(lambda v: None if blank(v) else _id_text(v))
    for column, values in (("user_id", users), ("item_id", items)):
        empty = np.flatnonzero(values.isna().to_numpy())
        if empty.size:
            raise CatalogError(f"{file}: column {column} is empty in {listing(row_label(i) for i in empty)} "
                               f"({note}); fill it in or delete those rows")
    known = set(item_ids)
    unknown = ~items.isin(known).to_numpy()
    if unknown.any():
        rows = np.flatnonzero(unknown)
        ids = list(dict.fromkeys(items.iloc[rows]))
        raise CatalogError(
            f"{file}: {len(ids)} item id(s) in column item_id are not in the catalog: {listing(map(repr, ids))} "
            f"(first at {row_label(int(rows[0]))}; {note}); fix the ids or import those items first")
    out = pd.DataFrame({
        "user_id": users.astype("string").to_numpy(),
        "item_id": items.astype("string").to_numpy(),
        "rating": _numbers(frame, "rating", file, row_label, note) if "rating" in frame else np.ones(n),
        "timestamp": _timestamps(frame, file, row_label, note) if "timestamp" in frame else np.full(n, np.nan),
        "split": _splits(frame, file, row_label, note) if "split" in frame else pd.array([pd.NA] * n,
                                                                                        dtype="string"),
    }).astype(empty_interactions().dtypes.to_dict())
    dupes = int(out.duplicated(["user_id", "item_id"]).sum())
    if dupes and warnings is not None:
        warnings.append(f"{file}: {dupes:,} repeated (user, item) pair(s) kept as separate interactions")
    return out


def _id_text(value: Any) -> str:
    # JSON and Parquet give numbers: 7.0 and 7 must both name item "7"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _numbers(frame: pd.DataFrame, column: str, file: Path | str, row_label: RowLabel, note: str) -> np.ndarray:
    raw = frame[column]
    values = pd.to_numeric(raw.map(lambda v: np.nan if blank(v) else v), errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() & ~raw.map(blank).to_numpy())
    if bad.size:
        raise CatalogError(f"{file}: column {column} holds non-numbers in {listing(row_label(i) for i in bad)} "
                           f"({note}), e.g. {raw.iloc[bad[0]]!r}; use plain numbers")
    values = values.to_numpy(dtype="float64")
    inf = np.flatnonzero(np.isinf(values))
    if inf.size:
        raise CatalogError(f"{file}: column {column} is infinite in {listing(row_label(i) for i in inf)} ({note})")
    return values


def _timestamps(frame: pd.DataFrame, file: Path | str, row_label: RowLabel, note: str) -> np.ndarray:
    raw = frame["timestamp"]
    numeric = pd.to_numeric(raw.map(lambda v: np.nan if blank(v) else v), errors="coerce")
    text = numeric.isna().to_numpy() & ~raw.map(blank).to_numpy()
    values = numeric.to_numpy(dtype="float64", copy=True)
    if text.any():
        # dates such as 2024-05-01T10:00 become seconds since 1970 (UTC)
        parsed = pd.to_datetime(raw[text], errors="coerce", utc=True, format="mixed")
        bad = np.flatnonzero(text)[parsed.isna().to_numpy()]
        if bad.size:
            raise CatalogError(
                f"{file}: column timestamp holds values that are neither numbers nor dates in "
                f"{listing(row_label(i) for i in bad)} ({note}), e.g. {raw.iloc[bad[0]]!r}; "
                "use seconds since 1970 or ISO dates such as 2024-05-01T10:00:00")
        values[text] = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return values


def _splits(frame: pd.DataFrame, file: Path | str, row_label: RowLabel, note: str) -> pd.Series:
    raw = frame["split"]
    labels = raw.map(lambda v: None if blank(v) else _SPLIT_ALIASES.get(str(v).strip().lower(), "?"))
    bad = np.flatnonzero((labels == "?").to_numpy())
    if bad.size:
        raise CatalogError(f"{file}: column split holds {raw.iloc[bad[0]]!r} in "
                           f"{listing(row_label(i) for i in bad)} ({note}); use train, valid or test, "
                           "or leave it empty")
    return labels.astype("string")


def modalities_summary(catalog: Catalog) -> str:
    """'text 1,425 · audio 1,425': items per modality present."""
    present = catalog.modalities_present()
    return " · ".join(f"{m} {present[m]:,}" for m in MODALITIES if present.get(m)) or "none"
