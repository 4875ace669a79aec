"""Batch encoding on Ray Data: the cache misses of a catalog become a Ray Dataset, encoded with map_batches
by one stateful actor per encoder (field) per worker, so each actor loads its weights once.

Only the step that computes missing vectors runs on Ray. Hashing, the embedding cache (same encoder ids,
same content keys), descriptor standardisation and the stored set are the local pipeline's own
(core.encoders.pipeline.encode_catalog with this module's engine), so a Ray run and a local run record the
same vectors, and either re-run skips what the other encoded. Each finished batch is written as a shard
file, then recorded in the cache, so an interrupted run keeps what it finished. Actors ask for a GPU only
when the cluster has one and the encoder has weights to put on it.
"""
from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from core.encoders.base import Encoder
from core.encoders.cache import EmbeddingCache
from core.encoders.pipeline import (EncodeJob, Report, _encode_raw, _load_batch, _sample_rate, cache_id,
                                    is_descriptor, width)
from core.errors import EncoderError, EngineError
from core.scale.ray_session import cluster_gpus, cluster_workers, connect

log = logging.getLogger(__name__)

# field -> callable(device) -> the encoder, run inside each actor (must be picklable, e.g. a partial)
EncoderFactory = Callable[[str], Encoder]
SHARDS_DIR = "ray-shards"  # under the cache folder; removed once every shard is recorded


def config_factories(fields: list[str], config: Any = None) -> dict[str, EncoderFactory]:
    """Factories that build each field's encoder from an EncoderConfig (default: from the environment)."""
    from core.encoders.factory import EncoderConfig, build_field_encoder

    config = config or EncoderConfig.from_env()
    return {f: partial(build_field_encoder, f, config) for f in fields}


