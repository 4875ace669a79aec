"""Turn a catalog's interactions into integer-indexed train/valid/test matrices (InteractionData).

Splits:
    label          the catalog's own `split` column (MMRec x_label 0/1/2 → train/valid/test)
    random         per user, a seeded shuffle cut 8:1:1 (ratios configurable)
    leave-one-out  per user, the last item (by timestamp; random when there are none) → test, the one
                   before → valid
    temporal       per user, ordered by timestamp and cut 80/10/10: later interactions → test
    auto           label when every interaction carries a split label, else random

Users with fewer than `min_interactions` interactions keep them all in train (they are trained on but
never evaluated). Items are all catalog items in catalog order, so items without interactions (cold
items) are still rankable. A (user, item) pair that occurs more than once counts once: under `label` it
keeps its earliest split (train before valid before test, so nothing seen in training is tested), under
the other splits its earliest timestamp.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.catalog.model import SPLITS, Catalog
from core.encoders.embeddings import EmbeddingSet
from core.errors import CatalogError
from core.data.interactions import InteractionData

SPLIT_METHODS: tuple[str, ...] = ("auto", "label", "random", "leave-one-out", "temporal")
_CODE = {"train": 0, "valid": 1, "test": 2}


@dataclass(frozen=True)
class SplitConfig:
    """How the non-label splits cut each user's interactions."""

    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train/valid/test share for "random" and "temporal"
    min_interactions: int = 3  # fewer than this → all in train (one each for train, valid and test needs 3)
    loo_pick: str = "auto"  # leave-one-out: "last" (needs timestamps), "random", or "auto" (last if timestamps)


def has_split_labels(catalog: Catalog) -> bool:
    """True when every interaction carries a train/valid/test label."""
    inter = catalog.interactions
    if len(inter) == 0 or "split" not in inter:
        return False
    labels = inter["split"].astype("string")
    return bool(labels.notna().all() and labels.isin(SPLITS).all())


def build_interaction_data(catalog: Catalog, embeddings: EmbeddingSet | None, split: str = "auto",
                           seed: int = 0, **kw: Any) -> InteractionData:
    """Split the catalog's interactions into binary (users × catalog items) train/valid/test matrices.

    `kw` overrides SplitConfig fields (ratios, min_interactions, loo_pick). Deterministic for a seed.
    """
    config = SplitConfig(**kw)
    if split not in SPLIT_METHODS:
        raise ValueError(f"unknown split {split!r}; choose one of {list(SPLIT_METHODS)}")
    if split == "auto":
        split = "label" if has_split_labels(catalog) else "random"

    item_ids = catalog.item_ids
    frame = _indexed_interactions(catalog)
    user_ids = sorted(frame["user_id"].unique().tolist())
    frame["u"] = pd.Categorical(frame["user_id"], categories=user_ids).codes.astype(np.int64)

    if split == "label":
        codes, name = _label_codes(catalog, frame), "x_label"
        frame = frame.assign(code=codes)
        # a pair seen in several splits keeps the earliest (train < valid < test)
        frame = frame.sort_values(["u", "i", "code"], kind="stable").drop_duplicates(["u", "i"])
    else:
        frame = _dedup_by_time(frame)
        if split == "random":
            codes, name = _cut(frame, _random_key(frame, seed), config), _ratio_name("random", config.ratios)
        elif split == "temporal":
            _require_timestamps(catalog, frame, "temporal")
            codes, name = _cut(frame, frame["timestamp"].to_numpy(np.float64), config), "temporal"
        else:
            codes, name = _leave_one_out(catalog, frame, seed, config), "leave-one-out"
        frame = frame.assign(code=codes)

    shape = (len(user_ids), len(item_ids))
    mats = [_matrix(frame[frame["code"] == c], shape) for c in range(3)]
    return InteractionData(user_ids=[str(u) for u in user_ids], item_ids=list(item_ids), train=mats[0],
                           valid=mats[1], test=mats[2], embeddings=align_embeddings(embeddings, item_ids),
                           split_name=name, seed=seed)


def align_embeddings(embeddings: EmbeddingSet | None, item_ids: list[str]) -> EmbeddingSet | None:
    """The embedding set re-indexed to `item_ids` order; CatalogError names items it lacks."""
    if embeddings is None:
        return None
    if list(embeddings.item_ids) == list(item_ids):
        return embeddings
    position = {item_id: i for i, item_id in enumerate(embeddings.item_ids)}
    missing = [i for i in item_ids if i not in position]
    if missing:
        raise CatalogError(f"the embedding set lacks {len(missing)} catalog item(s), e.g. {missing[:5]}; "
                           "encode the catalog again so every item has a row")
    return embeddings.subset(np.array([position[i] for i in item_ids], dtype=np.int64))


# -- helpers ---------------------------------------------------------------------------------------------

def _indexed_interactions(catalog: Catalog) -> pd.DataFrame:
    """user_id, item column i, timestamp, split and the original row number; unknown items are an error."""
    inter = catalog.interactions
    if len(inter) == 0:
        raise CatalogError(f"catalog {catalog.name!r} has no interactions; import a user_id,item_id CSV "
                           "(python -m core import interactions) before training or evaluating")
    index = {item_id: i for i, item_id in enumerate(catalog.item_ids)}
    item_col = inter["item_id"].astype(str)
    cols = item_col.map(index)
    if cols.isna().any():
        row = int(np.flatnonzero(cols.isna().to_numpy())[0])
        raise CatalogError(f"interactions row {row}: item_id {item_col.iloc[row]!r} is not an item of catalog "
                           f"{catalog.name!r} ({int(cols.isna().sum())} such row(s)); fix or drop those rows")
    ts = inter["timestamp"] if "timestamp" in inter else pd.Series(np.nan, index=inter.index)
    return pd.DataFrame({
        "user_id": inter["user_id"].astype(str).to_numpy(),
        "i": cols.to_numpy(np.int64),
        "timestamp": pd.to_numeric(ts, errors="coerce").to_numpy(np.float64),
        "row": np.arange(len(inter), dtype=np.int64),
    })


