"""Import a catalog from a manifest (CSV, JSON or Parquet) with its media beside it, from a folder or a zip.

Layout (in a folder, or at the top of a zip or of its single top-level folder):
    manifest.csv | manifest.json | manifest.parquet   columns id, title, text, image, audio (+ any extra
                                                      columns, kept as item metadata)
    interactions.csv                                  optional: user_id, item_id[, rating, timestamp, split]
    covers/…, audio/…                                 media, referenced relative to the manifest

Every row, every media file (decoded with core.media) and every zip entry is checked before anything is
written; the catalog then goes into the store in one atomic save.
"""
from __future__ import annotations

import json
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from core.catalog.model import Catalog, Item
from core.catalog.validation import (CSV_ROWS_NOTE, RECORD_ROWS_NOTE, TABLE_ROWS_NOTE, ImportReport, Progress,
                                     RowLabel, blank, catalog_name, check_target, check_unique_ids, csv_row,
                                     listing, parse_interactions, record_row, report_for, require_columns,
                                     table_row)
from core.errors import CatalogError, UnsupportedMediaError
from core.media import AUDIO_SAMPLE_RATE, load_audio, load_image
from core.store import Store

MANIFEST_NAMES: tuple[str, ...] = ("manifest.csv", "manifest.json", "manifest.parquet")
INTERACTIONS_NAME = "interactions.csv"
CORE_COLUMNS: tuple[str, ...] = ("id", "title", "text", "image", "audio")
MAX_UNPACKED_BYTES = 4 * 1024 ** 3  # a zip that unpacks to more is refused (zip bomb guard)
MAX_ZIP_ENTRIES = 500_000  # likewise for the number of entries
MEDIA_WORKERS = 2  # threads decoding media during validation (decoders release the GIL)
_IGNORED_ENTRIES = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$)")


def import_manifest(source: Path | str, store: Store, name: str | None = None, overwrite: bool = False,
                    *, progress: Progress | None = None,
                    max_unpacked_bytes: int = MAX_UNPACKED_BYTES) -> ImportReport:
    """Validate the manifest catalog at `source` (folder or .zip) and store it with its media."""
    source = Path(source).expanduser()
    if not source.exists():
        raise CatalogError(f"{source} does not exist; give the path of a catalog folder or .zip")
    is_zip = source.is_file() and source.suffix.lower() == ".zip"
    if source.is_file() and not is_zip:
        if source.name in MANIFEST_NAMES:  # the manifest itself was given: use its folder
            source = source.parent
        else:
            raise CatalogError(f"{source} is neither a folder nor a .zip; give the folder (or zip) that holds "
                               f"one of {', '.join(MANIFEST_NAMES)} and the media")
    name = catalog_name(name, source.stem if is_zip else source.resolve().name)
    check_target(store, name, overwrite)
    with tempfile.TemporaryDirectory(prefix="prism-import-") as tmp:
        folder = source
        if is_zip:
            folder = Path(tmp) / "unpacked"
            extract_zip(source, folder, max_unpacked_bytes)
        catalog, media_files, warnings = read_manifest_catalog(folder, name, progress=progress,
                                                               label=source if is_zip else None)
        catalog.metadata.update({"source": "manifest", "imported_from": str(source)})
        store.save_catalog(catalog, media_files=media_files, overwrite=overwrite)
    return report_for(catalog, source, warnings)


