"""Import a catalog from a manifest (CSV, JSON or Parquet) with its media beside it, from a folder or a zip.

Layout (in a folder, or at the top of a zip or of its single top-level folder):
    manifest.csv | manifest.json | manifest.parquet   columns id, title, text, image, audio (+ any extra
                                                      columns, kept as item metadata)
    interactions.csv                                  optional: user_id, item_id[, rating, timestamp, split]
    covers/…, audio/…                                 media, referenced relative to the manifest

Every row, every media file (decoded with core.catalog.media) and every zip entry is checked before anything is
written; the catalog then goes into the store in one atomic save (core.workspace.imports). A media cell whose
file cannot be used (missing, corrupt, silent, too short) masks that modality of its item and is listed in full
in the report, which is stored with the catalog; `strict=True` refuses the whole import instead. An import where
every cell of a modality fails, or most rows have a failing cell, is refused either way.
"""
from __future__ import annotations

import errno
import json
import re
import shutil
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from core.catalog.model import Catalog, Item
from core.catalog.validation import (CSV_ROWS_NOTE, RECORD_ROWS_NOTE, TABLE_ROWS_NOTE, MediaProblem,
                                     Progress, RowLabel, blank, catalog_name, check_inside,
                                     check_unique_ids, csv_row, listing, parse_interactions, record_row,
                                     require_columns, table_row)
from core.errors import CatalogError, UnsupportedMediaError
from core.limits import Limits, limits
from core.catalog.media import load_audio, load_image

MANIFEST_NAMES: tuple[str, ...] = ("manifest.csv", "manifest.json", "manifest.parquet")
INTERACTIONS_NAME = "interactions.csv"
CORE_COLUMNS: tuple[str, ...] = ("id", "title", "text", "image", "audio")
MAX_UNPACKED_BYTES = Limits().max_unpacked_bytes  # default; $PRISM_MAX_UNPACKED_MB sets it (core.limits)
MAX_ZIP_ENTRIES = Limits().max_zip_entries  # default; $PRISM_MAX_ZIP_ENTRIES sets it
MAX_NAME_BYTES = 255  # longest file or folder name most file systems accept
MOST_ROWS_FAILING = 0.5  # more than this share of rows with an unusable media cell stops the import
MEDIA_WORKERS = 2  # threads decoding media during validation (decoders release the GIL)
_IGNORED_ENTRIES = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$)")


def manifest_source(source: Path | str) -> tuple[Path, bool]:
    """(the catalog folder or .zip to read, whether it is a zip); a path that is neither says what to give."""
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
    return source, is_zip


def manifest_catalog_name(source: Path, is_zip: bool, name: str | None) -> str:
    """The name a manifest import stores: `name`, else the zip's or the folder's name made safe."""
    return catalog_name(name, source.stem if is_zip else source.resolve().name)


def read_manifest_source(source: Path, is_zip: bool, name: str, scratch: Path, *,
                         progress: Progress | None = None, strict: bool = False,
                         max_unpacked_bytes: int | None = None
                         ) -> tuple[Catalog, dict[str, Path], list[str], list[MediaProblem]]:
    """Validate the manifest catalog at `source` (from manifest_source): (catalog, media files by reference,
    warnings, masked media cells). A zip is unpacked under `scratch`, which must outlive the media files.

    Unusable media cells are masked and reported (`strict=True`: refused). `max_unpacked_bytes`
    overrides $PRISM_MAX_UNPACKED_MB for a zip.
    """
    folder = source
    if is_zip:
        folder = Path(scratch) / "unpacked"
        extract_zip(source, folder, max_unpacked_bytes)
    catalog, media_files, warnings, problems = read_manifest_catalog(
        folder, name, progress=progress, label=source.name if is_zip else None, strict=strict)
    catalog.metadata.update({"source": "manifest", "imported_from": str(source),
                             "import_problems": [p.as_dict() for p in problems]})
    return catalog, media_files, warnings, problems


