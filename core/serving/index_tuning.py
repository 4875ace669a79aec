"""Choosing an approximate index's settings on this service's own queries: the sample queries its search
width is tuned on (listeners, liked items, similar items), and the smallest what-if and upload candidate
counts whose exact re-rank reaches the target recall. Run once when the index is built; the counts are saved
with it."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.serving.index import SampleQueries, example_queries, fast_top_k_rows, record_index_setting
from core.serving.query import EncodedQuery, Query
from core.serving.ranking import CONTENT_QUERIES, LISTENER_QUERIES
from core.serving.threads import single_threaded

log = logging.getLogger(__name__)


class RecommendService(Protocol):
    """What choosing the index's settings needs of a recommend service (core.serving.service): its items, model
    and settings, and its own ranking paths, which the chosen counts must keep within the target recall."""

    settings: Any  # ServingSettings
    index: Any  # the VectorIndex it searches
    model: Any
    embeddings: Any
    listeners: Any
    modalities: list[str]
    n_items: int
    item_vectors: np.ndarray
    prior_weight: float
    user_ids: list[str]
    linear: bool
    weights_linear: bool
    whatif_candidates: int | None
    term_candidates: int | None

    def training_rows(self, user_row: int) -> np.ndarray: ...
    def top_rows(self, *args: Any, **kwargs: Any) -> Any: ...
    def encode_fields(self, field_inputs: dict[str, np.ndarray], query: Query | None = None) -> EncodedQuery: ...
    def recommend(self, query: Any, k: int = 10, **kwargs: Any) -> Any: ...
    def tune_whatif_candidates(self) -> int: ...
    def tune_term_candidates(self) -> int: ...
    def upload_samples(self, n: int | None = None, seed: int = 11) -> list[EncodedQuery]: ...


def index_sample_queries(service: RecommendService) -> dict[str, SampleQueries]:
    """Named sets of (n, dim + 2) queries as this service sends them to its index, with the rows it
    excludes, to tune the index's search width on: "listener", known listeners' vectors with the learned
    bias (1, 0), their training items excluded; "liked", three of one listener's training items as
    liked items (excluded) with the popularity prior (0, prior weight); and "similar items", the same
    with any catalog item and the two items its vector scores highest as the liked items (so clusters
    no listener has heard are sampled too). Empty when the model has no listeners (the index then
    tunes on its own vectors plus noise)."""
    settings = service.settings
    try:
        n_users = len(service.user_ids)
        train = service.listeners.train_matrix() if n_users else None
    except Exception as e:  # noqa: BLE001 - no listeners to sample: the index falls back to its own vectors
        log.info("no listeners to tune the index on (%s); it tunes on its own vectors", e)
        return {}
    if not n_users or train is None or train.nnz == 0:
        return {}
    rng = np.random.default_rng(settings.index_sample_seed)
    users = np.sort(rng.choice(n_users, size=min(settings.index_sample, n_users), replace=False))
    with single_threaded():
        listener = [np.asarray(service.model.user_vector(int(u)), np.float32) for u in users]
        listened = [set(service.training_rows(int(u)).tolist()) for u in users]
        liked, chosen_rows = [], []
        for u in rng.permutation(np.flatnonzero(np.diff(train.indptr) > 0))[:settings.index_sample]:
            rows = np.unique(train.indices[train.indptr[u]:train.indptr[u + 1]])
            chosen = rng.choice(rows, size=min(settings.index_sample_liked, len(rows)), replace=False).tolist()
            liked.append(np.asarray(service.model.query_vector(liked=chosen), np.float32))
            chosen_rows.append(set(chosen))
        similar, similar_rows = [], []
        seeds = rng.choice(service.n_items, size=min(settings.index_sample, service.n_items), replace=False)
        for start in range(0, len(seeds), 25):  # (25, I) float32 blocks: ~100 MB at a million items
            block = seeds[start:start + 25]
            scores = service.item_vectors[block] @ service.item_vectors.T  # (b, I)
            scores[np.arange(len(block)), block] = -np.inf
            for seed, row_scores in zip(block, scores):
                chosen = [int(seed)] + fast_top_k_rows(row_scores, settings.index_sample_liked - 1).tolist()
                similar.append(np.asarray(service.model.query_vector(liked=chosen), np.float32))
                similar_rows.append(set(chosen))
    out = {}
    prior = (0.0, service.prior_weight)
    for name, vectors, exclude, tail, kind in (
            (LISTENER_QUERIES, listener, listened, (1.0, 0.0), LISTENER_QUERIES),
            ("liked", liked, chosen_rows, prior, CONTENT_QUERIES),
            ("similar items", similar, similar_rows, prior, CONTENT_QUERIES)):
        if vectors:
            tails = np.broadcast_to(np.asarray(tail, np.float32), (len(vectors), 2))
            out[name] = SampleQueries(np.hstack([np.stack(vectors), tails]).astype(np.float32), exclude,
                                      kind)
    return out


def tune_whatif_candidates(service: RecommendService) -> int:
    """The smallest candidate count (settings.whatif_min_candidates, doubling, up to settings.whatif_max_share
    of the catalog) whose exact re-rank of the index's candidates gives recall@10 ≥ settings.whatif_target_recall
    against exact what-if scoring of every item, on sample queries drawn from the item vectors (plus
    noise) under each single-modality weight set and one mixed set; 0 (every what-if query scored
    exactly, with a warning) when none up to the ceiling does."""
    settings = service.settings
    ceiling = int(settings.whatif_max_share * service.n_items)
    if ceiling < settings.whatif_min_candidates:
        return 0
    rng = np.random.default_rng(7)
    queries = example_queries(service.item_vectors, None, settings.whatif_sample, seed=7,
                              noise=settings.whatif_sample_noise)
    weight_sets = [{x: float(x == m) for x in service.modalities} for m in service.modalities]
    weight_sets.append(dict(zip(service.modalities, rng.uniform(0.1, 1.0, len(service.modalities)).tolist())))
    prior_coef = service.prior_weight  # a content query: popularity prior, no learned bias
    cases = []
    for q in queries:
        for w in weight_sets:
            truth, _ = service.top_rows(q, 10, (), w, 0.0, prior_coef, candidates=0)
            cases.append((q, w, truth))
    candidates, recall = settings.whatif_min_candidates, 0.0
    while candidates <= ceiling:
        found = [service.top_rows(q, 10, (), w, 0.0, prior_coef, candidates=candidates)[0] for q, w, _ in cases]
        recall = float(np.mean([len(np.intersect1d(t, f)) / max(len(t), 1)
                                for (_, _, t), f in zip(cases, found)]))
        if recall >= settings.whatif_target_recall:
            log.info("what-if queries re-rank %d index candidates (sample recall@10 %.3f)", candidates, recall)
            return candidates
        candidates *= 2
    log.warning("what-if re-ranking of up to %d index candidates reached recall@10 %.3f on sample queries, "
                "below %.2f: what-if queries over these %d items are scored exactly over every item",
                candidates // 2, recall, settings.whatif_target_recall, service.n_items)
    return 0


def upload_samples(service: RecommendService, n: int | None = None, seed: int = 11) -> list[EncodedQuery]:
    """Encoded sample uploads: n (default: settings.term_sample) catalog items' own field vectors (those the
    item carries) plus Gaussian noise of settings.term_sample_noise × each vector's norm, encoded as an upload
    of them (encode_fields)."""
    settings = service.settings
    n = settings.term_sample if n is None else n
    rng = np.random.default_rng(seed)
    emb, out = service.embeddings, []
    for row in rng.permutation(service.n_items)[:4 * n]:
        fields = {}
        for f in emb.fields:
            if emb.masks[f][row] and emb.modality_of.get(f) in service.modalities:
                v = np.asarray(emb.matrices[f][row], np.float32)
                noise = rng.standard_normal(len(v)).astype(np.float32)
                fields[f] = v + settings.term_sample_noise * np.linalg.norm(v) * noise / np.sqrt(len(v))
        if fields:
            out.append(service.encode_fields(fields, Query(text="sample upload")))
        if len(out) == n:
            break
    return out


def tune_term_candidates(service: RecommendService) -> int:
    """The smallest upload candidate count (settings.term_min_candidates, doubling, up to
    settings.whatif_max_share of the catalog) whose exact re-rank of the index's candidates, the upload terms
    added, gives recall@10 ≥ settings.whatif_target_recall against exact scoring of every item on sample
    uploads (upload_samples); 0 (upload queries scored exactly over every item, with a warning) when none up
    to the ceiling does."""
    settings = service.settings
    ceiling = int(settings.whatif_max_share * service.n_items)
    if ceiling < settings.term_min_candidates or not hasattr(service.model, "project_content"):
        return 0  # a small catalog (every item is scored exactly), or a model that takes no uploads
    samples = service.upload_samples()
    service.term_candidates = 0  # the truth: every item scored exactly
    truth = [{r.item_id for r in service.recommend(q, k=10).items} for q in samples]
    candidates, recall = settings.term_min_candidates, 0.0
    try:
        while candidates <= ceiling:
            service.term_candidates = candidates
            recall = float(np.mean([len(t & {r.item_id for r in service.recommend(q, k=10).items}) / max(len(t), 1)
                                    for q, t in zip(samples, truth)])) if samples else 1.0
            if recall >= settings.whatif_target_recall:
                log.info("upload queries re-rank %d index candidates (sample recall@10 %.3f)", candidates, recall)
                return candidates
            candidates *= 2
    finally:
        service.term_candidates = 0
    log.warning("upload re-ranking of up to %d index candidates reached recall@10 %.3f on sample uploads, "
                "below %.2f: upload queries over these %d items are scored exactly over every item",
                candidates // 2, recall, settings.whatif_target_recall, service.n_items)
    return 0


def keep_candidate_counts(service: RecommendService, index_dir: Path | None) -> None:
    """Give the service's approximate index its what-if and upload candidate counts: those saved with the index
    (index.json), else chosen now (tune_whatif_candidates, tune_term_candidates) and, with `index_dir`, saved
    there for the next start. An exact index, or a model not linear in the query, keeps 0 (exact scoring)."""
    chosen = getattr(service.index, "settings", {})  # the counts chosen when the index was built
    if service.index.kind != "exact" and service.linear and service.weights_linear:
        saved = chosen.get("whatif_candidates")
        service.whatif_candidates = int(saved) if saved is not None else service.tune_whatif_candidates()
        if saved is None and index_dir is not None:
            record_index_setting(index_dir, "whatif_candidates", service.whatif_candidates)
    if service.index.kind != "exact" and service.linear and service.settings.term_candidates is None:
        saved = chosen.get("term_candidates")
        service.term_candidates = int(saved) if saved is not None else service.tune_term_candidates()
        if saved is None and index_dir is not None:
            record_index_setting(index_dir, "term_candidates", service.term_candidates)
