"""MMRec import: a generated folder with known answers, the real Last.fm-2K folder as it is, and every bad
input refused with a message that names it while the store stays unchanged."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.workspace.imports import import_mmrec
from core.catalog.model import Catalog, Item
from core.errors import CatalogError
from core.store.database import Store
from tests.catalog.test_manifest import snapshot

# (user, item, x_label) rows of a tiny dataset: 3 users, 4 items
ROWS = [(0, 0, 0), (0, 1, 0), (0, 2, 2), (1, 1, 0), (1, 3, 1), (2, 0, 0), (2, 3, 2)]
OG_ITEMS = {0: "80", 1: "66", 2: "59", 3: "7"}  # MMRec item id -> original id
OG_USERS = {0: "1002", 1: "1003", 2: "1010"}


def make_mmrec(folder: Path, rows: list[tuple[int, int, int]] = ROWS, extras: bool = True) -> Path:
    """A small MMRec folder: tiny.inter, text and audio matrices, and optionally the Last.fm-style extras."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n_items = max(r[1] for r in rows) + 1
    pd.DataFrame(rows, columns=["userID", "itemID", "x_label"]).assign(rating=1)[
        ["userID", "itemID", "rating", "x_label"]].to_csv(folder / "tiny.inter", sep="\t", index=False)
    np.save(folder / "all-MiniLM-L6-v2.npy", rng.normal(size=(n_items, 6)).astype(np.float32))
    np.save(folder / "vggish.npy", rng.normal(size=(n_items, 4)))  # float64, as the real file
    np.save(folder / "whisper.npy", rng.normal(size=(n_items, 5)).astype(np.float32))
    if extras:
        pd.DataFrame([(OG_USERS[u], OG_ITEMS[i], 1, x) for u, i, x in rows],
                     columns=["userID", "itemID", "rating", "x_label"]).to_csv(
            folder / "tiny_og_ids.inter", sep="\t", index=False)
        (folder / "tiny_text.tsv").write_text(
            "artistID\ttext\n" + "".join(f"{og}\ttags of {og}\n" for og in ["7", "59", "66", "80", "999"]))
        (folder / "tiny_song_extended_mapping.tsv").write_text(
            "artistID\tname_artist\tsong\tlink_song\n80\tGroove Armada\tAt the River\thttp://x\n"
            "80\tGroove Armada\tSuperstylin'\thttp://y\n66\tFaithless\tInsomnia\thttp://z\n")
    return folder


@pytest.fixture
def busy_store(store: Store) -> Store:
    store.save_catalog(Catalog(name="tiny", items=[Item(id="a", title="A", text="kept")]))
    return store


