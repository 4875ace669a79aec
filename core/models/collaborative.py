"""The collaborative term of a fusion model's score for the listeners it was trained on.

Content fusion adds to the strongest collaborative signal instead of competing with it. After the fusion
network is trained, EASE (closed form), ALS (the `implicit` library) and ItemKNN are fitted on the same training
interactions, each at the catalog's tuned settings (the caller reads them from core.tuning.baseline_store and
passes them in; a member without them gets what the caller's search finds, core.tuning.baselines.member_search),
and added to a known listener's fusion score with weights chosen on the fusion's validation metric over a grid
that includes 0 (so on validation the blend is never worse than the fusion alone) and whose top grows while
validation improves:

    score(u, i) = <user_u, item_i> + bias_i + Σ_m w_m · s_m(u, i)

A weight is searched in units of the ratio of the two models' score spreads (std of the fusion's scores
over the std of the member's), so one grid fits every catalog; the stored weight is the raw multiplier.

The term depends on the listener and the item, never on the item's modalities, so in the explanations it
is part of the listening-history bar (what the listener's history gives the score beside the content) and
the modalities' Shapley values do not change. Queries that are not a known listener (uploads, liked
items) have no such term. Catalogs above MAX_ITEMS items skip it: EASE keeps a dense item × item matrix.
"""
from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.data.interactions import InteractionData
from core.data.metrics import metric_k, ndcg_at_k, recall_at_k, top_k_of_masked
from core.errors import ModelError

MEMBERS = ("ease", "als", "itemknn")  # the collaborative models a fusion model may add, in this order
MAX_ITEMS = 8_000  # EASE's (I, I) float32 matrix is saved with the model: 256 MB at this size
SELECTION_USERS = 2_048  # validation listeners the blend weights are chosen on (a seeded sample above it)
# relative weights searched per member (× the spread ratio); 0 leaves a member out. The grid's top is not a
# bound: a member chosen at it is tried at WEIGHT_GROWTH times more, again and again while validation improves
WEIGHT_GRID = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
WEIGHT_GROWTH = 1.5
MAX_WEIGHT_STEPS = 40  # at most this many growth steps a member (1.5^40: far past any useful weight)
# each member's own settings: the catalog's tuned settings (core.tuning.baseline_store, passed in as
# FusionConfig.collaborative_settings), else what the caller's MemberSearch finds (core.tuning.baselines)
FILE = "collaborative.safetensors"  # the members' arrays, beside the fusion weights
Log = Callable[[str], None]
ScoreFn = Callable[[np.ndarray], np.ndarray]  # user rows (B,) -> (B, I) scores
# (member, data, seed) -> (its settings, how they were chosen, with a "source"): how a member without tuned
# settings gets them (core.tuning.baselines.member_search: a short search of its declared space)
MemberSearch = Callable[[str, InteractionData, int], tuple[dict[str, Any], dict[str, Any]]]


def parse_members(text: str) -> tuple[str, ...]:
    """("ease", "als") from "ease+als"; () from "none"; a ValueError naming the choices otherwise."""
    if text.strip().lower() in ("", "none"):
        return ()
    names = tuple(part.strip().lower() for part in text.split("+"))
    unknown = [n for n in names if n not in MEMBERS]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"collaborative={text!r}; write 'none' or members of {list(MEMBERS)} joined by '+' "
                         "(e.g. 'ease+als'), each once")
    return tuple(n for n in MEMBERS if n in names)


