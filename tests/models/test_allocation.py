"""Large blocks come from the heap while the large-catalog path trains (core.models.fusion.allocation).

Measured in a fresh interpreter: in a process that has already freed large blocks (any earlier test that
trained), glibc serves a new large block from those free chunks whatever its threshold, so nothing would show.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.models.fusion.allocation import _glibc

REPO = Path(__file__).resolve().parents[2]
PROBE = r'''
import ctypes, json, sys
import numpy as np
from core.models.fusion.allocation import _glibc, reuse_large_allocations

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = _glibc()
libc.mallinfo2.restype = MallInfo2

def held_while_alive():
    """Bytes glibc holds in separate mappings while a 64 MiB array is alive, less those before it."""
    before = int(libc.mallinfo2().hblkhd)
    block = np.ones(64 << 20, np.uint8)
    during = int(libc.mallinfo2().hblkhd)
    del block
    return during - before

first = held_while_alive()  # the defaults: a block this large is a mapping of its own
with reuse_large_allocations(on=False):
    off = held_while_alive()
with reuse_large_allocations():
    inside = held_while_alive()
print(json.dumps({"first": first, "off": off, "inside": inside}))
'''


def test_a_large_block_is_mapped_outside_and_comes_from_the_heap_inside() -> None:
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc with mallinfo2 only")
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True)
    held = json.loads(out.stdout.strip().splitlines()[-1])
    assert held["first"] >= 64 << 20 and held["off"] >= 64 << 20  # mapped afresh, then unmapped
    assert held["inside"] == 0  # served from the heap
