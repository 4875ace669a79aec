"""Checks explanations against the demo catalog's ground truth.

The demo generator knows each simulated listener's taste; for listeners whose taste lives in one modality
(`dominant_modality`: tempo → audio, cover palette → image, words → text) a faithful explanation of their
recommendations should name that modality. Two rates are measured over the top-k recommendations of each
such listener (the known-user path, training items excluded):

  dominant_top_rate   share of items whose largest modality Shapley value is the listener's dominant modality
                      (target ≥ 0.90)
  deletion_drop_rate  share of items whose score falls when their top-attributed modality is removed
                      (target ≥ 0.95)

The same listeners are then checked as new users (`as_new_users`): their training items as liked items,
a content query, so the popularity prior (core.serving.prior) is in the score at its weight and is a Shapley player
beside the modalities; an item counts as a hit only when the listener's modality beats the prior too.

Run it: `python -m core explain-check` (core.cli.explain; the demo catalog, its embeddings and active model in the
store).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from core.catalog.model import Catalog
from core.encoders.embeddings import EmbeddingSet
from core.errors import StoreError
from core.explain.service import ExplainService
from core.serving.prior import DEFAULT_PRIOR_WEIGHT, PRIOR
from core.serving.service import Query, RecommendService
from core.store.database import Store

TARGET_DOMINANT = 0.90
TARGET_DELETION = 0.95
Progress = Callable[[int, int, str], None]


def _catalog(store_or_catalog: Store | Catalog) -> Catalog:
    if isinstance(store_or_catalog, Catalog):
        return store_or_catalog
    from core.catalog.demo import CATALOG_NAME

    return store_or_catalog.load_catalog(CATALOG_NAME)


def run_check(store_or_catalog: Store | Catalog, embeddings: EmbeddingSet, model: Any,
              max_listeners: int | None = None, k: int = 10, service: RecommendService | None = None,
              progress: Progress | None = None, seed: int = 0, use_shap: bool = False,
              prior_weight: float = DEFAULT_PRIOR_WEIGHT) -> dict[str, Any]:
    """Both ground-truth rates (with counts, per-modality rates and what chance would give) on the demo.

    `max_listeners` caps the single-modality listeners checked (a seeded sample, for speed). Shapley values
    come from the recommend service's exact enumeration, or with `use_shap` from the explain service's shap
    KernelExplainer (the same numbers, slower).
    """
    from core.catalog.demo import load_ground_truth

    start = time.perf_counter()
    catalog = _catalog(store_or_catalog)
    truth = load_ground_truth(catalog)
    service = service or RecommendService(catalog, embeddings, model, encoders=None)
    explainer = ExplainService(service) if use_shap else None
    modalities = list(service.modalities)
    known = set(service.user_ids)
    listeners = sorted(u for u, t in truth["listeners"].items()
                       if t.get("dominant_modality") in modalities and u in known)
    if not listeners:
        raise StoreError(f"catalog {catalog.name!r} has no single-modality listeners the model knows; the check "
                         "needs the demo catalog (with its ground_truth.json) and a model trained on it")
    if max_listeners is not None and max_listeners < len(listeners):
        rng = np.random.default_rng(seed)
        listeners = sorted(rng.choice(listeners, size=max_listeners, replace=False).tolist())

    records = []  # (listener, dominant, top-attributed modality, score before, score after)
    new_users = []  # the same, for the listener's training items as a content query (the prior applies)
    for n, user in enumerate(listeners):
        dominant = truth["listeners"][user]["dominant_modality"]
        encoded = service.encode_query(Query(user_id=user))
        result = service.recommend(encoded, k=k)
        for rec in result.items:
            row = catalog.index_of(rec.item_id)
            present = [m for m, p in zip(modalities, service.present[row]) if p]
            if not present:
                continue
            # the recommend service's contributions are the exact Shapley values of the same game
            phi = explainer.modality_shapley(encoded.vector, row)[0] if use_shap else rec.contributions
            top = max(present, key=lambda m: phi[m])
            after = float(service.scores(encoded.vector, np.array([row]),
                                         keep=[m for m in modalities if m != top])[0])
            records.append((user, dominant, top, rec.score, after))
        liked = [catalog.items[int(r)].id for r in service.training_rows(service.user_row(user))]
        as_new = service.encode_query(Query(liked=liked))
        a, w = service.offset_coefficients(as_new, prior_weight)
        for rec in service.recommend(as_new, k=k, prior_weight=prior_weight).items:
            row = catalog.index_of(rec.item_id)
            present = [m for m, p in zip(modalities, service.present[row]) if p]
            if not present:
                continue
            players = {**{m: rec.contributions[m] for m in present}, **rec.terms}
            top = max(players, key=lambda m: players[m])
            dropped_modality = max(present, key=lambda m: rec.contributions[m])
            after = float(service.scores(as_new.vector, np.array([row]),
                                         keep=[m for m in modalities if m != dropped_modality])[0]
                          + service.shift(a, w, np.array([row]))[0])
            new_users.append((user, dominant, top, rec.score, after, rec.terms.get(PRIOR, 0.0)))
        if progress is not None:
            progress(n + 1, len(listeners), user)

    dominant = np.array([r[1] for r in records])
    top = np.array([r[2] for r in records])
    dropped = np.array([r[4] < r[3] for r in records])
    hits = dominant == top
    by_modality = {}
    for m in modalities:
        sel = dominant == m
        if sel.any():
            by_modality[m] = {"listeners": len({r[0] for r in records if r[1] == m}), "items": int(sel.sum()),
                              "dominant_top_rate": float(hits[sel].mean()),
                              "deletion_drop_rate": float(dropped[sel].mean())}
    # agreement expected if the top-attributed modality ignored who the listener is
    top_share = {m: float((top == m).mean()) for m in modalities}
    dom_share = {m: float((dominant == m).mean()) for m in modalities}
    new_dominant = np.array([r[1] for r in new_users])
    new_hits = new_dominant == np.array([r[2] for r in new_users])
    new_dropped = np.array([r[4] < r[3] for r in new_users])
    as_new_users = {
        "items": len(new_users), "prior_weight": float(prior_weight),
        "dominant_top_rate": float(new_hits.mean()) if len(new_users) else 0.0,
        "deletion_drop_rate": float(new_dropped.mean()) if len(new_users) else 0.0,
        "prior_top_rate": float(np.mean([r[2] == PRIOR for r in new_users])) if new_users else 0.0,
        "mean_prior_part": float(np.mean([r[5] for r in new_users])) if new_users else 0.0,
        "by_modality": {m: float(new_hits[new_dominant == m].mean()) for m in modalities
                        if (new_dominant == m).any()},
    }
    return {
        "catalog": catalog.name, "k": k, "listeners": len(listeners), "items": len(records),
        "as_new_users": as_new_users,
        "dominant_top_rate": float(hits.mean()) if len(records) else 0.0, "dominant_top_hits": int(hits.sum()),
        "deletion_drop_rate": float(dropped.mean()) if len(records) else 0.0,
        "deletion_drops": int(dropped.sum()),
        "target_dominant": TARGET_DOMINANT, "target_deletion": TARGET_DELETION,
        "chance": 1.0 / len(modalities),
        "agreement_if_independent": float(sum(top_share[m] * dom_share[m] for m in modalities)),
        "top_modality_share": top_share, "by_modality": by_modality,
        "seconds": time.perf_counter() - start,
    }


def format_report(result: dict[str, Any]) -> str:
    """The check's result as a small text table."""
    def mark(rate: float, target: float) -> str:
        return "ok" if rate >= target else "BELOW TARGET"

    lines = [
        f"Explanation ground-truth check on {result['catalog']!r}: {result['listeners']} single-modality "
        f"listeners, top-{result['k']} each, {result['items']} explained items ({result['seconds']:.1f} s)",
        f"  dominant modality has the largest Shapley value: {result['dominant_top_rate']:.1%} "
        f"({result['dominant_top_hits']}/{result['items']}; target {result['target_dominant']:.0%}: "
        f"{mark(result['dominant_top_rate'], result['target_dominant'])}; chance {result['chance']:.0%}, "
        f"if independent of the listener {result['agreement_if_independent']:.1%})",
        f"  removing the top-attributed modality lowers the score: {result['deletion_drop_rate']:.1%} "
        f"({result['deletion_drops']}/{result['items']}; target {result['target_deletion']:.0%}: "
        f"{mark(result['deletion_drop_rate'], result['target_deletion'])})",
        "  by dominant modality:  modality  listeners  items  dominant-top  deletion-drop",
    ]
    for m, r in result["by_modality"].items():
        lines.append(f"                         {m:<8}  {r['listeners']:>9}  {r['items']:>5}  "
                     f"{r['dominant_top_rate']:>12.1%}  {r['deletion_drop_rate']:>13.1%}")
    new = result.get("as_new_users")
    if new and new["items"]:
        lines += [
            f"  the same listeners as new users (their training items liked; popularity prior × "
            f"{new['prior_weight']:.2f} as a Shapley player, mean part {new['mean_prior_part']:+.3f}), "
            f"{new['items']} items:",
            f"    dominant modality beats the other modalities and the prior: {new['dominant_top_rate']:.1%} "
            f"({mark(new['dominant_top_rate'], result['target_dominant'])}; "
            + ", ".join(f"{m} {v:.1%}" for m, v in new["by_modality"].items())
            + f"); the prior on top: {new['prior_top_rate']:.1%}",
            f"    removing the top-attributed modality lowers the score: {new['deletion_drop_rate']:.1%} "
            f"({mark(new['deletion_drop_rate'], result['target_deletion'])})",
        ]
    return "\n".join(lines)