# -- zip ----------------------------------------------------------------------------------------------
def extract_zip(archive: Path, dest: Path, max_unpacked_bytes: int = MAX_UNPACKED_BYTES) -> None:
    """Unpack `archive` into `dest` after checking every entry; nothing is written if one is refused."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise CatalogError(f"{archive}: not a readable zip file ({e}); re-create the archive") from e
    with zf:
        infos = [i for i in zf.infolist() if not _IGNORED_ENTRIES.search(i.filename)]
        if len(infos) > MAX_ZIP_ENTRIES:
            raise CatalogError(f"{archive}: holds {len(infos):,} entries (limit {MAX_ZIP_ENTRIES:,}); "
                               "split the catalog or import it from a folder")
        total = 0
        for info in infos:
            _check_entry(archive, info)
            total += info.file_size
        if total > max_unpacked_bytes:
            raise CatalogError(
                f"{archive}: unpacks to {total / 2**20:,.0f} MiB, over the {max_unpacked_bytes / 2**20:,.0f} MiB "
                "limit (it may be a zip bomb); import a smaller catalog or from a folder")
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for info in infos:
            target = root / _entry_path(info.filename)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise CatalogError(f"{archive}: entry {info.filename!r} cannot be unpacked ({e}); "
                                   "the archive is damaged, re-create it") from e


def _entry_path(name: str) -> PurePosixPath:
    return PurePosixPath(name.replace("\\", "/"))


def _check_entry(archive: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    path = _entry_path(name)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise CatalogError(f"{archive}: entry {name!r} is a symbolic link, which is refused; "
                           "zip the real files instead")
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise CatalogError(f"{archive}: entry {name!r} has an absolute path, which would escape the catalog "
                           "folder; refused. Zip the catalog with relative paths")
    if ".." in path.parts:
        raise CatalogError(f"{archive}: entry {name!r} contains '..', which would escape the catalog folder; "
                           "refused. Zip the catalog with plain relative paths")
    if info.flag_bits & 0x1:
        raise CatalogError(f"{archive}: entry {name!r} is password-protected; zip it without a password")


# -- manifest -----------------------------------------------------------------------------------------
def find_manifest(folder: Path) -> Path:
    """The manifest file in `folder` (or in its single sub-folder, as zipping a folder gives)."""
    if not folder.is_dir():
        raise CatalogError(f"{folder} is not a folder")
    found = [folder / n for n in MANIFEST_NAMES if (folder / n).is_file()]
    if not found:
        subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))]
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        if len(subs) == 1 and not files:
            return find_manifest(subs[0])
        present = sorted(p.name for p in folder.iterdir())
        raise CatalogError(f"{folder}: no manifest found; add one of {', '.join(MANIFEST_NAMES)} at the top "
                           f"(found: {listing(present, 10) or 'nothing'})")
    if len(found) > 1:
        raise CatalogError(f"{folder}: holds {' and '.join(p.name for p in found)}; keep exactly one manifest")
    return found[0]


def read_manifest(path: Path, shown: Path | str | None = None) -> tuple[pd.DataFrame, RowLabel, str]:
    """The manifest's rows, how to name a row to the user, and a note on how rows are counted."""
    shown = path if shown is None else shown
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
            label, note = csv_row, CSV_ROWS_NOTE
        elif suffix == ".json":
            records = json.loads(path.read_text(encoding="utf-8-sig"))
            if not isinstance(records, list):
                raise CatalogError(f"{shown}: must hold a JSON list of records ([{{\"id\": …}}, …]), "
                                   f"found a {type(records).__name__}")
            bad = [i for i, r in enumerate(records) if not isinstance(r, dict)]
            if bad:
                raise CatalogError(f"{shown}: {listing(record_row(i) for i in bad)} ({RECORD_ROWS_NOTE}) "
                                   "are not objects; every record must look like {\"id\": …, \"title\": …}")
            frame = pd.DataFrame.from_records(records)
            label, note = record_row, RECORD_ROWS_NOTE
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
            label, note = table_row, TABLE_ROWS_NOTE
        else:
            raise CatalogError(f"{shown}: unsupported manifest type {suffix!r}; use .csv, .json or .parquet")
    except CatalogError:
        raise
    except UnicodeDecodeError as e:
        raise CatalogError(f"{shown}: is not UTF-8 text (byte {e.start}); save it as UTF-8") from e
    except Exception as e:  # pandas/pyarrow/json raise many types for malformed files
        raise CatalogError(f"{shown}: cannot be read as {suffix[1:].upper()} ({type(e).__name__}: {e}); "
                           "fix the file's format") from e
    frame = frame.rename(columns=lambda c: str(c).strip())
    return frame, label, note


