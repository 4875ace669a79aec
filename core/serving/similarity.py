"""Similarity to the upload: a named, weighted part of a content query's score, per uploaded modality.

An upload (text, image or audio) is encoded like the catalog was, then projected by the model into the
joint space, which keeps what listeners choose by more than what the upload is like. Beside that score a
content query adds, for each uploaded modality m,

    sim_m(i) = mean over m's fields f of [item i carries f] · mean over the uploads u of cos(u_f, x_f(i))

(the raw encoder vectors of the same field; an item without field f gets 0 for it), weighted:

    score_i = <q, item_i> + w_prior · prior_i + λ · Σ_m ω_m · sim_m(i)

with λ the similarity weight (chosen on the retrieval benchmark's selection half) and ω_m the what-if weight
of modality m (1 without what-if weights; 0 removes the part). sim_m(i) is 0 when item i lacks modality m,
so the part belongs to modality m's Shapley player: it is present exactly when the modality is, adds the
same whatever else is present, and the Shapley values still sum to score − base. Known listeners have no
such part (their query is not an upload).

A second named term, "items like your upload", reads the fusion model's joint space item to item: the
NEIGHBOURS items most similar to the upload (largest Σ_m sim_m, all uploaded modalities, what-if weights
not applied) give a centre c = mean of their unit item vectors, and

    like_i = cos(item_i, c),    score_i += μ · like_i

It is its own Shapley player beside the modalities and the prior (additive: its Shapley value is exactly
μ · like_i).

A third, "closest match to your upload", puts the item that matches the upload best first: closest_i is 1
for the item with the largest Σ_m sim_m (what-if weights applied, as for the like term) and 0 for every
other, weighted by κ; its own Shapley player too. The other terms rank everything else; this one answers
"the item whose text is literally what I typed is second" (precision of the other results is unchanged,
since it moves one item). Measured on the retrieval benchmark's selection half, the upload query's own joint-space
score ranks genre below the raw encoders, while the joint space read item to item ranks it above them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from core.serving.prior import check_term_weight

SIMILARITY = "similarity"  # the key of the per-modality parts in Recommendation.similarity
SIMILARITY_LABEL = "similarity to your upload"
# Chosen by `python -m benchmarks.retrieval --catalog demo` on its validation half of the held-out items,
# jointly with the prior, like and closest-match weights (grid PRIOR_GRID × SIMILARITY_GRID × LIKE_GRID ×
# CLOSEST_GRID, criterion: mean over query modalities of (precision@10 + self@1 + MRR@10) / 3); see README.
DEFAULT_SIMILARITY_WEIGHT = 128.0
# candidate weights the benchmark chooses from (32, then 128, each the top at the time, were chosen on the
# demo: extended twice)
SIMILARITY_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)
SIMILARITY_MAX = 512.0  # the Recommend page's slider goes from 0 to this (the grid's top)
LIKE = "like_upload"  # the term's key in Recommendation.terms and Explanation.terms
LIKE_LABEL = "items like your upload"
NEIGHBOURS = 5  # items nearest the upload whose joint-space centre the term measures against
DEFAULT_LIKE_WEIGHT = 128.0  # chosen with the similarity weight on the benchmark (grid LIKE_GRID); see README
LIKE_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)
LIKE_MAX = 512.0  # the Recommend page's slider goes from 0 to this (the grid's top)


CLOSEST = "closest_match"  # the term's key in Recommendation.terms and Explanation.terms
CLOSEST_LABEL = "closest match to your upload"
# κ of the closest-match term; chosen with the three other weights on the retrieval benchmark (grid
# CLOSEST_GRID, criterion with self@1 and MRR@10); see README
DEFAULT_CLOSEST_WEIGHT = 32.0
CLOSEST_GRID = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)


def check_similarity_weight(weight: float) -> float:
    """The similarity-to-upload weight as a float; QueryError naming the allowed range otherwise."""
    return check_term_weight(weight, "similarity-to-upload", "ranks uploads by the model's joint space alone")


def check_like_weight(weight: float) -> float:
    """The 'items like your upload' weight as a float; QueryError naming the allowed range otherwise."""
    return check_term_weight(weight, "'items like your upload'", "leaves the term out")


def check_closest_weight(weight: float) -> float:
    """The closest-match weight as a float; QueryError naming the allowed range otherwise."""
    return check_term_weight(weight, "closest-match", "leaves the term out")


def closest_match(similarity: np.ndarray) -> np.ndarray:
    """(I,) 1 for the item most similar to the upload (the largest Σ_m sim_m; every item tied with it),
    0 for the others; zeros when no item is similar at all."""
    total = np.asarray(similarity, np.float64).sum(axis=1)
    if not np.any(total > 0):
        return np.zeros(len(total))
    return (total >= total.max() - 1e-9).astype(np.float64)


def like_upload(similarity: np.ndarray, item_vectors: np.ndarray, neighbours: int = NEIGHBOURS,
                unit_items: bool = False) -> np.ndarray:
    """(I,) cos(item_i, c), c the mean unit joint-space vector of the `neighbours` items with the largest
    total similarity to the upload (ties by lower row); zeros when no item is similar at all.
    `unit_items`: `item_vectors` already has unit rows (computed once per catalog, not per query)."""
    from core.serving.index import top_k_rows

    total = np.asarray(similarity, np.float64).sum(axis=1)
    if not np.any(total > 0):
        return np.zeros(len(total))
    near = top_k_rows(np.where(total > 0, total, -np.inf), neighbours)
    unit = item_vectors if unit_items else _unit(item_vectors)
    centre = unit[near].mean(axis=0)
    norm = float(np.linalg.norm(centre))
    return unit @ centre / norm if norm > 0 else np.zeros(len(total))


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), in float32 when given float32, else float64."""
    x = np.atleast_2d(np.asarray(x))
    x = x if x.dtype == np.float32 else x.astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def unit_rows(matrices: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each field's item matrix with unit rows (float32): what upload_similarity compares against, computed
    once per catalog instead of once per query."""
    return {f: _unit(np.asarray(x, np.float32)) for f, x in matrices.items()}


def upload_similarity(field_inputs: Mapping[str, np.ndarray], matrices: Mapping[str, np.ndarray],
                      masks: Mapping[str, np.ndarray], modality_of: Mapping[str, str],
                      modalities: Sequence[str], n_items: int, unit_items: bool = False) -> np.ndarray:
    """(I, M) sim_m(i) for every item and modality (0 for modalities without an upload): the mean over the
    modality's uploaded fields of the mean cosine between the uploads and the item's vector of that field
    (0 where the item lacks the field). `unit_items`: the matrices already have unit rows (unit_rows)."""
    out = np.zeros((n_items, len(modalities)), np.float64)
    for k, m in enumerate(modalities):
        fields = [f for f in field_inputs if modality_of.get(f) == m and f in matrices]
        if not fields:
            continue
        for f in fields:
            uploads = _unit(field_inputs[f])  # (n, D)
            items = matrices[f] if unit_items else _unit(matrices[f])  # (I, D)
            cos = (items @ uploads.T).mean(axis=1)  # (I,) mean over the uploads
            out[:, k] += np.where(np.asarray(masks[f], bool), cos, 0.0)
        out[:, k] /= len(fields)
    return out
