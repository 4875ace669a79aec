"""ItemKNN's weightings of the user–item matrix: a hand-worked ranking that TF-IDF flips, and the same
similarities as `implicit`'s item–item recommenders on a small generated matrix."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from core.data.interactions import InteractionData
from core.models.itemknn import ItemKNN

nearest = pytest.importorskip("implicit.nearest_neighbours")


def _data(train: sp.csr_matrix) -> InteractionData:
    n_users, n_items = train.shape
    empty = sp.csr_matrix(train.shape, dtype=np.float32)
    return InteractionData([f"u{u}" for u in range(n_users)], [f"i{i}" for i in range(n_items)], train, empty, empty)


def _heavy_listeners() -> InteractionData:
    # 6 items; u0 {0, 1}; u1 and u2 {0, 2, 3, 4} (heavy listeners); u3 {0} (the user we rank for); item 5 unseen
    rows = {0: [0, 1], 1: [0, 2, 3, 4], 2: [0, 2, 3, 4], 3: [0]}
    pairs = [(u, i) for u, items in rows.items() for i in items]
    u, i = zip(*pairs)
    return _data(sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(4, 6)))


def test_tfidf_weighting_flips_a_ranking_carried_by_heavy_listeners() -> None:
    # dot similarity. Binary: sim(0, 2) = 2 (u1, u2) > sim(0, 1) = 1 (u0), so u3 (owns item 0) gets 2, 3, 4 first.
    # TF-IDF: a user's weight is idf = log(6) − log(1 + their items): u0 log 2, u1 and u2 log(6/5), so
    # sim(0, 1) = (log 2)² = .4805 > sim(0, 2) = 2 (log 1.2)² = .0665: item 1 goes first
    data = _heavy_listeners()
    plain = ItemKNN(k=10, similarity="dot").fit(data).score(np.array([3]))[0]
    np.testing.assert_allclose(plain, [0, 1, 2, 2, 2, 0])
    tfidf = ItemKNN(k=10, similarity="dot", weighting="tfidf").fit(data).score(np.array([3]))[0]
    heavy = 2 * math.log(1.2) ** 2
    np.testing.assert_allclose(tfidf, [0, math.log(2) ** 2, heavy, heavy, heavy, 0], rtol=1e-5)
    assert int(np.argmax(plain[1:])) + 1 == 2 and int(np.argmax(tfidf[1:])) + 1 == 1


def test_bm25_with_k1_zero_and_b_zero_is_the_inverse_user_frequency_alone() -> None:
    # BM25 weight = tf (K1 + 1) / (K1 ((1 − B) + B len/avg) + tf) · idf; K1 = 0 or B = 0 leaves idf (binary tf)
    data = _heavy_listeners()
    tfidf = ItemKNN(k=10, similarity="dot", weighting="tfidf").fit(data).similarity.toarray()
    for k1, b in ((0.0, 0.75), (1.2, 0.0)):
        bm25 = ItemKNN(k=10, similarity="dot", weighting="bm25", bm25_k1=k1, bm25_b=b).fit(data).similarity.toarray()
        np.testing.assert_allclose(bm25, tfidf, rtol=1e-5)


def _random_train(seed: int = 0, n_users: int = 40, n_items: int = 25) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    popularity = rng.zipf(1.5, n_items).clip(max=20).astype(float)
    activity = rng.integers(1, 12, n_users)
    rows = [(u, i) for u in range(n_users)
            for i in rng.choice(n_items, size=activity[u], replace=False, p=popularity / popularity.sum())]
    u, i = zip(*rows)
    return sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(n_users, n_items))


def _off_diagonal(m: sp.spmatrix) -> np.ndarray:
    dense = np.asarray(m.todense(), dtype=np.float64)
    np.fill_diagonal(dense, 0.0)
    return dense


@pytest.mark.filterwarnings("ignore:Method expects CSR input")  # implicit's fit converts its own weighting
@pytest.mark.parametrize(("ours", "theirs"), [
    ({"weighting": "bm25", "similarity": "dot", "bm25_k1": 1.2, "bm25_b": 0.75},
     lambda k: nearest.BM25Recommender(K=k, K1=1.2, B=0.75, num_threads=1)),
    ({"weighting": "bm25", "similarity": "dot", "bm25_k1": 100.0, "bm25_b": 0.8},
     lambda k: nearest.BM25Recommender(K=k, K1=100.0, B=0.8, num_threads=1)),
    ({"weighting": "tfidf", "similarity": "cosine"}, lambda k: nearest.TFIDFRecommender(K=k, num_threads=1)),
    ({"weighting": "none", "similarity": "cosine"}, lambda k: nearest.CosineRecommender(K=k, num_threads=1)),
])
def test_weighted_similarities_equal_implicits_item_item_recommenders(ours, theirs) -> None:
    # with every neighbour kept, the similarity off the diagonal is implicit's (which keeps an item as its own
    # neighbour; ItemKNN leaves it out, as a user's own items are never recommended)
    train = _random_train()
    n = train.shape[1]
    model = ItemKNN(k=n, **ours).fit(_data(train))
    reference = theirs(n + 1)
    reference.fit(train, show_progress=False)
    np.testing.assert_allclose(_off_diagonal(model.similarity), _off_diagonal(reference.similarity),
                               rtol=1e-5, atol=1e-6)


def test_weighted_jaccard_and_conditional_reduce_to_the_set_forms_when_unweighted() -> None:
    # unweighted, Tanimoto a·b/(|a|²+|b|²−a·b) is |a∩b|/|a∪b| and a·b/|a|² is |a∩b|/|a|: worked on the toy
    data = _heavy_listeners()  # counts n0 = 4, n1 = 1, n2 = 2; C01 = 1, C02 = 2
    jac = ItemKNN(k=10, similarity="jaccard").fit(data).similarity.toarray()
    cond = ItemKNN(k=10, similarity="conditional").fit(data).similarity.toarray()
    assert jac[0, 1] == pytest.approx(1 / 4) and jac[0, 2] == pytest.approx(2 / 4)
    assert cond[0, 1] == pytest.approx(1 / 4) and cond[1, 0] == pytest.approx(1.0) and cond[2, 0] == pytest.approx(1.0)


def test_unknown_weighting_and_out_of_range_bm25_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="weighting='idf'.*none"):
        ItemKNN(weighting="idf")
    with pytest.raises(ValueError, match="bm25_b"):
        ItemKNN(weighting="bm25", bm25_b=1.5)
    with pytest.raises(ValueError, match="bm25_k1"):
        ItemKNN(weighting="bm25", bm25_k1=-1.0)