# -- zip ----------------------------------------------------------------------------------------------
def extract_zip(archive: Path, dest: Path, max_unpacked_bytes: int | None = None,
                limits_: Limits | None = None) -> None:
    """Unpack `archive` into `dest` after checking every entry; nothing is written if one is refused.

    Refused: more entries, more unpacked bytes or a higher compression ratio than the limits allow
    ($PRISM_MAX_ZIP_ENTRIES, $PRISM_MAX_UNPACKED_MB, $PRISM_MAX_ZIP_RATIO), entries that would leave `dest`,
    links, over-long names and a file and a folder of the same name.
    """
    lim = limits_ or limits()
    max_bytes = lim.max_unpacked_bytes if max_unpacked_bytes is None else max_unpacked_bytes
    declared = _declared_entries(archive)
    if declared > lim.max_zip_entries:  # refused before the central directory is parsed (that alone takes long)
        raise CatalogError(f"{archive.name}: holds {declared:,} entries, over the limit of {lim.max_zip_entries:,} "
                           "entries ($PRISM_MAX_ZIP_ENTRIES); split the catalog or import it from a folder")
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise CatalogError(f"{archive.name}: not a readable zip file ({e}); re-create the archive") from e
    with zf:
        infos = [i for i in zf.infolist() if not _IGNORED_ENTRIES.search(i.filename)]
        if len(infos) > lim.max_zip_entries:
            raise CatalogError(f"{archive.name}: holds {len(infos):,} entries, over the limit of "
                               f"{lim.max_zip_entries:,} entries ($PRISM_MAX_ZIP_ENTRIES); split the catalog "
                               "or import it from a folder")
        total = packed = 0
        for info in infos:
            _check_entry(archive, info)
            total += info.file_size
            packed += info.compress_size
            if info.file_size > 1 << 20 and info.file_size > lim.max_zip_ratio * max(info.compress_size, 1):
                raise CatalogError(
                    f"{archive.name}: entry {info.filename!r} unpacks {info.file_size / max(info.compress_size, 1):,.0f} "
                    f"times its packed size, over the compression-ratio limit of {lim.max_zip_ratio:,.0f} "
                    "($PRISM_MAX_ZIP_RATIO; it may be a zip bomb); zip real media, or raise the limit")
        if total > max_bytes:
            raise CatalogError(
                f"{archive.name}: unpacks to {total / 2**20:,.0f} MiB, over the unpacked-size limit of "
                f"{max_bytes / 2**20:,.0f} MiB ($PRISM_MAX_UNPACKED_MB; it may be a zip bomb); import a smaller "
                "catalog or from a folder")
        if total > 1 << 20 and total > lim.max_zip_ratio * max(packed, 1):
            raise CatalogError(
                f"{archive.name}: unpacks to {total / max(packed, 1):,.0f} times its packed size, over the "
                f"compression-ratio limit of {lim.max_zip_ratio:,.0f} ($PRISM_MAX_ZIP_RATIO; it may be a zip "
                "bomb); zip real media, or raise the limit")
        _check_file_folder_clash(archive, infos)
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
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise CatalogError(
                        f"{archive.name}: no space left on the store's disk while unpacking entry "
                        f"{info.filename!r}; free some space there and import again. Nothing was stored") from e
                raise CatalogError(f"{archive.name}: entry {info.filename!r} cannot be written while unpacking "
                                   f"({e.strerror or e}); nothing was stored") from e
            except (zipfile.BadZipFile, EOFError, zlib.error) as e:
                raise CatalogError(f"{archive.name}: entry {info.filename!r} cannot be unpacked ({e}); "
                                   "the archive is damaged, re-create it") from e


def _declared_entries(archive: Path) -> int:
    """The entry count the zip's end record declares (0 when it cannot be read; the full check follows)."""
    try:
        with open(archive, "rb") as f:
            record = zipfile._EndRecData(f)  # the stdlib's own reader of the end-of-central-directory record
        return int(record[zipfile._ECD_ENTRIES_TOTAL]) if record else 0
    except (OSError, AttributeError, IndexError, TypeError, ValueError, struct.error):
        return 0


