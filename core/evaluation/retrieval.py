"""Cross-modal retrieval from content queries: held-out items queried with their own text, image and audio.

The protocol (run by `python -m benchmarks.retrieval`):
  - held out: a seeded share (20%) of the items of every category. The model is trained with their
    interactions removed, so they stay in the catalog as cold items, scored from their content alone (a
    model that never saw them played); the rest of the catalog is unchanged.
  - queries: every held-out item that carries modality m is one query of modality m, made of its own
    stored field vectors of m (what its file encodes to when uploaded), through the recommend service as
    a new user's upload: `RecommendService.encode_fields`, then the service's own ranking of ALL items.
  - self@k: the query item itself among the top k.
  - precision@k: the share of the top k OTHER items (the query item removed) in the query's category.
  - chance: the share of the other candidates in the query's category (what a random top k scores).
  - restricted to modality r: the same query ranked by the service's single-modality what-if {r: 1},
    which puts the items carrying r first; its chance counts the other items that carry r.
  - raw kNN: cosine similarity between the query's raw encoder vectors and every other item's vectors of
    the same modality (among the items that carry it); per field, and for the modality's fields joined
    (each field L2-normalised, so the joined cosine is the mean of the fields' cosines).
  - self@1: the query item itself ranked first (the exact match a room expects on top); MRR@k: the mean
    of 1 / the query item's own rank (0 when it is not in the top k).
The popularity prior's weight, the weight λ of the similarity to the upload and the weight μ of "items like
your upload" (core.serving.similarity) are chosen together on one half of the held-out items (per category), by
`criterion` ((precision@k + self@1 + MRR@k) / 3, averaged over query modalities), and the figures are
reported on the other half (see `split_halves`, `choose_weights`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from core.serving.index import top_k_rows
from core.serving.service import EncodedQuery, RecommendService

Progress = Callable[[int, int, str], None]
MODALITIES = ("text", "image", "audio")


# -- splits ---------------------------------------------------------------------------------------------
def held_out_rows(labels: Sequence[Any], share: float = 0.2, seed: int = 0) -> np.ndarray:
    """Sorted rows of a seeded `share` of the items of each category (round(share × n) each; items
    without a category are never held out)."""
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1 (got {share})")
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for label in sorted({str(x) for x in labels if x is not None}):
        rows = np.array([i for i, x in enumerate(labels) if x is not None and str(x) == label], np.int64)
        take = int(round(share * len(rows)))
        out += rng.permutation(rows)[:take].tolist()
    return np.array(sorted(out), dtype=np.int64)


def split_halves(rows: np.ndarray, labels: Sequence[Any], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(validation, test) halves of `rows`, seeded, per category (the validation half takes the odd one)."""
    rng = np.random.default_rng(seed + 1)
    valid: list[int] = []
    test: list[int] = []
    rows = np.asarray(rows, np.int64)
    for label in sorted({str(labels[r]) for r in rows}):
        members = rng.permutation(rows[[str(labels[r]) == label for r in rows]])
        cut = (len(members) + 1) // 2
        valid += members[:cut].tolist()
        test += members[cut:].tolist()
    return np.array(sorted(valid), np.int64), np.array(sorted(test), np.int64)


# -- metrics --------------------------------------------------------------------------------------------
def self_at_k(ranking: np.ndarray, query_row: int, k: int) -> float:
    """1.0 when the query item itself is among the first k rows of `ranking`, else 0.0."""
    return float(int(query_row) in set(np.asarray(ranking)[:k].tolist()))


def precision_at_k(ranking: np.ndarray, query_row: int, labels: Sequence[Any], k: int) -> float:
    """The share of the first k rows of `ranking` other than the query item that share its category."""
    others = [int(r) for r in ranking if int(r) != int(query_row)][:k]
    if not others:
        return 0.0
    want = labels[int(query_row)]
    return sum(labels[r] == want for r in others) / k


