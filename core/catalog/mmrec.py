"""Import an MMRec-format folder: `<name>.inter` (TSV userID, itemID, rating, x_label) plus one `.npy`
feature matrix per modality whose row i holds the features of item i.

Optional files beside them (the layout of Last.fm-2K in the multimodal extension of MMRec datasets):
    <name>_og_ids.inter            the same rows with the original user and item ids (row i = row i)
    <name>_text.tsv                `<original id>\\t<text>`: the raw text behind the text features
    <name>_song*_mapping.tsv       original id -> artist name and song titles (for display)
    i_id_mapping.tsv               MMRec's item map (`<original id>\\titemID`, maybe a title column)

A metadata file (`metadata=`, e.g. genres) adds columns to every item's metadata, keyed like the titles.

The item count is the row count of the feature matrices (which must agree); an itemID beyond it is refused,
so a tiny `.inter` naming item 2,000,000,000 costs nothing. Without feature files the import is refused
unless `ids_only`, which keeps the items that appear, remapped to a compact range.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from core.catalog.model import Catalog, FeatureMatrix, Item
from core.catalog.validation import (CSV_ROWS_NOTE, Progress, catalog_name, check_feature_matrix,
                                     check_inside, csv_row, listing, require_columns)
from core.errors import CatalogError

AUTO = "auto"  # pick the feature file by its usual name
TEXT_FILES: tuple[str, ...] = ("all-MiniLM-L6-v2.npy",)  # looked for, in order, when text="auto"
AUDIO_FILES: tuple[str, ...] = ("vggish.npy", "whisper.npy")  # when audio="auto"
IMAGE_FILES: tuple[str, ...] = ("clip.npy", "image_feat.npy")  # when image="auto"
SPLIT_OF_LABEL = {0: "train", 1: "valid", 2: "test"}
SONGS_KEPT = 3  # song titles kept per item as metadata


def read_mmrec(folder: Path | str, name: str | None = None, *, text: str | None = AUTO,
               audio: str | None = AUTO, image: str | None = None, original_ids: bool = False,
               progress: Progress | None = None, check_name: Callable[[str], None] | None = None,
               ids_only: bool = False, text_tsv: str | None = None,
               titles: str | None = None, metadata: str | None = None) -> tuple[Catalog, list[str], Path]:
    """Read and fully validate an MMRec folder: (catalog, warnings, interactions file). Writes nothing.

    `text`, `audio`, `image`: a .npy file name in the folder ("whisper" and "whisper.npy" both work),
    "auto" to use the usual file when present, or None to leave that modality out. `original_ids` names
    users and items by the ids in `<name>_og_ids.inter` instead of the 0-based MMRec ids. `text_tsv` and
    `titles` ("FILE:COLUMN") name the TSV column holding each item's raw text or title (first column = id).
    `ids_only` reads interactions without any feature file. `metadata` ("FILE[:COL,COL]") names a TSV (or
    .csv) whose columns (all but the id, or the ones named) become item metadata, e.g. a genre per item.
    `check_name(name)` may refuse the catalog's name before anything else is read (a name taken in the store).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CatalogError(f"{folder} is not a folder; give the folder that holds the .inter and .npy files")
    inter_path = find_inter_file(folder, name)
    name = catalog_name(name, inter_path.stem)
    if check_name is not None:
        check_name(name)
    warnings: list[str] = []
    step = _stepper(progress, 5)
    step(f"reading {inter_path.name}")
    inter, item_index = read_inter(inter_path)
    for path in (inter_path, *folder.glob("*.npy"), *folder.glob("*.tsv")):
        check_inside(path, folder, path)
    largest = int(item_index.max())

    step("reading feature matrices")
    loaded: dict[str, tuple[Path, np.ndarray]] = {}
    for modality, choice, candidates in (("text", text, TEXT_FILES), ("audio", audio, AUDIO_FILES),
                                         ("image", image, IMAGE_FILES)):
        path = feature_file(folder, choice, candidates, modality)
        if path is not None:
            loaded[modality] = (path, _load_npy(path))
    remap: dict[int, int] | None = None
    if loaded:
        rows = {m: (v.shape[0] if v.ndim >= 1 else 0) for m, (_, v) in loaded.items()}
        if len(set(rows.values())) > 1:
            detail = ", ".join(f"{loaded[m][0].name} has {n:,} rows" for m, n in rows.items())
            raise CatalogError(f"{folder}: the feature matrices disagree on the number of items ({detail}; the "
                               f".inter uses item ids 0–{largest:,}, so {largest + 1:,} items at least); row i of "
                               "every matrix must hold item i, so re-export them with one row per item")
        n_items = next(iter(rows.values()))
        if largest >= n_items:
            beyond = int((item_index >= n_items).sum())
            raise CatalogError(f"{inter_path}: itemID {largest:,} is beyond the {n_items:,} rows of the feature "
                               f"matrices ({beyond:,} interaction(s) name such items); itemID must be the row of "
                               "the item in the .npy files")
        unused = n_items - int(np.unique(item_index).size)
        if unused:
            warnings.append(f"{inter_path.name}: {unused:,} of the {n_items:,} items (rows of the feature "
                            "matrices) have no interactions; they are kept as items")
    elif ids_only:
        used = np.unique(item_index)  # compact: only the ids that appear, however large they are
        remap = {int(v): k for k, v in enumerate(used.tolist())}
        n_items = len(used)
        if largest + 1 > n_items:
            warnings.append(f"{inter_path.name}: {n_items:,} distinct item ids up to {largest:,}; items are the "
                            "ids that appear (no feature matrix fixes the count)")
    else:
        present = sorted(p.name for p in folder.glob("*.npy"))
        raise CatalogError(
            f"{folder}: no feature matrix found for text ({', '.join(TEXT_FILES)}), audio "
            f"({', '.join(AUDIO_FILES)}) or image; .npy files present: {', '.join(present) or 'none'}. Name "
            "them with --text/--audio/--image FILE.npy, or import the interactions alone with --ids-only")

    features: dict[str, FeatureMatrix] = {}
    for modality, (path, raw) in loaded.items():
        values = check_feature_matrix(raw, path, n_items)
        mask = np.abs(values).sum(axis=1) > 0  # all-zero rows are items without this feature
        if not mask.all():
            warnings.append(f"{path.name}: {int((~mask).sum()):,} all-zero row(s) treated as items without "
                            f"{modality}")
        features[modality] = FeatureMatrix(modality, values, mask, f"precomputed:{path.name}")
    if remap is not None:
        mmrec_ids = [int(v) for v in sorted(remap, key=remap.get)]
        item_index = np.array([remap[int(v)] for v in item_index], dtype=np.int64)
    else:
        mmrec_ids = list(range(n_items))

    step("matching titles and text")
    og = read_original_ids(folder, inter_path, inter, item_index, warnings)
    user_ids = inter["user_id"]
    item_names = [str(v) for v in mmrec_ids]
    if og is not None:
        og_items, og_users = og
        lookup = [og_items.get(i) for i in range(n_items)]
        if original_ids:
            user_ids = og_users
            item_names = [str(lookup[i]) if lookup[i] is not None else f"mmrec-{i}" for i in range(n_items)]
            if len(set(item_names)) != n_items:
                raise CatalogError(f"{folder}: several MMRec items share an original id in "
                                   f"{inter_path.stem}_og_ids.inter; import with the MMRec ids instead")
    else:
        lookup = list(mmrec_ids)
        if original_ids:
            raise CatalogError(f"{folder}: original ids were asked for but {inter_path.stem}_og_ids.inter is "
                               "absent; add it or import with the MMRec ids")
    # the id each item is known by in the text, title and metadata files: original id (with _og_ids), else MMRec id
    keys = {str(k) for k in lookup if k is not None}
    texts, title_of, songs = read_item_descriptions(folder, inter_path.stem, og is not None, warnings,
                                                    text_tsv=text_tsv, titles=titles, keys=keys)
    mapped_titles = read_id_mapping_titles(folder, warnings)
    extra = read_item_metadata(folder, metadata, keys, warnings) if metadata else {}
    items = []
    for i in range(n_items):
        key = None if lookup[i] is None else str(lookup[i])
        meta: dict[str, object] = {**extra.get(key, {}), "mmrec_id": mmrec_ids[i]}
        if og is not None and key is not None:
            meta["original_id"] = key
        if key in songs:
            meta["songs"] = songs[key]
        title = title_of.get(key) or mapped_titles.get(mmrec_ids[i]) or f"Item {item_names[i]}"
        items.append(Item(id=item_names[i], title=title, text=texts.get(key), metadata=meta))
    if texts:
        missing = sum(it.text is None for it in items)
        if missing:
            warnings.append(f"{missing:,} item(s) have no text in the text file")

    step("checking the catalog")
    interactions = pd.DataFrame({
        "user_id": pd.array(np.asarray(user_ids, dtype=str), dtype="string"),
        "item_id": pd.array([item_names[i] for i in item_index], dtype="string"),
        "rating": inter["rating"].to_numpy(dtype="float64"),
        "timestamp": inter["timestamp"].to_numpy(dtype="float64"),
        "split": inter["split"].astype("string").to_numpy(),
    })
    dupes = int(interactions.duplicated(["user_id", "item_id"]).sum())
    if dupes:
        warnings.append(f"{inter_path.name}: {dupes:,} repeated (user, item) pair(s) kept as separate rows")
    catalog = Catalog(name=name, items=items, interactions=interactions, features=features,
                      metadata={"source": "mmrec", "imported_from": str(folder), "inter_file": inter_path.name,
                                "original_ids": bool(original_ids and og is not None)})
    return catalog, warnings, inter_path


