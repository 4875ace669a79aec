"""The embedded store: one SQLite file plus a folder of arrays and media under the data folder.

Layout under `root`:
    prism.sqlite                         catalogs, items, interactions, embedding sets, runs, models
    catalogs/<name>/media/...            media files copied in by an import
    catalogs/<name>/features/<field>.npz precomputed feature matrices (values, mask)
    embeddings/<catalog>/<key>.npz       embedding sets (see core.encoders.embeddings)
    models/<id>/                         saved models (safetensors + JSON)

Every write is one transaction; files are written to a staging folder first. Saving a catalog checks
the name and writes its rows and a journal row in one transaction; the staged folder then replaces the
catalog's folder and the journal row is removed. A process killed in between leaves a journal row that the
next Store start completes (the rows are committed, so the staged files are the truth); a process killed
before the commit leaves only a staging folder, removed at the next start. A failed import leaves the store
as it was.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from core.catalog.model import Catalog
from core.store.atomic import TMP_MARK
from core.errors import DamagedFileError, StoreError
from core.store.paths import data_dir
from core.store.catalog_reads import CatalogReads
from core.store.records import RecordTables

SCHEMA = """
CREATE TABLE IF NOT EXISTS catalogs (
    name TEXT PRIMARY KEY, created_at REAL NOT NULL, content_hash TEXT NOT NULL,
    metadata TEXT NOT NULL, has_media INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    catalog TEXT NOT NULL, idx INTEGER NOT NULL, id TEXT NOT NULL, title TEXT NOT NULL,
    text TEXT, image TEXT, audio TEXT, metadata TEXT NOT NULL,
    PRIMARY KEY (catalog, id));
CREATE TABLE IF NOT EXISTS interactions (
    catalog TEXT NOT NULL, user_id TEXT NOT NULL, item_id TEXT NOT NULL,
    rating REAL, timestamp REAL, split TEXT);
CREATE INDEX IF NOT EXISTS interactions_catalog ON interactions (catalog);
CREATE TABLE IF NOT EXISTS features (
    catalog TEXT NOT NULL, field TEXT NOT NULL, modality TEXT NOT NULL, source TEXT NOT NULL,
    PRIMARY KEY (catalog, field));
