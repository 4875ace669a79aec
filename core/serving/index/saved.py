"""Which index a catalog gets, and an approximate index saved beside the model it serves: built once,
reloaded while the model's vectors are unchanged, with the serving settings it was built under."""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.serving.index.exact import ExactIndex, VectorIndex
from core.serving.index.hnsw import HNSWConfig, HNSWIndex
from core.serving.index.ivf import IVFConfig, IVFIndex
from core.serving.index.samples import TuneQueries
from core.serving.settings import ServingSettings, load_settings, save_settings
from core.store.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

INDEX_DIR = "index"  # the folder of a saved index, beside the model's weights


def saved_settings(folder: Path | None) -> ServingSettings | None:
    """The serving settings saved with the index in `folder`/index/; None without a folder, a saved index or
    a settings file (an index saved before they were saved: the defaults apply)."""
    return None if folder is None else load_settings(Path(folder) / INDEX_DIR)


def resolve_kind(kind: str, n_items: int, settings: ServingSettings | None = None) -> str:
    """"auto" → "exact" below settings.auto_exact_below items, else settings.auto_ann (default settings when
    None); other kinds are checked and kept."""
    if kind == "auto":
        settings = settings or ServingSettings()
        return "exact" if n_items < settings.auto_exact_below else settings.auto_ann
    if kind not in ("exact", "hnsw", "ivf"):
        raise ValueError(f"index kind {kind!r} is unknown; use 'auto', 'exact', 'hnsw' or 'ivf'")
    return kind


def build_index(vectors: np.ndarray, kind: str = "auto", config: HNSWConfig | IVFConfig | None = None,
                queries: TuneQueries | None = None, settings: ServingSettings | None = None) -> VectorIndex:
    """An index over `vectors`: "exact", "hnsw" (hnswlib), "ivf" (FAISS IVF-Flat), or "auto" (resolve_kind
    under `settings`). An approximate index tunes its search width (ef, nprobe) on
    `queries`, named sets of the queries its caller sends (the target reached on each), else on sample
    queries drawn from `vectors` themselves (example_queries)."""
    kind = resolve_kind(kind, len(vectors), settings)
    if kind == "exact":
        return ExactIndex(vectors)
    if kind == "ivf":
        return IVFIndex(vectors, config if isinstance(config, IVFConfig) else IVFConfig(), queries=queries)
    return HNSWIndex(vectors, config if isinstance(config, HNSWConfig) else None, queries=queries)


