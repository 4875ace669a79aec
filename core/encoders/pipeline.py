"""Encode a catalog into an EmbeddingSet through the cache, and encode query uploads the same way.

For each field the items carrying its modality are hashed, looked up in the cache, and only the misses are
loaded and encoded, in batches. A file that cannot be read becomes a masked row and a warning, never a crash.
Descriptor fields are cached raw; their catalog statistics (mean, std with a floor) are kept in the set and
applied to the catalog and to every query, so both are standardised alike.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from core.catalog.model import Catalog
from core.encoders.embeddings import EmbeddingSet
from core.encoders.base import DescriptorEncoder, Encoder, l2_normalise
from core.encoders.cache import EmbeddingCache, file_key, text_key
from core.errors import EncoderError, UnsupportedMediaError
from core.catalog.media import AUDIO_SAMPLE_RATE, load_audio, load_image

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
STD_FLOOR_SHARE = 0.1  # fitted stds are floored at this share of the descriptor's typical std
PRIOR_ROWS = 4  # pseudo-rows of typical values mixed into descriptor stats (negligible for real catalogs)
RAW_SUFFIX = "#raw"  # cache namespace of raw descriptor rows (their standardisation depends on the catalog)
LOAD_WORKERS = 2  # threads decoding media files (PIL, libsndfile and soxr release the GIL)
PROGRESS_POLL_SECONDS = 0.25  # how often progress is passed on while modalities encode side by side


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block with one torch thread (when torch is loaded), then restore the previous count."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def is_descriptor(encoder: Encoder) -> bool:
    """Whether `encoder` has named raw features to standardise (see DescriptorEncoder)."""
    return isinstance(encoder, DescriptorEncoder)


def fit_stats(raw: np.ndarray, encoder: Encoder) -> dict[str, np.ndarray]:
    """Mean and std of raw descriptor rows, shrunk towards the descriptor's typical values by a few pseudo-rows.

    The shrinkage keeps tiny catalogs usable (with one item, plain standardisation would map it, and any query
    like it, to a zero vector); the std floor keeps a near-constant feature from blowing up queries.
    """
    width = raw.shape[1]
    typical_of = getattr(encoder, "default_stats", None)
    typical = typical_of() if typical_of else {"mean": np.zeros(width, np.float32), "std": np.ones(width, np.float32)}
    n, k = raw.shape[0], PRIOR_ROWS
    mean = (raw.sum(axis=0) + k * typical["mean"]) / (n + k)
    var = (((raw - mean) ** 2).sum(axis=0) + k * (typical["std"] ** 2 + (typical["mean"] - mean) ** 2)) / (n + k)
    std = np.maximum(np.sqrt(var), np.maximum(STD_FLOOR_SHARE * typical["std"], 1e-6))
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32)}


def _load(modality: str, source: Any, label: str, sample_rate: int = AUDIO_SAMPLE_RATE) -> Any:
    """The decoded input of one item: text as is, an RGB image, or a mono waveform at `sample_rate`."""
    if modality == "text":
        return source
    if modality == "image":
        return load_image(source, name=label)
    if modality == "audio":
        return load_audio(source, name=label, sr=sample_rate)
    raise EncoderError(f"unknown modality {modality!r}; encoders must say 'text', 'image' or 'audio'")


@dataclass
class EncodeJob:
    """The cache misses of one modality: what an encoding engine (local loop, Ray Data) has to compute."""

    modality: str
    encoders: dict[str, Encoder]  # field -> encoder
    missing: dict[str, list[int]]  # field -> catalog rows not in the cache
    keys: dict[int, str]  # row -> content hash (the cache key)
    sources: dict[int, Any]  # row -> text or file path
    labels: dict[int, str]  # row -> how messages name the input


Report = Callable[[int, str], None]  # (items just finished, message)
# (job, cache, warnings, report, batch size) -> {field: {row: raw vector}}; stores what it computes in the cache
EncodeEngine = Callable[[EncodeJob, "EmbeddingCache | None", list[str], Report, int], dict[str, dict[int, np.ndarray]]]


def encode_catalog(catalog: Catalog, encoders: dict[str, Encoder], cache: EmbeddingCache | None = None,
                   progress: Progress | None = None, batch_size: int = 32,
                   engine: EncodeEngine | None = None) -> EmbeddingSet:
    """The EmbeddingSet of `catalog`: one field per encoder (keyed as in `encoders`) plus its precomputed
    features. Items without a field's modality, or whose file cannot be read, get a zero row and mask False;
    the reasons are collected in `EmbeddingSet.warnings`. A precomputed feature wins over an encoder of the
    same field name. `engine` computes the cache misses (default: batches in this process; see
    core.scale.ray_encode for Ray Data); everything else (hashing, cache, standardisation) is the same.
    """
    n = len(catalog.items)
    matrices: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    modality_of: dict[str, str] = {}
    encoder_ids: dict[str, str] = {}
    feature_names: dict[str, list[str]] = {}
    stats: dict[str, dict[str, np.ndarray]] = {}
    warnings: list[str] = []

    for name, feat in catalog.features.items():
        matrices[name] = l2_normalise(feat.values)
        masks[name] = np.asarray(feat.mask, bool).copy()
        modality_of[name], encoder_ids[name] = feat.modality, feat.source

    todo = {f: e for f, e in encoders.items() if f not in catalog.features}
    by_modality: dict[str, list[str]] = {}
    for f, enc in todo.items():
        by_modality.setdefault(enc.modality, []).append(f)
    rows_of = {m: [i for i, item in enumerate(catalog.items) if item.has(m)] for m in by_modality}
    total = sum(len(rows_of[m]) * len(fields) for m, fields in by_modality.items())
    done = 0

    lock = threading.Lock()  # modalities encode concurrently: one running count
    latest = [""]  # the last message, for the caller's thread to pass on
    forward_now = [True]  # False while worker threads encode: the caller's thread passes progress on

    def report(k: int, message: str) -> None:
        nonlocal done
        with lock:
            done += k
            latest[0] = message
        if progress is not None and forward_now[0]:
            progress(min(done, total), total, message)

    def look_up(modality: str, warnings_m: list[str]) -> tuple[EncodeJob, dict[str, dict[int, np.ndarray]]]:
        """One modality's cache misses (the job for an engine) and its cache hits: field -> row -> vector."""
        fields = by_modality[modality]
        rows = rows_of[modality]
        keys, sources, labels = _hash_inputs(catalog, modality, rows, warnings_m)
        raw: dict[str, dict[int, np.ndarray]] = {f: {} for f in fields}
        missing: dict[str, list[int]] = {}
        for f in fields:
            enc = todo[f]
            cid = cache_id(enc)
            live = [i for i in rows if i in keys]
            hits = cache.get_many(cid, [keys[i] for i in live]) if cache is not None else {}
            for i in live:
                vec = hits.get(keys[i])
                if vec is not None and vec.size == width(enc):
                    raw[f][i] = vec
            missing[f] = [i for i in live if i not in raw[f]]
            report(len(rows) - len(missing[f]), f"{f}: {len(live) - len(missing[f])} of {len(rows)} from cache")
        job = EncodeJob(modality=modality, encoders={f: todo[f] for f in fields}, missing=missing, keys=keys,
                        sources=sources, labels=labels)
        return job, raw

    if progress is not None:
        progress(0, total, "hashing inputs")
    modalities = list(by_modality)
    per_warnings: dict[str, list[str]] = {m: [] for m in modalities}
    looked_up = {m: look_up(m, per_warnings[m]) for m in modalities}
    raws = {m: looked_up[m][1] for m in modalities}
    if engine is not None:
        for m in modalities:
            for f, vectors in engine(looked_up[m][0], cache, per_warnings[m], report, batch_size).items():
                raws[m][f].update(vectors)
    else:
        # The batches of every modality share one pool of threads, one per core, each on one torch thread:
        # on two cores this keeps both busy to the end (a modality that takes longest, such as images
        # through a CNN, is split between them) without torch's own threads waiting on each other at every
        # operation. A modality whose encoders cannot run batches at once (concurrent_batches) is one task,
        # its batches in order. Every encoder sees the same batches as in a sequential run, so the vectors
        # are the same. Progress is passed on from this thread (a UI may only be drawn from the thread
        # that called).
        tasks: dict[str, list[BatchTask]] = {}
        for m in modalities:
            batches = local_batches(looked_up[m][0], cache, report, batch_size)
            if batches and not concurrent_batches(list(looked_up[m][0].encoders.values())):
                batches = [lambda warnings, batches=batches: _in_order(batches, warnings)]
            tasks[m] = batches
        order = [(m, k) for k in range(max((len(t) for t in tasks.values()), default=0))
                 for m in modalities if k < len(tasks[m])]  # round robin: the modalities advance together
        task_warnings: dict[tuple[str, int], list[str]] = {key: [] for key in order}
        workers = min(len(order), usable_cores())
        if workers <= 1:  # on this thread, in order
            results = {key: tasks[key[0]][key[1]](task_warnings[key]) for key in order}
        else:
            forward_now[0] = False
            # BLAS (the descriptors' numpy and librosa) on one thread too: its spinning threads took CPU from the
            # other batches (600 demo items: encoding 35.9 → 32.5 s, the same vectors)
            with one_torch_thread(), threadpool_limits(1, "blas"), ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {key: pool.submit(tasks[key[0]][key[1]], task_warnings[key]) for key in order}
                shown = -1
                while not all(f.done() for f in futures.values()):
                    wait(list(futures.values()), timeout=PROGRESS_POLL_SECONDS, return_when=FIRST_EXCEPTION)
                    with lock:
                        now, message = done, latest[0]
                    if progress is not None and now != shown:
                        progress(min(now, total), total, message)
                        shown = now
                    if any(f.done() and f.exception() is not None for f in futures.values()):
                        for f in futures.values():
                            f.cancel()  # the batches not started yet; the running ones finish
                        break
                failed = [f for f in futures.values() if f.done() and not f.cancelled() and f.exception()]
                if failed:
                    raise failed[0].exception()  # a batch's error, not the cancellation of the others
                results = {key: futures[key].result() for key in order}
        for key in order:  # in a fixed order, whatever finished first
            for f, vectors in results[key].items():
                raws[key[0]][f].update(vectors)
            per_warnings[key[0]].extend(task_warnings[key])
    for modality in modalities:  # in a fixed order, whatever finished first
        warnings.extend(per_warnings[modality])
        raw = raws[modality]
        for f in by_modality[modality]:
            enc = todo[f]
            present = np.zeros(n, bool)
            matrix = np.zeros((n, width(enc)), np.float32)
            for i, vec in raw[f].items():
                matrix[i] = vec
                present[i] = True
            if is_descriptor(enc):
                stats[f] = fit_stats(matrix[present], enc)
                feature_names[f] = list(enc.feature_names)
                matrix[present] = l2_normalise((matrix[present] - stats[f]["mean"]) / stats[f]["std"])
            else:
                matrix[present] = l2_normalise(matrix[present])
            matrices[f], masks[f] = matrix, present
            modality_of[f], encoder_ids[f] = enc.modality, enc.id

    for w in warnings:
        log.warning(w)
    if progress is not None:
        progress(total, total, f"encoded {len(todo)} fields of {n} items" + (
            f" ({len(warnings)} inputs could not be read)" if warnings else ""))
    return EmbeddingSet(item_ids=catalog.item_ids, matrices=matrices, masks=masks, modality_of=modality_of,
                        encoder_ids=encoder_ids, feature_names=feature_names, stats=stats,
                        content_hash=catalog.content_hash(), warnings=warnings)