def _stepper(progress: Progress | None, total: int) -> Callable[[str], None]:
    state = {"done": 0}

    def step(message: str) -> None:
        if progress:
            progress(state["done"], total, message)
        state["done"] += 1

    return step


def find_inter_file(folder: Path, name: str | None = None) -> Path:
    """The interactions file: the only `*.inter` that is not `*_og_ids.inter`, or `<name>.inter`."""
    found = sorted(p for p in folder.glob("*.inter") if not p.name.endswith("_og_ids.inter"))
    for wanted in (name, folder.name):
        if wanted and (folder / f"{wanted}.inter") in found:
            return folder / f"{wanted}.inter"
    if len(found) == 1:
        return found[0]
    if not found:
        present = list(folder.iterdir())
        npy = sum(p.suffix == ".npy" for p in present)
        raise CatalogError(f"{folder}: no <name>.inter file; an MMRec folder needs one beside its .npy feature "
                           f"matrices (the folder holds {len(present)} entries, {npy} of them .npy files)")
    raise CatalogError(f"{folder}: several .inter files ({', '.join(p.name for p in found)}); pass the "
                       "catalog name of the one to import")


def _clean_columns(frame: pd.DataFrame) -> pd.DataFrame:
    # RecBole-style headers carry types ("userID:token"); the name is what matters
    return frame.rename(columns=lambda c: str(c).split(":")[0].strip())


