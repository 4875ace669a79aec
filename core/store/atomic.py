"""Atomic file writes for the store: a file is either the old one or the complete new one, never half written.

Each write goes to a temporary file in the target's own folder (so the final rename stays on one file
system), is flushed and fsync-ed, then moved over the target with `os.replace`. On any failure — a full
disk included — the temporary file is removed and the target is left as it was.
"""
from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import StoreError

TMP_MARK = ".partial-"  # inside the name of every temporary file written here (swept by Store.recover)


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` says the disk (or the user's quota) is full."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def temporary_sibling(path: Path) -> Path:
    """A fresh temporary name beside `path`, keeping its suffix (numpy adds .npz to names without it)."""
    return path.with_name(f"{path.stem}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open folders; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path | str, what: str = "file") -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error it is synced and moved onto
    `path`. On an error it is deleted and `path` keeps its previous content; OSErrors become StoreErrors
    that say what to fix (`what` names the file to the user)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _store_error(e, path, what) from e
    tmp = temporary_sibling(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _store_error(e, path, what) from e
        raise


def write_bytes_atomic(path: Path | str, data: bytes, what: str = "file") -> None:
    """Write `data` to `path` atomically (see atomic_path)."""
    with atomic_path(path, what) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path | str, text: str, what: str = "file") -> None:
    """Write `text` (UTF-8) to `path` atomically (see atomic_path)."""
    write_bytes_atomic(path, text.encode("utf-8"), what)


def _store_error(error: OSError, path: Path, what: str) -> StoreError:
    if is_disk_full(error):
        return StoreError(f"the disk is full while writing the {what} {path.name}; free some space and try "
                          "again. The previous file (if any) is unchanged")
    return StoreError(f"the {what} {path.name} cannot be written ({error.strerror or error}); check that the "
                      "store folder is writable. The previous file (if any) is unchanged")
