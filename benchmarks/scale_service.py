"""The service part of benchmarks.scale: RecommendService over a large synthetic catalog, exact and through
the approximate index saved beside the model, end to end (ranking, modality weights and exact Shapley
shares of every returned card).

The model is a fusion model of the demo preset's shape (gated, linear heads, 64-d, id users, item biases)
over three clustered 32-d content fields (one cluster label per item shared by the fields, 5% of items
missing each modality). It is not trained: its heads are initialised and its listeners are set directly,
each listener's vector pointing at the mean item vector of one taste cluster (plus noise), with training
listens drawn from that cluster; so listener scores have the structure a trained model gives, in seconds
instead of an hour of training at a million items.

Query kinds, each timed as `recommend(encoded, k=10)` (the encoding is done beforehand):
- listener: a known listener (learned bias, training items excluded);
- liked: three liked items of one cluster (the popularity prior applies);
- upload: text + image + audio resembling one catalog item, with the similarity-to-upload and
  "items like your upload" terms (re-ranked exactly over the index's top C candidates, C chosen when the
  index is built, and for comparison over a fixed 2,000);
- upload mix: text, image and audio from three different items, without those terms (the hard case).
What-if queries (one modality alone, and mixed weights) on listener and liked queries are re-ranked
exactly over the index's candidates and compared with exact what-if scoring of every item; the number of
cards where an item lacking the weighted modality comes before one carrying it is counted (must be 0).
"""
from __future__ import annotations

import resource
import shutil
import tempfile
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

K = 10


def synthetic_service_world(n_items: int, clusters: int, n_users: int = 2000, seed: int = 0, spread: float = 0.7,
                            head_bias: bool = False):
    """(catalog, embeddings, model, taste cluster per user, cluster per item) as in the module docstring."""
    import torch

    from core.catalog.model import Catalog, Item
    from core.encoders.embeddings import EmbeddingSet
    from core.encoders.base import l2_normalise
    from core.models.fusion.config import PRESETS
    from core.models.fusion.recommender import FusionRecommender

    rng = np.random.default_rng(seed)
    cluster = rng.integers(clusters, size=n_items)
    fields = {"text": "text", "image": "image", "audio": "audio"}
    matrices, masks = {}, {}
    for f in fields:
        centres = rng.standard_normal((clusters, 32)).astype(np.float32)
        masks[f] = rng.random(n_items) > 0.05
        matrices[f] = l2_normalise((centres[cluster] + spread * rng.standard_normal((n_items, 32)).astype(np.float32))
                                   * masks[f][:, None])
    ids = [f"item{j:07d}" for j in range(n_items)]
    emb = EmbeddingSet(item_ids=ids, matrices=matrices, masks=masks, modality_of=fields,
                       encoder_ids={f: f"synthetic/{f}-32" for f in fields})
    model = FusionRecommender(PRESETS["demo"], item_bias=True)
    torch.manual_seed(seed)
    model._build(emb, n_users, [f"u{u}" for u in range(n_users)])
    taste = rng.integers(clusters, size=n_users)
    members = np.argsort(cluster, kind="stable")
    starts = np.searchsorted(cluster[members], np.arange(clusters + 1))
    listens = 20
    items = np.concatenate([members[rng.integers(starts[c], max(starts[c + 1], starts[c] + 1), size=listens)]
                            for c in taste]).clip(max=n_items - 1)
    users = np.repeat(np.arange(n_users), listens)
    model.net.attach_graph(users, items)
    with torch.no_grad():
        model.net.item_bias.normal_(0.0, 0.1)
        if not head_bias:  # an initialised head's bias gives every item one shared offset, not structure
            for head in model.net.heads.values():
                for layer in head.modules():
                    if isinstance(layer, torch.nn.Linear) and layer.bias is not None:
                        layer.bias.zero_()
    model._ready()
    vectors = model.item_vectors()  # (I, 64)
    one_hot = sp.csr_matrix((np.ones(n_items, np.float32), (cluster, np.arange(n_items))), shape=(clusters, n_items))
    means = np.asarray(one_hot @ vectors) / np.maximum(np.bincount(cluster, minlength=clusters), 1)[:, None]
    unit = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-9)
    user_vectors = 3.0 * unit[taste] + 0.5 * rng.standard_normal((n_users, unit.shape[1])) / np.sqrt(unit.shape[1])
    with torch.no_grad():
        model.net.user_id.weight.copy_(torch.as_tensor(user_vectors, dtype=torch.float32))
    model._ready()
    return Catalog("scale", [Item(i, i) for i in ids]), emb, model, taste, cluster