def read_inter(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """(user_id, rating, timestamp, split) per row and the 0-based item index per row, validated."""
    try:
        raw = _clean_columns(pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False))
    except Exception as e:
        raise CatalogError(f"{path}: cannot be read as tab-separated text ({type(e).__name__}: {e})") from e
    require_columns(raw, ("userID", "itemID"), path)
    if raw.empty:
        raise CatalogError(f"{path}: has a header but no interactions; add one row per interaction")
    users = raw["userID"].str.strip()
    empty = np.flatnonzero((users == "").to_numpy())
    if empty.size:
        raise CatalogError(f"{path}: column userID is empty in {listing(csv_row(i) for i in empty)} "
                           f"({CSV_ROWS_NOTE}); fill it in")
    items = pd.to_numeric(raw["itemID"], errors="coerce")
    bad = np.flatnonzero((items.isna() | (items < 0) | (items % 1 != 0)).to_numpy())
    if bad.size:
        raise CatalogError(f"{path}: column itemID must hold whole numbers from 0 (the row of the item in the "
                           f"feature matrices); bad in {listing(csv_row(i) for i in bad)} ({CSV_ROWS_NOTE}), "
                           f"e.g. {raw['itemID'].iloc[bad[0]]!r}")
    out = pd.DataFrame({"user_id": users})
    out["rating"] = _column_numbers(raw, "rating", path, default=1.0)
    out["timestamp"] = _column_numbers(raw, "timestamp", path, default=np.nan)
    if "x_label" in raw:
        labels = pd.to_numeric(raw["x_label"], errors="coerce")
        bad = np.flatnonzero(~labels.isin(list(SPLIT_OF_LABEL)).to_numpy())
        if bad.size:
            raise CatalogError(f"{path}: column x_label must be 0 (train), 1 (valid) or 2 (test); bad in "
                               f"{listing(csv_row(i) for i in bad)} ({CSV_ROWS_NOTE}), e.g. "
                               f"{raw['x_label'].iloc[bad[0]]!r}")
        out["split"] = labels.astype(int).map(SPLIT_OF_LABEL).astype("string")
    else:
        out["split"] = pd.array([pd.NA] * len(raw), dtype="string")
    return out, items.to_numpy(dtype=np.int64)


