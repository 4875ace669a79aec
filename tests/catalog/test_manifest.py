"""Manifest import: CSV / JSON / Parquet manifests with real PNG and WAV files, zips, and every bad case
refused with a message that names the problem while the store stays exactly as it was."""
from __future__ import annotations

import hashlib
import json
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from core.catalog.manifest import extract_zip
from core.workspace.imports import import_manifest
from core.catalog.model import Catalog, Item
from core.errors import CatalogError, StoreError, UnsupportedMediaError
from core.store.database import Store

N_ITEMS = 4
SR = 8000  # a low sample rate keeps the clips small; the check decodes at the native rate


# -- builders (also used by tests/cli/test_cli.py) ---------------------------------------------------------
def write_png(path: Path, colour: tuple[int, int, int], size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)


def write_wav(path: Path, freq: float, seconds: float = 0.6, amplitude: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)


def manifest_rows(n: int = N_ITEMS) -> list[dict[str, str]]:
    """Rows of a small catalog; the last item has no audio, to show a missing modality."""
    rows = []
    for i in range(n):
        rows.append({"id": f"t{i}", "title": f"Track {i}", "text": f"a song about number {i}",
                     "image": f"covers/t{i}.png", "audio": "" if i == n - 1 else f"audio/t{i}.wav",
                     "genre": ["jazz", "folk"][i % 2]})
    return rows


