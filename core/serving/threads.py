"""Serving runs on one thread: torch and BLAS limited to one thread inside a block.

Serving works on tiny batches (one query, k items, a few hundred explainer variants), where thread
hand-offs, not arithmetic, dominate: see the measurements in each function's docstring.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_BLAS: list | None = None  # threadpoolctl's controllers of the loaded BLAS libraries, found once
_BLAS_LOCK = threading.Lock()
_BLAS_STATE: dict[str, Any] = {"depth": 0, "saved": []}


@contextmanager
def single_thread_blas() -> Iterator[None]:
    """A context that runs BLAS on one thread (nested and concurrent uses share one limit).

    One matrix-vector product is memory-bound; measured on two busy cores, OpenBLAS's two threads made
    a 10,000 × 65 product 30× slower (8.5 ms against 0.25 ms) than one thread. Only the outermost block
    sets the limit and the last one out restores it, through the libraries' own controllers found once
    (3 µs for both OpenBLAS copies, against 29 µs for a threadpoolctl `limit`, which re-reads them all).
    """
    global _BLAS
    with _BLAS_LOCK:
        if _BLAS is None:
            from threadpoolctl import ThreadpoolController

            _BLAS = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        if _BLAS_STATE["depth"] == 0:
            _BLAS_STATE["saved"] = [lib.get_num_threads() for lib in _BLAS]
            for lib in _BLAS:
                lib.set_num_threads(1)
        _BLAS_STATE["depth"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["depth"] -= 1
            if _BLAS_STATE["depth"] == 0:
                for lib, threads in zip(_BLAS, _BLAS_STATE["saved"]):
                    if threads is not None:
                        lib.set_num_threads(threads)
                _BLAS_STATE["saved"] = []


_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"depth": 0, "torch": 1}


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch and BLAS on one thread inside the block (nested and concurrent uses are safe).

    Serving works on tiny batches (one query, k items, a few hundred explainer variants). Measured on two
    busy cores, a (10, 1308) → 128 → 64 head took 38 ms with two torch threads and 0.6 ms with one, and an
    item's feature SHAP fell from 24 s to 0.9 s: thread hand-offs, not arithmetic, dominate small batches.
    """
    import torch

    with _THREADS_LOCK:
        if _THREADS_STATE["depth"] == 0:
            _THREADS_STATE["torch"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS_STATE["depth"] += 1
    try:
        with single_thread_blas():
            yield
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["depth"] -= 1
            if _THREADS_STATE["depth"] == 0:
                torch.set_num_threads(_THREADS_STATE["torch"])
