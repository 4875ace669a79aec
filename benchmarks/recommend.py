"""Recommend latency on a 10,000-item catalog: exact search against HNSW, and HNSW's recall@10.

The catalog is synthetic but has the demo's shape (fields text 384-d, image 1280-d, image descriptor and
audio descriptor with their real feature names; a few per cent of items miss a modality) and a fusion model
(the demo preset) fitted for a couple of epochs on simulated listeners. Queries are uploads (text + image +
audio) already encoded: what is timed is `RecommendService.recommend(encoded, k=10)`, i.e. ranking plus the
per-item modality weights and exact Shapley contributions the result cards show.

    python -m benchmarks.recommend [--items 10000] [--queries 200]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np
import scipy.sparse as sp

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def synthetic_catalog(n_items: int, n_users: int, seed: int = 0):
    """(catalog, embeddings, interaction data) of the demo's shape; tastes follow feature clusters."""
    from core.catalog.model import Catalog, Item
    from core.encoders.embeddings import EmbeddingSet
    from core.encoders import audio, image_descriptor
    from core.encoders.base import l2_normalise
    from core.data.interactions import InteractionData

    rng = np.random.default_rng(seed)
    n_clusters = 40
    cluster = rng.integers(n_clusters, size=n_items)
    dims = {"text": 384, "image": 1280, "image_desc": len(image_descriptor.FEATURE_NAMES),
            "audio": len(audio.FEATURE_NAMES)}
    modality_of = {"text": "text", "image": "image", "image_desc": "image", "audio": "audio"}
    matrices, masks = {}, {}
    missing = rng.choice(["text", "image", "audio", ""], size=n_items, p=[0.01, 0.01, 0.01, 0.97])
    for f, d in dims.items():
        centres = rng.normal(size=(n_clusters, d)).astype(np.float32)
        x = centres[cluster] + 1.5 * rng.normal(size=(n_items, d)).astype(np.float32)
        masks[f] = missing != modality_of[f]
        matrices[f] = l2_normalise(np.where(masks[f][:, None], x, 0.0))
    item_ids = [f"item{i:05d}" for i in range(n_items)]
    embeddings = EmbeddingSet(item_ids=item_ids, matrices=matrices, masks=masks, modality_of=modality_of,
                              encoder_ids={f: f"bench/{f}" for f in dims},
                              feature_names={"image_desc": list(image_descriptor.FEATURE_NAMES),
                                             "audio": list(audio.FEATURE_NAMES)})
    taste = rng.integers(n_clusters, size=n_users)
    rows, cols = [], []
    popularity = rng.zipf(1.3, n_items).clip(max=100).astype(float)
    for u in range(n_users):
        p = popularity * np.where(cluster == taste[u], 1.0, 0.01)
        chosen = rng.choice(n_items, size=25, replace=False, p=p / p.sum())
        rows += [u] * len(chosen)
        cols += chosen.tolist()
    rows, cols = np.array(rows), np.array(cols)
    part = rng.random(len(rows))

    def matrix(sel: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((np.ones(sel.sum(), np.float32), (rows[sel], cols[sel])), shape=(n_users, n_items))

    data = InteractionData(user_ids=[f"user{u:05d}" for u in range(n_users)], item_ids=item_ids,
                           train=matrix(part < 0.8), valid=matrix((part >= 0.8) & (part < 0.9)),
                           test=matrix(part >= 0.9), embeddings=embeddings, split_name="random-8:1:1", seed=seed)
    catalog = Catalog(name="bench", items=[Item(id=i, title=i) for i in item_ids])
    return catalog, embeddings, data


def upload_queries(service, n: int, seed: int = 1) -> list:
    """`n` encoded upload queries (text + image + audio), built from catalog-like field vectors."""
    from core.serving.service import EncodedQuery, Query

    rng = np.random.default_rng(seed)
    emb = service.embeddings
    out = []
    for _ in range(n):
        rows = rng.integers(len(emb.item_ids), size=3)  # each upload resembles some catalog item
        fields = {f: emb.matrices[f][rows[k]][None, :] + 0.05 * rng.normal(size=(1, emb.matrices[f].shape[1]))
                  for k, m in enumerate(("text", "image", "audio")) for f in emb.fields_of(m)}
        fields = {f: (v / np.linalg.norm(v)).astype(np.float32) for f, v in fields.items()}
        content = {}
        for m in ("text", "image", "audio"):
            content.update(service.model.project_content({f: fields[f] for f in emb.fields_of(m)}))
        vector = service.model.query_vector(content=content)
        out.append(EncodedQuery(query=Query(text="upload"), vector=vector, content=content, field_inputs=fields,
                                liked_rows=[], disliked_rows=[], user_row=None, exclude_rows=set(),
                                modalities=list(content), warnings=[], encode_ms=0.0))
    return out


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def main(argv: list[str] | None = None) -> None:
    import torch
    from tqdm import tqdm

    from core.serving.index import measure_recall
    from core.models.fusion.config import PRESETS
    from core.models.fusion.recommender import FusionRecommender
    from core.tuning.baselines import member_search
    from core.serving.service import RecommendService

    parser = argparse.ArgumentParser(description="recommend latency, exact vs HNSW")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    t = time.perf_counter()
    catalog, embeddings, data = synthetic_catalog(args.items, args.users)
    config = dataclasses.replace(PRESETS["demo"], epochs=args.epochs, patience=args.epochs, batch_size=4096)
    model = FusionRecommender(config, member_search=member_search).fit(data)
    print(f"catalog {args.items:,} items × {args.users:,} users, model fitted {args.epochs} epochs "
          f"in {time.perf_counter() - t:.1f} s")

    rows = []
    services = {}
    for kind in ("exact", "hnsw"):
        t = time.perf_counter()
        services[kind] = RecommendService(catalog, embeddings, model, encoders={}, index=kind)
        build_s = time.perf_counter() - t
        queries = upload_queries(services[kind], args.queries)
        services[kind].recommend(queries[0], k=10)  # first call fills the model's masked forward passes
        total, search = [], []
        for q in tqdm(queries, desc=kind, leave=False):
            t = time.perf_counter()
            services[kind].recommend(q, k=10)
            total.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            services[kind].index.search(np.append(q.vector, np.float32(1.0)), 10, q.exclude_rows)
            search.append((time.perf_counter() - t) * 1e3)
        p50, p95 = percentiles(total)
        s50, s95 = percentiles(search)
        ef = getattr(services[kind].index, "ef", "")
        rows.append((kind + (f" (ef {ef})" if ef else ""), build_s, s50, s95, p50, p95))
    # what-if weights re-rank through the model (new weights = new masked forward passes)
    service = services["exact"]
    queries = upload_queries(service, 20, seed=2)
    rng = np.random.default_rng(3)
    whatif = []
    for q in queries:
        weights = dict(zip(service.modalities, rng.random(len(service.modalities)) + 0.05))
        t = time.perf_counter()
        service.recommend(q, k=10, modality_weights=weights)
        whatif.append((time.perf_counter() - t) * 1e3)
    w50, w95 = percentiles(whatif)
    queries = upload_queries(service, args.queries, seed=4)
    augmented = np.stack([np.append(q.vector, np.float32(1.0)) for q in queries])
    recall = measure_recall(services["hnsw"].index, services["exact"].exact_index, augmented, 10)

    print(f"\n{'index':<16} {'build s':>8} {'search p50':>11} {'search p95':>11} {'recommend p50':>14} "
          f"{'recommend p95':>14}   (ms; recommend = search + weights + exact Shapley contributions)")
    for name, build_s, s50, s95, p50, p95 in rows:
        print(f"{name:<16} {build_s:>8.2f} {s50:>11.2f} {s95:>11.2f} {p50:>14.2f} {p95:>14.2f}")
    print(f"{'what-if weights':<16} {'':>8} {'':>11} {'':>11} {w50:>14.2f} {w95:>14.2f}   "
          "(new weights each time; scored from the single-modality parts)")
    print(f"\nHNSW recall@10 against exact over {len(queries)} upload queries: {recall:.4f}")


if __name__ == "__main__":
    main()