def _column_numbers(raw: pd.DataFrame, column: str, path: Path, default: float) -> np.ndarray:
    if column not in raw:
        return np.full(len(raw), default)
    values = pd.to_numeric(raw[column], errors="coerce")
    bad = np.flatnonzero((values.isna() | np.isinf(values)).to_numpy())
    if bad.size:
        raise CatalogError(f"{path}: column {column} must hold numbers; bad in "
                           f"{listing(csv_row(i) for i in bad)} ({CSV_ROWS_NOTE}), e.g. {raw[column].iloc[bad[0]]!r}")
    return values.to_numpy(dtype="float64")


def feature_file(folder: Path, choice: str | None, candidates: tuple[str, ...], modality: str) -> Path | None:
    """The .npy file for `modality`: None when left out, the first usual name present for "auto"."""
    if choice is None:
        return None
    if choice == AUTO:
        return next((folder / c for c in candidates if (folder / c).is_file()), None)
    path = folder / (choice if choice.endswith(".npy") else f"{choice}.npy")
    if not path.resolve().is_relative_to(folder.resolve()):
        raise CatalogError(f"the {modality} feature file {choice!r} reads outside the MMRec folder; give the name "
                           f"of a .npy file in {folder.name}")
    if not path.is_file():
        present = sorted(p.name for p in folder.glob("*.npy"))
        raise CatalogError(f"{folder}: no {path.name} for the {modality} features; the folder has "
                           f"{', '.join(present) or 'no .npy files'}")
    return path


def _load_npy(path: Path) -> np.ndarray:
    try:
        values = np.load(path, allow_pickle=False)  # never unpickle: the file may not be trusted
    except Exception as e:
        raise CatalogError(f"{path}: not a readable numeric .npy matrix ({type(e).__name__}: {e}); "
                           "save it with numpy.save from a float array") from e
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "fiu":
        raise CatalogError(f"{path}: holds {getattr(values, 'dtype', type(values).__name__)} values, not real "
                           "numbers; save a float32 matrix with one row per item")
    if values.ndim != 2 or values.shape[1] == 0:
        raise CatalogError(f"{path}: has shape {values.shape}; a feature matrix has one row per item and at least "
                           "one column")
    return values


def read_original_ids(folder: Path, inter_path: Path, inter: pd.DataFrame, item_index: np.ndarray,
                      warnings: list[str]) -> tuple[dict[int, str], np.ndarray] | None:
    """(MMRec item id -> original item id, original user id per row) from `<name>_og_ids.inter`, if present."""
    path = folder / f"{inter_path.stem}_og_ids.inter"
    if not path.is_file():
        return None
    try:
        raw = _clean_columns(pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False))
    except Exception as e:
        raise CatalogError(f"{path}: cannot be read as tab-separated text ({type(e).__name__}: {e})") from e
    require_columns(raw, ("userID", "itemID"), path)
    if len(raw) != len(inter):
        raise CatalogError(f"{path}: has {len(raw):,} rows but {inter_path.name} has {len(inter):,}; row i of "
                           "both files must be the same interaction. Fix or remove the _og_ids file")
    pairs = pd.DataFrame({"item": item_index, "og": raw["itemID"].str.strip()}).drop_duplicates()
    clash = pairs["item"].duplicated(keep=False)
    if clash.any():
        warnings.append(f"{path.name}: {int(pairs.loc[clash, 'item'].nunique())} item(s) map to several "
                        "original ids; the first is used")
    mapping = dict(zip(pairs["item"].tolist()[::-1], pairs["og"].tolist()[::-1]))  # first mapping wins
    return {int(k): v for k, v in mapping.items()}, raw["userID"].str.strip().to_numpy()


