"""Splits are deterministic, disjoint, cover every interaction, and follow their rule."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from core.errors import CatalogError
from core.data.splits import build_interaction_data
from tests.evaluation.toy import make_catalog, make_embeddings

SPLITS = ("random", "leave-one-out", "temporal")


def _pairs(m: sp.csr_matrix) -> set[tuple[int, int]]:
    r, c = m.nonzero()
    return set(zip(r.tolist(), c.tolist()))


def _unique_pairs(catalog, data) -> set[tuple[int, int]]:
    users = {u: i for i, u in enumerate(data.user_ids)}
    items = {it: j for j, it in enumerate(data.item_ids)}
    inter = catalog.interactions
    return {(users[u], items[i]) for u, i in zip(inter["user_id"].astype(str), inter["item_id"].astype(str))}


def _first_time(catalog, data) -> dict[tuple[int, int], float]:
    users = {u: i for i, u in enumerate(data.user_ids)}
    items = {it: j for j, it in enumerate(data.item_ids)}
    inter = catalog.interactions.sort_values("timestamp")
    out: dict[tuple[int, int], float] = {}
    for u, i, t in zip(inter["user_id"].astype(str), inter["item_id"].astype(str), inter["timestamp"]):
        out.setdefault((users[u], items[i]), float(t))
    return out


@pytest.mark.parametrize("split", SPLITS)
def test_split_is_deterministic_disjoint_and_covers_every_pair(split):
    catalog = make_catalog()
    a = build_interaction_data(catalog, None, split=split, seed=3)
    b = build_interaction_data(catalog, None, split=split, seed=3)
    for name in ("train", "valid", "test"):
        assert (getattr(a, name) != getattr(b, name)).nnz == 0
    tr, va, te = _pairs(a.train), _pairs(a.valid), _pairs(a.test)
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert tr | va | te == _unique_pairs(catalog, a)  # duplicates collapsed, nothing lost
    assert a.train.data.max() == 1.0 and a.test.nnz > 0 and a.valid.nnz > 0


def test_random_split_changes_with_the_seed_and_not_with_row_order():
    catalog = make_catalog()
    a = build_interaction_data(catalog, None, split="random", seed=0)
    assert (a.test != build_interaction_data(catalog, None, split="random", seed=1).test).nnz > 0
    shuffled = make_catalog()
    shuffled.interactions = catalog.interactions.sample(frac=1.0, random_state=9).reset_index(drop=True)
    assert (a.test != build_interaction_data(shuffled, None, split="random", seed=0).test).nnz == 0
    assert a.split_name == "random-8:1:1"


def test_random_split_is_about_8_1_1_per_user():
    catalog = make_catalog(n_users=40, per_user=(20, 20), duplicates=0)
    data = build_interaction_data(catalog, None, split="random", seed=0)
    # 20 per user -> 16 / 2 / 2
    for m, n in ((data.train, 16), (data.valid, 2), (data.test, 2)):
        assert set(np.diff(m.indptr).tolist()) == {n}


def test_leave_one_out_puts_exactly_the_latest_item_in_test():
    catalog = make_catalog()
    data = build_interaction_data(catalog, None, split="leave-one-out")
    counts = np.diff((data.train + data.valid + data.test).tocsr().indptr)
    eligible = counts >= 3
    assert np.array_equal(np.diff(data.test.indptr), eligible.astype(int))
    assert np.array_equal(np.diff(data.valid.indptr), eligible.astype(int))
    first = _first_time(catalog, data)
    for u in np.flatnonzero(eligible):
        times = {j: first[(u, j)] for j in (data.train + data.valid + data.test)[u].indices}
        order = sorted(times, key=times.get)
        assert data.test[u].indices.tolist() == [order[-1]]
        assert data.valid[u].indices.tolist() == [order[-2]]


def test_temporal_split_puts_later_items_in_test():
    catalog = make_catalog()
    data = build_interaction_data(catalog, None, split="temporal")
    first = _first_time(catalog, data)
    checked = 0
    for u in range(data.n_users):
        train = [first[(u, j)] for j in data.train[u].indices]
        valid = [first[(u, j)] for j in data.valid[u].indices]
        test = [first[(u, j)] for j in data.test[u].indices]
        if test:
            assert max(train) < min(valid) and max(valid) < min(test)
            checked += 1
    assert checked > 10


def test_users_with_few_interactions_stay_in_train():
    catalog = make_catalog()
    for split in SPLITS:
        data = build_interaction_data(catalog, None, split=split)
        total = np.diff((data.train + data.valid + data.test).tocsr().indptr)
        few = total < 3
        assert few.any()
        assert np.diff(data.test.indptr)[few].sum() == 0 and np.diff(data.valid.indptr)[few].sum() == 0
        assert np.array_equal(np.diff(data.train.indptr)[few], total[few])


def test_label_split_follows_the_column_and_keeps_the_earliest_split_of_a_repeated_pair():
    catalog = make_catalog(labelled=True, duplicates=0)
    inter = catalog.interactions
    # repeat one test pair as train: the pair must end up in train only
    row = inter[inter["split"] == "test"].iloc[0]
    catalog.interactions = pd.concat([inter, row.to_frame().T.assign(split="train")], ignore_index=True).astype(
        inter.dtypes.to_dict())
    data = build_interaction_data(catalog, None, split="auto")
    assert data.split_name == "x_label"
    u, i = data.user_ids.index(str(row["user_id"])), data.item_ids.index(str(row["item_id"]))
    assert data.train[u, i] == 1 and data.test[u, i] == 0
    counts = inter["split"].value_counts()
    assert data.valid.nnz == counts["valid"] and data.test.nnz == counts["test"] - 1
    assert data.train.nnz == counts["train"] + 1


def test_auto_is_random_without_labels_and_label_split_needs_them():
    catalog = make_catalog()
    assert build_interaction_data(catalog, None, split="auto").split_name.startswith("random")
    with pytest.raises(CatalogError, match="row 0"):
        build_interaction_data(catalog, None, split="label")


def test_items_are_all_catalog_items_and_embeddings_follow_their_order():
    catalog = make_catalog()
    reversed_ids = catalog.item_ids[::-1]
    emb = make_embeddings(reversed_ids)
    data = build_interaction_data(catalog, emb, split="random")
    assert data.item_ids == catalog.item_ids and data.n_items == 40
    assert data.train.shape == (data.n_users, 40)
    assert (data.train + data.valid + data.test)[:, -2:].nnz == 0  # cold items are columns all the same
    assert data.embeddings.item_ids == catalog.item_ids
    np.testing.assert_array_equal(data.embeddings.matrices["text"][0], emb.matrices["text"][-1])


def test_unknown_items_and_missing_timestamps_are_named():
    catalog = make_catalog()
    catalog.interactions.loc[5, "item_id"] = "nope"
    with pytest.raises(CatalogError, match="row 5.*'nope'"):
        build_interaction_data(catalog, None)
    catalog = make_catalog()
    catalog.interactions.loc[7, "timestamp"] = np.nan
    with pytest.raises(CatalogError, match="timestamp"):
        build_interaction_data(catalog, None, split="temporal")
    with pytest.raises(CatalogError, match="embedding set lacks"):
        build_interaction_data(catalog, make_embeddings(catalog.item_ids[:-1]))


@pytest.mark.shared_data
def test_lfm2k_label_split_matches_the_published_counts(shared_data):
    from core.catalog.mmrec import read_mmrec

    catalog, _, _ = read_mmrec(shared_data / "lfm2k")
    data = build_interaction_data(catalog, None, split="auto")
    assert data.split_name == "x_label"
    assert (data.n_users, data.n_items) == (1858, 1425)
    assert (data.train.nnz, data.valid.nnz, data.test.nnz) == (44327, 4799, 7219)
