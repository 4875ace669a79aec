"""Import an MMRec-format folder: `<name>.inter` (TSV userID, itemID, rating, x_label) plus one `.npy`
feature matrix per modality whose row i holds the features of item i.

Optional files beside them (the layout of Last.fm-2K in the multimodal extension of MMRec datasets):
    <name>_og_ids.inter            the same rows with the original user and item ids (row i = row i)
    <name>_text.tsv                `<original id>\\t<text>`: the raw text behind the text features
    <name>_song*_mapping.tsv       original id -> artist name and song titles (for display)
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from core.catalog.model import Catalog, FeatureMatrix, Item
from core.catalog.validation import (CSV_ROWS_NOTE, ImportReport, Progress, catalog_name, check_feature_matrix,
                                     check_target, csv_row, listing, report_for, require_columns)
from core.errors import CatalogError
from core.store import Store

AUTO = "auto"  # pick the feature file by its usual name
TEXT_FILES: tuple[str, ...] = ("all-MiniLM-L6-v2.npy",)  # looked for, in order, when text="auto"
AUDIO_FILES: tuple[str, ...] = ("vggish.npy", "whisper.npy")  # when audio="auto"
IMAGE_FILES: tuple[str, ...] = ("clip.npy", "image_feat.npy")  # when image="auto"
SPLIT_OF_LABEL = {0: "train", 1: "valid", 2: "test"}
SONGS_KEPT = 3  # song titles kept per item as metadata


def import_mmrec(folder: Path | str, store: Store, name: str | None = None, text: str | None = AUTO,
                 audio: str | None = AUTO, image: str | None = None, overwrite: bool = False, *,
                 original_ids: bool = False, progress: Progress | None = None) -> ImportReport:
    """Validate the MMRec folder and store it as a catalog with precomputed text/audio/image features.

    `text`, `audio`, `image`: a .npy file name in the folder ("whisper" and "whisper.npy" both work),
    "auto" to use the usual file when present, or None to leave that modality out. `original_ids` names
    users and items by the ids in `<name>_og_ids.inter` instead of the 0-based MMRec ids.
    """
    catalog, warnings, source = read_mmrec(folder, name, text=text, audio=audio, image=image,
                                           original_ids=original_ids, progress=progress,
                                           store=store, overwrite=overwrite)
    if progress:
        progress(4, 5, f"storing {catalog.name}")
    store.save_catalog(catalog, overwrite=overwrite)
    if progress:
        progress(5, 5, f"stored {catalog.name}")
    return report_for(catalog, source.parent, warnings)


def read_mmrec(folder: Path | str, name: str | None = None, *, text: str | None = AUTO,
               audio: str | None = AUTO, image: str | None = None, original_ids: bool = False,
               progress: Progress | None = None, store: Store | None = None,
               overwrite: bool = False) -> tuple[Catalog, list[str], Path]:
    """Read and fully validate an MMRec folder: (catalog, warnings, interactions file). Writes nothing."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CatalogError(f"{folder} is not a folder; give the folder that holds the .inter and .npy files")
    inter_path = find_inter_file(folder, name)
    name = catalog_name(name, inter_path.stem)
    if store is not None:
        check_target(store, name, overwrite)
    warnings: list[str] = []
    step = _stepper(progress, 5)
    step(f"reading {inter_path.name}")
    inter, item_index = read_inter(inter_path)
    n_items = int(item_index.max()) + 1 if len(item_index) else 0
    unused = n_items - int(np.unique(item_index).size)
    if unused:
        warnings.append(f"{inter_path.name}: {unused:,} item id(s) below the largest ({n_items - 1}) have no "
                        "interactions; they are kept as items")

    step("reading feature matrices")
    features: dict[str, FeatureMatrix] = {}
    for modality, choice, candidates in (("text", text, TEXT_FILES), ("audio", audio, AUDIO_FILES),
                                         ("image", image, IMAGE_FILES)):
        path = feature_file(folder, choice, candidates, modality)
        if path is None:
            continue
        values = check_feature_matrix(_load_npy(path), path, n_items)
        mask = np.abs(values).sum(axis=1) > 0  # all-zero rows are items without this feature
        if not mask.all():
            warnings.append(f"{path.name}: {int((~mask).sum()):,} all-zero row(s) treated as items without "
                            f"{modality}")
        features[modality] = FeatureMatrix(modality, values, mask, f"precomputed:{path.name}")
    if not features:
        warnings.append(f"{folder}: no feature matrix used; the catalog has interactions only")

    step("matching titles and text")
    og = read_original_ids(folder, inter_path, inter, item_index, warnings)
    texts, titles, songs = read_item_descriptions(folder, inter_path.stem, og is not None, warnings)
    user_ids = inter["user_id"]
    item_names = [str(i) for i in range(n_items)]
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
        lookup = list(range(n_items))
        if original_ids:
            raise CatalogError(f"{folder}: original ids were asked for but {inter_path.stem}_og_ids.inter is "
                               "absent; add it or import with the MMRec ids")
    items = []
    for i in range(n_items):
        key = None if lookup[i] is None else str(lookup[i])
        meta: dict[str, object] = {"mmrec_id": i}
        if og is not None and key is not None:
            meta["original_id"] = key
        if key in songs:
            meta["songs"] = songs[key]
        items.append(Item(id=item_names[i], title=titles.get(key) or f"Item {item_names[i]}",
                          text=texts.get(key), metadata=meta))
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
        present = sorted(p.name for p in folder.iterdir())
        raise CatalogError(f"{folder}: no <name>.inter file; an MMRec folder needs one (found: "
                           f"{listing(present, 10) or 'nothing'})")
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
    if not path.is_file():
        present = sorted(p.name for p in folder.glob("*.npy"))
        raise CatalogError(f"{folder}: no {path.name} for the {modality} features; the folder has "
                           f"{', '.join(present) or 'no .npy files'}")
    return path


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)  # never unpickle: the file may not be trusted
    except Exception as e:
        raise CatalogError(f"{path}: not a readable numeric .npy matrix ({type(e).__name__}: {e}); "
                           "save it with numpy.save from a float array") from e


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