class FieldEncodeActor:
    """One field's encoder in a Ray actor: built once, then called on batches of rows.

    A batch holds `row`, `source` (text or file path), `label` and `need::<field>` columns; the actor adds
    `vec::<field>` (n, width) float32 (NaN where not encoded), `ok::<field>` and `warn::<field>`.
    """

    def __init__(self, field_name: str, modality: str, factory: EncoderFactory, expected_id: str) -> None:
        import ray

        device = "cuda" if ray.get_gpu_ids() else "cpu"  # Ray assigns a GPU only when the actor asked for one
        self.field, self.modality = field_name, modality
        self.encoder = factory(device)
        if self.encoder.id != expected_id:
            raise EncoderError(f"field {field_name!r}: the worker built encoder {self.encoder.id}, but this "
                               f"catalog is encoded with {expected_id}; install the same weights on every "
                               "worker (or the same PRISM_* settings)")
        self.width = width(self.encoder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [int(r) for r in batch["row"]]
        need = np.asarray(batch[f"need::{self.field}"], bool)
        wanted = [r for r, n in zip(rows, need) if n]
        sources = {int(r): str(s) for r, s in zip(batch["row"], batch["source"])}
        labels = {int(r): str(s) for r, s in zip(batch["row"], batch["label"])}
        problems: list[str] = []
        loaded = _load_batch(self.modality, wanted, sources, labels, problems, _sample_rate(self.encoder))
        ready = [r for r in wanted if r in loaded]
        vectors = _encode_raw(self.encoder, self.field, [loaded[r] for r in ready], ready, labels, problems) \
            if ready else {}
        out = np.full((len(rows), self.width), np.nan, np.float32)
        ok = np.zeros(len(rows), bool)
        for k, r in enumerate(rows):
            if r in vectors:
                out[k], ok[k] = vectors[r], True
        warn = np.array(["\n".join(p for p in problems if labels.get(r, "\0") in p) for r in rows], dtype=object)
        return {**batch, f"vec::{self.field}": out, f"ok::{self.field}": ok, f"warn::{self.field}": warn}


@dataclass
class RayEncodeEngine:
    """The encode engine (see core.encoders.pipeline.EncodeEngine) that runs cache misses on Ray Data.

    `factories`: field -> how a worker builds that field's encoder (default: from EncoderConfig.from_env()).
    `address`: None = Ray on this machine, "auto" or "ray://HOST:PORT" = a cluster.
    """

    address: str | None = None
    factories: dict[str, EncoderFactory] | None = None
    num_cpus: int | None = None  # CPUs of a local session (None = all of this machine)
    actors_per_field: int | None = None  # None = one per worker node
    shard_root: Path | None = None  # default: the cache folder / ray-shards
    stats: dict[str, Any] = field(default_factory=dict)  # what it ran: workers, GPUs, shards, rows (summed over jobs)

    def __call__(self, job: EncodeJob, cache: EmbeddingCache | None, warnings: list[str], report: Report,
                 batch_size: int) -> dict[str, dict[int, np.ndarray]]:
        todo_rows = sorted(set().union(*(set(r) for r in job.missing.values())))
        raw: dict[str, dict[int, np.ndarray]] = {f: {} for f in job.encoders}
        if not todo_rows:
            return raw
        ray = connect(self.address, self.num_cpus)
        factories = self.factories or config_factories(list(job.encoders))
        missing = {f: set(rows) for f, rows in job.missing.items()}
        records = [{"row": i, "source": str(job.sources[i]), "label": job.labels[i],
                    **{f"need::{f}": i in missing[f] for f in job.encoders}} for i in todo_rows]
        workers = cluster_workers(ray)
        gpus = cluster_gpus(ray)
        ds = ray.data.from_items(records, override_num_blocks=max(1, min(len(records) // batch_size,
                                                                         64 * workers)))
        for f, enc in job.encoders.items():
            if not missing[f]:
                continue
            if f not in factories:
                raise EngineError(f"no factory to build the {f!r} encoder on Ray workers; pass one in "
                                  "RayEncodeEngine.factories")
            # a worker that builds other weights than the catalog's is refused before the job starts: Ray
            # reports an actor that fails in its constructor without its message
            built = ray.get(ray.remote(num_cpus=1)(_encoder_id).remote(factories[f]))
            if built != enc.id:
                raise EncoderError(f"field {f!r}: a worker built encoder {built}, but this catalog is encoded "
                                   f"with {enc.id}; install the same weights on every worker (or the same "
                                   "PRISM_* settings)")
            # GPUs only for encoders with weights, and only when the cluster has them
            want_gpu = gpus >= 1 and not is_descriptor(enc)
            ds = ds.map_batches(FieldEncodeActor, batch_size=batch_size, batch_format="numpy",
                                fn_constructor_kwargs={"field_name": f, "modality": job.modality,
                                                       "factory": factories[f], "expected_id": enc.id},
                                compute=ray.data.ActorPoolStrategy(size=self.actors_per_field or workers),
                                num_cpus=1,
                                num_gpus=1 if want_gpu else None)
        shard_dir = (self.shard_root or (cache.root if cache is not None else Path(".")) / SHARDS_DIR) \
            / f"{job.modality}-{uuid.uuid4().hex[:8]}"
        shard_dir.mkdir(parents=True, exist_ok=True)
        shards = 0
        try:
            for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=2):
                rows = np.asarray(batch["row"], np.int64)
                shard = {"row": rows}
                for f in job.encoders:
                    if f"vec::{f}" in batch:
                        shard[f"vec::{f}"], shard[f"ok::{f}"] = batch[f"vec::{f}"], batch[f"ok::{f}"]
                np.savez(shard_dir / f"shard-{shards:05d}.npz", **shard)
                shards += 1
                done = 0
                for f, enc in job.encoders.items():
                    if f"vec::{f}" not in batch:
                        continue
                    ok = np.asarray(batch[f"ok::{f}"], bool)
                    need = np.asarray(batch[f"need::{f}"], bool)
                    vecs = np.asarray(batch[f"vec::{f}"], np.float32)
                    raw[f].update((int(r), vecs[k]) for k, r in enumerate(rows) if ok[k])
                    if cache is not None and ok.any():
                        cache.put_many(cache_id(enc), [job.keys[int(r)] for r in rows[ok]], vecs[ok])
                    for text in batch[f"warn::{f}"][need]:  # a file each field's actor failed to read: once
                        warnings.extend(w for w in str(text).split("\n") if w and w not in warnings)
                    done += int(need.sum())
                report(done, f"{job.modality}: {sum(len(v) for v in raw.values()):,} vectors on Ray "
                             f"({workers} worker{'s' * (workers > 1)})")
        except Exception as e:
            cause = _root_cause(e)
            if isinstance(cause, (EncoderError, EngineError)):
                raise type(cause)(str(cause)) from e
            raise EngineError(f"the Ray encoding job failed ({type(cause).__name__}: {cause}); the vectors "
                              "finished before the failure are cached, so a re-run continues from there") from e
        shutil.rmtree(shard_dir, ignore_errors=True)
        self.stats = {"workers": workers, "gpus": gpus,
                      "shards": self.stats.get("shards", 0) + shards, "rows": self.stats.get("rows", 0) + len(todo_rows),
                      "fields": self.stats.get("fields", []) + [f for f in job.encoders if missing[f]]}
        return raw


def _encoder_id(factory: EncoderFactory) -> str:
    """The id of the encoder a worker builds with `factory` (run as a Ray task)."""
    return factory("cpu").id


def _root_cause(error: BaseException) -> BaseException:
    """The exception raised inside a Ray task or actor, when Ray wrapped it."""
    seen = error
    for _ in range(5):
        inner = getattr(seen, "cause", None) or seen.__cause__
        if inner is None or inner is seen:
            break
        seen = inner
    return seen
