"""The store: catalogs round-trip exactly (items, interactions, features, media), writes are atomic,
and runs, models and embedding sets are recorded and listed."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.catalog.model import Catalog, FeatureMatrix, Item
from core.errors import StoreError
from core.store.database import Store


def sample_catalog(name: str = "shop") -> Catalog:
    items = [
        Item(id="a", title="Alpha", text="first", image="covers/a.png", audio="audio/a.wav",
             metadata={"genre": "jazz", "year": 1999, "tags": ["x", "y"]}),
        Item(id="b", title="Béta ♪", text=None, image=None, audio="audio/b.wav"),
        Item(id="c", title="Gamma", text="third"),
    ]
    inter = pd.DataFrame({
        "user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "c"], "rating": [1.0, np.nan, 4.5],
        "timestamp": [10.0, np.nan, 30.0], "split": ["train", pd.NA, "test"],
    }).astype({"user_id": "string", "item_id": "string", "split": "string"})
    rng = np.random.default_rng(3)
    values = rng.normal(size=(3, 5)).astype(np.float32)
    values[1] = 0
    features = {"text": FeatureMatrix("text", values, np.array([True, False, True]), "precomputed:t.npy")}
    return Catalog(name=name, items=items, interactions=inter, features=features,
                   metadata={"source": "test", "seed": 7})


def media_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for ref, data in (("covers/a.png", b"png-bytes"), ("audio/a.wav", b"wav-a"), ("audio/b.wav", b"wav-b")):
        path = tmp_path / "src" / ref
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[ref] = path
    return files


def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_catalog_round_trip(tmp_path: Path, store: Store) -> None:
    original = sample_catalog()
    store.save_catalog(original, media_files=media_files(tmp_path))
    loaded = store.load_catalog("shop")
    assert loaded.items == original.items
    pd.testing.assert_frame_equal(loaded.interactions.reset_index(drop=True),
                                  original.interactions.reset_index(drop=True))
    assert set(loaded.features) == {"text"}
    feat = loaded.features["text"]
    np.testing.assert_array_equal(feat.values, original.features["text"].values)
    np.testing.assert_array_equal(feat.mask, original.features["text"].mask)
    assert (feat.modality, feat.source, feat.values.dtype) == ("text", "precomputed:t.npy", np.float32)
    assert loaded.metadata == {"source": "test", "seed": 7}
    assert loaded.content_hash() == original.content_hash()
    assert loaded.media_path("audio/b.wav").read_bytes() == b"wav-b"
    assert loaded.media_path("audio/b.wav").is_relative_to(store.catalog_dir("shop"))


def test_listing_counts(store: Store) -> None:
    store.save_catalog(sample_catalog("one"))
    store.save_catalog(Catalog(name="two", items=[Item(id="z", title="Z")]))
    listing = store.list_catalogs().set_index("name")
    assert listing.loc["one", ["items", "users", "interactions"]].tolist() == [3, 2, 3]
    assert listing.loc["two", ["items", "users", "interactions"]].tolist() == [1, 0, 0]
    assert listing.loc["one", "content_hash"] == sample_catalog("one").content_hash()


def test_catalog_without_media_files_keeps_its_media_root(tmp_path: Path, store: Store) -> None:
    catalog = sample_catalog()
    catalog.media_root = tmp_path / "elsewhere"
    store.save_catalog(catalog)
    assert store.load_catalog("shop").media_root == tmp_path / "elsewhere"


def test_overwrite_is_refused_without_the_flag(store: Store) -> None:
    store.save_catalog(sample_catalog())
    replacement = Catalog(name="shop", items=[Item(id="new", title="New")])
    with pytest.raises(StoreError, match="exists already"):
        store.save_catalog(replacement)
    assert store.load_catalog("shop").item_ids == ["a", "b", "c"]
    store.save_catalog(replacement, overwrite=True)
    loaded = store.load_catalog("shop")
    assert loaded.item_ids == ["new"] and loaded.interactions.empty and loaded.features == {}


def test_failed_save_leaves_the_store_as_it_was(tmp_path: Path, store: Store) -> None:
    store.save_catalog(sample_catalog(), media_files=media_files(tmp_path))
    before = (store.list_catalogs().to_dict("records"), file_hashes(store.root))
    with pytest.raises(StoreError, match="cannot be copied"):
        store.save_catalog(Catalog(name="shop", items=[Item(id="n", title="N", image="gone.png")]),
                           media_files={"gone.png": tmp_path / "missing.png"}, overwrite=True)
    assert (store.list_catalogs().to_dict("records"), file_hashes(store.root)) == before
    assert store.load_catalog("shop").item_ids == ["a", "b", "c"]


@pytest.mark.parametrize("name", ["", "a/b", ".hidden"])
def test_unusable_names_are_refused(store: Store, name: str) -> None:
    with pytest.raises(StoreError, match="not usable"):
        store.save_catalog(Catalog(name=name, items=[Item(id="a", title="A")]))


def test_unknown_catalog_lists_the_stored_ones(store: Store) -> None:
    store.save_catalog(sample_catalog())
    with pytest.raises(StoreError, match=r"no catalog named 'nope'.*\['shop'\]"):
        store.load_catalog("nope")


def test_replace_interactions_and_delete(store: Store) -> None:
    store.save_catalog(sample_catalog())
    new = pd.DataFrame({"user_id": ["u9"], "item_id": ["c"], "rating": [2.0], "timestamp": [5.0],
                        "split": ["valid"]})
    store.replace_interactions("shop", new)
    loaded = store.load_catalog("shop")
    assert loaded.interactions[["user_id", "item_id", "split"]].values.tolist() == [["u9", "c", "valid"]]
    assert store.list_catalogs()["content_hash"].iloc[0] == loaded.content_hash()
    store.delete_catalog("shop")
    assert not store.has_catalog("shop") and not store.catalog_dir("shop").exists()


def test_runs_save_load_list_delete(store: Store) -> None:
    first = store.save_run({"catalog": "shop", "name": "fusion", "created_at": 1.0,
                            "metrics": {"recall@20": np.float32(0.25)}, "curve": np.arange(3)})
    second = store.save_run({"catalog": "other", "name": "popularity", "created_at": 2.0})
    record = store.load_run(first)
    assert record["id"] == first and record["metrics"] == {"recall@20": 0.25} and record["curve"] == [0, 1, 2]
    assert store.list_runs()["id"].tolist() == [second, first]  # newest first
    assert store.list_runs("shop")["name"].tolist() == ["fusion"]
    store.delete_run(first)
    with pytest.raises(StoreError, match="runs list"):
        store.load_run(first)


def test_models_and_the_active_one(tmp_path: Path, store: Store) -> None:
    assert store.active_model("shop") is None
    store.record_model("m1", "shop", "fusion", {"dim": 64}, tmp_path / "m1", active=True)
    store.record_model("m2", "shop", "fusion", {"dim": 32}, tmp_path / "m2", active=True)
    assert store.active_model("shop")["id"] == "m2"
    store.set_active_model("shop", "m1")
    assert store.active_model("shop") == {"id": "m1", "name": "fusion", "config": {"dim": 64},
                                          "path": str(tmp_path / "m1")}
    assert set(store.list_models("shop")["id"]) == {"m1", "m2"}
    with pytest.raises(StoreError, match="no saved model"):
        store.set_active_model("shop", "m3")


def test_embedding_sets_are_recorded(store: Store) -> None:
    path = store.embedding_path("shop", "default")
    store.record_embedding_set("shop", "default", {"text": "enc-a"}, "hash1", path)
    store.record_embedding_set("shop", "default", {"text": "enc-b"}, "hash2", path)  # replaces
    sets = store.list_embedding_sets("shop")
    assert len(sets) == 1 and sets["encoder_ids"].iloc[0] == '{"text": "enc-b"}'
    assert store.list_embedding_sets("other").empty


def test_delete_model_removes_its_row_and_files_and_refuses_the_active_one(store: Store) -> None:
    for model_id, active in (("m1", True), ("m2", False)):
        folder = store.model_dir(model_id)
        (folder / "index").mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"weights")
        (folder / "index" / "vectors.npy").write_bytes(b"index")
        store.record_model(model_id, "shop", "fusion", {"dim": 8}, folder, active=active)
    store.set_active_model("shop", "m2")
    store.set_active_model("shop", "m1")

    with pytest.raises(StoreError, match="active model of catalog 'shop'.*activate another one first"):
        store.delete_model("m1")
    assert set(store.list_models("shop")["id"]) == {"m1", "m2"}  # the refusal removed nothing
    assert (store.model_dir("m1") / "model.safetensors").read_bytes() == b"weights"

    store.delete_model("m2")
    assert store.list_models("shop")["id"].tolist() == ["m1"]
    assert not store.model_dir("m2").exists(), "the candidate's weights and index are gone with its row"
    assert store.model_dir("m1").is_dir()
    history = store.activation_history("shop")
    assert dict(zip(history["model_id"], history["stored"])) == {"m1": 1, "m2": 0}
    with pytest.raises(StoreError, match="no saved model with id 'm2'"):
        store.delete_model("m2")
