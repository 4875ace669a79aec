"""Hostile inputs against the importers, the media loaders and the store, each generated in a temporary folder.

Every case is a function `(tmp, store) -> None` registered with what it must do:
- expect="error": it must raise a PrismError whose message holds every fragment, and leave the store
  byte for byte as it was;
- expect="ok": it must succeed, and asserts inside the function check that it did the right thing (a
  masked cell listed in the report, a padded clip, a repaired store …).
The store given to a case already holds the catalog "tiny", which no case may lose. The suite in
test_hostile.py runs every case; benchmarks/hostile.py runs them all and prints the ledger.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

from core.catalog.model import Catalog, Item
from core.errors import PrismError
from core.store.database import Store
from core.workspace.imports import import_interactions, import_manifest, import_mmrec

REPO = Path(__file__).resolve().parents[2]
SR = 8000
KEPT = "tiny"  # the catalog every case's store holds and must keep


@dataclass(frozen=True)
class Case:
    """One hostile input: its name, what it attacks, the outcome it must have."""

    name: str
    target: str  # "zip", "manifest", "media", "mmrec", "interactions", "store", "export"
    run: Callable[[Path, Store], None]
    expect: str  # "error" or "ok"
    fragments: tuple[str, ...] = ()
    slow: bool = False


CASES: list[Case] = []


def case(name: str, target: str, expect: str = "error", *fragments: str, slow: bool = False):
    """Register the decorated function as a hostile case."""
    def register(fn: Callable[[Path, Store], None]) -> Callable[[Path, Store], None]:
        CASES.append(Case(name, target, fn, expect, tuple(fragments), slow))
        return fn

    return register


# -- helpers ----------------------------------------------------------------------------------------
def kept_store(root: Path) -> Store:
    """A store holding the catalog that failed imports must leave alone."""
    store = Store(root)
    store.save_catalog(Catalog(name=KEPT, items=[Item(id="a", title="A", text="kept")]))
    return store


def snapshot(store: Store) -> tuple[list[dict], dict[str, str]]:
    """The catalog listing and every file's bytes under the store."""
    listing = store.list_catalogs().to_dict("records")
    files = {str(p.relative_to(store.root)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(store.root.rglob("*")) if p.is_file()}
    return listing, files


def kept_intact(store: Store) -> bool:
    """Whether the catalog every store starts with is still there, unchanged."""
    try:
        catalog = Store(store.root).load_catalog(KEPT)
    except PrismError:
        return False
    return [(i.id, i.text) for i in catalog.items] == [("a", "kept")]


@contextmanager
def env(**values: str) -> Iterator[None]:
    """Environment variables set for the duration of a case."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def png(colour: tuple[int, int, int] = (200, 40, 90), size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def wav(seconds: float = 0.6, freq: float = 440.0, amplitude: float = 0.3, sr: int = SR,
        subtype: str = "PCM_16", values: np.ndarray | None = None, fmt: str = "WAV") -> bytes:
    t = np.arange(int(round(seconds * sr))) / sr
    y = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32) if values is None else values
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def rows(n: int = 4) -> list[dict[str, str]]:
    return [{"id": f"t{i}", "title": f"Track {i}", "text": f"song number {i}", "image": f"covers/t{i}.png",
             "audio": f"audio/t{i}.wav"} for i in range(n)]


def catalog_folder(root: Path, n: int = 4, media: dict[str, bytes] | None = None,
                   manifest: list[dict[str, str]] | None = None) -> Path:
    """A good catalog folder of `n` items; `media` replaces (or adds) files by relative path."""
    root.mkdir(parents=True, exist_ok=True)
    files = {f"covers/t{i}.png": png((40 * i % 256, 100, 200)) for i in range(n)}
    files.update({f"audio/t{i}.wav": wav(freq=220.0 * (i + 1)) for i in range(n)})
    files.update(media or {})
    for ref, data in files.items():
        (root / ref).parent.mkdir(parents=True, exist_ok=True)
        (root / ref).write_bytes(data)
    pd.DataFrame(manifest or rows(n)).to_csv(root / "manifest.csv", index=False)
    pd.DataFrame({"user_id": ["u0", "u1", "u1"], "item_id": ["t0", "t1", "t2"]}).to_csv(
        root / "interactions.csv", index=False)
    return root


def zip_of(folder: Path, archive: Path, extra: list[tuple[zipfile.ZipInfo | str, bytes]] = (),
           compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(archive, "w", compression=compression) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
        for entry, data in extra:
            zf.writestr(entry, data)
    return archive


def problems_of(store: Store, name: str) -> list[dict[str, str]]:
    return store.load_catalog(name).metadata.get("import_problems", [])


# -- zips -------------------------------------------------------------------------------------------
def _zip_entry_case(entry: str | zipfile.ZipInfo) -> Callable[[Path, Store], None]:
    def run(tmp: Path, store: Store) -> None:
        archive = zip_of(catalog_folder(tmp / "src"), tmp / "bad.zip", [(entry, b"x")])
        import_manifest(archive, store, name="evil")
        assert not (tmp / "escape.txt").exists()

    return run


for _name, _entry, _fragment in [("zip-dotdot", "../escape.txt", "'..'"),
                                 ("zip-nested-dotdot", "covers/../../escape.txt", "'..'"),
                                 ("zip-absolute", "/tmp/escape.txt", "absolute path"),
                                 ("zip-backslash", "..\\escape.txt", "'..'"),
                                 ("zip-drive-letter", "C:/escape.txt", "absolute path")]:
    case(_name, "zip", "error", _fragment, "refused")(_zip_entry_case(_entry))

_link = zipfile.ZipInfo("covers/link.png")
_link.external_attr = (stat.S_IFLNK | 0o777) << 16
case("zip-symlink-entry", "zip", "error", "symbolic link")(_zip_entry_case(_link))


@case("zip-of-zeros-ratio", "zip", "error", "compression-ratio limit", "PRISM_MAX_ZIP_RATIO")
def zip_of_zeros(tmp: Path, store: Store) -> None:
    archive = zip_of(catalog_folder(tmp / "src"), tmp / "zeros.zip", [("pad.bin", b"\0" * 20_000_000)],
                     compression=zipfile.ZIP_DEFLATED)
    assert archive.stat().st_size < 100_000
    import_manifest(archive, store, name="zeros")


@case("zip-unpacked-size", "zip", "error", "unpacked-size limit", "PRISM_MAX_UNPACKED_MB")
def zip_unpacked_size(tmp: Path, store: Store) -> None:
    noise = np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    archive = zip_of(catalog_folder(tmp / "src"), tmp / "big.zip", [("noise.bin", noise)])
    with env(PRISM_MAX_UNPACKED_MB="2"):
        import_manifest(archive, store, name="big")


@case("zip-entry-count", "zip", "error", "entries", "PRISM_MAX_ZIP_ENTRIES")
def zip_entry_count(tmp: Path, store: Store) -> None:
    archive = zip_of(catalog_folder(tmp / "src"), tmp / "many.zip", [(f"e/{i}", b"") for i in range(300)])
    with env(PRISM_MAX_ZIP_ENTRIES="100"):
        import_manifest(archive, store, name="many")


@case("zip-400k-empty-entries", "zip", "error", "entries", "PRISM_MAX_ZIP_ENTRIES", slow=True)
def zip_many_entries(tmp: Path, store: Store) -> None:
    archive = tmp / "huge.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("manifest.csv", "id,text\na,x\n")
        for i in range(400_000):
            zf.writestr(f"e/{i}", b"")
    import_manifest(archive, store, name="huge")


@case("zip-file-and-folder-same-name", "zip", "error", "both a file and a folder")
def zip_file_folder(tmp: Path, store: Store) -> None:
    archive = zip_of(catalog_folder(tmp / "src"), tmp / "clash.zip", [("covers/t0.png/inner.png", png())])
    import_manifest(archive, store, name="clash")


@case("zip-entry-name-over-255", "zip", "error", "255-byte limit")
def zip_long_entry(tmp: Path, store: Store) -> None:
    archive = zip_of(catalog_folder(tmp / "src"), tmp / "long.zip", [("covers/" + "a" * 300 + ".png", png())])
    import_manifest(archive, store, name="long")


@case("zip-not-a-zip", "zip", "error", "not a readable zip")
def zip_fake(tmp: Path, store: Store) -> None:
    (tmp / "fake.zip").write_bytes(b"PK\x03\x04 but not really a zip")
    import_manifest(tmp / "fake.zip", store, name="fake")


@case("zip-disk-full-while-unpacking", "zip", "error", "no space left", "Nothing was stored")
def zip_disk_full(tmp: Path, store: Store) -> None:
    archive = zip_of(catalog_folder(tmp / "src"), tmp / "full.zip")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with mock.patch("core.catalog.manifest.shutil.copyfileobj", full):
        import_manifest(archive, store, name="full")


# -- names and the store ------------------------------------------------------------------------------
@case("name-over-255-characters", "store", "error", "over the limit")
def long_name(tmp: Path, store: Store) -> None:
    import_manifest(catalog_folder(tmp / "src"), store, name="n" * 300)


@case("folder-name-over-255-characters", "store", "ok")
def long_folder_name(tmp: Path, store: Store) -> None:
    report = import_manifest(catalog_folder(tmp / ("f" * 200)), store)
    assert len(report.catalog) <= 100 and store.has_catalog(report.catalog)


@case("name-demo-is-reserved", "store", "error", "demo", "choose another name")
def reserved_demo(tmp: Path, store: Store) -> None:
    import_manifest(catalog_folder(tmp / "src"), store, name="demo", overwrite=True)


@case("name-taken-without-overwrite", "store", "error", "exists already", "--overwrite")
def taken(tmp: Path, store: Store) -> None:
    import_manifest(catalog_folder(tmp / "src"), store, name=KEPT)


@case("two-imports-of-one-name-at-once", "store", "ok")
def concurrent_imports(tmp: Path, store: Store) -> None:
    folders = [catalog_folder(tmp / f"src{k}", n=3 + k) for k in range(2)]
    outcomes: list[object] = [None, None]
    barrier = threading.Barrier(2)

    def go(k: int) -> None:
        barrier.wait()
        try:
            outcomes[k] = import_manifest(folders[k], Store(store.root), name="race").items
        except PrismError as e:
            outcomes[k] = e

    threads = [threading.Thread(target=go, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    wins = [o for o in outcomes if isinstance(o, int)]
    losses = [o for o in outcomes if isinstance(o, PrismError)]
    assert len(wins) == 1 and len(losses) == 1, outcomes
    assert "exists already" in str(losses[0]) or "a moment ago" in str(losses[0])
    catalog = store.load_catalog("race")
    assert len(catalog.items) == wins[0]
    assert all(catalog.media_path(i.image).is_file() and catalog.media_path(i.audio).is_file()
               for i in catalog.items)


_KILL_SCRIPT = """
import os, sys
from pathlib import Path
from core.store.database import Store
from core.workspace.imports import import_manifest
store = Store(sys.argv[1])
point = sys.argv[3]
if point == "after-commit":  # the rows and the journal row are committed, the media not yet in place
    Store._finish_swap = lambda *a, **k: os._exit(9)
else:  # the media are staged, the transaction holding the rows has not committed
    Store._delete_rows = staticmethod(lambda *a, **k: os._exit(9))
import_manifest(Path(sys.argv[2]), store, name="crashed", overwrite=True)
"""


def _killed_import(tmp: Path, store: Store, point: str) -> None:
    folder = catalog_folder(tmp / "src")
    code = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(store.root), str(folder), point], cwd=REPO,
                          capture_output=True, timeout=120).returncode
    assert code == 9, f"the import was not killed where planned (exit {code})"


@case("kill-after-commit-before-media-swap", "store", "ok")
def killed_after_commit(tmp: Path, store: Store) -> None:
    _killed_import(tmp, store, "after-commit")
    repaired = Store(store.root)  # the next start finishes the swap
    catalog = repaired.load_catalog("crashed")
    assert all(catalog.media_path(i.image).is_file() for i in catalog.items)
    with repaired.transaction() as con:
        assert con.execute("SELECT COUNT(*) FROM media_journal").fetchone()[0] == 0
    assert not list((store.root / "catalogs").glob(".staging-*"))


@case("kill-before-commit", "store", "ok")
def killed_before_commit(tmp: Path, store: Store) -> None:
    before = snapshot(store)
    _killed_import(tmp, store, "before-commit")
    assert list((store.root / "catalogs").glob(".staging-*")), "the kill left no staging folder to clean"
    Store(store.root)  # the next start removes the abandoned staging folder
    assert snapshot(store) == before


@case("read-only-database", "store", "error", "read-only", "Nothing was changed")
def read_only(tmp: Path, store: Store) -> None:
    def connect(self):
        return sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)

    with mock.patch.object(Store, "connect", connect):
        import_manifest(catalog_folder(tmp / "src"), store, name="ro")


@case("corrupted-database", "store", "error", "damaged", "backup")
def corrupted(tmp: Path, store: Store) -> None:
    root = tmp / "broken-store"
    root.mkdir()
    (root / "prism.sqlite").write_bytes(b"this is not a database" * 100)
    Store(root)


@case("disk-full-while-copying-media", "store", "error", "full", "Nothing was stored")
def disk_full_media(tmp: Path, store: Store) -> None:
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with mock.patch("core.store.database.shutil.copyfile", full):
        import_manifest(catalog_folder(tmp / "src"), store, name="full")


@case("disk-full-while-writing-sqlite", "store", "error", "full", "Nothing was stored")
def disk_full_sqlite(tmp: Path, store: Store) -> None:
    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    with mock.patch.object(Store, "_delete_rows", staticmethod(full)):
        import_manifest(catalog_folder(tmp / "src"), store, name="full")


# -- manifests and their media ------------------------------------------------------------------------
def _masked(tmp: Path, store: Store, name: str, media: dict[str, bytes], column: str, *reason: str,
            manifest: list[dict[str, str]] | None = None) -> None:
    report = import_manifest(catalog_folder(tmp / name, media=media, manifest=manifest), store, name=name)
    assert len(report.problems) == 1, report.problems
    problem = report.problems[0]
    assert problem["column"] == column and all(r in problem["reason"] for r in reason), problem
    catalog = store.load_catalog(name)
    assert getattr(catalog.items[1], column) is None  # masked
    assert problems_of(store, name) == report.problems  # stored with the catalog


@case("silent-clip-is-masked-and-listed", "media", "ok")
def silent(tmp: Path, store: Store) -> None:
    _masked(tmp, store, "silent", {"audio/t1.wav": wav(amplitude=0.0)}, "audio", "silent")


@case("short-real-clip-0.19s-is-padded", "media", "ok")
def short_clip(tmp: Path, store: Store) -> None:
    report = import_manifest(catalog_folder(tmp / "short", media={"audio/t1.wav": wav(seconds=0.19)}), store,
                             name="short")
    assert report.problems == [] and store.load_catalog("short").items[1].audio == "audio/t1.wav"


@case("clip-of-30ms-is-masked", "media", "ok")
def tiny_clip(tmp: Path, store: Store) -> None:
    _masked(tmp, store, "tiny30", {"audio/t1.wav": wav(seconds=0.03)}, "audio", "ms long", "50 ms")


@case("nan-samples-are-not-called-silent", "media", "ok")
def nan_clip(tmp: Path, store: Store) -> None:
    y = (0.3 * np.sin(np.arange(SR) / 3)).astype(np.float32)
    y[100:200] = np.nan
    _masked(tmp, store, "nan", {"audio/t1.wav": wav(values=y, subtype="FLOAT")}, "audio", "NaN")


@case("clip-over-the-duration-limit-refused-from-header", "media", "ok")
def long_clip(tmp: Path, store: Store) -> None:
    with env(PRISM_MAX_AUDIO_SECONDS="2"):
        _masked(tmp, store, "long", {"audio/t1.wav": wav(seconds=3.0)}, "audio", "limit",
                "PRISM_MAX_AUDIO_SECONDS")


@case("eps-named-png-is-not-decoded", "media", "ok")
def eps(tmp: Path, store: Store) -> None:
    eps_bytes = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\n"
    with mock.patch("PIL.EpsImagePlugin.EpsImageFile._open", side_effect=AssertionError("EPS decoder reached")):
        _masked(tmp, store, "eps", {"covers/t1.png": eps_bytes}, "image", "not a PNG, JPEG")


@case("svg-named-png-gets-a-convert-hint", "media", "ok")
def svg(tmp: Path, store: Store) -> None:
    svg_bytes = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"></svg>'
    _masked(tmp, store, "svg", {"covers/t1.png": svg_bytes}, "image", "SVG", "convert it to PNG")


@case("decompression-bomb-png-is-masked", "media", "ok")
def bomb_png(tmp: Path, store: Store) -> None:
    buf = io.BytesIO()
    Image.new("1", (7_000, 7_000)).save(buf, format="PNG")  # 49 M pixels in a few KB
    _masked(tmp, store, "bomb", {"covers/t1.png": buf.getvalue()}, "image", "too large")


@case("truncated-png-is-masked", "media", "ok")
def truncated(tmp: Path, store: Store) -> None:
    _masked(tmp, store, "trunc", {"covers/t1.png": png(size=64)[:60]}, "image", "not a readable image")


@case("palette-png-with-transparency-warns-nothing", "media", "ok")
def palette(tmp: Path, store: Store) -> None:
    img = Image.new("P", (16, 16), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] * 128)
    img.info["transparency"] = 0
    buf = io.BytesIO()
    img.save(buf, format="PNG", transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's "Palette images with Transparency" warning would raise here
        report = import_manifest(catalog_folder(tmp / "pal", media={"covers/t1.png": buf.getvalue()}), store,
                                 name="pal")
    assert report.problems == []


@case("missing-file-is-masked", "media", "ok")
def missing(tmp: Path, store: Store) -> None:
    manifest = rows()
    manifest[1]["image"] = "covers/nowhere.png"
    _masked(tmp, store, "missing", {}, "image", "not found", manifest=manifest)


@case("every-audio-cell-failing-stops", "manifest", "error", "none of the", "audio")
def all_audio_bad(tmp: Path, store: Store) -> None:
    media = {f"audio/t{i}.wav": wav(amplitude=0.0) for i in range(4)}
    import_manifest(catalog_folder(tmp / "allbad", media=media), store, name="allbad")


@case("most-rows-failing-stops", "manifest", "error", "3 of 4 rows")
def most_bad(tmp: Path, store: Store) -> None:
    media = {f"covers/t{i}.png": b"junk" for i in range(3)}
    import_manifest(catalog_folder(tmp / "mostbad", media=media), store, name="mostbad")


@case("strict-refuses-one-bad-cell", "manifest", "error", "row 3, column audio", "silent")
def strict(tmp: Path, store: Store) -> None:
    import_manifest(catalog_folder(tmp / "strict", media={"audio/t1.wav": wav(amplitude=0.0)}), store,
                    name="strict", strict=True)


@case("symlinked-media-leaving-the-folder", "manifest", "error", "symbolic link", "outside the catalog")
def symlink_media(tmp: Path, store: Store) -> None:
    folder = catalog_folder(tmp / "src")
    secret = tmp / "secret.png"
    secret.write_bytes(png())
    (folder / "covers/t1.png").unlink()
    (folder / "covers/t1.png").symlink_to(secret)
    import_manifest(folder, store, name="links")


@case("symlinked-folder-leaving-the-catalog", "manifest", "error", "symbolic link")
def symlink_dir(tmp: Path, store: Store) -> None:
    folder = catalog_folder(tmp / "src")
    outside = tmp / "elsewhere"
    shutil.move(str(folder / "covers"), outside)
    (folder / "covers").symlink_to(outside, target_is_directory=True)
    import_manifest(folder, store, name="dirlink")


@case("symlinked-manifest-leaving-the-folder", "manifest", "error", "symbolic link")
def symlink_manifest(tmp: Path, store: Store) -> None:
    folder = catalog_folder(tmp / "src")
    shutil.move(str(folder / "manifest.csv"), tmp / "real-manifest.csv")
    (folder / "manifest.csv").symlink_to(tmp / "real-manifest.csv")
    import_manifest(folder, store, name="mlink")


@case("media-path-with-dotdot", "manifest", "error", "outside the catalog folder")
def dotdot_ref(tmp: Path, store: Store) -> None:
    manifest = rows()
    manifest[1]["image"] = "../../etc/passwd"
    import_manifest(catalog_folder(tmp / "src", manifest=manifest), store, name="dotdot")


@case("media-path-absolute", "manifest", "error", "not a path relative to the manifest")
def absolute_ref(tmp: Path, store: Store) -> None:
    manifest = rows()
    manifest[1]["audio"] = "/etc/passwd"
    import_manifest(catalog_folder(tmp / "src", manifest=manifest), store, name="abs")


@case("folder-without-manifest-lists-nothing", "manifest", "error", "no manifest found")
def no_manifest(tmp: Path, store: Store) -> None:
    folder = tmp / "home"
    folder.mkdir()
    for name in ("id_rsa", ".bashrc", "secrets.txt"):
        (folder / name).write_text("x")
    try:
        import_manifest(folder, store, name="home")
    except PrismError as e:
        assert not any(n in str(e) for n in ("id_rsa", "bashrc", "secrets")), str(e)
        raise


HOSTILE_TITLES = ['<iframe srcdoc="<script>parent.window.__pwned=1</script>"></iframe>',
                  "<style>body{display:none}</style>", '<form action="http://127.0.0.1:9/"><input '
                  'type="password"></form>', '<img src="http://127.0.0.1:9/x.png" onerror="window.__pwned=1">',
                  "![x](http://127.0.0.1:9/md.png)", "=HYPERLINK(\"http://127.0.0.1:9\",\"x\")"]


@case("hostile-titles-are-stored-as-text", "manifest", "ok")
def hostile_titles(tmp: Path, store: Store) -> None:
    manifest = rows(len(HOSTILE_TITLES))
    for row, title in zip(manifest, HOSTILE_TITLES):
        row["title"] = title
        row["artist"] = title
    import_manifest(catalog_folder(tmp / "html", n=len(HOSTILE_TITLES), manifest=manifest), store, name="html")
    assert [i.title for i in store.load_catalog("html").items] == HOSTILE_TITLES


# -- MMRec ----------------------------------------------------------------------------------------
def mmrec_folder(root: Path, inter: str, matrices: dict[str, np.ndarray]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cat.inter").write_text(inter)
    for name, values in matrices.items():
        np.save(root / name, values)
    return root


@case("mmrec-item-id-2e9-with-features", "mmrec", "error", "beyond the 4 rows")
def mmrec_huge_id(tmp: Path, store: Store) -> None:
    inter = "userID\titemID\tx_label\n0\t0\t0\n1\t2000000000\t2\n"
    import_mmrec(mmrec_folder(tmp / "m", inter, {"vggish.npy": np.ones((4, 3))}), store)


@case("mmrec-item-id-2e9-ids-only", "mmrec", "ok")
def mmrec_huge_ids_only(tmp: Path, store: Store) -> None:
    inter = "userID\titemID\tx_label\n0\t10000000\t0\n1\t2000000000\t2\n"
    report = import_mmrec(mmrec_folder(tmp / "m", inter, {}), store, ids_only=True)
    assert report.items == 2
    assert [i.metadata["mmrec_id"] for i in store.load_catalog("cat").items] == [10_000_000, 2_000_000_000]


@case("mmrec-no-feature-file", "mmrec", "error", "no feature matrix", "other.npy", "--ids-only")
def mmrec_no_features(tmp: Path, store: Store) -> None:
    inter = "userID\titemID\n0\t0\n1\t1\n"
    import_mmrec(mmrec_folder(tmp / "m", inter, {"other.npy": np.ones((2, 2))}), store)


@case("mmrec-matrices-disagree", "mmrec", "error", "disagree", "4 rows", "5 rows")
def mmrec_disagree(tmp: Path, store: Store) -> None:
    inter = "userID\titemID\n0\t0\n1\t3\n"
    import_mmrec(mmrec_folder(tmp / "m", inter, {"vggish.npy": np.ones((4, 3)),
                                                 "all-MiniLM-L6-v2.npy": np.ones((5, 3))}), store)


@case("mmrec-items-without-interactions-kept", "mmrec", "ok")
def mmrec_trailing(tmp: Path, store: Store) -> None:
    inter = "userID\titemID\n" + "".join(f"{u}\t{u % 1674}\n" for u in range(1674))
    report = import_mmrec(mmrec_folder(tmp / "m", inter, {"vggish.npy": np.ones((1682, 3))}), store)
    assert report.items == 1682 and any("8 of the 1,682" in w for w in report.warnings)


@case("mmrec-multi-column-text-tsv", "mmrec", "error", "FILE:COLUMN")
def mmrec_text_columns(tmp: Path, store: Store) -> None:
    folder = mmrec_folder(tmp / "m", "userID\titemID\n0\t0\n1\t1\n", {"vggish.npy": np.ones((2, 3))})
    (folder / "cat_text.tsv").write_text("id\tgenre\tplot\n0\tdrama\ta long story\n1\tcomedy\tfun\n")
    import_mmrec(folder, store)


@case("mmrec-text-and-titles-named", "mmrec", "ok")
def mmrec_named_columns(tmp: Path, store: Store) -> None:
    folder = mmrec_folder(tmp / "m", "userID\titemID\n0\t0\n1\t1\n", {"vggish.npy": np.ones((2, 3))})
    (folder / "movies.tsv").write_text("id\tname\tplot\n0\tHeat\tcops\n1\tUp\tballoons\n")
    import_mmrec(folder, store, text_tsv="movies.tsv:plot", titles="movies.tsv:name")
    items = store.load_catalog("cat").items
    assert [(i.title, i.text) for i in items] == [("Heat", "cops"), ("Up", "balloons")]


@case("mmrec-pickled-npy", "mmrec", "error", "not a readable numeric")
def mmrec_pickle(tmp: Path, store: Store) -> None:
    folder = mmrec_folder(tmp / "m", "userID\titemID\n0\t0\n", {})
    np.save(folder / "vggish.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    import_mmrec(folder, store)


@case("mmrec-symlinked-npy-leaving-the-folder", "mmrec", "error", "symbolic link")
def mmrec_symlink(tmp: Path, store: Store) -> None:
    folder = mmrec_folder(tmp / "m", "userID\titemID\n0\t0\n", {})
    np.save(tmp / "outside.npy", np.ones((1, 3)))
    (folder / "vggish.npy").symlink_to(tmp / "outside.npy")
    import_mmrec(folder, store)


# -- interactions -------------------------------------------------------------------------------------
@case("interactions-extra-columns-named", "interactions", "ok")
def interactions_extra(tmp: Path, store: Store) -> None:
    import_manifest(catalog_folder(tmp / "src"), store, name="withinter")
    csv = tmp / "plays.csv"
    csv.write_text("user_id,item_id,rating,device,country\nu5,t0,2,phone,FR\n")
    report = import_interactions(csv, store, "withinter")
    assert report.kind == "interactions"
    assert any("ignored: device, country" in w for w in report.warnings), report.warnings


# -- media through the query path ---------------------------------------------------------------------
@case("query-clip-of-0.19s-is-accepted", "media", "ok")
def query_short(tmp: Path, store: Store) -> None:
    from core.catalog.media import AUDIO_SAMPLE_RATE, load_audio

    y = load_audio(wav(seconds=0.19, sr=44_100), name="hammer.wav")
    assert y.size >= 0.19 * AUDIO_SAMPLE_RATE and np.abs(y).max() > 0.1


@case("query-hour-long-flac-decodes-only-a-window", "media", "ok", slow=True)
def hour_flac(tmp: Path, store: Store) -> None:
    import resource

    from core.catalog.media import AUDIO_SAMPLE_RATE, AUDIO_WINDOW_SECONDS, load_audio

    path = tmp / "hour.flac"
    rate = 96_000
    with sf.SoundFile(path, "w", samplerate=rate, channels=2, format="FLAC", subtype="PCM_16") as f:
        block = (0.2 * np.sin(np.arange(rate * 60) / 7)).astype(np.float32)
        for _ in range(60):
            f.write(np.stack([block, block], axis=1))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with env(PRISM_MAX_AUDIO_SECONDS="7200"):
        y = load_audio(path)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2 ** 20  # GiB (ru_maxrss is KiB)
    assert y.size == int(AUDIO_WINDOW_SECONDS * AUDIO_SAMPLE_RATE) and grown < 0.5, grown


@case("query-ten-hour-header-refused-before-decoding", "media", "error", "over the", "PRISM_MAX_AUDIO_SECONDS")
def ten_hours(tmp: Path, store: Store) -> None:
    from core.catalog.media import load_audio

    with env(PRISM_MAX_AUDIO_SECONDS="1"), mock.patch("soundfile.SoundFile.read",
                                                         side_effect=AssertionError("decoded before the check")):
        load_audio(wav(seconds=1.5))


# -- exports -----------------------------------------------------------------------------------------
@case("formula-cells-neutralised-in-exports", "export", "ok")
def formulas(tmp: Path, store: Store) -> None:
    from core.store.export import safe_csv

    frame = pd.DataFrame({"title": ["=cmd|' /C calc'!A0", '=HYPERLINK("http://x")', "@SUM(A1)", "+1", "ok"],
                          "n": [1, 2, 3, 4, 5]})
    back = pd.read_csv(io.BytesIO(safe_csv(frame)))
    assert not any(str(v).startswith(("=", "@", "+", "-")) for v in back["title"])
    assert back["title"].iloc[4] == "ok" and back["n"].tolist() == [1, 2, 3, 4, 5]
    assert json.dumps(back["title"].tolist())  # plain text round trip


# -- damaged stored files: refused by name with a fix, on that catalog only -----------------------------
def trained_store(root: Path, names: tuple[str, ...] = ("shop",)) -> Store:
    """A store under `root` whose catalogs (30 items with a precomputed text feature, 12 listeners) each have
    their embeddings and an active fusion model trained for two epochs (about a second each)."""
    from core.catalog.model import FeatureMatrix
    from core.models.fusion.config import FusionConfig
    from core.workspace.prepare import prepare_embeddings, train_model

    rng = np.random.default_rng(0)
    n, users = 30, 12
    wanted = Store(root)
    for name in names:
        rows_ = [(f"u{u}", f"i{i}", None, None, ("train", "train", "train", "train", "valid", "test")[j])
                 for u in range(users) for j, i in enumerate(rng.choice(n, 6, replace=False))]
        inter = pd.DataFrame(rows_, columns=["user_id", "item_id", "rating", "timestamp", "split"]).astype(
            {"user_id": "string", "item_id": "string", "rating": "float64", "timestamp": "float64",
             "split": "string"})
        feats = rng.normal(size=(n, 8)).astype(np.float32)
        wanted.save_catalog(Catalog(name=name, items=[Item(id=f"i{k}", title=f"Item {k}") for k in range(n)],
                                    interactions=inter,
                                    features={"text": FeatureMatrix("text", feats, np.ones(n, bool), "test")}))
        catalog = wanted.load_catalog(name)
        embeddings = prepare_embeddings(wanted, catalog, encoders={})
        train_model(wanted, catalog, embeddings, activate=True,
                    config=FusionConfig(dim=8, hidden=0, epochs=2, patience=2, batch_size=64, collaborative="none"))
    return wanted


def open_workspace(store: Store, name: str):
    """(catalog, embeddings, active model) as every page and command loads them."""
    from core.workspace.prepare import load_active_model, load_embeddings

    catalog = store.load_catalog(name)
    embeddings = load_embeddings(store, catalog)
    return catalog, embeddings, load_active_model(store, catalog, embeddings)


@case("truncated-embeddings-file", "store", "error", "embeddings file default.npz", "damaged",
      "encode --catalog shop --force")
def truncated_embeddings(tmp: Path, store: Store) -> None:
    other = trained_store(tmp / "s", ("shop", "other"))
    path = other.embedding_path("shop", "default")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert open_workspace(other, "other")[2] is not None  # the rest of the studio keeps working
    open_workspace(other, "shop")


@case("model-config-dim-1e6-refused-before-allocating", "store", "error", "dim takes a whole number", "1000000", "models activate")
def model_dim_million(tmp: Path, store: Store) -> None:
    from core.models.fusion.recommender import FusionRecommender

    other = trained_store(tmp / "s")
    config = Path(other.active_model("shop")["path"]) / "config.json"
    header = json.loads(config.read_text())
    header["config"]["dim"] = 1_000_000
    config.write_text(json.dumps(header))
    with mock.patch.object(FusionRecommender, "_build", side_effect=AssertionError("allocated before the check")):
        open_workspace(other, "shop")


@case("index-file-built-on-other-vectors-is-rebuilt", "store", "ok")
def index_other_vectors(tmp: Path, store: Store) -> None:
    from core.serving.index import ensure_index, load_index

    rng = np.random.default_rng(0)
    ours, theirs = (rng.normal(size=(n, 16)).astype(np.float32) for n in (300, 500))
    ensure_index(tmp / "ours", ours, "hnsw")
    ensure_index(tmp / "theirs", theirs, "hnsw")
    shutil.copyfile(tmp / "theirs" / "index" / "index.bin", tmp / "ours" / "index" / "index.bin")
    assert load_index(tmp / "ours", ours) is None  # refused (logged), so it is rebuilt
    rows, _ = ensure_index(tmp / "ours", ours, "hnsw").search(ours[0], 50)
    assert rows.max() < len(ours) and rows[0] == 0
    same_count = rng.normal(size=(300, 16)).astype(np.float32)  # other vectors, the same number of rows
    ensure_index(tmp / "same", same_count, "hnsw")
    shutil.copyfile(tmp / "same" / "index" / "index.bin", tmp / "ours" / "index" / "index.bin")
    assert load_index(tmp / "ours", ours) is None


@case("one-bad-run-record-hides-no-other", "store", "ok")
def bad_run_record(tmp: Path, store: Store) -> None:
    from core.cli.main import main
    from core.errors import DamagedFileError
    from core.evaluation.runs import damaged_runs, runs_table

    other = Store(tmp / "s")
    good = other.save_run({"catalog": "shop", "name": "popularity", "metrics": {"recall@10": 0.5}, "created_at": 1.0})
    bad = other.save_run({"catalog": "shop", "name": "broken", "metrics": {}})
    with other.transaction() as con:
        con.execute("UPDATE runs SET record = ? WHERE id = ?", ('{"id": "x", "metrics": [1, 2', bad))
    assert runs_table(other, "shop")["id"].tolist() == [good]
    assert [i for i, _ in damaged_runs(other)] == [bad] and f"runs delete {bad}" in damaged_runs(other)[0][1]
    try:
        other.load_run(bad)
        raise AssertionError("a damaged run record was read")
    except DamagedFileError as e:
        assert bad in str(e)
    assert main(["--data-dir", str(other.root), "runs", "list"]) == 0
    assert main(["--data-dir", str(other.root), "runs", "delete", bad]) == 0
    assert damaged_runs(other) == []


def _store_with_rows(root: Path, n: int = 20_000) -> Store:
    wanted = Store(root)
    inter = pd.DataFrame({"user_id": [f"u{k % 500}" for k in range(n)], "item_id": [f"i{k % 40}" for k in range(n)]})
    wanted.save_catalog(Catalog(name="big", items=[Item(id=f"i{k}", title=f"Item {k}", text="x") for k in range(40)],
                                interactions=inter.astype("string").assign(rating=np.nan, timestamp=np.nan,
                                                                           split=pd.NA)))
    return wanted


@case("partly-corrupted-database", "store", "error", "prism.sqlite is damaged", "backup", "Nothing was changed")
def partly_corrupted(tmp: Path, store: Store) -> None:
    other = _store_with_rows(tmp / "s")
    data = bytearray(other.db_path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle:middle + 8192] = os.urandom(8192)  # two pages of the interactions table overwritten
    other.db_path.write_bytes(bytes(data))
    before = hashlib.sha256(other.db_path.read_bytes()).hexdigest()
    try:
        import_manifest(catalog_folder(tmp / "src"), Store(other.root), name="more")
    finally:
        assert hashlib.sha256(other.db_path.read_bytes()).hexdigest() == before  # nothing was written


@case("zero-byte-database-beside-catalogs", "store", "error", "empty (0 bytes)", "big", "backup")
def zero_byte_database(tmp: Path, store: Store) -> None:
    other = _store_with_rows(tmp / "s")
    other.db_path.write_bytes(b"")
    Store(other.root)


# -- resource limits: zips, killed imports, audio headers -------------------------------------------------
def _declare_sizes(archive: Path, packed: int, unpacked: int) -> None:
    """Rewrite every central-directory record of `archive` to claim these sizes (what a bomb's directory says)."""
    data = bytearray(archive.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at != -1:
        data[at + 20:at + 28] = packed.to_bytes(4, "little") + unpacked.to_bytes(4, "little")
        at = data.find(b"PK\x01\x02", at + 4)
    archive.write_bytes(bytes(data))


@case("zip-unpacking-to-600-mib-refused-at-the-default-limit", "zip", "error", "512 MiB", "unpacked-size limit",
      "PRISM_MAX_UNPACKED_MB")
def zip_default_size(tmp: Path, store: Store) -> None:
    archive = zip_of(catalog_folder(tmp / "src"), tmp / "big.zip")
    _declare_sizes(archive, packed=8 * 2 ** 20, unpacked=60 * 2 ** 20)  # 13 entries × 60 MiB, ratio 7.5
    with mock.patch("core.catalog.manifest.shutil.copyfileobj", side_effect=AssertionError("unpacked first")):
        import_manifest(archive, store, name="big")


_KILLED_UNZIP = """
import os, sys
from pathlib import Path
from core.store.database import Store
import core.catalog.manifest as manifest
real = manifest.shutil.copyfileobj
calls = []
def copy_then_die(src, dst, *args):
    real(src, dst, *args)
    calls.append(1)
    if len(calls) == 3:  # some entries unpacked into the store's scratch folder, then the process is killed
        os._exit(9)
manifest.shutil.copyfileobj = copy_then_die
from core.workspace.imports import import_manifest
import_manifest(Path(sys.argv[2]), Store(sys.argv[1]), name="killed")
"""


@case("killed-zip-import-leaves-no-temp-files", "zip", "ok")
def killed_unzip(tmp: Path, store: Store) -> None:
    before = snapshot(store)
    archive = zip_of(catalog_folder(tmp / "src"), tmp / "cat.zip")
    code = subprocess.run([sys.executable, "-c", _KILLED_UNZIP, str(store.root), str(archive)], cwd=REPO,
                          capture_output=True, timeout=120).returncode
    assert code == 9, f"the import was not killed where planned (exit {code})"
    left = [p for p in (store.root / "tmp").rglob("*") if p.is_file()]
    assert left, "the kill left no scratch files to clean"
    Store(store.root)  # the next start removes them
    assert not [p for p in (store.root / "tmp").rglob("*") if p.is_file()]
    assert snapshot(store) == before


@case("flac-655-khz-8-channels-refused-from-its-header", "media", "error", "655,350 Hz × 8 channel",
      "re-export it at 44.1 or 48 kHz")
def flac_655khz(tmp: Path, store: Store) -> None:
    from core.catalog.media import load_audio

    buf = io.BytesIO()
    sf.write(buf, np.zeros((655_350, 8), np.float32), 655_350, format="FLAC", subtype="PCM_16")
    assert len(buf.getvalue()) < 400_000  # a small file whose header asks for 5 M samples a second
    with mock.patch("soundfile.SoundFile.blocks", side_effect=AssertionError("decoded before the check")):
        load_audio(buf.getvalue(), name="wide.flac")


@case("tune-jobs-0-and-trial-epochs-0-store-nothing", "store", "ok")
def tune_zero(tmp: Path, store: Store) -> None:
    from core.cli.main import main
    from core.tuning.store import tuned_path

    other = trained_store(tmp / "s")
    for option in (["--jobs", "0"], ["--trial-epochs", "0"]):
        assert main(["--data-dir", str(other.root), "tune", "--catalog", "shop", "--trials", "2", *option]) == 2
    assert not tuned_path(other, "shop").exists()


def truncated_feature_store(root: Path) -> Store:
    """A store under `root` with catalogs "shop" and "other" (3 items, a 2-column text feature each), whose
    "shop" feature file was cut short after it was written."""
    from core.catalog.model import FeatureMatrix

    store = Store(root)
    for name in ("shop", "other"):
        store.save_catalog(Catalog(name=name, items=[Item(id=f"i{k}", title="t") for k in range(3)],
                                   features={"text": FeatureMatrix("text", np.ones((3, 2), np.float32),
                                                                   np.ones(3, bool), "test")}))
    path = store.catalog_dir("shop") / "features" / "text.npz"
    path.write_bytes(path.read_bytes()[:50])
    return store


@case("truncated-feature-file", "store", "error", "feature file text.npz of catalog 'shop' is damaged", "--overwrite")
def truncated_features(tmp: Path, store: Store) -> None:
    other = truncated_feature_store(tmp / "s")
    assert other.load_catalog("other").features["text"].values.shape == (3, 2)
    other.load_catalog("shop")
# -- values set on the command line or in the browser (core.limits) ------------------------------------
def cli(store: Store, *argv: str) -> str:
    """`python -m core --data-dir STORE ARGV…` in this process: its stdout on success; a refusal (exit 2) raised
    as PrismError with its stderr; a traceback (exit 1) raised as a crash."""
    from contextlib import redirect_stderr, redirect_stdout

    from core.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--data-dir", str(store.root), *argv])
    if code == 2:
        raise PrismError(err.getvalue().strip())
    if code != 0:
        raise RuntimeError(f"exit {code}: {err.getvalue()[-3000:]}")
    return out.getvalue()


def _cli_case(*argv: str) -> Callable[[Path, Store], None]:
    def run(tmp: Path, store: Store) -> None:
        cli(store, *[a.replace("{tmp}", str(tmp)) for a in argv])

    return run


for _name, _argv, _fragments in [
    ("cli-evaluate-bootstrap-negative", ("evaluate", "--catalog", KEPT, "--bootstrap", "-5"),
     ("--bootstrap", "from 0 to 100,000", "'-5'")),
    ("cli-evaluate-bootstrap-1e8", ("evaluate", "--catalog", KEPT, "--bootstrap", "100000000"),
     ("--bootstrap", "from 0 to 100,000")),
    ("cli-evaluate-ks-1e8", ("evaluate", "--catalog", KEPT, "--ks", "10,100000000"), ("--ks", "from 1 to 500")),
    ("cli-evaluate-empty-models", ("evaluate", "--catalog", KEPT, "--models", ""), ("--models", "names no model")),
    ("cli-evaluate-split-evil", ("evaluate", "--catalog", KEPT, "--split", "evil"), ("--split", "'evil'")),
    ("cli-train-split-evil", ("train", "--catalog", KEPT, "--split", "evil"), ("--split", "'evil'")),
    ("cli-tune-split-evil", ("tune", "--catalog", KEPT, "--split", "evil"), ("--split", "'evil'")),
    ("cli-train-set-use-item-id-maybe", ("train", "--catalog", KEPT, "--set", "use_item_id=maybe"),
     ("use_item_id", "true or false")),
    ("cli-evaluate-set-use-item-id-maybe", ("evaluate", "--catalog", KEPT, "--set", "use_item_id=maybe"),
     ("use_item_id", "true or false")),
    ("cli-train-set-dim-million", ("train", "--catalog", KEPT, "--set", "dim=1000000"), ("dim", "1 to 4,096")),
    ("cli-evaluate-config-a-folder", ("evaluate", "--catalog", KEPT, "--config", "{tmp}"), ("--config", "folder")),
    ("cli-evaluate-config-dev-zero", ("evaluate", "--catalog", KEPT, "--config", "/dev/zero"),
     ("--config", "not a regular file")),
    ("cli-tune-jobs-0", ("tune", "--catalog", KEPT, "--jobs", "0"), ("--jobs", "from 1 to 256")),
    ("cli-tune-trial-epochs-0", ("tune", "--catalog", KEPT, "--trial-epochs", "0"), ("--trial-epochs", "from 1")),
    ("cli-tune-trials-0", ("tune", "--catalog", KEPT, "--trials", "0"), ("--trials", "from 1")),
    ("cli-report-explain-negative", ("report", "--catalog", KEPT, "--explain", "-3", "--out", "{tmp}/r.html"),
     ("--explain", "from 0 to 50")),
    ("cli-report-k-0-with-a-query", ("report", "--catalog", KEPT, "--k", "0", "--query", "piano", "--out",
                                     "{tmp}/r.html"), ("--k", "from 1 to 1,000", "'0'")),
    ("cli-runs-compare-bootstrap-1e8", ("runs", "compare", "a", "b", "--bootstrap", "100000000"),
     ("--bootstrap", "from 0 to 100,000")),
    ("cli-demo-tracks-1e8", ("demo", "--tracks", "100000000"), ("--tracks", "from 2 to 200,000")),
    ("cli-encode-batch-size-0", ("encode", "--catalog", KEPT, "--batch-size", "0"), ("--batch-size", "from 1")),
]:
    case(_name, "cli", "error", *_fragments)(_cli_case(*_argv))


@case("cli-evaluate-config-deep-json", "cli", "error", "--config", "nested too deeply")
def config_deep_json(tmp: Path, store: Store) -> None:
    (tmp / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    cli(store, "evaluate", "--catalog", KEPT, "--config", str(tmp / "deep.json"))


@case("cli-evaluate-config-huge-file", "cli", "error", "--config", "over 1,024 KB")
def config_huge(tmp: Path, store: Store) -> None:
    (tmp / "huge.json").write_text(json.dumps({"dim": 64, "pad": "x" * (3 << 20)}))
    cli(store, "evaluate", "--catalog", KEPT, "--config", str(tmp / "huge.json"))


@case("core-evaluate-k-a-million-refused-in-core", "options", "error", "K", "1 to 500", "1000000")
def core_k_million(tmp: Path, store: Store) -> None:
    import scipy.sparse as sp

    from core.evaluation.protocol import evaluate_ranking

    truth = sp.csr_matrix(np.eye(3))
    evaluate_ranking(lambda rows: np.zeros((len(rows), 3)), np.arange(3), truth, sp.csr_matrix((3, 3)),
                     np.ones(3), ks=(10, 1_000_000))


@case("core-bootstrap-1e8-refused-in-core", "options", "error", "bootstrap", "0 to 100,000")
def core_bootstrap(tmp: Path, store: Store) -> None:
    import scipy.sparse as sp

    from core.evaluation.protocol import evaluate_ranking

    truth = sp.csr_matrix(np.eye(3))
    evaluate_ranking(lambda rows: np.zeros((len(rows), 3)), np.arange(3), truth, sp.csr_matrix((3, 3)),
                     np.ones(3), ks=(1,), n_bootstrap=100_000_000)


@case("core-fusion-config-dim-1e6-refused", "options", "error", "FusionConfig.dim", "1 to 4,096")
def core_dim(tmp: Path, store: Store) -> None:
    from core.models.fusion.config import FusionConfig

    FusionConfig(dim=1_000_000)


@case("recommend-60-mb-image-is-too-large", "options", "error", "huge.png", "60.0 MB is too large", "50 MB")
def upload_60mb(tmp: Path, store: Store) -> None:
    from core.limits import check_upload_size

    check_upload_size("huge.png", 60 * 2 ** 20)


# -- the command line on a broken store (read-only, full disk), with a catalog of its own --------------------
def _side_store(tmp: Path) -> Store:
    """A second store holding an MMRec catalog 'side' with precomputed features (no encoder is loaded)."""
    rng = np.random.default_rng(0)
    inter = "userID\titemID\tx_label\n" + "".join(f"{u}\t{(u * 3 + j) % 12}\t{[0, 0, 0, 1, 2][j]}\n"
                                                  for u in range(10) for j in range(5))
    folder = mmrec_folder(tmp / "side-src", inter, {"all-MiniLM-L6-v2.npy": rng.normal(size=(12, 6))})
    side = Store(tmp / "side-store")
    import_mmrec(folder, side, name="side")
    return side


def _read_only_connect(self):
    return sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)


@case("cli-import-interactions-read-only-store", "cli", "error", "read-only", "Nothing was changed")
def cli_read_only_interactions(tmp: Path, store: Store) -> None:
    side = _side_store(tmp)
    (tmp / "plays.csv").write_text("user_id,item_id\nu1,0\n")
    with mock.patch.object(Store, "connect", _read_only_connect):
        cli(side, "import", "interactions", str(tmp / "plays.csv"), "--catalog", "side")


@case("cli-encode-read-only-store", "cli", "error", "read-only")
def cli_read_only_encode(tmp: Path, store: Store) -> None:
    side = _side_store(tmp)
    with mock.patch.object(Store, "connect", _read_only_connect):
        cli(side, "encode", "--catalog", "side")


@case("cli-evaluate-read-only-store", "cli", "error", "read-only")
def cli_read_only_evaluate(tmp: Path, store: Store) -> None:
    side = _side_store(tmp)
    with mock.patch.object(Store, "connect", _read_only_connect):
        cli(side, "evaluate", "--catalog", "side", "--models", "popularity", "--bootstrap", "10")


@case("cli-train-read-only-store", "cli", "error", "read-only")
def cli_read_only_train(tmp: Path, store: Store) -> None:
    side = _side_store(tmp)
    with mock.patch.object(Store, "connect", _read_only_connect):
        cli(side, "train", "--catalog", "side", "--set", "epochs=1", "--budget", "0.05")


@case("cli-encode-disk-full", "cli", "error", "encode", "disk is full", "free some space")
def cli_disk_full(tmp: Path, store: Store) -> None:
    side = _side_store(tmp)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with mock.patch("core.encoders.embeddings.np.savez", full):
        cli(side, "encode", "--catalog", "side", "--force")


# -- names and MMRec files ------------------------------------------------------------------------------------
@case("name-DEMO-in-capitals-is-reserved", "store", "error", "'DEMO'", "built-in demo", "choose another name")
def reserved_demo_caps(tmp: Path, store: Store) -> None:
    import_manifest(catalog_folder(tmp / "src"), store, name="DEMO")


@case("name-differing-only-in-case-refused", "store", "error", "'TINY'", "only in case")
def case_twin(tmp: Path, store: Store) -> None:
    import_manifest(catalog_folder(tmp / "src"), store, name=KEPT.upper())


@case("mmrec-text-file-outside-the-folder", "mmrec", "error", "reads outside the MMRec folder")
def mmrec_text_outside(tmp: Path, store: Store) -> None:
    folder = mmrec_folder(tmp / "m", "userID\titemID\n0\t0\n1\t1\n", {"vggish.npy": np.ones((2, 3))})
    np.save(tmp / "outside.npy", np.ones((2, 3)))
    import_mmrec(folder, store, text="../outside.npy")


@case("mmrec-complex-npy", "mmrec", "error", "complex", "not real numbers")
def mmrec_complex(tmp: Path, store: Store) -> None:
    import_mmrec(mmrec_folder(tmp / "m", "userID\titemID\n0\t0\n1\t1\n",
                              {"vggish.npy": np.ones((2, 3)) * (1 + 2j)}), store)


@case("mmrec-npy-of-n-by-0", "mmrec", "error", "(2, 0)", "at least one column")
def mmrec_empty_columns(tmp: Path, store: Store) -> None:
    import_mmrec(mmrec_folder(tmp / "m", "userID\titemID\n0\t0\n1\t1\n", {"vggish.npy": np.ones((2, 0))}), store)


@case("upload-error-hides-server-temp-paths", "zip", "error", "fake.zip", "not a readable zip")
def temp_paths(tmp: Path, store: Store) -> None:
    import tempfile

    from ui.components import without_server_paths

    with tempfile.TemporaryDirectory(prefix="prism-upload-") as upload_dir:
        src = Path(upload_dir) / "fake.zip"
        src.write_bytes(b"PK\x03\x04 not a zip")
        try:
            import_manifest(src, store, name="fake")
        except PrismError as e:
            shown = without_server_paths(e)
            assert upload_dir not in shown and tempfile.gettempdir() + "/prism-" not in shown, shown
            raise PrismError(shown) from None


# -- tour files -------------------------------------------------------------------------------------------
def _tour_case(text: str, source: str = "hostile.yaml", check: bool = False) -> Callable[[Path, Store], None]:
    def run(tmp: Path, store: Store) -> None:
        from core.tour.schema import check_tour, parse_tour

        tour = parse_tour(text, source)
        if check:  # the ids are well-formed: the catalog must hold them
            check_tour(tour, store.load_catalog(KEPT))

    return run


def _laughs(levels: int = 8) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(levels)]
    return "\n".join([*lines, "steps:", "  - kind: catalog", f"    title: *{chr(97 + levels)}"]) + "\n"


for _name, _text, _fragments, _check in [
    ("tour-covers-abc", "steps:\n  - {kind: catalog, title: C, covers: abc}\n", ("step 1 (C), field covers",), False),
    ("tour-covers-inf", "steps:\n  - {kind: catalog, title: C, covers: .inf}\n", ("step 1 (C), field covers",),
     False),
    ("tour-clip-5-not-an-item", "steps:\n  - {kind: catalog, title: C, clip: 5}\n", ("step 1 (C)", "'5'"), True),
    ("tour-like-abc-not-an-item", "steps:\n  - {kind: feedback, title: F, like: abc}\n", ("step 1 (F)", "'abc'"),
     True),
    ("tour-item-minus-100", "steps:\n  - {kind: explain, title: E, item: -100}\n", ("step 1 (E), field item",),
     False),
    ("tour-stage-text-123", "steps:\n  - {kind: query, title: Q, stages: [{text: 123}]}\n",
     ("step 1 (Q), stage 1, field text",), False),
    ("tour-deep-yaml", "steps: " + "[" * 20_000 + "]" * 20_000 + "\n", ("nested more than",), False),
    ("tour-unknown-field", "steps:\n  - {kind: proof, title: P, metrc: ndcg@10}\n",
     ("step 1 (P): unknown field 'metrc'",), False),
    ("tour-over-the-size-limit", "steps:\n  - {kind: import, title: I}\n#" + "x" * 300_000, ("256 KB",), False),
]:
    case(_name, "tour", "error", *_fragments)(_tour_case(_text, check=_check))

case("tour-deep-json", "tour", "error", "nested more than")(
    _tour_case('{"steps": ' + "[" * 100_000 + "]" * 100_000 + "}", "deep.json"))


@case("tour-billion-laughs-refused-fast-in-little-memory", "tour", "error", "YAML aliases", "line 2")
def tour_laughs(tmp: Path, store: Store) -> None:
    import time
    import tracemalloc

    from core.tour.schema import parse_tour

    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        parse_tour(_laughs(), "laughs.yaml")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert time.perf_counter() - t0 < 2 and peak < 10 * 2 ** 20, (time.perf_counter() - t0, peak)


@case("tour-markdown-in-strings-is-drawn-as-text", "tour", "ok")
def tour_markdown(tmp: Path, store: Store) -> None:
    from core.tour.schema import parse_tour
    from ui.components import html_text, md_escape

    bait = "![x](http://127.0.0.1:9/md.png) <img src=http://127.0.0.1:9/i.png>"
    tour = parse_tour(f'steps:\n  - {{kind: import, title: "{bait}", narration: "{bait}", notes: "{bait}"}}\n')
    step = tour.steps[0]
    assert step.title == step.narration == step.notes == bait  # kept as written
    for shown in (md_escape(step.title), md_escape(step.narration), md_escape(step.notes), html_text(step.title)):
        assert "![" not in shown and "](" not in shown and not re.search(r"(?<!\\)<img", shown), shown