def _label_codes(catalog: Catalog, frame: pd.DataFrame) -> np.ndarray:
    """0/1/2 per row from the split column; CatalogError names the first unlabelled or unknown row."""
    labels = catalog.interactions["split"].astype("string").reset_index(drop=True)
    bad = labels.isna() | ~labels.isin(SPLITS).fillna(False)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CatalogError(f"interactions row {row}: split {labels.iloc[row]!r} is not one of {list(SPLITS)} "
                           f"({int(bad.sum())} such row(s)); label every row, or use split='random'")
    return labels.map(_CODE).to_numpy(np.int64)[frame["row"].to_numpy()]


def _dedup_by_time(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item): the earliest timestamp (then the earliest row), sorted by user and item."""
    frame = frame.sort_values(["u", "i", "timestamp", "row"], kind="stable", na_position="last")
    return frame.drop_duplicates(["u", "i"]).reset_index(drop=True)


def _random_key(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A seeded random order; the frame is sorted by (user, item) so the key does not depend on row order."""
    return np.random.default_rng(seed).random(len(frame))


def _positions(frame: pd.DataFrame, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's 0-based position within its user when ordered by `key` (ties by item), and the user's count."""
    order = np.lexsort((frame["i"].to_numpy(), key, frame["u"].to_numpy()))
    u_sorted = frame["u"].to_numpy()[order]
    starts = np.searchsorted(u_sorted, u_sorted, side="left")
    pos = np.empty(len(frame), dtype=np.int64)
    pos[order] = np.arange(len(frame)) - starts
    counts = np.bincount(frame["u"].to_numpy()).astype(np.int64)
    return pos, counts[frame["u"].to_numpy()]


def _cut(frame: pd.DataFrame, key: np.ndarray, config: SplitConfig) -> np.ndarray:
    """0/1/2 per row: the last share by `key` → test, the share before it → valid, the rest → train."""
    train_r, valid_r, test_r = config.ratios
    total = train_r + valid_r + test_r
    if min(config.ratios) < 0 or total <= 0:
        raise ValueError(f"split ratios {config.ratios} must be ≥ 0 and sum to more than 0")
    pos, n = _positions(frame, key)
    # at least one each for valid and test when that share is asked for, and at least one left for train
    n_test = np.where(test_r > 0, np.maximum(1, np.rint(n * test_r / total)), 0).astype(np.int64)
    n_valid = np.where(valid_r > 0, np.maximum(1, np.rint(n * valid_r / total)), 0).astype(np.int64)
    eligible = (n >= config.min_interactions) & (n - n_test - n_valid >= 1)
    code = np.zeros(len(frame), dtype=np.int64)
    code[eligible & (pos >= n - n_test)] = 2
    code[eligible & (pos >= n - n_test - n_valid) & (pos < n - n_test)] = 1
    return code


def _require_timestamps(catalog: Catalog, frame: pd.DataFrame, split: str) -> None:
    """CatalogError unless every interaction has a timestamp."""
    missing = np.isnan(frame["timestamp"].to_numpy())
    if missing.any():
        row = int(frame["row"].to_numpy()[missing][0])
        raise CatalogError(f"the {split} split needs a timestamp on every interaction of catalog {catalog.name!r}; "
                           f"row {row} has none ({int(missing.sum())} such row(s)); add a timestamp column or "
                           "use split='random'")


def _leave_one_out(catalog: Catalog, frame: pd.DataFrame, seed: int, config: SplitConfig) -> np.ndarray:
    """0/1/2 per row: each user's last (or a random) item → test, the one before → valid."""
    pick = config.loo_pick
    if pick == "auto":
        pick = "last" if not np.isnan(frame["timestamp"].to_numpy()).any() else "random"
    if pick == "last":
        _require_timestamps(catalog, frame, "leave-one-out (last)")
        key = frame["timestamp"].to_numpy(np.float64)
    elif pick == "random":
        key = _random_key(frame, seed)
    else:
        raise ValueError(f"loo_pick {pick!r} must be 'last', 'random' or 'auto'")
    pos, n = _positions(frame, key)
    eligible = n >= max(config.min_interactions, 3)
    code = np.zeros(len(frame), dtype=np.int64)
    code[eligible & (pos == n - 1)] = 2
    code[eligible & (pos == n - 2)] = 1
    return code


def _matrix(part: pd.DataFrame, shape: tuple[int, int]) -> sp.csr_matrix:
    """Binary float32 csr of the (u, i) pairs in `part`."""
    m = sp.csr_matrix((np.ones(len(part), dtype=np.float32), (part["u"].to_numpy(), part["i"].to_numpy())),
                      shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    m.sort_indices()
    return m


def _ratio_name(prefix: str, ratios: tuple[float, float, float]) -> str:
    """e.g. 'random-8:1:1'."""
    scaled = [r * 10 for r in ratios]
    parts = [str(int(round(s))) if abs(s - round(s)) < 1e-9 else f"{r:g}" for s, r in zip(scaled, ratios)]
    return f"{prefix}-{':'.join(parts)}"