def make_queries(service: Any, taste: np.ndarray, cluster: np.ndarray, n: int, seed: int = 1) -> dict[str, list]:
    """Encoded queries of each kind (see the module docstring), n of each."""
    from benchmarks.recommend import upload_queries
    from core.serving.service import Query

    rng = np.random.default_rng(seed)
    emb = service.embeddings
    out: dict[str, list] = {"listener": [], "liked": [], "upload": []}
    for u in rng.choice(len(taste), size=n, replace=False):
        out["listener"].append(service.encode_query(Query(user_id=f"u{u}")))
    for _ in range(n):
        c = cluster[rng.integers(len(cluster))]
        liked = rng.choice(np.flatnonzero(cluster == c), size=3)
        out["liked"].append(service.encode_query(Query(liked=[emb.item_ids[j] for j in liked])))
    for _ in range(n):
        row = int(rng.integers(len(cluster)))
        fields = {f: emb.matrices[f][row][None, :] + 0.05 * rng.standard_normal((1, emb.matrices[f].shape[1]))
                  for f in emb.fields if emb.masks[f][row]}
        fields = {f: (v / np.linalg.norm(v)).astype(np.float32) for f, v in fields.items()}
        out["upload"].append(service.encode_fields(fields, Query(text="upload")))
    out["upload mix"] = upload_queries(service, n, seed=seed)
    return out


def timed(service: Any, queries: list, **kwargs: Any) -> tuple[list[list[str]], list[float], list]:
    """(top item ids per query, ms per query, results) of recommend(q, k=10, **kwargs), one at a time."""
    service.recommend(queries[0], k=K, **kwargs)
    tops, ms, results = [], [], []
    for q in queries:
        t = time.perf_counter()
        result = service.recommend(q, k=K, **kwargs)
        ms.append((time.perf_counter() - t) * 1e3)
        tops.append([r.item_id for r in result.items])
        results.append(result)
    return tops, ms, results


def timed_scan(index: Any, queries: list[np.ndarray]) -> tuple[list[np.ndarray], list[float], None]:
    """(top rows, ms per query, None) of index.search(q, 10), one query at a time."""
    index.search(queries[0], K)
    rows, ms = [], []
    for q in queries:
        t = time.perf_counter()
        rows.append(index.search(q, K)[0])
        ms.append((time.perf_counter() - t) * 1e3)
    return rows, ms, None


def overlap(a: list[list[str]], b: list[list[str]]) -> float:
    """Mean recall@10 of the top-10 lists `a` against `b`."""
    return float(np.mean([len(set(x) & set(y)) / max(len(y), 1) for x, y in zip(a, b)]))


def out_of_order(service: Any, results: list, weights: dict[str, float]) -> int:
    """Cards where an item carrying none of the weighted modalities comes before one that carries one."""
    bad = 0
    for result in results:
        rows = np.array([service.catalog.index_of(r.item_id) for r in result.items])
        flags = service.carries(weights, rows).tolist()
        bad += flags != sorted(flags, reverse=True)
    return bad


