"""On-disk embedding cache: one SQLite table of float32 blobs keyed by (encoder id, content hash).

A re-encode of an unchanged catalog then costs one hash per input and a few batched lookups, never a model
call. The content hash is the sha256 of the input (file bytes or UTF-8 text), so renaming or moving a file
keeps its cache entry and editing it does not.
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from core.encoders.weights import sha256_file
from core.errors import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    encoder_id TEXT NOT NULL, key TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (encoder_id, key)) WITHOUT ROWID;
"""
_LOOKUP_CHUNK = 500  # keys per SELECT: stays below SQLite's bound-parameter limit


def text_key(text: str) -> str:
    """Content hash of a text input."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_key(path: Path | str) -> str:
    """Content hash of a file's bytes (OSError when it cannot be read)."""
    return sha256_file(path)


def bytes_key(data: bytes) -> str:
    """Content hash of raw bytes (an upload)."""
    return hashlib.sha256(data).hexdigest()


class EmbeddingCache:
    """Vectors by (encoder id, content hash) in `root`/embeddings.sqlite; safe to share between threads."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the embedding cache folder {self.root} ({e.strerror}); "
                             "check PRISM_DATA_DIR and its permissions") from e
        self.path = self.root / "embeddings.sqlite"
        self._local = threading.local()  # one connection per thread: sqlite3 connections are not shareable
        con = self._connect()
        con.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.path, timeout=30)
                con.execute("PRAGMA journal_mode=WAL")  # readers do not wait for a writer
                con.execute("PRAGMA synchronous=NORMAL")  # a cache may lose its last writes in a crash
            except sqlite3.Error as e:
                raise StoreError(f"cannot open the embedding cache {self.path} ({e}); delete the file to "
                                 "start an empty cache") from e
            self._local.con = con
        return con

    def get_many(self, encoder_id: str, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached float32 vectors among `keys` for `encoder_id`: {key: (dim,)}; missing keys are absent."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        con = self._connect()
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start:start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = con.execute(f"SELECT key, dim, vector FROM vectors WHERE encoder_id = ? AND key IN ({marks})",
                               (encoder_id, *chunk)).fetchall()
            for key, dim, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.size == dim:  # a truncated row is treated as a miss and overwritten later
                    found[key] = vec
        return found

    def put_many(self, encoder_id: str, keys: Sequence[str], vectors: np.ndarray | Mapping[str, np.ndarray]) -> None:
        """Store one vector per key for `encoder_id` (rows of `vectors` align with `keys`) in one transaction."""
        if isinstance(vectors, Mapping):
            rows = [(k, np.asarray(vectors[k], np.float32)) for k in keys]
        else:
            matrix = np.asarray(vectors, np.float32)
            if matrix.ndim != 2 or matrix.shape[0] != len(keys):
                raise ValueError(f"put_many needs one row per key: {len(keys)} keys, vectors of shape {matrix.shape}")
            rows = list(zip(keys, matrix))
        con = self._connect()
        with con:
            con.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                            [(encoder_id, k, int(v.size), np.ascontiguousarray(v).tobytes()) for k, v in rows])

    def count(self, encoder_id: str | None = None) -> int:
        """How many vectors are cached (for one encoder id, or all)."""
        con = self._connect()
        if encoder_id is None:
            return int(con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        return int(con.execute("SELECT COUNT(*) FROM vectors WHERE encoder_id = ?", (encoder_id,)).fetchone()[0])

    def clear(self, encoder_id: str | None = None) -> None:
        """Drop cached vectors (of one encoder id, or all)."""
        con = self._connect()
        with con:
            if encoder_id is None:
                con.execute("DELETE FROM vectors")
            else:
                con.execute("DELETE FROM vectors WHERE encoder_id = ?", (encoder_id,))