CREATE TABLE IF NOT EXISTS embedding_sets (
    catalog TEXT NOT NULL, key TEXT NOT NULL, created_at REAL NOT NULL, encoder_ids TEXT NOT NULL,
    content_hash TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (catalog, key));
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created_at REAL NOT NULL, catalog TEXT NOT NULL, name TEXT NOT NULL,
    record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, created_at REAL NOT NULL, catalog TEXT NOT NULL, name TEXT NOT NULL,
    config TEXT NOT NULL, path TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS activations (
    catalog TEXT NOT NULL, model_id TEXT NOT NULL, at REAL NOT NULL, source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS media_journal (
    catalog TEXT PRIMARY KEY, staging TEXT NOT NULL, backup TEXT NOT NULL, created_at REAL NOT NULL);
"""
STAGING_PREFIX = ".staging-"  # catalogs/.staging-<uuid>: a catalog folder being written
OWNER_FILE = ".owner"  # inside a staging or scratch folder: the pid of the process writing it
SCRATCH = "tmp"  # <root>/tmp/<purpose>-<uuid>: an import's unpacked files, removed however the import ends
PARTIAL_GLOBS = ("embeddings/*/*", "tuned/*", "tuned/history/*/*", "models/*/*", "models/*/index/*",
                 "models/*/maps/*")  # where
#   atomic writes (core.store.atomic) leave their temporary files when a process is killed mid-write


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(error, sqlite3.OperationalError) and "full" in str(error).lower()


def _is_damage(error: BaseException) -> bool:
    text = str(error).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store(CatalogReads, RecordTables):
    """SQLite-backed store of catalogs, embedding sets, evaluation runs and saved models (the last three's rows:
    core.store.records)."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else data_dir()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"the store folder {self.root} cannot be created ({e.strerror}); set PRISM_DATA_DIR "
                             "to a folder you can write") from e
        self.db_path = self.root / "prism.sqlite"
        self._check_not_emptied()
        try:
            with self.transaction() as con:
                con.executescript(SCHEMA)
                problem = con.execute("PRAGMA quick_check(1)").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise self._database_error(e, "opening the store") from e
        if problem != "ok":  # a partly damaged file: refuse it before any page reads or any import writes
            raise DamagedFileError(f"opening the store: the store database {self.db_path.name} is damaged "
                                   f"({problem}); restore it from a backup, or move the store folder away to "
                                   "start an empty store (the demo is rebuilt). Nothing was changed")
        self.recover()

    def _check_not_emptied(self) -> None:
        """Refuse a 0-byte database beside stored catalogs: it would read as an empty store and hide them."""
        try:
            empty = self.db_path.stat().st_size == 0
        except OSError:
            return  # no database yet: a new store
        held = [p.name for p in (self.root / "catalogs").glob("*") if not p.name.startswith(".")] \
            if (self.root / "catalogs").is_dir() else []
        if empty and held:
            raise DamagedFileError(
                f"opening the store: the store database {self.db_path.name} is empty (0 bytes) while the store "
                f"holds {len(held)} catalog folder(s) ({', '.join(sorted(held)[:5])}); restore the database from a "
                "backup, or move the store folder away to start an empty store (the demo is rebuilt). Nothing "
                "was changed")

    def _database_error(self, error: sqlite3.Error, doing: str) -> StoreError:
        """A StoreError that names the cause of a SQLite failure and the fix."""
        text = str(error).lower()
        if "readonly" in text or "read-only" in text or "permission" in text:
            return StoreError(f"{doing}: the store database {self.db_path} is read-only; make it and its folder "
                              "writable, or set PRISM_DATA_DIR to a writable folder. Nothing was changed")
        if _is_disk_full(error):
            return StoreError(f"{doing}: the disk of the store ({self.root}) is full; free some space and try "
                              "again. Nothing was changed")
        if _is_damage(error):
            return DamagedFileError(f"{doing}: the store database {self.db_path} is damaged ({error}); restore it "
                                    "from a backup, or move it away to start an empty store (the demo is rebuilt)")
        if "locked" in text or "busy" in text:
            return StoreError(f"{doing}: the store database is busy with another long write; try again shortly")
        return StoreError(f"{doing}: the store database failed ({type(error).__name__}: {error})")

    def recover(self) -> None:
        """Finish media swaps that a killed process left half-done, and remove abandoned staging folders."""
        try:
            with self.transaction() as con:
                con.execute("BEGIN IMMEDIATE")
                for name, staging, backup in con.execute(
                        "SELECT catalog, staging, backup FROM media_journal").fetchall():
                    self._finish_swap(con, name, Path(staging), Path(backup))
        except sqlite3.DatabaseError as e:
            if "readonly" in str(e).lower():
                return  # a read-only store can still be read; nothing to repair from here
            raise self._database_error(e, "repairing the store") from e
        folder = self.root / "catalogs"
        abandoned = list(folder.glob(f"{STAGING_PREFIX}*")) if folder.is_dir() else []
        abandoned += list((self.root / SCRATCH).glob("*")) if (self.root / SCRATCH).is_dir() else []
        for path in abandoned:
            try:
                pid = int((path / OWNER_FILE).read_text().strip())
            except (OSError, ValueError):
                pid = 0
            if pid and _pid_alive(pid):
                continue  # another process is writing it right now
            shutil.rmtree(path, ignore_errors=True)
        for pattern in PARTIAL_GLOBS:  # half-written files of a killed write (the targets are whole)
            for path in self.root.glob(pattern):
                pid = path.name.partition(TMP_MARK)[2].partition("-")[0]
                if TMP_MARK in path.name and not (pid.isdigit() and _pid_alive(int(pid))):
                    path.unlink(missing_ok=True)

    @contextmanager
    def scratch_dir(self, purpose: str) -> Iterator[Path]:
        """A fresh folder under <root>/tmp/ (the store's own disk) for an import's unpacked files. It is removed
        when the block ends, however it ends; one left by a killed process is removed at the next start."""
        folder = self.root / SCRATCH / f"{purpose}-{uuid.uuid4().hex}"
        try:
            folder.mkdir(parents=True)
            (folder / OWNER_FILE).write_text(str(os.getpid()))
        except OSError as e:
            shutil.rmtree(folder, ignore_errors=True)
            raise StoreError(f"a temporary folder cannot be made in the store ({e.strerror}); "
                             + ("free some space on its disk" if _is_disk_full(e) else "make the store writable")
                             + ". Nothing was changed") from e
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _finish_swap(self, con: sqlite3.Connection, name: str, staging: Path, backup: Path) -> None:
        """Move a committed catalog's staged folder into place (idempotent) and drop its journal row."""
        final = self.catalog_dir(name)
        if staging.exists():
            if final.exists():
                if backup.exists():
                    shutil.rmtree(final)
                else:
                    final.rename(backup)
            staging.rename(final)
            (final / OWNER_FILE).unlink(missing_ok=True)
        shutil.rmtree(backup, ignore_errors=True)
        con.execute("DELETE FROM media_journal WHERE catalog = ?", (name,))

    # -- plumbing ---------------------------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.db_path, timeout=30)
        con.execute("PRAGMA foreign_keys = ON")
        return con

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction: commits on success, rolls back on any exception."""
        con = self.connect()
        try:
            with con:
                yield con
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as e:  # pandas wraps the sqlite3 error
            cause = e if isinstance(e, sqlite3.DatabaseError) else e.__cause__
            if isinstance(cause, sqlite3.DatabaseError) and _is_damage(cause):  # named, never a bare traceback
                raise self._database_error(cause, "reading the store") from e
            raise
        finally:
            con.close()

    def catalog_dir(self, name: str) -> Path:
        return self.root / "catalogs" / name

    # -- catalogs ---------------------------------------------------------------------------------
    def save_catalog(self, catalog: Catalog, *, media_files: dict[str, Path] | None = None,
                     overwrite: bool = False) -> None:
        """Store `catalog` atomically. `media_files` maps each item's media reference to the file to copy.

        References in the stored items are kept as given (relative paths); the files land under
        catalogs/<name>/media/<reference>. Without `media_files` the catalog keeps its own media_root.
        The name check and the write are one transaction, so two saves of one name never both succeed.
        """
        name = catalog.name
        if not name or "/" in name or "\\" in name or name.startswith(".") or len(name) > 200:
            raise StoreError(f"catalog name {name[:60]!r} is not usable: use letters, digits, '-' or '_' "
                             "(at most 100 characters)")
        if self.has_catalog(name) and not overwrite:
            raise StoreError(f"a catalog named {name!r} exists already; choose another name or overwrite it")
        staging = self.root / "catalogs" / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        backup = self.root / "catalogs" / f".old-{uuid.uuid4().hex}"
        committed = False
        try:
            staging.mkdir(parents=True)
            (staging / OWNER_FILE).write_text(str(os.getpid()))
            for ref, src in (media_files or {}).items():
                dst = staging / "media" / ref
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            (staging / "features").mkdir()
            for field_name, feat in catalog.features.items():
                np.savez(staging / "features" / f"{field_name}.npz", values=feat.values, mask=feat.mask)
            meta = dict(catalog.metadata)
            if media_files is None and catalog.media_root is not None:
                meta["media_root"] = str(catalog.media_root)
            inter = catalog.interactions
            with self.transaction() as con:
                con.execute("BEGIN IMMEDIATE")  # the name check below and the writes hold one write lock
                exists = con.execute("SELECT 1 FROM catalogs WHERE name = ?", (name,)).fetchone() is not None
                if exists and not overwrite:
                    raise StoreError(f"a catalog named {name!r} was stored a moment ago by another import; "
                                     "choose another name or overwrite it")
                self._delete_rows(con, name)
                con.execute(
                    "INSERT INTO catalogs VALUES (?, ?, ?, ?, ?)",
                    (name, time.time(), catalog.content_hash(), json.dumps(meta, default=str),
                     int(media_files is not None)),
                )
                con.executemany(
                    "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(name, i, it.id, it.title, it.text, it.image, it.audio,
                      json.dumps(it.metadata, default=str)) for i, it in enumerate(catalog.items)],
                )
                con.executemany(
                    "INSERT INTO interactions VALUES (?, ?, ?, ?, ?, ?)",
                    zip([name] * len(inter), inter["user_id"].astype(str), inter["item_id"].astype(str),
                        _nullable(inter["rating"]), _nullable(inter["timestamp"]),
                        [None if pd.isna(s) else str(s) for s in inter["split"]]),
                )
                con.executemany(
                    "INSERT INTO features VALUES (?, ?, ?, ?)",
                    [(name, f, feat.modality, feat.source) for f, feat in catalog.features.items()],
                )
                con.execute("INSERT OR REPLACE INTO media_journal VALUES (?, ?, ?, ?)",
                            (name, str(staging), str(backup), time.time()))
            committed = True
        except BaseException as e:
            if not committed:
                shutil.rmtree(staging, ignore_errors=True)
            if isinstance(e, StoreError):
                raise
            if _is_disk_full(e):
                raise StoreError(f"the disk of the store ({self.root}) is full while saving catalog {name!r}; free "
                                 "some space and import again. Nothing was stored") from e
            if isinstance(e, sqlite3.DatabaseError):
                raise self._database_error(e, f"saving catalog {name!r}") from e
            if isinstance(e, OSError):
                raise StoreError(f"saving catalog {name!r}: a file cannot be copied into the store "
                                 f"({e.strerror or e}: {Path(e.filename).name if e.filename else ''}); nothing "
                                 "was stored") from e
            raise
        # The rows are committed: from here the journal row lets any later start finish the swap.
        with self.transaction() as con:
            con.execute("BEGIN IMMEDIATE")
            if con.execute("SELECT 1 FROM media_journal WHERE catalog = ? AND staging = ?",
                           (name, str(staging))).fetchone() is not None:
                self._finish_swap(con, name, staging, backup)

    def replace_interactions(self, name: str, interactions: pd.DataFrame) -> None:
        """Swap the interactions of stored catalog `name` in one transaction."""
        catalog = self.load_catalog(name)
        catalog.interactions = interactions
        with self.transaction() as con:
            con.execute("DELETE FROM interactions WHERE catalog = ?", (name,))
            con.executemany(
                "INSERT INTO interactions VALUES (?, ?, ?, ?, ?, ?)",
                zip([name] * len(interactions), interactions["user_id"].astype(str),
                    interactions["item_id"].astype(str), _nullable(interactions["rating"]),
                    _nullable(interactions["timestamp"]),
                    [None if pd.isna(s) else str(s) for s in interactions["split"]]),
            )
            con.execute("UPDATE catalogs SET content_hash = ? WHERE name = ?", (catalog.content_hash(), name))

    def delete_catalog(self, name: str) -> None:
        with self.transaction() as con:
            self._delete_rows(con, name)
        shutil.rmtree(self.catalog_dir(name), ignore_errors=True)

    @staticmethod
    def _delete_rows(con: sqlite3.Connection, name: str) -> None:
        for table in ("catalogs", "items", "interactions", "features"):
            key = "name" if table == "catalogs" else "catalog"
            con.execute(f"DELETE FROM {table} WHERE {key} = ?", (name,))


def _nullable(series: pd.Series) -> list[float | None]:
    return [None if pd.isna(v) else float(v) for v in series]
