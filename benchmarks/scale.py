"""Serving a large catalog: exact search against hnswlib HNSW and FAISS (HNSW, IVF) on synthetic clustered
item vectors of the model's dimension, then the chosen index end to end through RecommendService.

Part `index` (per size): build time, index memory, p50/p95 single-query latency (one thread, k = 10),
recall@10 against exact search, for exact search and every ANN setting on its ladder (ef or nprobe); and
the memory-bandwidth bound of one exact scan = bytes scanned ÷ the copy bandwidth measured here.
Part `service` (per size, benchmarks.scale_service): a fusion model over synthetic clustered content
behind RecommendService, end to end: p50/p95 and recall@10 against the exact service of
`recommend(encoded query, k=10)` (ranking + modality weights + exact Shapley shares) for listener, liked,
upload and mixed-upload queries through the saved index; uploads re-ranked over 2,000 and 8,000
candidates; what-if (each modality alone, mixed) with the candidate count chosen with the index and a
fixed 2,000, and the cards where an item lacking the weighted modality comes first; plus the exact scan
alone against its memory-bandwidth bound, measured back to back in the same run.

    nice -n 5 python -m benchmarks.scale --items 100000,1000000 [--part index|service|all] [--index ivf|hnsw]

Vectors: `--clusters` Gaussian clusters in `--dim` dimensions (the fusion model's 64 by default) with
per-item norm spread and a bias column, so inner-product search sees the structure (and the
score-scale spread) a trained model gives; queries are listener-like (a cluster centre plus noise).
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bandwidth import copy_bandwidth  # noqa: E402  (after the path: runs as a script too)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

K = 10


def clustered_vectors(n: int, dim: int, clusters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim + 1) item vectors with a bias column, and (clusters, dim) centres (seeded)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim + 1), np.float32)
    chunk = 200_000
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        c = rng.integers(clusters, size=m)
        x = centres[c] + 0.6 * rng.standard_normal((m, dim)).astype(np.float32)
        x *= rng.lognormal(0.0, 0.25, size=(m, 1)).astype(np.float32) / np.sqrt(dim)
        out[s:s + m, :dim] = x
        out[s:s + m, dim] = 0.1 * rng.standard_normal(m).astype(np.float32)
    return out, centres


def listener_queries(centres: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """(n, dim + 1) queries: a cluster centre plus noise, with the bias coordinate 1."""
    rng = np.random.default_rng(seed)
    c = rng.integers(len(centres), size=n)
    q = centres[c] + 0.8 * rng.standard_normal((n, centres.shape[1])).astype(np.float32)
    return np.hstack([q, np.ones((n, 1), np.float32)]).astype(np.float32)


def timed_queries(search, queries: np.ndarray) -> tuple[list[np.ndarray], float, float]:
    """(top rows per query, p50 ms, p95 ms) of one-at-a-time searches."""
    found, ms = [], []
    for q in queries:
        t = time.perf_counter()
        rows = search(q)
        ms.append((time.perf_counter() - t) * 1e3)
        found.append(rows)
    return found, float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def recall(truth: list[np.ndarray], found: list[np.ndarray]) -> float:
    """Mean overlap of top-k sets."""
    return float(np.mean([len(np.intersect1d(t, f)) / max(len(t), 1) for t, f in zip(truth, found)]))


def bench_index(n: int, dim: int, clusters: int, n_queries: int, threads: int) -> list[dict[str, Any]]:
    """One size: exact, hnswlib and FAISS rows."""
    import faiss
    import hnswlib

    from core.serving.index import ExactIndex, single_thread_blas

    rows: list[dict[str, Any]] = []
    vectors, centres = clustered_vectors(n, dim, clusters)
    queries = listener_queries(centres, n_queries)
    exact = ExactIndex(vectors)
    truth, p50, p95 = timed_queries(lambda q: exact.search(q, K)[0], queries)
    bw = copy_bandwidth()
    bound_ms = vectors.nbytes / bw * 1e3
    rows.append({"n": n, "index": "exact", "setting": "", "build_s": 0.0, "memory_mib": vectors.nbytes / 2**20,
                 "p50_ms": p50, "p95_ms": p95, "recall": 1.0, "bound_ms": bound_ms, "bandwidth_gbs": bw / 1e9})
    print(f"[{n:,}] exact p50 {p50:.2f} ms, bound {bound_ms:.2f} ms (copy bandwidth {bw / 1e9:.1f} GB/s)",
          flush=True)

    # hnswlib
    t = time.perf_counter()
    h = hnswlib.Index(space="ip", dim=dim + 1)
    h.init_index(max_elements=n, M=16, ef_construction=100, random_seed=0)
    h.set_num_threads(threads)
    h.add_items(vectors, np.arange(n))
    build = time.perf_counter() - t
    mem = h.index_file_size() / 2**20
    h.set_num_threads(1)
    for ef in (16, 32, 64, 128, 256):
        h.set_ef(ef)
        found, p50, p95 = timed_queries(lambda q: h.knn_query(q[None, :], k=K, num_threads=1)[0][0], queries)
        rows.append({"n": n, "index": "hnswlib HNSW M16", "setting": f"ef {ef}", "build_s": build,
                     "memory_mib": mem, "p50_ms": p50, "p95_ms": p95, "recall": recall(truth, found)})
        print(f"[{n:,}] hnswlib ef {ef}: recall {rows[-1]['recall']:.4f} p50 {p50:.3f} ms (build {build:.0f} s)",
              flush=True)
    del h
    gc.collect()

    # FAISS HNSW (inner product)
    faiss.omp_set_num_threads(threads)
    t = time.perf_counter()
    fh = faiss.IndexHNSWFlat(dim + 1, 16, faiss.METRIC_INNER_PRODUCT)
    fh.hnsw.efConstruction = 100
    fh.add(vectors)
    build = time.perf_counter() - t
    mem = faiss.serialize_index(fh).nbytes / 2**20
    faiss.omp_set_num_threads(1)
    for ef in (16, 32, 64, 128, 256):
        fh.hnsw.efSearch = ef
        found, p50, p95 = timed_queries(lambda q: fh.search(q[None, :], K)[1][0], queries)
        rows.append({"n": n, "index": "faiss HNSW M16", "setting": f"ef {ef}", "build_s": build,
                     "memory_mib": mem, "p50_ms": p50, "p95_ms": p95, "recall": recall(truth, found)})
        print(f"[{n:,}] faiss-hnsw ef {ef}: recall {rows[-1]['recall']:.4f} p50 {p50:.3f} ms", flush=True)
    del fh
    gc.collect()

    # FAISS IVF-Flat
    faiss.omp_set_num_threads(threads)
    nlist = int(4 * np.sqrt(n))
    t = time.perf_counter()
    quantiser = faiss.IndexFlatIP(dim + 1)
    ivf = faiss.IndexIVFFlat(quantiser, dim + 1, nlist, faiss.METRIC_INNER_PRODUCT)
    train = vectors[np.random.default_rng(0).choice(n, size=min(n, 64 * nlist), replace=False)]
    ivf.train(train)
    ivf.add(vectors)
    build = time.perf_counter() - t
    mem = faiss.serialize_index(ivf).nbytes / 2**20
    faiss.omp_set_num_threads(1)
    for nprobe in (4, 8, 16, 32, 64):
        ivf.nprobe = nprobe
        with single_thread_blas():
            found, p50, p95 = timed_queries(lambda q: ivf.search(q[None, :], K)[1][0], queries)
        rows.append({"n": n, "index": f"faiss IVF{nlist}", "setting": f"nprobe {nprobe}", "build_s": build,
                     "memory_mib": mem, "p50_ms": p50, "p95_ms": p95, "recall": recall(truth, found)})
        print(f"[{n:,}] faiss-ivf nprobe {nprobe}: recall {rows[-1]['recall']:.4f} p50 {p50:.3f} ms", flush=True)
    del ivf, quantiser
    gc.collect()
    return rows


def print_index_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'items':>10} {'index':<18} {'setting':<11} {'build s':>8} {'mem MiB':>8} {'p50 ms':>8} "
          f"{'p95 ms':>8} {'recall@10':>10}")
    for r in rows:
        print(f"{r['n']:>10,} {r['index']:<18} {r['setting']:<11} {r['build_s']:>8.1f} {r['memory_mib']:>8.0f} "
              f"{r['p50_ms']:>8.3f} {r['p95_ms']:>8.3f} {r['recall']:>10.4f}")
        if r["index"] == "exact":
            print(f"{'':>10} {'scan bound':<18} {'':<11} {'':>8} {'':>8} {r['bound_ms']:>8.3f} {'':>8} {'':>10}"
                  f"   (bytes scanned ÷ copy bandwidth {r['bandwidth_gbs']:.1f} GB/s; exact = "
                  f"{r['p50_ms'] / r['bound_ms']:.2f}× the bound)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="exact vs ANN search at catalog scale")
    parser.add_argument("--items", default="100000,1000000", help="comma-separated catalog sizes")
    parser.add_argument("--dim", type=int, default=64, help="item vector dimension (the model's)")
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="threads for index builds (queries use one)")
    parser.add_argument("--part", choices=("index", "service", "all"), default="all")
    parser.add_argument("--index", choices=("auto", "ivf", "hnsw"), default="auto",
                        help="the service part's approximate index (auto: core.serving.settings.ServingSettings.auto_ann)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.items.split(",") if s.strip()]
    if args.part in ("index", "all"):
        rows = []
        for n in sizes:
            rows += bench_index(n, args.dim, args.clusters, args.queries, args.threads)
            gc.collect()
        print_index_table(rows)
    if args.part in ("service", "all"):
        from benchmarks.scale_service import bench_service, print_service_table

        rows = []
        for n in sizes:
            rows.append(bench_service(n, args.dim, args.clusters, args.queries, kind=args.index))
            gc.collect()
            print_service_table(rows[-1:])  # each size's table as soon as it is measured
        print_service_table(rows)


if __name__ == "__main__":
    main()