def make_catalog_folder(root: Path, fmt: str = "csv", n: int = N_ITEMS, interactions: bool = True,
                        rows: list[dict[str, str]] | None = None) -> Path:
    """A catalog folder with real media and a manifest in `fmt` (csv, json or parquet)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = manifest_rows(n) if rows is None else rows
    def inside(ref: str | None) -> bool:  # only write media that belong under root
        return bool(ref) and not ref.startswith("/") and ".." not in ref

    for i, row in enumerate(rows):
        if inside(row.get("image")):
            write_png(root / row["image"], (40 * i % 256, 100, 200))
        if inside(row.get("audio")):
            write_wav(root / row["audio"], 220.0 * (i + 1))
    write_manifest(root, rows, fmt)
    if interactions:
        pd.DataFrame({"user_id": ["u0", "u0", "u1", "u2"], "item_id": ["t0", "t1", "t1", "t2"],
                      "rating": [1, 1, 2, 1], "split": ["train", "train", "test", ""]}
                     ).to_csv(root / "interactions.csv", index=False)
    return root


def write_manifest(root: Path, rows: list[dict[str, str]], fmt: str = "csv") -> Path:
    frame = pd.DataFrame(rows)
    path = root / f"manifest.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    else:
        frame.to_parquet(path)
    return path


def zip_folder(folder: Path, archive: Path, top: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{top}{p.relative_to(folder).as_posix()}")
    return archive


def snapshot(store: Store) -> tuple[list[dict], dict[str, str]]:
    """What a failed import must not change: the catalog listing and every file's bytes."""
    listing = store.list_catalogs().to_dict("records")
    files = {str(p.relative_to(store.root)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(store.root.rglob("*")) if p.is_file()}
    return listing, files


@pytest.fixture
def busy_store(store: Store) -> Store:
    """A store that already holds a catalog named "tiny", which failed imports must leave alone."""
    store.save_catalog(Catalog(name="tiny", items=[Item(id="a", title="A", text="kept")]))
    return store


def refused(store: Store, source: Path, *fragments: str, name: str = "tiny", overwrite: bool = True,
            **kwargs) -> CatalogError:
    """Import `source` expecting a CatalogError whose message holds every fragment; the store is unchanged."""
    before = snapshot(store)
    with pytest.raises(CatalogError) as info:
        import_manifest(source, store, name=name, overwrite=overwrite, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert snapshot(store) == before
    assert store.load_catalog("tiny").items[0].text == "kept"
    return info.value


# -- good input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_manifest_formats_import_the_same_catalog(tmp_path: Path, store: Store, fmt: str) -> None:
    folder = make_catalog_folder(tmp_path / f"cat-{fmt}", fmt=fmt)
    report = import_manifest(folder, store)
    assert report.catalog == f"cat-{fmt}"
    assert (report.items, report.users, report.interactions) == (N_ITEMS, 3, 4)
    assert report.splits == {"train": 2, "valid": 0, "test": 1, "none": 1}
    assert report.modalities == {"text": N_ITEMS, "image": N_ITEMS, "audio": N_ITEMS - 1}
    catalog = store.load_catalog(f"cat-{fmt}")
    assert catalog.item_ids == [f"t{i}" for i in range(N_ITEMS)]
    assert catalog.items[1].title == "Track 1" and catalog.items[1].text == "a song about number 1"
    assert catalog.items[1].metadata == {"genre": "folk"}
    assert catalog.items[-1].audio is None
    assert catalog.interactions["rating"].tolist() == [1.0, 1.0, 2.0, 1.0]
    assert catalog.interactions["split"].isna().tolist() == [False, False, False, True]


def test_media_are_copied_into_the_store(tmp_path: Path, store: Store) -> None:
    folder = make_catalog_folder(tmp_path / "src")
    import_manifest(folder, store, name="copied")
    catalog = store.load_catalog("copied")
    image = catalog.media_path(catalog.items[0].image)
    audio = catalog.media_path(catalog.items[0].audio)
    assert image.is_relative_to(store.root) and audio.is_relative_to(store.root)
    assert image.read_bytes() == (folder / "covers/t0.png").read_bytes()
    assert audio.read_bytes() == (folder / "audio/t0.wav").read_bytes()


def test_zip_with_a_top_level_folder(tmp_path: Path, store: Store) -> None:
    folder = make_catalog_folder(tmp_path / "src")
    archive = zip_folder(folder, tmp_path / "zipped.zip", top="mycat/")
    report = import_manifest(archive, store)
    assert report.catalog == "zipped" and report.items == N_ITEMS
    catalog = store.load_catalog("zipped")
    assert catalog.media_path(catalog.items[2].image).read_bytes() == (folder / "covers/t2.png").read_bytes()


def test_missing_title_falls_back_to_the_id_with_a_warning(tmp_path: Path, store: Store) -> None:
    rows = [{k: v for k, v in r.items() if k != "title"} for r in manifest_rows()]
    folder = make_catalog_folder(tmp_path / "untitled", rows=rows, interactions=False)
    report = import_manifest(folder, store)
    assert [it.title for it in store.load_catalog("untitled").items] == [r["id"] for r in rows]
    assert any("no title" in w for w in report.warnings)
    assert any("interactions" in w for w in report.warnings)
    assert report.interactions == 0


def test_overwrite_is_refused_without_the_flag(tmp_path: Path, busy_store: Store) -> None:
    folder = make_catalog_folder(tmp_path / "src")
    before = snapshot(busy_store)
    with pytest.raises(StoreError, match="exists already"):
        import_manifest(folder, busy_store, name="tiny")
    assert snapshot(busy_store) == before
    import_manifest(folder, busy_store, name="tiny", overwrite=True)
    assert busy_store.load_catalog("tiny").item_ids == [f"t{i}" for i in range(N_ITEMS)]


def test_progress_reports_every_media_file(tmp_path: Path, store: Store) -> None:
    folder = make_catalog_folder(tmp_path / "src")
    calls: list[tuple[int, int]] = []
    import_manifest(folder, store, progress=lambda done, total, msg: calls.append((done, total)))
    n_media = N_ITEMS + N_ITEMS - 1
    assert calls[0] == (0, n_media) and calls[-1] == (n_media, n_media)


# -- bad input: each refused with its reason, the store untouched --------------------------------------
def test_missing_id_column_lists_the_columns_present(tmp_path: Path, busy_store: Store) -> None:
    rows = [{("item" if k == "id" else k): v for k, v in r.items()} for r in manifest_rows()]
    folder = make_catalog_folder(tmp_path / "src", rows=rows)
    refused(busy_store, folder, "missing column(s) id", "item, title, text, image, audio, genre")


def test_no_content_column(tmp_path: Path, busy_store: Store) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    write_manifest(folder, [{"id": "a", "title": "A"}])
    refused(busy_store, folder, "no content column", "text, image, audio")


def test_duplicate_ids_name_the_id_and_its_rows(tmp_path: Path, busy_store: Store) -> None:
    rows = manifest_rows()
    rows[3]["id"] = "t1"
    folder = make_catalog_folder(tmp_path / "src", rows=rows, interactions=False)
    # t1 is data row 2 and 4: spreadsheet rows 3 and 5 (the header is row 1)
    refused(busy_store, folder, "'t1'", "row 3", "row 5", "header = row 1")


def test_duplicate_ids_in_json_are_counted_as_records(tmp_path: Path, busy_store: Store) -> None:
    rows = manifest_rows()
    rows[2]["id"] = "t0"
    folder = make_catalog_folder(tmp_path / "src", fmt="json", rows=rows, interactions=False)
    refused(busy_store, folder, "'t0'", "record 1", "record 3")


def test_empty_id_cell(tmp_path: Path, busy_store: Store) -> None:
    rows = manifest_rows()
    rows[2]["id"] = " "
    folder = make_catalog_folder(tmp_path / "src", rows=rows, interactions=False)
    refused(busy_store, folder, "column id is empty", "row 4")


def test_empty_manifest(tmp_path: Path, busy_store: Store) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "manifest.csv").write_text("id,title,text,image,audio\n")
    refused(busy_store, folder, "no rows")


def test_no_manifest_lists_what_is_there(tmp_path: Path, busy_store: Store) -> None:
    folder = tmp_path / "src"
    write_png(folder / "cover.png", (1, 2, 3))
    (folder / "items.csv").write_text("id\n1\n")
    error = refused(busy_store, folder, "no manifest found", "manifest.csv", "2 file(s)")
    assert "cover.png" not in str(error) and "items.csv" not in str(error)  # no directory listing


def test_two_manifests_are_ambiguous(tmp_path: Path, busy_store: Store) -> None:
    folder = make_catalog_folder(tmp_path / "src")
    write_manifest(folder, manifest_rows(), "json")
    refused(busy_store, folder, "manifest.csv and manifest.json", "exactly one")


def test_unknown_item_in_interactions(tmp_path: Path, busy_store: Store) -> None:
    folder = make_catalog_folder(tmp_path / "src")
    pd.DataFrame({"user_id": ["u0", "u1"], "item_id": ["t0", "nope"]}).to_csv(folder / "interactions.csv",
                                                                              index=False)
    refused(busy_store, folder, "interactions.csv", "'nope'", "row 3")


def test_corrupt_image_is_refused_with_its_cause(tmp_path: Path, busy_store: Store) -> None:
    folder = make_catalog_folder(tmp_path / "src")
    (folder / "covers/t2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    error = refused(busy_store, folder, "row 4, column image", "covers/t2.png", "not a readable image",
                    strict=True)
    assert isinstance(error.__cause__, UnsupportedMediaError)


def test_unsupported_media_type(tmp_path: Path, busy_store: Store) -> None:
    rows = manifest_rows()
    rows[0]["audio"] = "audio/notes.txt"
    folder = make_catalog_folder(tmp_path / "src", rows=rows[1:], interactions=False)
    (folder / "audio/notes.txt").write_text("la la la")
    write_png(folder / rows[0]["image"], (0, 0, 0))
    write_manifest(folder, rows)
    error = refused(busy_store, folder, "row 2, column audio", "'.txt' is not a supported audio type",
                    strict=True)
    assert isinstance(error.__cause__, UnsupportedMediaError)


def test_silent_audio_is_refused(tmp_path: Path, busy_store: Store) -> None:
    folder = make_catalog_folder(tmp_path / "src")
    write_wav(folder / "audio/t1.wav", 440, amplitude=0.0)
    refused(busy_store, folder, "row 3, column audio", "silent", strict=True)


def test_missing_media_file(tmp_path: Path, busy_store: Store) -> None:
    folder = make_catalog_folder(tmp_path / "src")
    (folder / "covers/t0.png").unlink()
    refused(busy_store, folder, "row 2, column image", "'covers/t0.png' not found", strict=True)


@pytest.mark.parametrize("ref", ["../outside.png", "/nonexistent/abs.png"])
def test_media_reference_outside_the_folder(tmp_path: Path, busy_store: Store, ref: str) -> None:
    rows = manifest_rows()
    rows[1]["image"] = ref
    write_png(tmp_path / "outside.png", (9, 9, 9))
    folder = make_catalog_folder(tmp_path / "src", rows=rows, interactions=False)
    refused(busy_store, folder, "row 3, column image", repr(ref))


def test_unreadable_csv(tmp_path: Path, busy_store: Store) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "manifest.csv").write_bytes(b"id,title\n\xff\xfe\x00bad")
    refused(busy_store, folder, "manifest.csv", "UTF-8")


