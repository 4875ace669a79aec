"""Large blocks come from the heap while the large-catalog path trains (core.models.fusion.allocation)."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from core.models.fusion.allocation import _glibc, reuse_large_allocations


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def mapped_bytes(libc: ctypes.CDLL) -> int:
    """Bytes glibc holds in separate mappings (blocks above its mmap threshold)."""
    libc.mallinfo2.restype = MallInfo2
    return int(libc.mallinfo2().hblkhd)


def held_while_alive(libc: ctypes.CDLL) -> int:
    """Mapped bytes while a 64 MiB array is alive, less those before it."""
    before = mapped_bytes(libc)
    block = np.ones(64 << 20, np.uint8)
    during = mapped_bytes(libc)
    del block
    return during - before


def test_a_large_block_is_mapped_outside_and_comes_from_the_heap_inside() -> None:
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc with mallinfo2 only")
    with reuse_large_allocations():
        inside = held_while_alive(libc)
    outside = held_while_alive(libc)  # the defaults are back: a 64 MiB block is its own mapping again
    assert inside == 0
    assert outside >= 64 << 20


def test_off_it_changes_nothing() -> None:
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc with mallinfo2 only")
    with reuse_large_allocations(on=False):
        assert held_while_alive(libc) >= 64 << 20