def _sample_rate(encoder: Encoder) -> int:
    """The rate an audio encoder takes its waveforms at (22,050 Hz unless it says otherwise)."""
    return int(getattr(encoder, "sample_rate", AUDIO_SAMPLE_RATE))


def encode_missing_local(job: EncodeJob, cache: EmbeddingCache | None, warnings: list[str], report: Report,
                         batch_size: int) -> dict[str, dict[int, np.ndarray]]:
    """The local engine: decode and encode the misses in batches in this process, caching each batch.

    Audio is decoded once per sample rate the encoders need."""
    raw: dict[str, dict[int, np.ndarray]] = {f: {} for f in job.encoders}
    for batch in local_batches(job, cache, report, batch_size):
        for f, vectors in batch(warnings).items():
            raw[f].update(vectors)
    return raw


BatchTask = Callable[[list[str]], dict[str, dict[int, np.ndarray]]]  # warnings -> {field: {row: raw vector}}


def local_batches(job: EncodeJob, cache: EmbeddingCache | None, report: Report, batch_size: int) -> list[BatchTask]:
    """The local engine's batches of `job` as separate calls, in order: each decodes its rows' media once per
    sample rate, encodes every field that misses them, caches what it computed and reports its progress."""
    fields = list(job.encoders)
    missing_sets = {f: set(rows_f) for f, rows_f in job.missing.items()}
    todo_rows = sorted(set().union(*missing_sets.values())) if missing_sets else []
    # items encoded so far per field: batches may finish out of order on several threads, so the message
    # counts what is done rather than naming the last row of its own batch
    encoded = {f: 0 for f in fields}
    count_lock = threading.Lock()

    def batch(start: int, warnings: list[str]) -> dict[str, dict[int, np.ndarray]]:
        chunk = todo_rows[start:start + batch_size]
        raw: dict[str, dict[int, np.ndarray]] = {f: {} for f in fields}
        loaded_at: dict[int, dict[int, Any]] = {}
        for f in fields:
            rate = _sample_rate(job.encoders[f])
            if rate not in loaded_at:
                rows_f = [i for i in chunk if any(i in missing_sets[g] for g in fields
                                                  if _sample_rate(job.encoders[g]) == rate)]
                # unreadable files are reported once, for the first rate
                loaded_at[rate] = _load_batch(job.modality, rows_f, job.sources, job.labels,
                                              warnings if not loaded_at else [], rate)
        for f, enc in job.encoders.items():
            loaded = loaded_at[_sample_rate(enc)]
            wanted = [i for i in chunk if i in missing_sets[f]]
            ready = [i for i in wanted if i in loaded]
            if ready:
                vectors = _encode_raw(enc, f, [loaded[i] for i in ready], ready, job.labels, warnings)
                ok = [i for i in ready if i in vectors]
                raw[f].update((i, vectors[i]) for i in ok)
                if cache is not None and ok:
                    cache.put_many(cache_id(enc), [job.keys[i] for i in ok], np.stack([vectors[i] for i in ok]))
            with count_lock:
                encoded[f] += len(wanted)
                message = f"{f}: {encoded[f]:,}/{len(missing_sets[f]):,} items encoded"
            report(len(wanted), message)
        return raw

    return [lambda warnings, start=start: batch(start, warnings) for start in range(0, len(todo_rows), batch_size)]