def _entry_path(name: str) -> PurePosixPath:
    return PurePosixPath(name.replace("\\", "/"))


def _check_file_folder_clash(archive: Path, infos: list[zipfile.ZipInfo]) -> None:
    """A file and a folder (or a file and another file) of the same path cannot both be unpacked."""
    files: dict[str, str] = {}
    folders: set[str] = set()
    for info in infos:
        parts = _entry_path(info.filename).parts
        for k in range(1, len(parts)):
            folders.add("/".join(parts[:k]))
        if info.is_dir():
            folders.add("/".join(parts))
        else:
            key = "/".join(parts)
            if key in files:
                raise CatalogError(f"{archive.name}: holds {info.filename!r} twice; keep one copy of each file")
            files[key] = info.filename
    clash = sorted(set(files) & folders)
    if clash:
        raise CatalogError(f"{archive.name}: {clash[0]!r} is both a file and a folder in the archive; rename one of "
                           "them and zip again")


def _check_entry(archive: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    path = _entry_path(name)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise CatalogError(f"{archive.name}: entry {name!r} is a symbolic link, which is refused; "
                           "zip the real files instead")
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise CatalogError(f"{archive.name}: entry {name!r} has an absolute path, which would escape the catalog "
                           "folder; refused. Zip the catalog with relative paths")
    if ".." in path.parts:
        raise CatalogError(f"{archive.name}: entry {name!r} contains '..', which would escape the catalog folder; "
                           "refused. Zip the catalog with plain relative paths")
    if info.flag_bits & 0x1:
        raise CatalogError(f"{archive.name}: entry {name!r} is password-protected; zip it without a password")
    long = [p for p in path.parts if len(p.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES]
    if long:
        raise CatalogError(f"{archive.name}: entry {name[:80]!r}… has a name of {len(long[0].encode('utf-8', 'replace'))} "
                           f"bytes, over the {MAX_NAME_BYTES}-byte limit of file systems; shorten it and zip again")


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
        raise CatalogError(f"{folder}: no manifest found; add one of {', '.join(MANIFEST_NAMES)} at the top of "
                           f"the catalog folder (it holds {len(files)} file(s) and {len(subs)} folder(s) but none "
                           "of those names)")
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
                          label: Path | str | None = None, strict: bool = False
                          ) -> tuple[Catalog, dict[str, Path], list[str], list[MediaProblem]]:
    """Read and fully validate the catalog in `folder`: (catalog, media reference -> file, warnings,
    media cells masked because their file cannot be used)."""
    manifest = find_manifest(folder)
    root = manifest.parent

    # inside a zip, name files as archive.zip:path so the user can find them
    def shown_as(path: Path) -> Path | str:
        return path if label is None else f"{label}:{path.relative_to(folder).as_posix()}"

    shown = shown_as(manifest)
    check_inside(manifest, folder, shown)
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

    media_files, problems = _check_media(items, root, shown, row_label, note, progress, strict, str(manifest.name))
    if problems:
        warnings.append(f"{len(problems):,} media cell(s) cannot be used and were masked (the item is imported "
                        "without that modality); the import report lists each with its reason")

    interactions = None
    inter_path = root / INTERACTIONS_NAME
    if inter_path.is_file():
        check_inside(inter_path, folder, shown_as(inter_path))
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
    return catalog, media_files, warnings, problems


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
                 progress: Progress | None, strict: bool = False, file_name: str = "manifest"
                 ) -> tuple[dict[str, Path], list[MediaProblem]]:
    """Decode every referenced media file once; unusable cells are masked on their items and returned.

    Refused outright: `strict` with any unusable cell, a modality none of whose cells is usable, and a
    catalog where most rows have an unusable cell.
    """
    jobs: dict[tuple[str, str], list[int]] = {}  # (modality, ref) -> every row that references it
    for i, item in enumerate(items):
        for m in ("image", "audio"):
            ref = getattr(item, m)
            if ref is not None:
                jobs.setdefault((m, ref), []).append(i)
    total = len(jobs)
    checker: dict[str, Callable[[Path, str], None]] = {"image": _check_image, "audio": _check_audio}
    real_root = root.resolve()

    def check(key: tuple[str, str]) -> Exception | None:
        modality, ref = key
        path = root / ref
        if not path.resolve().is_relative_to(real_root):  # a symbolic link on the way leads elsewhere
            return _Refused(f"{ref!r} is (or passes through) a symbolic link that leads outside the catalog "
                            "folder; refused. Copy the real file into the folder")
        if not path.is_file():
            return FileNotFoundError(f"file {ref!r} not found beside the manifest")
        try:
            checker[modality](path, ref)
        except UnsupportedMediaError as e:
            return e
        return None

    if progress:
        progress(0, total, "checking media")
    errors: dict[tuple[str, str], Exception] = {}
    with ThreadPoolExecutor(max_workers=MEDIA_WORKERS) as pool:
        for done, (key, error) in enumerate(zip(jobs, pool.map(check, jobs)), start=1):
            if error is not None:
                errors[key] = error
            if progress:
                progress(done, total, f"checked {key[1]}")
    refused = [(jobs[k][0], k[0], e) for k, e in errors.items() if isinstance(e, _Refused)]
    if refused:
        i, column, e = min(refused, key=lambda r: r[0])
        raise CatalogError(f"{shown}: {row_label(i)}, column {column}: {e}") from None
    problems = sorted((MediaProblem(file=file_name, row=row_label(i), column=m, reference=ref, reason=str(e))
                       for (m, ref), e in errors.items() for i in jobs[(m, ref)]),
                      key=lambda p: (_row_number(p.row), p.column))
    if problems and strict:
        lines = [f"{p.row}, column {p.column}: {p.reason}" for p in problems]
        first = next(iter(errors.values()))
        raise CatalogError(f"{shown}: {len(problems)} media file(s) cannot be used ({note}): "
                           f"{listing(lines, 10)}. Fix or remove those files, or clear the cells "
                           "(or import without strict checking to mask them)") from first
    for m in ("image", "audio"):
        cells = [k for k in jobs if k[0] == m]
        if cells and all(k in errors for k in cells):
            sample = errors[cells[0]]
            raise CatalogError(f"{shown}: none of the {sum(len(jobs[k]) for k in cells):,} {m} cells can be used "
                               f"(e.g. {row_label(jobs[cells[0]][0])}: {sample}); check the {m} column and the "
                               "files it names")
    failing_rows = {i for k in errors for i in jobs[k]}
    if len(failing_rows) > MOST_ROWS_FAILING * len(items):
        raise CatalogError(f"{shown}: {len(failing_rows):,} of {len(items):,} rows have a media file that cannot "
                           f"be used ({note}), e.g. {problems[0].row}, column {problems[0].column}: "
                           f"{problems[0].reason}. Check the media paths and files")
    for (m, ref) in errors:
        for i in jobs[(m, ref)]:
            setattr(items[i], m, None)
    return {ref: root / ref for (m, ref) in jobs if (m, ref) not in errors}, problems


class _Refused(Exception):
    """A media cell that is refused outright (never masked): it points outside the catalog folder."""


def _row_number(label: str) -> int:
    digits = re.findall(r"\d+", label)
    return int(digits[0]) if digits else 0


def _check_image(path: Path, ref: str) -> None:
    load_image(path, name=ref)


def _check_audio(path: Path, ref: str) -> None:
    import soundfile as sf

    try:  # decode at the native rate: resampling is not needed to know the clip is usable
        sr = int(sf.info(str(path)).samplerate)
    except Exception:
        sr = 22_050
    load_audio(path, name=ref, sr=max(sr, 1))
