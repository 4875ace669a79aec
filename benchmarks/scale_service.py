"""The service part of benchmarks.scale: RecommendService over a large synthetic catalog, exact and through
the approximate index saved beside the model.

The model is a fusion model of the demo preset's shape (gated, linear heads, 64-d, item ids and biases)
over three clustered 32-d content fields with 5% of items missing each modality; it is initialised, not
trained (latency and index recall do not depend on training, and the heads carry the content's cluster
structure into the item vectors). Queries are uploads (text + image + audio) resembling catalog items,
already encoded: what is timed is `recommend(encoded, k=10)`, i.e. ranking plus modality weights and exact
Shapley shares. What-if recall compares the index path (exact re-rank over its candidates) with exact
what-if scoring of every item.
"""
from __future__ import annotations

import resource
import tempfile
import time
from typing import Any

import numpy as np
import scipy.sparse as sp


def synthetic_service_world(n_items: int, clusters: int, seed: int = 0):
    """(catalog, embeddings, model) as described in the module docstring."""
    import torch

    from core.catalog.model import Catalog, Item
    from core.embeddings import EmbeddingSet
    from core.encoders.base import l2_normalise
    from core.models.fusion import PRESETS, FusionRecommender

    rng = np.random.default_rng(seed)
    cluster = rng.integers(clusters, size=n_items)
    fields = {"text": "text", "image": "image", "audio": "audio"}
    matrices, masks = {}, {}
    for f in fields:
        centres = rng.standard_normal((clusters, 32)).astype(np.float32)
        masks[f] = rng.random(n_items) > 0.05
        matrices[f] = l2_normalise((centres[cluster] + 0.7 * rng.standard_normal((n_items, 32)).astype(np.float32))
                                   * masks[f][:, None])
    ids = [f"item{j:07d}" for j in range(n_items)]
    emb = EmbeddingSet(item_ids=ids, matrices=matrices, masks=masks, modality_of=fields,
                       encoder_ids={f: f"synthetic/{f}-32" for f in fields})
    n_users = 1000
    model = FusionRecommender(PRESETS["demo"], item_bias=True)  # content items, as the demo preset
    torch.manual_seed(seed)
    model._build(emb, n_users, [f"u{u}" for u in range(n_users)])
    users = rng.integers(n_users, size=20 * n_users)
    items = rng.integers(n_items, size=users.size)
    model.net.attach_graph(users, items)
    with torch.no_grad():
        model.net.item_bias.normal_(0.0, 0.1)
    model._ready()
    return Catalog("scale", [Item(i, i) for i in ids]), emb, model


def exact_whatif_top(service: Any, vector: np.ndarray, weights: dict[str, float], k: int) -> list[int]:
    """Exact what-if top-k rows over every item, scored in chunks (row-local, no catalog-wide pass per mask)."""
    chunk = max(1, service.n_items // 10)
    scores = np.concatenate([service.scores(vector, rows=np.arange(s, min(s + chunk, service.n_items)),
                                            modality_weights=weights) for s in range(0, service.n_items, chunk)])
    order = service.whatif_order(np.arange(service.n_items), scores, weights)
    return order[:k].tolist()


def bench_service(n: int, dim: int, clusters: int, n_queries: int) -> dict[str, Any]:
    """One size: build/load times, exact and index recommend latency, index and what-if recall."""
    import core.recommend as recommend_module
    from benchmarks.recommend import percentiles, upload_queries
    from core.recommend import RecommendService

    catalog, emb, model = synthetic_service_world(n, clusters)
    folder = tempfile.mkdtemp(prefix="prism-scale-")
    t = time.perf_counter()
    service = RecommendService(catalog, emb, model, encoders={}, index="auto", index_dir=folder)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    service = RecommendService(catalog, emb, model, encoders={}, index="auto", index_dir=folder)
    reload_s = time.perf_counter() - t
    exact = RecommendService(catalog, emb, model, encoders={}, index="exact")
    queries = upload_queries(service, n_queries)
    out: dict[str, Any] = {"n": n, "index": service.index.kind, "nprobe": getattr(service.index, "nprobe", None),
                           "build_s": build_s, "reload_s": reload_s}
    for name, svc in (("index", service), ("exact", exact)):
        svc.recommend(queries[0], k=10)
        ms, tops = [], []
        for q in queries:
            t = time.perf_counter()
            result = svc.recommend(q, k=10)
            ms.append((time.perf_counter() - t) * 1e3)
            tops.append([r.item_id for r in result.items])
        out[f"{name}_p50"], out[f"{name}_p95"] = percentiles(ms)
        out[f"{name}_tops"] = tops
    out["recall"] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(out["index_tops"], out["exact_tops"])]))
    rng = np.random.default_rng(5)
    whatif_queries = queries[:min(40, len(queries))]
    truth = {}
    for kind in ("mixed", "image only"):
        for j, q in enumerate(whatif_queries):
            w = dict(zip(service.modalities, rng.random(len(service.modalities)) + 0.05)) if kind == "mixed" \
                else {m: float(m == "image") for m in service.modalities}
            truth[kind, j] = (w, exact_whatif_top(exact, q.vector, w, 10))
    out["whatif"] = []
    for candidates in (500, 1000, 2000, 4000):
        recommend_module.WHATIF_CANDIDATES = candidates
        for kind in ("mixed", "image only"):
            ms, rec = [], []
            for j, q in enumerate(whatif_queries):
                w, want = truth[kind, j]
                t = time.perf_counter()
                result = service.recommend(q, k=10, modality_weights=w)
                ms.append((time.perf_counter() - t) * 1e3)
                got = [catalog.index_of(r.item_id) for r in result.items]
                rec.append(len(set(got) & set(want)) / 10)
            out["whatif"].append((candidates, kind, float(np.mean(rec)), *percentiles(ms)))
    recommend_module.WHATIF_CANDIDATES = 2000
    out["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def print_service_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'items':>10} {'path':<26} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>10}   "
          "(RecommendService.recommend, k = 10, incl. modality weights and exact Shapley shares)")
    for r in rows:
        print(f"{r['n']:>10,} {'exact':<26} {r['exact_p50']:>8.2f} {r['exact_p95']:>8.2f} {1.0:>10.4f}")
        print(f"{r['n']:>10,} {r['index'] + ' nprobe ' + str(r['nprobe']):<26} {r['index_p50']:>8.2f} "
              f"{r['index_p95']:>8.2f} {r['recall']:>10.4f}   (built with the model in {r['build_s']:.0f} s, "
              f"reloaded in {r['reload_s']:.1f} s; peak {r['peak_gib']:.2f} GiB)")
        for candidates, kind, rec, p50, p95 in r["whatif"]:
            print(f"{r['n']:>10,} {f'what-if {kind}, C={candidates}':<26} {p50:>8.2f} {p95:>8.2f} {rec:>10.4f}")