def chance_precision(query_row: int, labels: Sequence[Any], candidates: np.ndarray) -> float:
    """The share of the candidates (a boolean mask over items), the query item left out, in its category."""
    mask = np.asarray(candidates, bool).copy()
    mask[int(query_row)] = False
    if not mask.any():
        return 0.0
    want = labels[int(query_row)]
    return float(np.mean([labels[r] == want for r in np.flatnonzero(mask)]))


def reciprocal_rank(ranking: np.ndarray, query_row: int, k: int) -> float:
    """1 / the query item's own 1-based rank when it is among the first k rows of `ranking`, else 0."""
    first = [int(r) for r in np.asarray(ranking)[:k]]
    return 1.0 / (first.index(int(query_row)) + 1) if int(query_row) in first else 0.0


def per_query(rankings: Sequence[np.ndarray], query_rows: Sequence[int], labels: Sequence[Any],
              k: int) -> dict[str, list[float]]:
    """Per query: precision@k, self@k, self@1 (the query item itself ranked first: the exact match) and the
    reciprocal rank of the query item within the top k (whose mean is MRR@k)."""
    pairs = list(zip(rankings, query_rows))
    return {f"precision@{k}": [precision_at_k(r, q, labels, k) for r, q in pairs],
            f"self@{k}": [self_at_k(r, q, k) for r, q in pairs],
            "self@1": [self_at_k(r, q, 1) for r, q in pairs],
            f"mrr@{k}": [reciprocal_rank(r, q, k) for r, q in pairs]}


def summarise(rankings: Sequence[np.ndarray], query_rows: Sequence[int], labels: Sequence[Any],
              k: int) -> dict[str, float]:
    """Mean precision@k, self@k, self@1 and MRR@k over the queries (0 for each with no query)."""
    return {name: float(np.mean(v)) if len(v) else 0.0
            for name, v in per_query(rankings, query_rows, labels, k).items()}


# -- rankings -------------------------------------------------------------------------------------------
def raw_knn_ranking(matrix: np.ndarray, present: np.ndarray, query_row: int, k: int) -> np.ndarray:
    """The k + 1 rows with the highest cosine similarity to the query row among the items that carry the
    field (the query item itself included, so it can be found; ties by lower row)."""
    x = np.asarray(matrix, np.float64)
    norms = np.linalg.norm(x, axis=1)
    unit = np.divide(x, norms[:, None], out=np.zeros_like(x), where=norms[:, None] > 0)
    scores = unit @ unit[int(query_row)]
    scores[~np.asarray(present, bool)] = -np.inf
    order = np.lexsort((np.arange(len(scores)), -scores))
    order = order[np.isfinite(scores[order])]
    return order[:k + 1]


def modality_fields(service: RecommendService, modality: str) -> list[str]:
    """The embedding set's fields of `modality` that the model reads."""
    return [f for f in service.embeddings.fields_of(modality)
            if modality in service.modalities]


def item_query(service: RecommendService, row: int, modality: str) -> EncodedQuery:
    """Item `row`'s own stored vectors of `modality` as an upload query (not a known listener)."""
    emb = service.embeddings
    return service.encode_fields({f: emb.matrices[f][row][None, :] for f in modality_fields(service, modality)})


def fusion_ranking(service: RecommendService, encoded: EncodedQuery, k: int, prior_weight: float,
                   restrict: str | None = None, learned_bias: bool = False,
                   similarity_weight: float = 0.0, like_weight: float = 0.0,
                   closest_weight: float = 0.0) -> np.ndarray:
    """The service's top k + 1 rows for the encoded query (nothing excluded), optionally restricted to one
    modality with the single-modality what-if; `learned_bias` scores with the model's learned item bias
    instead of the prior and without the similarity to the upload (how content queries were ranked before,
    for comparison)."""
    weights = None if restrict is None else {m: float(m == restrict) for m in service.modalities}
    a, w = (1.0, 0.0) if learned_bias else service.offset_coefficients(encoded, prior_weight)
    lam = 0.0 if learned_bias else similarity_weight
    extra = service.similarity_parts(encoded, None, weights, lam).sum(axis=1)
    if not learned_bias and (like_weight or closest_weight):  # as the service does (what-if: weighted modalities)
        other = service.term_extra(service.score_terms(encoded, prior_weight, like_weight, weights,
                                                       closest_weight=closest_weight))
        if other is not None:
            extra = extra + other
    rows, _ = service.top_rows(encoded.vector, k + 1, (), weights, a, w, extra=extra)
    return rows


