"""Exact and HNSW inner-product search: same answers where they must agree, high recall where they may not."""
from __future__ import annotations

import numpy as np
import pytest

from core.serving.index import ExactIndex, HNSWConfig, HNSWIndex, build_index, measure_recall, top_k_rows


@pytest.fixture(scope="module")
def random_data() -> tuple[np.ndarray, np.ndarray]:
    """2,000 random 64-d item vectors and 200 random queries (seeded)."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal((2000, 64)).astype(np.float32),
            rng.standard_normal((200, 64)).astype(np.float32))


def test_exact_index_matches_a_full_sort(random_data):
    items, queries = random_data
    index = ExactIndex(items)
    for q in queries[:20]:
        rows, scores = index.search(q, 10)
        expected = np.argsort(-(items @ q), kind="stable")[:10]
        assert rows.tolist() == expected.tolist()
        np.testing.assert_allclose(scores, (items @ q)[expected], rtol=1e-5)
        assert np.all(np.diff(scores) <= 0)


def test_exact_index_excludes_rows_and_caps_k():
    items = np.eye(5, dtype=np.float32)
    index = ExactIndex(items)
    q = np.array([5, 4, 3, 2, 1], np.float32)
    rows, _ = index.search(q, 3, exclude={0, 2})
    assert rows.tolist() == [1, 3, 4]
    rows, _ = index.search(q, 10, exclude={4})
    assert rows.tolist() == [0, 1, 2, 3]  # no more than the items left


def test_top_k_breaks_ties_by_lower_row_and_skips_infinite():
    scores = np.array([1.0, 3.0, 3.0, -np.inf, 2.0])
    assert top_k_rows(scores, 3).tolist() == [1, 2, 4]
    assert top_k_rows(scores, 10).tolist() == [1, 2, 4, 0]


def test_hnsw_recall_at_10_against_exact(random_data):
    items, queries = random_data
    hnsw = HNSWIndex(items, HNSWConfig(seed=0))
    recall = measure_recall(hnsw, ExactIndex(items), queries, k=10)
    print(f"HNSW recall@10 on 2,000 × 64 random vectors: {recall:.3f} (ef {hnsw.ef})")
    assert recall >= 0.95


def test_hnsw_scores_are_inner_products_and_exclusion_holds(random_data):
    items, queries = random_data
    hnsw = HNSWIndex(items, HNSWConfig(ef=128))
    q = queries[0]
    top, _ = ExactIndex(items).search(q, 5)
    rows, scores = hnsw.search(q, 10, exclude=set(top.tolist()))
    assert not set(rows.tolist()) & set(top.tolist())
    assert len(rows) == 10 and len(set(rows.tolist())) == 10
    np.testing.assert_allclose(scores, items[rows] @ q, rtol=1e-4, atol=1e-4)


def test_hnsw_is_deterministic_for_a_seed(random_data):
    items, queries = random_data
    a = HNSWIndex(items[:500], HNSWConfig(seed=3, build_threads=1))  # one build thread: no timing effects
    b = HNSWIndex(items[:500], HNSWConfig(seed=3, build_threads=1))
    assert a.ef == b.ef
    for q in queries[:10]:
        assert a.search(q, 10)[0].tolist() == b.search(q, 10)[0].tolist()


def test_build_index_auto_picks_exact_for_small_catalogs(random_data):
    items, _ = random_data
    assert build_index(items, "auto").kind == "exact"
    assert build_index(items[:100], "hnsw", HNSWConfig(ef=32)).kind == "hnsw"
    with pytest.raises(ValueError, match="'auto', 'exact', 'hnsw' or 'ivf'"):
        build_index(items, "faiss")


def test_measure_recall_of_exact_against_itself_is_one(random_data):
    items, queries = random_data
    exact = ExactIndex(items)
    assert measure_recall(exact, exact, queries[:5], 10) == 1.0


def test_fast_top_k_equals_a_full_partition_on_long_arrays_with_ties_and_exclusions():
    from core.serving.index import fast_top_k_rows

    rng = np.random.default_rng(4)
    for n in (300, 20_000, 200_000):
        scores = np.round(rng.standard_normal(n), 2).astype(np.float32)  # many ties
        scores[rng.choice(n, size=n // 10, replace=False)] = -np.inf  # excluded rows
        for k in (1, 10, 50):
            assert fast_top_k_rows(scores, k).tolist() == top_k_rows(scores, k).tolist()
    peaked = np.full(100_000, -np.inf, np.float32)  # fewer finite scores than the sample needs
    peaked[[5, 77_000]] = [1.0, 2.0]
    assert fast_top_k_rows(peaked, 10).tolist() == [77_000, 5]


def test_exact_index_scores_every_layout_like_a_float64_product():
    rng = np.random.default_rng(5)
    for dim in (3, 16, 66):
        items = rng.standard_normal((50_000, dim)).astype(np.float32)
        index = ExactIndex(items)
        q = rng.standard_normal(dim).astype(np.float32)
        want = items.astype(np.float64) @ q
        np.testing.assert_allclose(index.scores(q), want, rtol=1e-4, atol=1e-4)
        rows, scores = index.search(q, 10, exclude={int(np.argmax(want))})
        want[np.argmax(want)] = -np.inf
        assert rows.tolist() == top_k_rows(want, 10).tolist()
        assert index.nbytes == items.nbytes and index.vectors.shape == items.shape