def test_json_must_be_a_list_of_records(tmp_path: Path, busy_store: Store) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"id": "a"}))
    refused(busy_store, folder, "JSON list of records")


# -- zips ---------------------------------------------------------------------------------------------
def _zip_with(tmp_path: Path, entry: zipfile.ZipInfo | str, data: bytes = b"x") -> Path:
    folder = make_catalog_folder(tmp_path / "src")
    archive = zip_folder(folder, tmp_path / "bad.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(entry, data)
    return archive


@pytest.mark.parametrize("entry, reason", [("../escape.txt", "'..'"), ("/abs/escape.txt", "absolute path"),
                                           ("sub/../../escape.txt", "'..'")])
def test_zip_entry_escaping_its_folder_is_refused(tmp_path: Path, busy_store: Store, entry: str,
                                                  reason: str) -> None:
    archive = _zip_with(tmp_path, zipfile.ZipInfo(entry))
    refused(busy_store, archive, repr(entry), reason, "refused")
    assert not (tmp_path / "escape.txt").exists()


def test_zip_symlink_entry_is_refused(tmp_path: Path, busy_store: Store) -> None:
    link = zipfile.ZipInfo("covers/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = _zip_with(tmp_path, link, b"/etc/passwd")
    refused(busy_store, archive, "'covers/link.png'", "symbolic link")


def test_zip_bomb_is_refused_by_its_unpacked_size(tmp_path: Path, busy_store: Store) -> None:
    folder = make_catalog_folder(tmp_path / "src")
    archive = zip_folder(folder, tmp_path / "bomb.zip")
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("padding.bin", b"\0" * 2_000_000)
    assert archive.stat().st_size < 200_000  # small on disk, large unpacked
    refused(busy_store, archive, "zip bomb", "limit", max_unpacked_bytes=1_000_000)


def test_not_a_zip(tmp_path: Path, busy_store: Store) -> None:
    archive = tmp_path / "fake.zip"
    archive.write_bytes(b"PK but not really")
    refused(busy_store, archive, "not a readable zip")


def test_extract_zip_writes_nothing_when_an_entry_is_refused(tmp_path: Path) -> None:
    archive = _zip_with(tmp_path, zipfile.ZipInfo("../escape.txt"))
    dest = tmp_path / "out"
    with pytest.raises(CatalogError):
        extract_zip(archive, dest)
    assert not dest.exists()
