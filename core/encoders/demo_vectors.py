"""The built-in demo's encoder outputs, shipped with the project (assets/demo/vectors.npz).

A first start renders every cover and clip of the demo as before, then seeds the store's embedding cache with
these vectors, so encoding the 600 tracks becomes a cache lookup instead of about a minute of CPU. Nothing is
trusted by name: the cache keys are the content hashes of the rendered files and texts and the exact encoder
ids, so a renderer that writes other bytes, another encoder or another precision simply misses, and those inputs
are encoded as always. The file is used only for the demo settings it was written for (its `DemoConfig`).

Maintainers write it again after a change to the demo generator or to a default encoder (a first start that
encodes everything, then writes what it encoded):

    HF_HUB_OFFLINE=1 python -m benchmarks.first_start --encode-all --write-demo-vectors
"""
from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from core.catalog.demo import DemoConfig
from core.catalog.model import Catalog
from core.encoders.base import Encoder
from core.encoders.cache import EmbeddingCache
from core.encoders.pipeline import cache_id, content_keys
from core.errors import StoreError

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).resolve().parents[2] / "assets" / "demo" / "vectors.npz"
FORMAT = 1
ENV_SWITCH = "PRISM_DEMO_VECTORS"  # "0": never seed the cache from the shipped file (every input is encoded)


def enabled() -> bool:
    """Whether first starts seed the cache from the shipped vectors ($PRISM_DEMO_VECTORS, default on)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def _config_json(config: DemoConfig) -> str:
    return json.dumps(json.loads(json.dumps(asdict(config))), sort_keys=True)


def write_vectors(path: Path | str, catalog: Catalog, config: DemoConfig, cache: EmbeddingCache,
                  encoders: dict[str, Encoder]) -> int:
    """Write the cached vectors of `catalog`'s inputs (the demo of `config`) for each of `encoders` to `path`;
    returns how many vectors. Every input must be in the cache (the catalog encoded with these encoders)."""
    ids = [cache_id(encoder) for encoder in encoders.values()]
    arrays: dict[str, np.ndarray] = {"format": np.array(FORMAT), "config": np.array(_config_json(config)),
                                     "encoder_ids": np.array(ids)}
    total = 0
    for k, (name, encoder) in enumerate(zip(ids, encoders.values())):
        keys = sorted(set(content_keys(catalog, encoder.modality).values()))
        found = cache.get_many(name, keys)
        if len(found) != len(keys):
            raise StoreError(f"{len(keys) - len(found)} of {len(keys)} {encoder.modality} inputs have no {name} "
                             "vector in the cache; encode the demo with these encoders first")
        arrays[f"keys_{k}"] = np.array(keys, dtype="S64")
        arrays[f"vectors_{k}"] = np.stack([found[key] for key in keys]).astype(np.float32)
        total += len(keys)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return total


def seed_cache(cache: EmbeddingCache, config: DemoConfig, path: Path | str | None = None) -> int:
    """Put the shipped vectors (`path`, default SHIPPED) that `cache` lacks into it when they were written for
    `config`; returns how many were added (0 when switched off, absent, written for other demo settings, or
    unreadable: the demo is then encoded as usual)."""
    path = Path(path or SHIPPED)
    if not enabled() or not path.is_file():
        return 0
    try:
        with np.load(path, allow_pickle=False) as shipped:
            if int(shipped["format"]) != FORMAT or str(shipped["config"]) != _config_json(config):
                return 0
            added = 0
            for k, name in enumerate(shipped["encoder_ids"].tolist()):
                keys = [key.decode() for key in shipped[f"keys_{k}"].tolist()]
                have = cache.get_many(name, keys)
                todo = [j for j, key in enumerate(keys) if key not in have]
                if todo:
                    vectors = shipped[f"vectors_{k}"]
                    cache.put_many(name, [keys[j] for j in todo], vectors[todo])
                    added += len(todo)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        log.warning("the shipped demo vectors %s do not load (%s); the demo is encoded instead", path, e)
        return 0
    if added:
        log.info("seeded the embedding cache with %d shipped demo vectors", added)
    return added
