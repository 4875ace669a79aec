"""Stored files are written atomically and checked on load: a damaged one is refused by name with its fix."""
from __future__ import annotations

import errno
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from core.store.atomic import TMP_MARK, write_text_atomic
from core.encoders.embeddings import EmbeddingSet
from core.errors import DamagedFileError, StoreError
from core.store.database import Store


def small_set(n: int = 5) -> EmbeddingSet:
    rng = np.random.default_rng(0)
    return EmbeddingSet(item_ids=[f"i{k}" for k in range(n)],
                        matrices={"text": rng.normal(size=(n, 4)).astype(np.float32)}, masks={"text": np.ones(n, bool)}, modality_of={"text": "text"}, encoder_ids={"text": "t"},
                        content_hash="h")


def test_embeddings_round_trip_and_a_full_disk_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "shop" / "default.npz"
    small_set().save(path)
    before = path.read_bytes()
    loaded = EmbeddingSet.load(path)
    np.testing.assert_array_equal(loaded.matrices["text"], small_set().matrices["text"])

    def half_then_full(file, **arrays):
        Path(file).write_bytes(b"PK\x03\x04half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with mock.patch("core.encoders.embeddings.np.savez", half_then_full), pytest.raises(StoreError, match="disk is full"):
        small_set(7).save(path)
    assert path.read_bytes() == before  # the previous set, whole
    assert [p.name for p in path.parent.iterdir()] == ["default.npz"]  # no half-written file left


@pytest.mark.parametrize("damage", ["truncate", "shape", "nan"])
def test_damaged_embeddings_are_refused_by_name(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "shop" / "default.npz"
    emb = small_set()
    if damage == "shape":
        emb.masks["text"] = np.ones(3, bool)
    if damage == "nan":
        emb.matrices["text"][2, 1] = np.nan
    emb.save(path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DamagedFileError, match=r"embeddings file default.npz of catalog 'shop' is damaged.*re-run"):
        EmbeddingSet.load(path, fix="re-run it")


def test_atomic_text_write_keeps_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    write_text_atomic(target, "old")
    with mock.patch("core.store.atomic.os.replace", side_effect=OSError(errno.EDQUOT, "quota")), \
            pytest.raises(StoreError, match="disk is full"):
        write_text_atomic(target, "new")
    assert target.read_text() == "old" and not list(tmp_path.glob(f"*{TMP_MARK}*"))


def test_a_database_damaged_while_open_is_named_not_a_traceback(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    store.db_path.write_bytes(b"garbage" * 1000)
    with pytest.raises(DamagedFileError, match="damaged.*backup"):
        store.list_catalogs()


def test_an_empty_database_file_without_catalogs_is_a_new_store(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "prism.sqlite").write_bytes(b"")
    assert Store(tmp_path / "s").list_catalogs().empty


def test_half_written_files_of_a_killed_write_are_swept_at_the_next_start(tmp_path: Path) -> None:
    import os

    store = Store(tmp_path / "s")
    folder = store.root / "embeddings" / "shop"
    folder.mkdir(parents=True)
    dead = folder / f"default{TMP_MARK}{2 ** 22 + 12345}-ab12cd34.npz"  # above Linux's default pid_max
    live = folder / f"default{TMP_MARK}{os.getpid()}-ab12cd34.npz"  # a write still in progress here
    kept = folder / "default.npz"
    for p in (dead, live, kept):
        p.write_bytes(b"x")
    Store(store.root)
    assert not dead.exists() and live.exists() and kept.exists()


def test_a_truncated_feature_file_names_its_catalog_and_the_others_load(tmp_path: Path) -> None:
    from tests.hostile.cases import truncated_feature_store  # the hostile suite's case, built in one place

    store = truncated_feature_store(tmp_path / "s")
    with pytest.raises(DamagedFileError, match=r"feature file text.npz of catalog 'shop' is damaged.*--overwrite"):
        store.load_catalog("shop")
    assert store.load_catalog("other").features["text"].values.shape == (3, 2)