@dataclass
class CollaborativeTerm:
    """Σ_m w_m · s_m(u, i) for the training listeners: the fitted members and their weights."""

    weights: dict[str, float]  # member -> raw score multiplier (> 0; members at weight 0 are dropped)
    settings: dict[str, dict[str, Any]]  # member -> its chosen setting
    train: sp.csr_matrix  # (U, I) binary training interactions (EASE's input rows)
    ease: np.ndarray | None = None  # (I, I) float32 EASE weights, zero diagonal
    als_users: np.ndarray | None = None  # (U, f) float32 ALS user factors
    als_items: np.ndarray | None = None  # (I, f) float32 ALS item factors
    knn: sp.csr_matrix | None = None  # (I, I) ItemKNN's pruned item–item similarity
    record: dict[str, Any] = field(default_factory=dict)  # how it was chosen (grids, validation figures)

    def scores(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or I) float32: the term for those listeners and items."""
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        n = self.train.shape[1] if items is None else len(items)
        out = np.zeros((len(users), n), np.float32)
        if "ease" in self.weights and self.ease is not None:
            b = self.ease if items is None else self.ease[:, np.asarray(items)]
            out += self.weights["ease"] * np.asarray(self.train[users] @ b, np.float32)
        if "als" in self.weights and self.als_users is not None and self.als_items is not None:
            v = self.als_items if items is None else self.als_items[np.asarray(items)]
            out += self.weights["als"] * (self.als_users[users] @ v.T).astype(np.float32)
        if "itemknn" in self.weights and self.knn is not None:
            part = np.asarray((self.train[users] @ self.knn).todense(), np.float32)
            out += self.weights["itemknn"] * (part if items is None else part[:, np.asarray(items)])
        return out

    def header(self) -> dict[str, Any]:
        """What config.json keeps of the term (the arrays go to FILE)."""
        return {"weights": self.weights, "settings": self.settings, "record": self.record}

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays saved in FILE."""
        out = {"train_indptr": self.train.indptr.astype(np.int64), "train_indices": self.train.indices.astype(np.int64),
               "train_shape": np.asarray(self.train.shape, np.int64)}
        if self.ease is not None:
            out["ease"] = self.ease
        if self.als_users is not None and self.als_items is not None:
            out["als_users"], out["als_items"] = self.als_users, self.als_items
        if self.knn is not None:
            out["knn_indptr"], out["knn_indices"] = self.knn.indptr.astype(np.int64), self.knn.indices.astype(np.int64)
            out["knn_data"] = self.knn.data.astype(np.float32)
        return out

    @classmethod
    def from_saved(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> "CollaborativeTerm":
        """The term from config.json's block and FILE's arrays (KeyError when an array is missing)."""
        shape = tuple(int(v) for v in arrays["train_shape"])
        indices = arrays["train_indices"]
        train = sp.csr_matrix((np.ones(len(indices), np.float32), indices, arrays["train_indptr"]), shape=shape)
        weights = {k: float(v) for k, v in header["weights"].items()}
        knn = None
        if "itemknn" in weights:
            knn = sp.csr_matrix((arrays["knn_data"], arrays["knn_indices"], arrays["knn_indptr"]),
                                shape=(shape[1], shape[1]))
        return cls(knn=knn, weights=weights, settings=dict(header.get("settings", {})), train=train,
                   ease=arrays["ease"] if "ease" in weights else None,
                   als_users=arrays["als_users"] if "als" in weights else None,
                   als_items=arrays["als_items"] if "als" in weights else None,
                   record=dict(header.get("record", {})))


def _validation_users(data: InteractionData, seed: int) -> np.ndarray:
    """The validation listeners the weights are chosen on (all, or a seeded sample of SELECTION_USERS)."""
    users = np.flatnonzero(np.diff(data.valid.tocsr().indptr) > 0)
    if users.size > SELECTION_USERS:
        users = np.sort(np.random.default_rng(seed).choice(users, SELECTION_USERS, replace=False))
    return users


class _Judge:
    """Mean validation Recall@K / NDCG@K of dense score rows of fixed `users`, training items masked: what
    every call shares (the mask, the truth rows) is computed once, since the weight search ranks hundreds of
    blends of the same users (the same figures as core.evaluation's topk_indices and metrics)."""

    def __init__(self, users: np.ndarray, data: InteractionData) -> None:
        self.train_rows, self.train_cols = sp.csr_matrix(data.train.tocsr()[users]).nonzero()
        self.truth = sp.csr_matrix(data.valid.tocsr()[users])
        self.lowest, self.highest = np.finfo(np.float32).min, np.finfo(np.float32).max

    def __call__(self, scores: np.ndarray, metric: str) -> float:
        kind, k = metric_k(metric)
        s = np.nan_to_num(np.asarray(scores, np.float32), copy=True, nan=self.lowest, posinf=self.highest,
                          neginf=self.lowest)
        s[self.train_rows, self.train_cols] = -np.inf
        per_user = (recall_at_k if kind == "recall" else ndcg_at_k)(top_k_of_masked(s, k), self.truth)
        return float(np.nanmean(per_user))


def _member(name: str, data: InteractionData, users: np.ndarray, judge: _Judge, seed: int, log: Log,
            tuned: dict[str, Any] | None, search: MemberSearch | None) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The member fitted at its tuned settings (or, without them, at what `search` finds), those settings, and
    how they were chosen."""
    from core.models.baselines import build_baseline

    fixed = {"seed": seed} if name == "als" else {}
    if tuned:
        point, how = dict(tuned), {"source": "tuned settings of the catalog"}
    else:
        check_member_settings((name,), {}, search)
        found, how = search(name, data, seed)
        point = dict(found)
    model = build_baseline(name, **point, **fixed).fit(data)
    value = judge(np.asarray(model.score(users), np.float32), "recall@20")
    log(f"collaborative {name}: {point} ({how['source']}), valid recall@20 {value:.4f}")
    return model, point, {**how, "valid_recall@20": round(value, 6)}


@dataclass
class MemberFits:
    """The members fitted at their chosen settings, and their scores of the validation listeners."""

    members: tuple[str, ...]
    users: np.ndarray  # the validation listeners the weights are chosen on
    judge: _Judge
    fitted: dict[str, Any]  # member -> its fitted model
    settings: dict[str, dict[str, Any]]  # member -> its chosen setting
    grids: dict[str, dict[str, Any]]  # member -> how its settings were chosen, and its validation figure
    parts: dict[str, np.ndarray]  # member -> (B, I) float32 scores of `users`
    seconds: float


def applies(data: InteractionData, members: tuple[str, ...], log: Log | None = None) -> bool:
    """Whether `data` gets a collaborative term of `members`: some members, validation interactions, and at
    most MAX_ITEMS items (logged when the catalog is too large)."""
    if not members or data.valid.nnz == 0:
        return False
    if data.n_items > MAX_ITEMS:
        (log or (lambda _m: None))(f"collaborative term skipped: {data.n_items:,} items is above its limit of "
                                   f"{MAX_ITEMS:,} (EASE keeps a dense item × item matrix)")
        return False
    return True


def check_member_settings(members: tuple[str, ...], tuned: dict[str, dict[str, Any]] | None,
                          search: MemberSearch | None) -> None:
    """Refuse, before anything is fitted, members that have neither tuned settings nor a search to find them."""
    missing = [m for m in members if not (tuned or {}).get(m)]
    if missing and search is None:
        raise ModelError(f"collaborative member(s) {missing} have no tuned settings and no search was given to "
                         "find them: store the catalog's tuned settings (an evaluation run or `python -m "
                         "benchmarks.baselines` does), pass member_search (core.tuning.baselines.member_search), "
                         "or set collaborative='none'")


def fit_members(data: InteractionData, members: tuple[str, ...], seed: int = 0,
                log: Log | None = None, tuned: dict[str, dict[str, Any]] | None = None,
                search: MemberSearch | None = None) -> MemberFits:
    """Each member fitted on data.train at its tuned settings (`tuned`, member -> settings), else at the
    settings `search` finds. They depend on the interactions alone, not on the fusion network, so a fit runs
    them beside the network's training."""
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    users = _validation_users(data, seed)
    judge = _Judge(users, data)
    fitted, settings, grids, parts = {}, {}, {}, {}
    for name in members:
        model, point, how = _member(name, data, users, judge, seed, say, (tuned or {}).get(name), search)
        fitted[name], settings[name] = model, point
        grids[name] = how
        parts[name] = np.asarray(model.score(users), np.float32)
    return MemberFits(members=members, users=users, judge=judge, fitted=fitted, settings=settings, grids=grids,
                      parts=parts, seconds=time.perf_counter() - t0)


def weigh_members(fusion_scores: ScoreFn, data: InteractionData, fits: MemberFits, metric: str,
                  log: Log | None = None) -> CollaborativeTerm | None:
    """The term of the fitted members with weights chosen on the fusion's validation `metric` over
    WEIGHT_GRID (which includes 0); None when every weight is chosen as 0."""
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    members, users, judge, parts = fits.members, fits.users, fits.judge, fits.parts
    base = np.asarray(fusion_scores(users), np.float32)  # (B, I)
    spread = float(np.std(base)) or 1.0
    scale = {name: spread / (float(np.std(parts[name])) or 1.0) for name in members}
    alone = judge(base, metric)
    best = (alone, tuple(0.0 for _ in members))
    def blend(combo: tuple[float, ...]) -> float:
        return judge(base + sum(w * scale[m] * parts[m] for w, m in zip(combo, members)), metric)

    for combo in itertools.product(WEIGHT_GRID, repeat=len(members)):
        if not any(combo):
            continue
        value = blend(combo)
        if value > best[0] + 1e-9:
            best = (value, combo)
    best, extended = _grow_top_weights(blend, best, len(members))
    chosen = {m: w * scale[m] for w, m in zip(best[1], members) if w > 0}
    seconds = fits.seconds + time.perf_counter() - t0
    record = {"metric": f"valid {metric}", "fusion_alone": round(alone, 6), "blend": round(best[0], 6),
              "relative_weights": dict(zip(members, best[1])), "weight_grid": list(WEIGHT_GRID),
              "weights_grown_past_grid": {members[i]: w for i, w in extended.items()},
              "members": fits.grids, "users": int(users.size), "seconds": round(seconds, 2)}
    say(f"collaborative term: valid {metric} {alone:.4f} alone → {best[0]:.4f} with relative weights "
        f"{dict(zip(members, best[1]))} ({seconds:.1f} s)")
    if not chosen:
        return None
    fitted = fits.fitted
    ease = fitted["ease"].weights if "ease" in chosen else None
    als = fitted.get("als") if "als" in chosen else None
    train = sp.csr_matrix(data.train, dtype=np.float32)
    train.sum_duplicates()
    train.data[:] = 1.0
    knn = fitted["itemknn"].similarity.tocsr() if "itemknn" in chosen else None
    return CollaborativeTerm(weights=chosen, settings={m: fits.settings[m] for m in chosen}, train=train,
                             ease=ease, knn=knn,
                             als_users=None if als is None else als._user_vectors,
                             als_items=None if als is None else als._item_vectors, record=record)


def _grow_top_weights(blend: Callable[[tuple[float, ...]], float], best: tuple[float, tuple[float, ...]],
                      n: int) -> tuple[tuple[float, tuple[float, ...]], dict[int, float]]:
    """`best` after growing every weight chosen at the grid's top by WEIGHT_GROWTH while validation improves
    (the others held), so the grid's top never bounds the blend; returns it and the grown weights by index."""
    top = WEIGHT_GRID[-1]
    extended: dict[int, float] = {}
    for i in range(n):
        if best[1][i] < top:
            continue
        for _ in range(MAX_WEIGHT_STEPS):
            trial = tuple(w * WEIGHT_GROWTH if j == i else w for j, w in enumerate(best[1]))
            value = blend(trial)
            if not value > best[0] + 1e-9:
                break
            best = (value, trial)
            extended[i] = trial[i]
    return best, extended


def is_finite_weights(weights: dict[str, float]) -> bool:
    """Whether every stored weight is a finite number (a damaged config.json is refused on load)."""
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in weights.values())