def refused(store: Store, folder: Path, *fragments: str, **kwargs) -> None:
    before = snapshot(store)
    with pytest.raises(CatalogError) as info:
        import_mmrec(folder, store, overwrite=True, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in: {info.value}"
    assert snapshot(store) == before


def test_tiny_folder_imports_with_splits_features_and_titles(tmp_path: Path, store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny")
    report = import_mmrec(folder, store)
    assert (report.catalog, report.items, report.users, report.interactions) == ("tiny", 4, 3, len(ROWS))
    assert report.splits == {"train": 4, "valid": 1, "test": 2}
    assert report.features == {"text": "precomputed:all-MiniLM-L6-v2.npy", "audio": "precomputed:vggish.npy"}
    catalog = store.load_catalog("tiny")
    assert catalog.item_ids == ["0", "1", "2", "3"]
    # titles come from the song mapping through the original ids; unmapped items get "Item <id>"
    assert [it.title for it in catalog.items] == ["Groove Armada", "Faithless", "Item 2", "Item 3"]
    assert [it.text for it in catalog.items] == ["tags of 80", "tags of 66", "tags of 59", "tags of 7"]
    assert catalog.items[0].metadata == {"mmrec_id": 0, "original_id": "80",
                                         "songs": ["At the River", "Superstylin'"]}
    inter = catalog.interactions
    assert inter["user_id"].tolist() == [str(u) for u, _, _ in ROWS]
    assert inter["item_id"].tolist() == [str(i) for _, i, _ in ROWS]
    assert inter["split"].tolist() == [["train", "valid", "test"][x] for _, _, x in ROWS]
    text = catalog.features["text"]
    assert text.values.dtype == np.float32 and text.mask.all() and text.modality == "text"
    np.testing.assert_array_equal(text.values, np.load(folder / "all-MiniLM-L6-v2.npy"))
    np.testing.assert_allclose(catalog.features["audio"].values, np.load(folder / "vggish.npy"), rtol=1e-6)
    assert catalog.features["audio"].values.dtype == np.float32


def test_modality_choices(tmp_path: Path, store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny", extras=False)
    report = import_mmrec(folder, store, name="whisp", audio="whisper", text=None)
    catalog = store.load_catalog("whisp")
    assert list(catalog.features) == ["audio"]
    assert catalog.features["audio"].values.shape == (4, 5)
    assert report.features == {"audio": "precomputed:whisper.npy"}
    assert all(it.title == f"Item {it.id}" and it.text is None for it in catalog.items)


def test_original_ids_when_asked(tmp_path: Path, store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny")
    import_mmrec(folder, store, original_ids=True)
    catalog = store.load_catalog("tiny")
    assert catalog.item_ids == ["80", "66", "59", "7"]
    assert catalog.interactions["user_id"].tolist() == [OG_USERS[u] for u, _, _ in ROWS]
    assert catalog.interactions["item_id"].tolist() == [OG_ITEMS[i] for _, i, _ in ROWS]
    assert catalog.items[3].metadata["mmrec_id"] == 3


def test_titles_from_the_mmrec_item_mapping(tmp_path: Path, store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny", extras=False)
    (folder / "i_id_mapping.tsv").write_text("asin\titemID\ttitle\nB1\t0\tHeat\nB2\t1\tUp\n")
    report = import_mmrec(folder, store)
    assert [it.title for it in store.load_catalog("tiny").items] == ["Heat", "Up", "Item 2", "Item 3"]
    assert any("i_id_mapping.tsv" in w for w in report.warnings)


def test_titles_file_keyed_by_the_mappings_item_id_not_its_1_based_source_id(tmp_path: Path, store: Store) -> None:
    """--titles i_id_mapping.tsv:title on a mapping whose first column is a 1-based source id: keyed by its
    itemID column (as the automatic reading is), so no title lands on the neighbouring item."""
    folder = make_mmrec(tmp_path / "tiny", extras=False)
    (folder / "i_id_mapping.tsv").write_text("source\titemID\ttitle\n1\t0\tHeat\n2\t1\tUp\n3\t2\tDown\n"
                                             "4\t3\tLeft\n")
    report = import_mmrec(folder, store, titles="i_id_mapping.tsv:title")
    assert [it.title for it in store.load_catalog("tiny").items] == ["Heat", "Up", "Down", "Left"]
    assert any("keyed by its 'itemID' column" in w for w in report.warnings), report.warnings


def test_titles_file_with_1_based_ids_is_named_in_a_warning(tmp_path: Path, store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny", extras=False)
    (folder / "names.tsv").write_text("id\ttitle\n1\tHeat\n2\tUp\n3\tDown\n4\tLeft\n")
    report = import_mmrec(folder, store, titles="names.tsv:title")
    assert [it.title for it in store.load_catalog("tiny").items] == ["Item 0", "Heat", "Up", "Down"]
    warning = next(w for w in report.warnings if w.startswith("names.tsv"))
    assert "3 of the 4 items have a row" in warning and "look 1-based (one less would match 4)" in warning


def test_item_metadata_from_a_file_makes_genre_labels(tmp_path: Path, store: Store) -> None:
    """--metadata brings a genre per item (keyed by original id through _og_ids), enough for the retrieval
    benchmark's --label."""
    from benchmarks.retrieval import item_labels

    folder = make_mmrec(tmp_path / "tiny")
    (folder / "genres.tsv").write_text("artistID\tgenre\tcountry\n80\trock\tUK\n66\tpop\t\n59\trock\tUS\n"
                                       "12345\tjazz\tFR\n")
    report = import_mmrec(folder, store, metadata="genres.tsv")
    items = store.load_catalog("tiny").items
    assert [it.metadata.get("genre") for it in items] == ["rock", "pop", "rock", None]
    assert [it.metadata.get("country") for it in items] == ["UK", None, "US", None]
    assert items[0].metadata["original_id"] == "80" and items[0].metadata["songs"]
    assert any("metadata genre, country read for 3 of 4 items" in w for w in report.warnings), report.warnings
    assert any("3 of the 4 items have a row" in w for w in report.warnings)
    labels, column = item_labels(store.load_catalog("tiny"), "genre")
    assert column == "genre" and labels == ["rock", "pop", "rock", None]
    import_mmrec(folder, store, name="only", metadata="genres.tsv:genre")
    assert "country" not in store.load_catalog("only").items[0].metadata


def test_item_metadata_refuses_unknown_and_reserved_columns(tmp_path: Path, busy_store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny")
    (folder / "genres.tsv").write_text("artistID\tgenre\tsongs\n80\trock\tx\n")
    refused(busy_store, folder, "genres.tsv", "no column 'style'", "genre", metadata="genres.tsv:style")
    refused(busy_store, folder, "'songs'", "set by the import itself", metadata="genres.tsv")
    refused(busy_store, folder, "metadata file does not exist", metadata="nowhere.tsv")


def test_all_zero_feature_rows_are_masked(tmp_path: Path, store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny", extras=False)
    audio = np.load(folder / "vggish.npy")
    audio[2] = 0
    np.save(folder / "vggish.npy", audio)
    report = import_mmrec(folder, store)
    assert store.load_catalog("tiny").features["audio"].mask.tolist() == [True, True, False, True]
    assert report.modalities["audio"] == 3
    assert any("all-zero" in w for w in report.warnings)


# -- bad input ----------------------------------------------------------------------------------------
def test_nan_features_name_the_rows(tmp_path: Path, busy_store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny")
    text = np.load(folder / "all-MiniLM-L6-v2.npy")
    text[1, 0], text[3, 2] = np.nan, np.inf
    np.save(folder / "all-MiniLM-L6-v2.npy", text)
    refused(busy_store, folder, "all-MiniLM-L6-v2.npy", "NaN or infinite", "1, 3")


def test_feature_rows_must_match_the_items(tmp_path: Path, busy_store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny")
    np.save(folder / "vggish.npy", np.ones((7, 4)))
    refused(busy_store, folder, "vggish.npy", "7 rows", "4 items")


def test_missing_columns_list_the_present_ones(tmp_path: Path, busy_store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny")
    (folder / "tiny.inter").write_text("user\titem\n0\t0\n")
    refused(busy_store, folder, "missing column(s) userID, itemID", "user, item")


def test_bad_x_label_names_the_row(tmp_path: Path, busy_store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny", extras=False)
    (folder / "tiny.inter").write_text("userID\titemID\trating\tx_label\n0\t0\t1\t0\n0\t1\t1\t5\n")
    refused(busy_store, folder, "x_label", "row 3", "'5'")


def test_item_ids_must_be_row_numbers(tmp_path: Path, busy_store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny", extras=False)
    (folder / "tiny.inter").write_text("userID\titemID\n0\t0\n0\tabc\n1\t-1\n")
    refused(busy_store, folder, "itemID", "row 3, row 4", "'abc'")


def test_unknown_feature_file_lists_the_npy_files(tmp_path: Path, busy_store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny")
    refused(busy_store, folder, "no clap.npy", "all-MiniLM-L6-v2.npy, vggish.npy, whisper.npy", audio="clap")


def test_og_ids_file_must_align(tmp_path: Path, busy_store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny")
    lines = (folder / "tiny_og_ids.inter").read_text().splitlines()
    (folder / "tiny_og_ids.inter").write_text("\n".join(lines[:-2]) + "\n")
    refused(busy_store, folder, "tiny_og_ids.inter", f"{len(ROWS) - 2} rows")


def test_folder_without_inter_file(tmp_path: Path, busy_store: Store) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    np.save(folder / "vggish.npy", np.ones((2, 2)))
    refused(busy_store, folder, "no <name>.inter", "1 of them .npy")


def test_pickled_npy_is_refused(tmp_path: Path, busy_store: Store) -> None:
    folder = make_mmrec(tmp_path / "tiny")
    np.save(folder / "vggish.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    refused(busy_store, folder, "vggish.npy", "not a readable numeric")


# -- the real Last.fm-2K folder -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lfm2k(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, object]:
    store = Store(tmp_path_factory.mktemp("lfm2k-store"))
    return store, import_mmrec(shared_data / "lfm2k", store)


@pytest.mark.shared_data
def test_lfm2k_loads_as_it_is(lfm2k: tuple[Store, object], shared_data: Path) -> None:
    store, report = lfm2k
    assert (report.catalog, report.items, report.users, report.interactions) == ("lfm2k", 1425, 1858, 56345)
    assert report.splits == {"train": 44327, "valid": 4799, "test": 7219}
    assert report.warnings == []
    catalog = store.load_catalog("lfm2k")
    assert catalog.features["text"].values.shape == (1425, 384)
    assert catalog.features["audio"].values.shape == (1425, 128)
    assert catalog.features["audio"].source == "precomputed:vggish.npy"
    np.testing.assert_array_equal(catalog.features["text"].values,
                                  np.load(shared_data / "lfm2k" / "all-MiniLM-L6-v2.npy"))


@pytest.mark.shared_data
def test_lfm2k_items_carry_artist_names_and_tags(lfm2k: tuple[Store, object], shared_data: Path) -> None:
    store, _ = lfm2k
    catalog = store.load_catalog("lfm2k")
    og = pd.read_csv(shared_data / "lfm2k" / "lfm2k_og_ids.inter", sep="\t")
    inter = pd.read_csv(shared_data / "lfm2k" / "lfm2k.inter", sep="\t")
    songs = pd.read_csv(shared_data / "lfm2k" / "lfm2k_song_extended_mapping.tsv", sep="\t", dtype=str)
    names = dict(zip(songs["artistID"], songs["name_artist"]))
    # item 0's original artist id, read from the aligned first rows of the two files
    first = int(np.flatnonzero(inter["itemID"].to_numpy() == 0)[0])
    artist = str(og["itemID"].iloc[first])
    assert catalog.items[0].metadata["original_id"] == artist
    assert catalog.items[0].title == names[artist]
    assert sum(it.title.startswith("Item ") for it in catalog.items) == 0
    assert all(it.text for it in catalog.items)


@pytest.mark.shared_data
def test_lfm2k_with_whisper_audio(shared_data: Path, store: Store) -> None:
    report = import_mmrec(shared_data / "lfm2k", store, name="lfm2k-whisper", audio="whisper", text=None)
    feats = store.load_catalog("lfm2k-whisper").features
    assert list(feats) == ["audio"] and feats["audio"].values.shape == (1425, 512)
    assert report.modalities["audio"] == 1425