def _file_column(spec: str, folder: Path, what: str) -> tuple[Path, str | None]:
    """FILE[:COLUMN] -> (path in or under `folder`, column or None)."""
    name, _, column = spec.partition(":")
    path = Path(name).expanduser()
    path = path if path.is_absolute() else folder / path
    if not path.is_file():
        raise CatalogError(f"{path}: the {what} file does not exist; give FILE:COLUMN with FILE in the MMRec "
                           "folder (or a full path)")
    return path, (column.strip() or None)


def _read_tsv(path: Path) -> pd.DataFrame:
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, quoting=3 if sep == "\t" else 0)
    except Exception as e:
        raise CatalogError(f"{path}: cannot be read as tab-separated text ({type(e).__name__}: {e})") from e
    return frame.rename(columns=lambda c: str(c).strip())


ID_COLUMNS = ("itemID", "item_id", "itemid")  # a mapping's column of MMRec item ids


def _key_column(frame: pd.DataFrame, path: Path, what: str, keys: set[str] | None, exclude: set[str],
                warnings: list[str] | None) -> str:
    """The column that names the items: the first column, or an itemID column when that matches more of
    `keys` (the ids the items are known by); warns when some items find no row, and when the ids look 1-based."""
    first = frame.columns[0]
    candidates = [first] + [c for c in ID_COLUMNS if c in frame.columns and c != first and c not in exclude]
    if not keys:
        return first
    matches = {c: len(set(frame[c].str.strip()) & keys) for c in candidates}
    column = max(candidates, key=lambda c: matches[c])  # ties keep the first column
    if warnings is None:
        return column
    if column != first:
        warnings.append(f"{path.name}: {what} keyed by its {column!r} column (the MMRec item id), which matches "
                        f"{matches[column]:,} of the {len(keys):,} items; its first column {first!r} matches "
                        f"{matches[first]:,}")
    if matches[column] < len(keys):
        note = ""
        numbers = pd.to_numeric(frame[column], errors="coerce").dropna()
        if len(numbers) and (numbers % 1 == 0).all():
            shifted = len({str(int(v) - 1) for v in numbers} & keys)
            if shifted > matches[column]:
                note = (f"; its ids look 1-based (one less would match {shifted:,}): key the file by the 0-based "
                        f"MMRec item id, or add an itemID column")
        warnings.append(f"{path.name}: {matches[column]:,} of the {len(keys):,} items have a row (keyed by column "
                        f"{column!r}); the others get none{note}")
    return column


def _keyed_column(path: Path, column: str | None, what: str, preferred: tuple[str, ...],
                  keys: set[str] | None = None, warnings: list[str] | None = None) -> dict[str, str]:
    """{item id: value of `column`}, the id from the first column or the mapping's itemID column (whichever
    names more of `keys`); refuses to guess among several candidate value columns."""
    frame = _read_tsv(path)
    if frame.shape[1] < 2:
        raise CatalogError(f"{path}: needs two columns, <id> and <{what}>; found "
                           f"{', '.join(map(str, frame.columns))}")
    if column is None:
        named = [c for c in preferred if c in frame.columns]
        if named:
            column = named[0]
        elif frame.shape[1] == 2:
            column = frame.columns[1]
        else:
            raise CatalogError(f"{path}: has {frame.shape[1]} columns ({listing(frame.columns, 10)}) and none is "
                               f"named {' or '.join(preferred)}; say which holds the {what} with "
                               f"FILE:COLUMN (e.g. {path.name}:{frame.columns[-1]})")
    if column not in frame.columns:
        raise CatalogError(f"{path}: no column {column!r}; the file has {listing(frame.columns, 10)}")
    key_col = _key_column(frame, path, f"{what}s", keys, {column}, warnings)
    ids, values = frame[key_col].str.strip(), frame[column].str.strip()
    return {k: v for k, v in zip(ids, values) if v}


RESERVED_METADATA = ("mmrec_id", "original_id", "songs")  # set by the import itself


