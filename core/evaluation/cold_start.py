"""Cold-start items: hide a share of items from training entirely, then rank them from content alone.

Protocol: a seeded random share of the items that have interactions is held out; ALL their interactions
(train, valid and test) are removed from the data the model is fitted on. Every user who interacted with
a held-out item is then evaluated on ranking the held-out items only (their interactions with them are
the truth; nothing is masked, since none of them was seen). A model can only place these items by their
content (embeddings), so ids-only models are expected to be near chance.
"""
from __future__ import annotations

import dataclasses
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.catalog.model import Catalog
from core.encoders.embeddings import EmbeddingSet
from core.data.metrics import item_self_information
from core.evaluation.protocol import Progress, build_record, evaluate_ranking
from core.data.interactions import InteractionData
from core.models.base import ProgressCallback, Recommender


@dataclass(frozen=True)
class ColdStartSplit:
    """The warm data to fit on, the held-out item columns, and the truth over them."""

    data: InteractionData  # held-out items' columns emptied in train, valid and test
    cold_items: np.ndarray  # (C,) column indices of the held-out items, ascending
    truth: sp.csr_matrix  # (U, C) every interaction of each user with the held-out items


def cold_start_split(data: InteractionData, share: float = 0.2, seed: int = 0) -> ColdStartSplit:
    """Hold out `share` of the items that have interactions (seeded) and remove all their interactions."""
    if not 0 < share < 1:
        raise ValueError(f"cold-start share {share} must lie strictly between 0 and 1")
    everything = (data.train + data.valid + data.test).tocsc()
    used = np.flatnonzero(np.diff(everything.indptr) > 0)
    n_cold = int(round(share * used.size))
    if n_cold < 1 or n_cold >= used.size:
        raise ValueError(f"holding out {share:.0%} of {used.size} items with interactions leaves no cold or no "
                         "warm items; choose another share")
    cold = np.sort(np.random.default_rng(seed).choice(used, size=n_cold, replace=False))
    keep = np.ones(data.n_items, dtype=np.float32)
    keep[cold] = 0.0
    warm = sp.diags(keep)

    def strip(m: sp.csr_matrix) -> sp.csr_matrix:
        out = (sp.csr_matrix(m) @ warm).tocsr()
        out.eliminate_zeros()
        return out

    warm_data = dataclasses.replace(data, train=strip(data.train), valid=strip(data.valid), test=strip(data.test),
                                    split_name=f"{data.split_name}+cold-{share:g}")
    truth = everything.tocsr()[:, cold]
    truth.data[:] = 1.0
    return ColdStartSplit(warm_data, cold, truth.tocsr())


def run_cold_start(model: Recommender, data: InteractionData, catalog: Catalog,
                   embeddings: EmbeddingSet | None, share: float = 0.2, ks: tuple[int, ...] | list[int] = (5, 10, 20),
                   seed: int = 0, n_bootstrap: int = 1000, batch_users: int = 512,
                   fit_progress: ProgressCallback | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Fit an unfitted `model` on the warm data and return the run record of ranking the held-out items."""
    split = cold_start_split(data, share=share, seed=seed)
    cold = split.cold_items
    ks = [k for k in sorted(set(int(k) for k in ks)) if k <= cold.size] or [int(cold.size)]
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    try:
        model.fit(split.data, progress=fit_progress)
        fit_s = time.perf_counter() - t0
        users = np.flatnonzero(np.diff(split.truth.indptr) > 0)
        no_mask = sp.csr_matrix((users.size, cold.size))
        info = item_self_information(split.data.train)[cold]
        result = evaluate_ranking(lambda rows: model.score(rows, cold), users, split.truth[users], no_mask, info,
                                  ks, batch_users=batch_users, n_bootstrap=n_bootstrap, seed=seed,
                                  progress=progress)
        wall = time.perf_counter() - t0
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        if not tracing:
            tracemalloc.stop()
    result.users_skipped = data.n_users - users.size
    result.protocol = {
        "name": "cold-start", "split": f"cold-start: {share:.0%} of items held out ({data.split_name} base)",
        "target": "held-out items (all their interactions)", "ranking": f"held-out items only ({cold.size})",
        "mask": "none", "masked": [], "ks": ks, "seed": seed, "n_bootstrap": n_bootstrap,
        "users_evaluated": int(users.size),
        "users_skipped": int(result.users_skipped), "cold_share": share, "n_cold_items": int(cold.size),
        "split_seed": data.seed,
        "binary_view": "score ≥ user's K-th best score; negatives: all other held-out items"}
    record = build_record(model, result, catalog, embeddings, data, wall, peak_mb, {"fit_time_s": fit_s})
    record["name"] = f"{model.name} (cold start)"
    return record