def _carriers(service: RecommendService, modality: str) -> np.ndarray:
    return service.present[:, service.modalities.index(modality)]


def evaluate_retrieval(service: RecommendService, labels: Sequence[Any], query_rows: np.ndarray, k: int = 10,
                       prior_weight: float = 0.0, restricted: bool = True,
                       progress: Progress | None = None, similarity_weight: float = 0.0,
                       like_weight: float = 0.0, closest_weight: float = 0.0) -> dict[str, dict[str, Any]]:
    """Per query modality: chance, the fusion model's precision@k and self@k (prior at `prior_weight`,
    similarity to the upload at `similarity_weight`, "items like your upload" at `like_weight`), the same restricted to each modality (single-modality
    what-if), raw-encoder cosine kNN (joined and per field), and (with `restricted`) the fusion model scored
    with its learned item bias instead of the prior and no similarity part, and with neither prior nor
    similarity part (the joint space alone)."""
    emb = service.embeddings
    out: dict[str, dict[str, Any]] = {}
    mods = [m for m in MODALITIES if m in service.modalities]
    everyone = np.ones(service.n_items, bool)
    for n_mod, m in enumerate(mods):
        carries = _carriers(service, m)
        rows = [int(r) for r in query_rows if carries[r] and labels[r] is not None]
        encoded = [item_query(service, r, m) for r in rows]
        fusion = [fusion_ranking(service, e, k, prior_weight, similarity_weight=similarity_weight,
                                 like_weight=like_weight, closest_weight=closest_weight) for e in encoded]
        entry: dict[str, Any] = {
            "queries": len(rows), "query_rows": rows,
            "chance": float(np.mean([chance_precision(r, labels, everyone) for r in rows])) if rows else 0.0,
            "chance_with_modality": float(np.mean([chance_precision(r, labels, carries) for r in rows]))
            if rows else 0.0,
            "fusion": summarise(fusion, rows, labels, k),
            "per_query": {"fusion": per_query(fusion, rows, labels, k)},
        }
        fields = modality_fields(service, m)
        joined = np.hstack([emb.matrices[f] for f in fields])
        joined_rankings = [raw_knn_ranking(joined, carries, r, k) for r in rows]
        entry["raw_knn"] = summarise(joined_rankings, rows, labels, k)
        entry["raw_knn"]["fields"] = fields
        entry["per_query"]["raw_knn"] = per_query(joined_rankings, rows, labels, k)
        entry["raw_knn_fields"] = {}  # every single field, even when the modality has only one
        for f in fields:
            ranked = [raw_knn_ranking(emb.matrices[f], emb.masks[f], r, k) for r in rows]
            entry["raw_knn_fields"][f] = summarise(ranked, rows, labels, k)
            entry["per_query"][f"raw_knn:{f}"] = per_query(ranked, rows, labels, k)
        if restricted:
            entry["fusion_learned_bias"] = summarise(
                [fusion_ranking(service, e, k, prior_weight, learned_bias=True) for e in encoded], rows, labels, k)
            entry["fusion_joint_space"] = summarise(
                [fusion_ranking(service, e, k, 0.0) for e in encoded], rows, labels, k)
            entry["restricted"] = {}
            for r_mod in mods:
                ranked = [fusion_ranking(service, e, k, prior_weight, restrict=r_mod,
                                         similarity_weight=similarity_weight, like_weight=like_weight,
                                         closest_weight=closest_weight)
                          for e in encoded]
                carriers = _carriers(service, r_mod)
                entry["restricted"][r_mod] = {
                    **summarise(ranked, rows, labels, k),
                    "chance": float(np.mean([chance_precision(r, labels, carriers) for r in rows])) if rows else 0.0,
                    "lacking_in_top": float(np.mean([(~carriers[np.asarray(x)[:k]]).mean() for x in ranked]))
                    if rows else 0.0}
        out[m] = entry
        if progress is not None:
            progress(n_mod + 1, len(mods), m)
    return out