def read_item_metadata(folder: Path, spec: str, keys: set[str], warnings: list[str]) -> dict[str, dict[str, str]]:
    """{item id: {column: value}} from a metadata file "FILE[:COL,COL]" (TSV, or CSV by its suffix), keyed like
    the titles; empty cells are left out."""
    path, named = _file_column(spec, folder, "metadata")
    frame = _read_tsv(path)
    if frame.shape[1] < 2:
        raise CatalogError(f"{path}: needs an id column and at least one metadata column (e.g. genre); found "
                           f"{listing(frame.columns, 10)}")
    columns = [c.strip() for c in named.split(",") if c.strip()] if named else None
    if columns:
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise CatalogError(f"{path}: no column {listing(map(repr, unknown))}; the file has "
                               f"{listing(frame.columns, 10)}")
    key_col = _key_column(frame, path, "metadata", keys, set(columns or ()), warnings)
    if columns is None:
        columns = [c for c in frame.columns if c != key_col and c != frame.columns[0] and c not in ID_COLUMNS]
    clash = [c for c in columns if c in RESERVED_METADATA]
    if clash:
        raise CatalogError(f"{path}: column {listing(map(repr, clash))} is set by the import itself; rename it "
                           "or name the columns to keep with FILE:COL,COL")
    if not columns:
        raise CatalogError(f"{path}: only id columns ({listing(frame.columns, 10)}); add a metadata column such "
                           "as genre")
    out: dict[str, dict[str, str]] = {}
    for key, row in zip(frame[key_col].str.strip(), frame[columns].itertuples(index=False)):
        values = {c: str(v).strip() for c, v in zip(columns, row) if str(v).strip()}
        if key and values:
            out.setdefault(key, {}).update(values)
    warnings.append(f"{path.name}: item metadata {', '.join(columns)} read for {len(set(out) & keys):,} of "
                    f"{len(keys):,} items")
    return out


def read_id_mapping_titles(folder: Path, warnings: list[str]) -> dict[int, str]:
    """MMRec item id -> title from `i_id_mapping.tsv` when it has a title column (else nothing)."""
    path = next((folder / n for n in ("i_id_mapping.tsv", "i_id_mapping.csv") if (folder / n).is_file()), None)
    if path is None:
        return {}
    frame = _read_tsv(path)
    id_col = next((c for c in ("itemID", "item_id", "itemid") if c in frame.columns), None)
    title_col = next((c for c in ("title", "name", "item_name", "movie_title") if c in frame.columns), None)
    if id_col is None or title_col is None:
        return {}
    ids = pd.to_numeric(frame[id_col], errors="coerce")
    out = {int(i): str(t).strip() for i, t in zip(ids, frame[title_col]) if pd.notna(i) and str(t).strip()}
    if out:
        warnings.append(f"{path.name}: titles read from its {title_col!r} column")
    return out


def read_item_descriptions(folder: Path, stem: str, keyed_by_original: bool, warnings: list[str], *,
                           text_tsv: str | None = None, titles: str | None = None, keys: set[str] | None = None
                           ) -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    """(id -> text, id -> title, id -> song titles) from the optional text, titles and song-mapping files;
    `keys` (the ids the items are known by) picks the id column of a titles file and checks it."""
    texts: dict[str, str] = {}
    title_of: dict[str, str] = {}
    songs: dict[str, list[str]] = {}
    if text_tsv:
        text_path, text_col = _file_column(text_tsv, folder, "text")
    else:
        text_path = next(iter(sorted(folder.glob(f"{stem}_text.tsv")) or sorted(folder.glob("*_text.tsv"))), None)
        text_col = None
    if text_path is not None:
        texts = _keyed_column(text_path, text_col, "text", ("text", "description", "tags"))
        if not keyed_by_original:
            warnings.append(f"{text_path.name}: read as keyed by the MMRec item id (no _og_ids.inter to map "
                            "original ids)")
    if titles:
        title_path, title_col = _file_column(titles, folder, "titles")
        title_of = _keyed_column(title_path, title_col, "title", ("title", "name", "name_artist"), keys, warnings)
    song_path = next(iter(sorted(folder.glob(f"{stem}_song*mapping.tsv"))), None)
    if song_path is not None:
        frame = _read_tsv(song_path)
        if frame.shape[1] >= 2:
            key_col, name_col = frame.columns[0], ("name_artist" if "name_artist" in frame else frame.columns[1])
            for key, group in frame.groupby(key_col, sort=False):
                name = next((n for n in group[name_col].str.strip() if n), "")
                if name and not titles:
                    title_of[str(key).strip()] = name
                if "song" in group:
                    songs[str(key).strip()] = [s for s in group["song"].str.strip() if s][:SONGS_KEPT]
    return texts, title_of, songs
