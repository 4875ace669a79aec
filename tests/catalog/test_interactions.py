"""Interactions import for a stored catalog: replace and append, dates, split labels, and bad rows named
by their spreadsheet row while the store stays unchanged."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.workspace.imports import import_interactions
from core.catalog.model import Catalog, Item
from core.errors import CatalogError, StoreError
from core.store.database import Store
from tests.catalog.test_manifest import snapshot


@pytest.fixture
def shop(store: Store) -> Store:
    """A store with catalog "shop" (items a, b, c) and one stored interaction."""
    items = [Item(id=i, title=i.upper(), text=f"item {i}") for i in "abc"]
    inter = pd.DataFrame({"user_id": ["old"], "item_id": ["a"], "rating": [1.0], "timestamp": [np.nan],
                          "split": [pd.NA]}).astype({"user_id": "string", "item_id": "string", "split": "string"})
    store.save_catalog(Catalog(name="shop", items=items, interactions=inter))
    return store


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def refused(store: Store, csv: Path, *fragments: str) -> None:
    before = snapshot(store)
    with pytest.raises(CatalogError) as info:
        import_interactions(csv, store, "shop")
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in: {info.value}"
    assert snapshot(store) == before


def test_replace(tmp_path: Path, shop: Store) -> None:
    csv = write_csv(tmp_path / "inter.csv", "user_id,item_id,rating,timestamp,split\n"
                                            "u1,a,5,100,train\nu1,b,3,200,validation\nu2,c,,300,TEST\nu2,a,1,400,\n")
    report = import_interactions(csv, shop, "shop")
    assert (report.users, report.interactions) == (2, 4)
    assert report.splits == {"train": 1, "valid": 1, "test": 1, "none": 1}
    assert any("no split label" in w for w in report.warnings)
    inter = shop.load_catalog("shop").interactions
    assert inter["user_id"].tolist() == ["u1", "u1", "u2", "u2"]
    assert inter["rating"].tolist()[:2] == [5.0, 3.0] and np.isnan(inter["rating"].iloc[2])
    assert inter["timestamp"].tolist() == [100.0, 200.0, 300.0, 400.0]
    assert inter["split"].tolist()[:3] == ["train", "valid", "test"] and pd.isna(inter["split"].iloc[3])


def test_append_keeps_the_stored_rows(tmp_path: Path, shop: Store) -> None:
    csv = write_csv(tmp_path / "inter.csv", "user_id,item_id\nu1,b\n")
    report = import_interactions(csv, shop, "shop", replace=False)
    assert report.interactions == 2
    inter = shop.load_catalog("shop").interactions
    assert list(zip(inter["user_id"], inter["item_id"])) == [("old", "a"), ("u1", "b")]
    assert inter["rating"].tolist() == [1.0, 1.0]  # a missing rating column means implicit feedback


def test_dates_become_seconds(tmp_path: Path, shop: Store) -> None:
    csv = write_csv(tmp_path / "inter.csv", "user_id,item_id,timestamp\nu1,a,2024-01-01T00:00:00Z\nu1,b,60\n")
    import_interactions(csv, shop, "shop")
    assert shop.load_catalog("shop").interactions["timestamp"].tolist() == [1_704_067_200.0, 60.0]


def test_content_hash_follows_the_new_interactions(tmp_path: Path, shop: Store) -> None:
    before = shop.list_catalogs()["content_hash"].iloc[0]
    import_interactions(write_csv(tmp_path / "i.csv", "user_id,item_id\nu9,c\n"), shop, "shop")
    after = shop.list_catalogs()["content_hash"].iloc[0]
    assert after != before and after == shop.load_catalog("shop").content_hash()


def test_unknown_item_ids_are_named_with_their_row(tmp_path: Path, shop: Store) -> None:
    csv = write_csv(tmp_path / "inter.csv", "user_id,item_id\nu1,a\nu1,zz\nu2,yy\nu3,zz\n")
    refused(shop, csv, "2 item id(s)", "'zz', 'yy'", "first at row 3", "header = row 1")


def test_missing_columns(tmp_path: Path, shop: Store) -> None:
    csv = write_csv(tmp_path / "inter.csv", "user,item_id,score\nu1,a,1\n")
    refused(shop, csv, "missing column(s) user_id", "user, item_id, score")


@pytest.mark.parametrize("text, fragments", [
    ("user_id,item_id,rating\nu1,a,1\nu1,b,lots\n", ("column rating", "row 3", "'lots'")),
    ("user_id,item_id,split\nu1,a,train\nu1,b,holdout\n", ("column split", "'holdout'", "row 3")),
    ("user_id,item_id,timestamp\nu1,a,yesterday-ish\n", ("column timestamp", "row 2")),
    ("user_id,item_id\n,a\n", ("column user_id is empty", "row 2")),
    ("user_id,item_id\n", ("no rows",)),
])
def test_bad_cells(tmp_path: Path, shop: Store, text: str, fragments: tuple[str, ...]) -> None:
    refused(shop, write_csv(tmp_path / "inter.csv", text), *fragments)


def test_unknown_catalog(tmp_path: Path, shop: Store) -> None:
    with pytest.raises(StoreError, match="stored: \\['shop'\\]"):
        import_interactions(write_csv(tmp_path / "i.csv", "user_id,item_id\nu,a\n"), shop, "nope")


def test_missing_file(tmp_path: Path, shop: Store) -> None:
    refused(shop, tmp_path / "absent.csv", "absent.csv", "does not exist")