def _in_order(batches: list[BatchTask], warnings: list[str]) -> dict[str, dict[int, np.ndarray]]:
    """The batches one after the other, as one task."""
    raw: dict[str, dict[int, np.ndarray]] = {}
    for batch in batches:
        for f, vectors in batch(warnings).items():
            raw.setdefault(f, {}).update(vectors)
    return raw


def concurrent_batches(encoders: Sequence[Encoder]) -> bool:
    """Whether batches of these encoders may run on several threads at once (each encoder says so with a
    true `concurrent_batches`; e.g. a fast tokenizer may not be called from two threads at a time)."""
    return all(getattr(enc, "concurrent_batches", False) for enc in encoders)


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cache_id(encoder: Encoder) -> str:
    """The embedding cache namespace of an encoder's raw rows (descriptors cache unstandardised rows)."""
    return encoder.id + RAW_SUFFIX if is_descriptor(encoder) else encoder.id


def width(encoder: Encoder) -> int:
    """How many values an encoder's raw (cached) row has."""
    return len(encoder.feature_names) if is_descriptor(encoder) else int(encoder.dim)


def _hash_inputs(catalog: Catalog, modality: str, rows: list[int], warnings: list[str]
                 ) -> tuple[dict[int, str], dict[int, Any], dict[int, str]]:
    """Content keys, sources (text or path) and labels of the rows; unreadable files are left out with a warning."""
    keys: dict[int, str] = {}
    sources: dict[int, Any] = {}
    labels: dict[int, str] = {}
    for i in rows:
        item = catalog.items[i]
        ref = getattr(item, modality)
        if modality == "text":
            keys[i], sources[i], labels[i] = text_key(ref), ref, f"item {item.id!r} text"
            continue
        path = catalog.media_path(ref)
        labels[i] = f"item {item.id!r} {modality} {ref}"
        try:
            keys[i] = file_key(path)
            sources[i] = path
        except OSError as e:
            warnings.append(f"{labels[i]}: cannot read {path} ({e.strerror}); the item is encoded without its "
                            f"{modality}. Re-import the catalog with the file, or remove the reference")
    return keys, sources, labels