# -- saved beside the model ----------------------------------------------------------------------------
def fingerprint(vectors: np.ndarray) -> str:
    """sha256 of the vectors' shape and bytes: a saved index is reused only for exactly these vectors."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    digest = hashlib.sha256(f"{v.shape}".encode())
    digest.update(memoryview(v).cast("B"))
    return digest.hexdigest()


def save_index(index: VectorIndex, folder: Path, vectors: np.ndarray,
               settings: ServingSettings | None = None) -> None:
    """Write an approximate index (and what it was built from, with the serving `settings` it was built
    under when given) to `folder`/index/; exact needs nothing."""
    if index.kind == "exact":
        return
    target = Path(folder) / INDEX_DIR
    target.mkdir(parents=True, exist_ok=True)
    meta = {"kind": index.kind, "n_items": index.n_items, "fingerprint": fingerprint(vectors),
            "ef": getattr(index, "ef", None), "nprobe": getattr(index, "nprobe", None),
            "tuned_recall": getattr(index, "tuned_recall", None), "tuned_on": getattr(index, "tuned_on", {}),
            "nprobe_for": getattr(index, "nprobe_for", None), "head_for": getattr(index, "head_for", None),
            "head_key": getattr(index, "head_key", None), "kind_of": getattr(index, "kind_of", None),
            "cell_columns": getattr(getattr(index, "config", None), "cell_columns", None)}
    with atomic_path(target / "index.bin", "index file") as tmp:
        index.save(tmp)
    if settings is not None:
        save_settings(target, settings)
    write_text_atomic(target / "index.json", json.dumps(meta, indent=1), "index description")  # written last


def record_index_setting(folder: Path, name: str, value: Any) -> None:
    """Store a setting chosen for the index saved in `folder`/index/ (e.g. the recommend service's what-if
    candidate count) in its index.json, so the next start reloads it with the index."""
    target = Path(folder) / INDEX_DIR
    meta = json.loads((target / "index.json").read_text())
    meta.setdefault("settings", {})[name] = value
    write_text_atomic(target / "index.json", json.dumps(meta, indent=1), "index description")


def load_index(folder: Path, vectors: np.ndarray) -> VectorIndex | None:
    """The index saved in `folder`/index/ when it was built from exactly `vectors`, else None."""
    target = Path(folder) / INDEX_DIR
    try:
        meta = json.loads((target / "index.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("n_items") != len(vectors) or meta.get("fingerprint") != fingerprint(vectors):
        log.info("the index saved in %s was built from other vectors; it is rebuilt", target)
        return None
    try:
        index: VectorIndex | None = None
        if meta["kind"] == "ivf":
            index = IVFIndex.load(target / "index.bin", IVFConfig(nprobe=int(meta["nprobe"]),
                                                                  cell_columns=meta.get("cell_columns")),
                                  tuned_recall=meta.get("tuned_recall"), nprobe_for=meta.get("nprobe_for"),
                                  vectors=vectors, head_for=meta.get("head_for"), head_key=meta.get("head_key"),
                                  kind_of=meta.get("kind_of"))
        elif meta["kind"] == "hnsw":
            index = HNSWIndex.load(target / "index.bin", vectors, int(meta["ef"]),
                                   tuned_recall=meta.get("tuned_recall"))
        if index is not None:
            _check_loaded(index, vectors)
            index.settings = dict(meta.get("settings", {}))
            index.tuned_on = dict(meta.get("tuned_on") or {})
        return index
    except (RuntimeError, OSError, KeyError, TypeError, ValueError) as e:
        log.warning("the index saved in %s does not load (%s); it is rebuilt", target, e)
    return None


def _check_loaded(index: VectorIndex, vectors: np.ndarray) -> None:
    """ValueError unless a loaded index holds exactly the rows of `vectors` (an index file swapped for one
    built on other vectors would return rows beyond the catalog): its count, its width, a probe search and,
    for HNSW, a few stored vectors compared with the catalog's."""
    n, d = np.shape(vectors)
    stored = int(index._index.get_current_count()) if index.kind == "hnsw" else int(index._index.ntotal)
    width = int(index._index.dim) if index.kind == "hnsw" else int(index._index.d)
    if stored != n or width != d:
        raise ValueError(f"the index file holds {stored:,} rows of {width} values, the catalog {n:,} of {d}")
    if n == 0:
        return
    probe = np.linspace(0, n - 1, num=min(n, 8)).astype(np.int64)
    if index.kind == "hnsw":
        saved = np.asarray(index._index.get_items(probe.tolist()), np.float32)
        if not np.allclose(saved, np.asarray(vectors, np.float32)[probe], atol=1e-4):
            raise ValueError("the index file was built on other vectors than the catalog's")
    rows, _ = index.search(np.asarray(vectors, np.float32)[probe[0]], min(n, 10))
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"the index file returns row {int(rows.max())}, beyond the catalog's {n:,} rows")


def ensure_index(folder: Path | None, vectors: np.ndarray, kind: str = "auto",
                 config: HNSWConfig | IVFConfig | None = None,
                 queries: Callable[[], TuneQueries] | None = None,
                 settings: ServingSettings | None = None) -> VectorIndex:
    """The index of `kind` over `vectors`: the one saved in `folder` when it matches, else built (and, when
    approximate and `folder` is given, saved there with the serving `settings` so the next start loads both).
    `queries` gives the named sample query sets to tune a new index's search width on (called only when one
    is built)."""
    kind = resolve_kind(kind, len(vectors), settings)
    if kind == "exact":
        return ExactIndex(vectors)
    if folder is not None:
        saved = load_index(folder, vectors)
        if saved is not None and saved.kind == kind:
            return saved
    index = build_index(vectors, kind, config, queries() if queries is not None else None, settings)
    if folder is not None:
        save_index(index, folder, vectors, settings)
    return index