def bench_service(n: int, dim: int, clusters: int, n_queries: int, log=print, kind: str = "auto") -> dict[str, Any]:
    """One size: build/load times, exact and index latency and recall per query kind, what-if recall."""
    t = time.perf_counter()
    catalog, emb, model, taste, cluster = synthetic_service_world(n, clusters)
    log(f"[{n:,}] synthetic model in {time.perf_counter() - t:.0f} s")
    folder = tempfile.mkdtemp(prefix="prism-scale-")  # the saved index; removed when this size is done
    try:
        return _bench_service(n, clusters, n_queries, log, kind, catalog, emb, model, taste, cluster, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _bench_service(n: int, clusters: int, n_queries: int, log, kind: str, catalog: Any, emb: Any, model: Any,
                   taste: np.ndarray, cluster: np.ndarray, folder: str) -> dict[str, Any]:
    """bench_service over a built world, with its index saved in `folder`."""
    from dataclasses import replace

    from benchmarks.recommend import percentiles
    from core.serving.service import RecommendService

    t = time.perf_counter()
    service = RecommendService(catalog, emb, model, encoders={}, index=kind, index_dir=folder)
    build_s = time.perf_counter() - t
    log(f"[{n:,}] service with a new {service.index.kind} index in {build_s:.0f} s "
        f"(nprobe {getattr(service.index, 'nprobe', None)}, "
        f"sample recall {getattr(service.index, 'tuned_recall', None)}; per sample set "
        f"{getattr(service.index, 'tuned_on', None)})")
    t = time.perf_counter()
    service = RecommendService(catalog, emb, model, encoders={}, index=kind, index_dir=folder)
    reload_s = time.perf_counter() - t
    exact = RecommendService(catalog, emb, model, encoders={}, index=service.exact_index)
    queries = make_queries(exact, taste, cluster, n_queries)
    out: dict[str, Any] = {"n": n, "index": service.index.kind, "nprobe": getattr(service.index, "nprobe", None),
                           "tuned_recall": getattr(service.index, "tuned_recall", None),
                           "nprobe_for": getattr(service.index, "nprobe_for", None) or {},
                           "head_for": getattr(service.index, "head_for", None) or {},
                           "term_candidates": service.term_candidates,
                           "whatif_candidates": service.whatif_candidates,
                           "nlist": getattr(getattr(service.index, "_index", None), "nlist", None),
                           "build_s": build_s, "reload_s": reload_s, "rows": []}
    # exact search against the memory-bandwidth bound of one scan, measured back to back in this run
    from benchmarks.bandwidth import copy_bandwidth

    scan_queries = [np.concatenate([q.vector, exact.offset_coefficients(q)]).astype(np.float32)
                    for q in queries["listener"] + queries["liked"]]
    bandwidth = copy_bandwidth()
    _, scan_ms, _ = timed_scan(service.exact_index, scan_queries)
    out["scan"] = {"bytes": service.exact_index.nbytes, "bandwidth_gbs": bandwidth / 1e9,
                   "bound_ms": service.exact_index.nbytes / bandwidth * 1e3,
                   "p50_ms": float(np.percentile(scan_ms, 50)),
                   "p95_ms": float(np.percentile(scan_ms, 95))}
    log(f"[{n:,}] exact scan p50 {out['scan']['p50_ms']:.2f} ms, bound {out['scan']['bound_ms']:.2f} ms "
        f"({out['scan']['p50_ms'] / out['scan']['bound_ms']:.2f}x; copy bandwidth {bandwidth / 1e9:.1f} GB/s)")
    truth = {}
    for kind, qs in queries.items():
        want, ms, _ = timed(exact, qs)
        truth[kind] = want
        got, ms_index, results = timed(service, qs)
        out["rows"].append((kind, "exact", *percentiles(ms), 1.0))
        path = results[0].index_kind + (f", C={service.term_candidates}" if "re-rank" in results[0].index_kind
                                        else "")
        out["rows"].append((kind, path, *percentiles(ms_index), overlap(got, want)))
        log(f"[{n:,}] {kind}: exact p50 {out['rows'][-2][2]:.2f} ms; {results[0].index_kind} p50 "
            f"{out['rows'][-1][2]:.2f} ms, recall@10 {out['rows'][-1][4]:.4f}")
    defaults = service.settings
    for candidates in (2000,):  # uploads through the index, re-ranked exactly with their terms, a fixed C
        service.settings = replace(defaults, term_candidates=candidates)
        for kind in ("upload",):
            got, ms, results = timed(service, queries[kind])
            out["rows"].append((kind, f"{results[0].index_kind}, C={candidates}", *percentiles(ms),
                                overlap(got, truth[kind])))
            log(f"[{n:,}] {kind} C={candidates}: p50 {out['rows'][-1][2]:.2f} ms, recall@10 {out['rows'][-1][4]:.4f}")
    service.settings = defaults
    # what-if: exact what-if scoring of every item against the index's candidates re-ranked exactly
    m0 = service.modalities
    weight_sets = {f"{m} only": {x: float(x == m) for x in m0} for m in m0}
    weight_sets["mixed"] = dict(zip(m0, (0.2, 1.0, 0.5)))
    n_whatif = min(20, n_queries)
    for kind in ("listener", "liked"):
        qs = queries[kind][:n_whatif]
        exact_tops = {label: [] for label in weight_sets}
        exact_ms = {label: [] for label in weight_sets}
        for q in qs:  # query by query, so the exact service's single-modality parts are computed once each
            for label, w in weight_sets.items():
                t = time.perf_counter()
                exact_tops[label].append([r.item_id for r in exact.recommend(q, k=K, modality_weights=w).items])
                exact_ms[label].append((time.perf_counter() - t) * 1e3)
        for label, w in weight_sets.items():
            want, ms_exact = exact_tops[label], exact_ms[label]
            for candidates in (None, 2000):  # the count chosen with the index, and a fixed 2,000
                service.settings = replace(defaults, whatif_candidates=candidates)
                got, ms, results = timed(service, qs, modality_weights=w)
                used = service.whatif_candidates if candidates is None else candidates
                out["rows"].append((f"{kind}, what-if {label}", f"{results[0].index_kind}, C={used}",
                                    *percentiles(ms), overlap(got, want), out_of_order(service, results, w),
                                    float(np.percentile(ms_exact, 50))))
                log(f"[{n:,}] {kind} what-if {label} C={used}: p50 {out['rows'][-1][2]:.2f} ms, recall@10 "
                    f"{out['rows'][-1][4]:.4f}, out of order {out['rows'][-1][5]} "
                    f"(exact p50 {out['rows'][-1][6]:.0f} ms)")
    service.settings = defaults
    out["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def print_service_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'items':>10} {'query':<28} {'path':<28} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>10}   "
          "(RecommendService.recommend, k = 10, incl. modality weights and exact Shapley shares)")
    for r in rows:
        sample = None if r["tuned_recall"] is None else round(r["tuned_recall"], 3)
        per_kind = ", ".join(f"{name} {n} + head {r.get('head_for', {}).get(name, 0)}"
                             for name, n in r["nprobe_for"].items())
        print(f"{r['n']:>10,}   {r['index']} nlist {r['nlist']}, nprobe {r['nprobe']} ({per_kind}; sample recall@10 "
              f"{sample}), what-if candidates {r['whatif_candidates']}, upload candidates "
              f"{r.get('term_candidates')}: built with the model in "
              f"{r['build_s']:.0f} s, reloaded in {r['reload_s']:.1f} s; peak {r['peak_gib']:.2f} GiB")
        sc = r["scan"]
        print(f"{r['n']:>10,} {'exact scan alone':<28} {'ExactIndex.search':<28} {sc['p50_ms']:>8.2f} "
              f"{sc['p95_ms']:>8.2f} "
              f"{1.0:>10.4f}   bound {sc['bound_ms']:.2f} ms = {sc['bytes'] / 2**20:.0f} MiB ÷ copy bandwidth "
              f"{sc['bandwidth_gbs']:.1f} GB/s: {sc['p50_ms'] / sc['bound_ms']:.2f}× the bound")
        for kind, path, p50, p95, rec, *extra in r["rows"]:
            note = f"   lacking-first cards {extra[0]}, exact what-if p50 {extra[1]:.0f} ms" if extra else ""
            print(f"{r['n']:>10,} {kind:<28} {path:<28} {p50:>8.2f} {p95:>8.2f} {rec:>10.4f}{note}")