def content_keys(catalog: Catalog, modality: str) -> dict[int, str]:
    """The embedding cache's keys (content hashes) of the catalog's `modality` inputs, by row; rows without
    the modality or whose file cannot be read are left out."""
    rows = [i for i, item in enumerate(catalog.items) if item.has(modality)]
    return _hash_inputs(catalog, modality, rows, [])[0]


def _load_batch(modality: str, rows: list[int], sources: dict[int, Any], labels: dict[int, str],
                warnings: list[str], sample_rate: int = AUDIO_SAMPLE_RATE) -> dict[int, Any]:
    """Decoded inputs of `rows` (audio at `sample_rate`); a file that does not decode is left out with a warning."""
    def one(i: int) -> tuple[int, Any, str | None]:
        try:
            return i, _load(modality, sources[i], labels[i], sample_rate), None
        except UnsupportedMediaError as e:
            return i, None, f"{e}; the item is encoded without its {modality}"

    if modality == "text" or len(rows) < 2:
        results = [one(i) for i in rows]
    else:
        with ThreadPoolExecutor(max_workers=LOAD_WORKERS) as pool:
            results = list(pool.map(one, rows))
    loaded = {}
    for i, value, problem in results:
        if problem is None:
            loaded[i] = value
        else:
            warnings.append(problem)
    return loaded