def read_item_descriptions(folder: Path, stem: str, keyed_by_original: bool, warnings: list[str]
                           ) -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    """(id -> text, id -> title, id -> song titles) from the optional text and song-mapping files."""
    texts: dict[str, str] = {}
    titles: dict[str, str] = {}
    songs: dict[str, list[str]] = {}
    text_path = next(iter(sorted(folder.glob(f"{stem}_text.tsv")) or sorted(folder.glob("*_text.tsv"))), None)
    if text_path is not None:
        try:
            frame = pd.read_csv(text_path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
        except Exception as e:
            raise CatalogError(f"{text_path}: cannot be read as tab-separated text "
                               f"({type(e).__name__}: {e})") from e
        if frame.shape[1] < 2:
            raise CatalogError(f"{text_path}: needs two columns, <id> and <text>; found "
                               f"{', '.join(map(str, frame.columns))}")
        keys, values = frame.iloc[:, 0].str.strip(), frame.iloc[:, 1].str.strip()
        texts = {k: v for k, v in zip(keys, values) if v}
        if not keyed_by_original:
            warnings.append(f"{text_path.name}: read as keyed by the MMRec item id (no _og_ids.inter to map "
                            "original ids)")
    song_path = next(iter(sorted(folder.glob(f"{stem}_song*mapping.tsv"))), None)
    if song_path is not None:
        try:
            frame = pd.read_csv(song_path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
        except Exception as e:
            raise CatalogError(f"{song_path}: cannot be read as tab-separated text "
                               f"({type(e).__name__}: {e})") from e
        frame = frame.rename(columns=lambda c: str(c).strip())
        if frame.shape[1] >= 2:
            key_col, name_col = frame.columns[0], ("name_artist" if "name_artist" in frame else frame.columns[1])
            for key, group in frame.groupby(key_col, sort=False):
                name = next((n for n in group[name_col].str.strip() if n), "")
                if name:
                    titles[str(key).strip()] = name
                if "song" in group:
                    songs[str(key).strip()] = [s for s in group["song"].str.strip() if s][:SONGS_KEPT]
    return texts, titles, songs