def criterion(metrics: dict[str, float], k: int = 10) -> float:
    """The weights' selection criterion for one query modality: (precision@k + self@1 + MRR@k) / 3, the
    genre precision of the other results beside whether the query item itself comes first and how near
    the top it is."""
    return (metrics[f"precision@{k}"] + metrics["self@1"] + metrics[f"mrr@{k}"]) / 3


CRITERION = "mean over query modalities of (precision@{k} + self@1 + MRR@{k}) / 3"


def selection_score(result: dict[str, dict[str, Any]], k: int = 10) -> float:
    """The criterion the prior, similarity and like weights are chosen by: the mean over query modalities
    of `criterion` of the fusion model's figures."""
    parts = [criterion(r["fusion"], k) for r in result.values() if r["queries"]]
    return float(np.mean(parts)) if parts else 0.0


Weights = tuple[float, float, float, float]  # (prior w, similarity λ, like μ, closest match κ)


def choose_weights(service: RecommendService, labels: Sequence[Any], valid_rows: np.ndarray,
                   prior_grid: Sequence[float], similarity_grid: Sequence[float], like_grid: Sequence[float],
                   k: int = 10, progress: Progress | None = None,
                   details: dict[Weights, dict[str, dict[str, float]]] | None = None,
                   closest_grid: Sequence[float] = (0.0,)) -> tuple[Weights, dict[Weights, float]]:
    """((prior weight, similarity weight λ, like weight μ, closest-match weight κ) best on the validation
    rows, criterion per combination); ties go to the smaller κ, then μ, then λ, then prior weight.
    `details`, when given, receives each combination's figures per query modality (precision@k, self@k,
    self@1, MRR@k).

    Each query is encoded once and its score split into its parts (joint space, prior, similarity to the
    upload, items like the upload, closest match: score = joint + w · prior + λ · similarity + μ · like +
    κ · closest, as the service ranks); every combination of the grid then ranks from those parts.
    """
    from core.serving.similarity import closest_match

    mods = [m for m in MODALITIES if m in service.modalities]
    parts: dict[str, list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}
    for n_mod, m in enumerate(mods):
        carries = _carriers(service, m)
        rows = [int(r) for r in valid_rows if carries[r] and labels[r] is not None]
        parts[m] = []
        for r in rows:
            e = item_query(service, r, m)
            joint = service.scores(e.vector) + service.shift(0.0, 0.0)
            like = np.zeros(service.n_items) if e.like is None else e.like
            closest = np.zeros(service.n_items) if e.similarity is None else closest_match(e.similarity)
            parts[m].append((r, joint, service.similarity_parts(e, similarity_weight=1.0).sum(axis=1), like,
                             closest))
        if progress is not None:
            progress(n_mod + 1, len(mods), f"{m} queries encoded")
    scores: dict[Weights, float] = {}
    for w in prior_grid:
        for lam in similarity_grid:
            for mu in like_grid:
                for kappa in closest_grid:
                    result = {}
                    for m, queries in parts.items():
                        ranked = [top_k_rows(joint + float(w) * service.prior + float(lam) * sim + float(mu) * like
                                             + float(kappa) * closest, k + 1)
                                  for _, joint, sim, like, closest in queries]
                        result[m] = {"queries": len(queries),
                                     "fusion": summarise(ranked, [q[0] for q in queries], labels, k)}
                    key = (float(w), float(lam), float(mu), float(kappa))
                    scores[key] = selection_score(result, k)
                    if details is not None:
                        details[key] = {m: r["fusion"] for m, r in result.items()}
    best = max(sorted(scores), key=lambda p: (round(scores[p], 12), -p[3], -p[2], -p[1], -p[0]))
    return best, scores
