"""Large tensors reused between training steps instead of mapped afresh (glibc's allocator, Linux).

glibc serves every allocation above its mmap threshold (128 KiB, adjusting to at most 32 MiB) with a fresh
mapping and unmaps it on free, so a step that allocates tens of megabytes per tensor (the large-catalog
path: tens of thousands of item rows, a million-row gradient) pays the kernel's zero-filled page faults for
each of them, every step. Within `reuse_large_allocations()` the threshold is raised so that such blocks
come from the heap and are reused by the next step, and freed memory is kept rather than trimmed; on exit the
defaults are restored and the free memory returned to the system (malloc_trim). Elsewhere (no glibc) it does
nothing. One step on 1M users × 200k items, batch 32,768, took 1.27 s instead of 1.53 s on one thread
(consecutive runs on a loaded machine; the whole epoch is measured by benchmarks.scale_train, README).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
DEFAULT_THRESHOLD = 128 * 1024  # glibc's starting value of both
REUSE_MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap while training
REUSE_TRIM_THRESHOLD = (1 << 31) - 1  # and freed memory stays for the next step


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has mallopt and malloc_trim), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only: musl has neither
    except (OSError, AttributeError):
        return None
    return libc


@contextmanager
def reuse_large_allocations(on: bool = True) -> Iterator[None]:
    """Within the block (when `on` and the C library is glibc), large blocks are reused between allocations;
    the defaults are restored and free memory given back after it."""
    libc = _glibc() if on else None
    if libc is None or not (libc.mallopt(M_MMAP_THRESHOLD, REUSE_MMAP_THRESHOLD)
                            and libc.mallopt(M_TRIM_THRESHOLD, REUSE_TRIM_THRESHOLD)):
        yield
        return
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, DEFAULT_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_THRESHOLD)
        libc.malloc_trim(0)