def read_manifest_catalog(folder: Path, name: str, progress: Progress | None = None,
                          label: Path | str | None = None) -> tuple[Catalog, dict[str, Path], list[str]]:
    """Read and fully validate the catalog in `folder`: (catalog, media reference -> file, warnings)."""
    manifest = find_manifest(folder)
    root = manifest.parent

    # inside a zip, name files as archive.zip:path so the user can find them
    def shown_as(path: Path) -> Path | str:
        return path if label is None else f"{label}:{path.relative_to(folder).as_posix()}"

    shown = shown_as(manifest)
    frame, row_label, note = read_manifest(manifest, shown)
    warnings: list[str] = []
    if frame.empty:
        raise CatalogError(f"{shown}: the manifest has no rows; add one row per item")
    require_columns(frame, ("id",), shown)
    if not any(c in frame.columns for c in ("text", "image", "audio")):
        raise CatalogError(f"{shown}: no content column; add at least one of text, image, audio "
                           f"(the file has columns {', '.join(map(str, frame.columns))})")
    ids = [None if blank(v) else _cell_text(v) for v in frame["id"]]
    empty = [i for i, v in enumerate(ids) if v is None]
    if empty:
        raise CatalogError(f"{shown}: column id is empty in {listing(row_label(i) for i in empty)} ({note}); "
                           "give every item an id")
    check_unique_ids(ids, shown, row_label, note)

    items: list[Item] = []
    untitled = 0
    extra = [c for c in frame.columns if c not in CORE_COLUMNS]
    records = frame.to_dict("records")
    for i, (item_id, row) in enumerate(zip(ids, records)):
        title = row.get("title")
        if blank(title):
            untitled += 1
            title = item_id
        refs = {m: _media_ref(row.get(m), shown, row_label(i), m, note) for m in ("image", "audio")}
        text = row.get("text")
        metadata = {c: _json_value(row[c]) for c in extra if not _blank_any(row[c])}
        items.append(Item(id=item_id, title=_cell_text(title), text=None if blank(text) else str(text),
                          image=refs["image"], audio=refs["audio"], metadata=metadata))
    if untitled:
        warnings.append(f"{shown}: {untitled:,} item(s) have no title; their id is shown instead")

    media_files = _check_media(items, root, shown, row_label, note, progress)

    interactions = None
    inter_path = root / INTERACTIONS_NAME
    if inter_path.is_file():
        try:
            raw = pd.read_csv(inter_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except Exception as e:
            raise CatalogError(f"{shown_as(inter_path)}: cannot be read as CSV ({type(e).__name__}: {e})") from e
        interactions = parse_interactions(raw, shown_as(inter_path), ids, warnings=warnings)
    else:
        warnings.append(f"no {INTERACTIONS_NAME} beside the manifest: the catalog has no interactions yet "
                        "(add them with `python -m core import interactions`)")
    catalog = Catalog(name=name, items=items, metadata={"manifest": manifest.name})
    if interactions is not None:
        catalog.interactions = interactions
    return catalog, media_files, warnings


def _cell_text(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value).strip()


def _blank_any(value: Any) -> bool:
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return len(value) == 0
    return blank(value)


def _json_value(value: Any) -> Any:
    """A JSON-storable form of a metadata cell (numpy scalars and arrays from Parquet included)."""
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _media_ref(value: Any, shown: Any, row: str, column: str, note: str) -> str | None:
    """A clean relative reference, refusing paths that leave the catalog folder."""
    if blank(value):
        return None
    text = str(value).strip().replace("\\", "/")
    ref = PurePosixPath(text)
    if ref.is_absolute() or re.match(r"^[A-Za-z]:", text) or "://" in text:
        raise CatalogError(f"{shown}: {row}, column {column}: {text!r} is not a path relative to the manifest "
                           f"({note}); put the file beside the manifest and give its relative path")
    if ".." in ref.parts:
        raise CatalogError(f"{shown}: {row}, column {column}: {text!r} points outside the catalog folder "
                           f"({note}); move the file under the manifest's folder")
    return ref.as_posix()


def _check_media(items: list[Item], root: Path, shown: Any, row_label: RowLabel, note: str,
                 progress: Progress | None) -> dict[str, Path]:
    """Decode every referenced media file once; CatalogError lists the rows whose files fail."""
    jobs: dict[tuple[str, str], tuple[int, str]] = {}  # (modality, ref) -> first (row, column)
    for i, item in enumerate(items):
        for m in ("image", "audio"):
            ref = getattr(item, m)
            if ref is not None:
                jobs.setdefault((m, ref), (i, m))
    total = len(jobs)
    problems: list[tuple[int, str, Exception]] = []
    checker: dict[str, Callable[[Path, str], None]] = {"image": _check_image, "audio": _check_audio}

    def check(key: tuple[str, str]) -> Exception | None:
        modality, ref = key
        path = root / ref
        if not path.is_file():
            return FileNotFoundError(f"file {ref!r} not found beside the manifest (looked for {path})")
        try:
            checker[modality](path, ref)
        except UnsupportedMediaError as e:
            return e
        return None

    if progress:
        progress(0, total, "checking media")
    with ThreadPoolExecutor(max_workers=MEDIA_WORKERS) as pool:
        for done, (key, error) in enumerate(zip(jobs, pool.map(check, jobs)), start=1):
            if error is not None:
                i, column = jobs[key]
                problems.append((i, column, error))
            if progress:
                progress(done, total, f"checked {key[1]}")
    if problems:
        problems.sort(key=lambda p: p[0])
        lines = [f"{row_label(i)}, column {c}: {e}" for i, c, e in problems]
        raise CatalogError(f"{shown}: {len(problems)} media file(s) cannot be used ({note}): "
                           f"{listing(lines, 3)}. Fix or remove those files, or clear the cells") from problems[0][2]
    return {ref: root / ref for (_, ref) in jobs}


def _check_image(path: Path, ref: str) -> None:
    load_image(path, name=ref)


def _check_audio(path: Path, ref: str) -> None:
    import soundfile as sf

    try:  # decode at the native rate: resampling is not needed to know the clip is usable
        sr = int(sf.info(str(path)).samplerate)
    except Exception:
        sr = AUDIO_SAMPLE_RATE
    load_audio(path, name=ref, sr=sr)