def _encode_raw(encoder: Encoder, field: str, inputs: list[Any], rows: list[int], labels: dict[int, str],
                warnings: list[str]) -> dict[int, np.ndarray]:
    """Raw rows (descriptor features, or encoder vectors) of decoded inputs; on a batch failure, one by one."""
    run = encoder.describe if is_descriptor(encoder) else encoder.encode
    try:
        out = np.asarray(run(inputs), np.float32)
        return {i: out[k] for k, i in enumerate(rows)}
    except (UnsupportedMediaError, ValueError, RuntimeError) as batch_error:
        log.info("field %s: a batch failed (%s); encoding its items one by one", field, batch_error)
    vectors = {}
    for value, i in zip(inputs, rows):
        try:
            vectors[i] = np.asarray(run([value]), np.float32)[0]
        except (UnsupportedMediaError, ValueError, RuntimeError) as e:
            warnings.append(f"{labels[i]}: {field} encoder {encoder.id} failed ({type(e).__name__}: {e}); "
                            "the item is encoded without it")
    return vectors


def encode_inputs(encoders: dict[str, Encoder], embedding_set: EmbeddingSet | None, texts: Sequence[str] = (),
                  images: Sequence[Any] = (), audios: Sequence[Any] = ()) -> dict[str, np.ndarray]:
    """Query uploads → {field: (n, dim)} for every encoder whose modality was given, standardised like the
    catalog set (descriptor fields use its stats). Unreadable uploads raise UnsupportedMediaError."""
    given = {"text": [str(t) for t in texts], "image": list(images), "audio": list(audios)}
    out: dict[str, np.ndarray] = {}
    for f, enc in encoders.items():
        inputs = given.get(enc.modality) or []
        if not inputs:
            continue
        if is_descriptor(enc):
            raw = np.asarray(enc.describe(inputs), np.float32)
            if embedding_set is not None and f in embedding_set.stats:
                out[f] = embedding_set.standardise(f, raw)
            else:  # no catalog statistics: the encoder's own (typical) ones
                s = getattr(enc, "stats", None) or (enc.default_stats() if hasattr(enc, "default_stats") else None)
                out[f] = l2_normalise((raw - s["mean"]) / s["std"]) if s else enc.encode(inputs)
        else:
            out[f] = l2_normalise(enc.encode(inputs))
    return out


def encode_audio_uploads(encoders: dict[str, Encoder], embedding_set: EmbeddingSet | None,
                         uploads: Sequence[tuple[bytes, str]]) -> dict[str, np.ndarray]:
    """Audio uploads (bytes, file name) → {field: (n, dim)} like encode_inputs, each field's encoder given the
    clips decoded at its own sample rate, exactly as the catalog's files were. UnsupportedMediaError names a
    file that does not decode."""
    out: dict[str, np.ndarray] = {}
    decoded: dict[int, list[np.ndarray]] = {}
    for f, enc in encoders.items():
        if enc.modality != "audio":
            continue
        rate = _sample_rate(enc)
        if rate not in decoded:
            decoded[rate] = [load_audio(data, name=name, sr=rate) for data, name in uploads]
        out.update(encode_inputs({f: enc}, embedding_set, audios=decoded[rate]))
    return out
