"""Known-answer tests for every metric, each worked out by hand on a tiny fixture.

Fixture (6 items, scores strictly decreasing with the item index, so the ranking is 0,1,2,3,4,5):
    user A: relevant {0, 2, 5}
    user B: relevant {4}
    user C: relevant {}            -> NaN for every per-user metric
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from core.data.metrics import (PAD, RankingMetric, auc_per_user, catalogue_coverage, confusion_counts,
                                     f1_at_k, hit_matrix, hit_rate_at_k, item_self_information, kth_score_threshold,
                                     map_at_k, ndcg_at_k, novelty, precision_at_k, ranking_metrics, recall_at_k,
                                     topk_indices)

SCORES = np.tile(np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4]), (3, 1))
TRUTH = sp.csr_matrix(np.array([[1, 0, 1, 0, 0, 1],
                                [0, 0, 0, 0, 1, 0],
                                [0, 0, 0, 0, 0, 0]]))
LOG2_3 = math.log2(3)


def test_topk_orders_by_score_and_breaks_ties_by_lower_index():
    s = np.array([[0.1, 0.5, 0.5, 0.9, 0.2],
                  [1.0, 1.0, 1.0, 1.0, 1.0]])
    assert topk_indices(s, 3).tolist() == [[3, 1, 2], [0, 1, 2]]
    # excluding item 3 for row 0 and items 0-2 for row 1
    ex = sp.csr_matrix(np.array([[0, 0, 0, 1, 0], [1, 1, 1, 0, 0]]))
    assert topk_indices(s, 3, ex).tolist() == [[1, 2, 4], [3, 4, PAD]]


def test_topk_never_returns_excluded_items_even_against_minus_infinity_scores():
    s = np.array([[-np.inf, np.nan, 0.0, -np.inf]])
    ex = sp.csr_matrix(np.array([[0, 0, 1, 0]]))
    top = topk_indices(s, 4, ex)
    # item 2 is excluded; the rest are all "worst" and tie -> lower index first; one slot is padding
    assert top.tolist() == [[0, 1, 3, PAD]]


def test_topk_matches_a_full_stable_sort_on_random_scores_with_ties():
    rng = np.random.default_rng(3)
    s = rng.integers(0, 5, size=(50, 30)).astype(float)  # many ties
    ex = sp.random(50, 30, density=0.2, random_state=4, format="csr")
    expected = np.argsort(-np.where(ex.toarray() > 0, -np.inf, s), axis=1, kind="stable")[:, :7]
    assert np.array_equal(topk_indices(s, 7, ex), expected)


def test_ranking_metrics_at_3_by_hand():
    top = topk_indices(SCORES, 3)  # [0, 1, 2] for everyone
    # A: hits [1, 0, 1]; B: no hits; C: no truth
    assert hit_matrix(top, TRUTH).tolist() == [[True, False, True], [False] * 3, [False] * 3]
    # precision = hits / K: A 2/3, B 0
    np.testing.assert_allclose(precision_at_k(top, TRUTH), [2 / 3, 0, np.nan])
    # recall = hits / |relevant|: A 2/3, B 0/1
    np.testing.assert_allclose(recall_at_k(top, TRUTH), [2 / 3, 0, np.nan])
    # f1 = 2PR/(P+R): A 2/3 (P = R), B 0
    np.testing.assert_allclose(f1_at_k(top, TRUTH), [2 / 3, 0, np.nan])
    # AP: precision at hit positions 1 (1/1) and 3 (2/3) -> 5/3, over min(3, 3) = 3 -> 5/9
    np.testing.assert_allclose(map_at_k(top, TRUTH), [5 / 9, 0, np.nan])
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) + 1/2
    np.testing.assert_allclose(ndcg_at_k(top, TRUTH), [1.5 / (1.5 + 1 / LOG2_3), 0, np.nan])
    np.testing.assert_allclose(hit_rate_at_k(top, TRUTH), [1, 0, np.nan])


def test_ranking_metrics_at_1_by_hand():
    top = topk_indices(SCORES, 1)  # [0]
    # A: first item relevant -> P 1, R 1/3, AP 1/min(1, 3) = 1, NDCG 1/1; B: nothing
    np.testing.assert_allclose(precision_at_k(top, TRUTH), [1, 0, np.nan])
    np.testing.assert_allclose(recall_at_k(top, TRUTH), [1 / 3, 0, np.nan])
    np.testing.assert_allclose(map_at_k(top, TRUTH), [1, 0, np.nan])
    np.testing.assert_allclose(ndcg_at_k(top, TRUTH), [1, 0, np.nan])


def test_metrics_with_an_excluded_item_by_hand():
    ex = sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 0], [0] * 6, [0] * 6]))
    top = topk_indices(SCORES, 3, ex)  # A: [0, 2, 3], hits [1, 1, 0]
    assert top[0].tolist() == [0, 2, 3]
    # AP = (1/1 + 2/2) / 3 = 2/3; DCG = 1 + 1/log2(3)
    np.testing.assert_allclose(map_at_k(top, TRUTH)[0], 2 / 3)
    np.testing.assert_allclose(ndcg_at_k(top, TRUTH)[0], (1 + 1 / LOG2_3) / (1.5 + 1 / LOG2_3))


def test_recall_divides_by_all_relevant_and_map_by_min_k():
    truth = sp.csr_matrix(np.array([[1, 1, 1, 1, 1, 0],    # 5 relevant, K = 3: all 3 hit
                                    [0, 0, 1, 0, 0, 0]]))  # 1 relevant at rank 3
    top = topk_indices(SCORES[:2], 3)
    # row 0: recall 3/5 (MMRec: not min(K, |rel|)), AP (1+1+1)/min(3, 5) = 1, NDCG 1
    # row 1: AP (1/3)/min(3, 1) = 1/3, NDCG (1/log2 4)/1 = 0.5
    np.testing.assert_allclose(recall_at_k(top, truth), [0.6, 1.0])
    np.testing.assert_allclose(map_at_k(top, truth), [1.0, 1 / 3])
    np.testing.assert_allclose(ndcg_at_k(top, truth), [1.0, 0.5])


def test_padding_never_counts_as_a_hit():
    # only items 0 and 1 allowed; item 5 (the last column, what index -1 would hit) is relevant
    ex = sp.csr_matrix(np.array([[0, 0, 1, 1, 1, 0]]))
    truth = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 1]]))
    s = np.array([[0.1, 0.2, 0.9, 0.9, 0.9, -5.0]])
    top = topk_indices(s, 5, ex)
    assert top.tolist() == [[1, 0, 5, PAD, PAD]]
    assert hit_matrix(top, truth).tolist() == [[False, False, True, False, False]]


def test_ranking_metrics_dict_and_metric_objects_agree():
    top = topk_indices(SCORES, 3)
    values = ranking_metrics(top, TRUTH, ks=(1, 3))
    assert set(values) == {f"{m}@{k}" for m in ("precision", "recall", "f1", "map", "ndcg", "hit_rate")
                           for k in (1, 3)}
    np.testing.assert_allclose(values["ndcg@3"], RankingMetric("ndcg", 3).compute(top, TRUTH))
    np.testing.assert_allclose(values["recall@1"], RankingMetric("recall", 1).compute(top, TRUTH))
    assert RankingMetric("map", 3).label == "map@3"


def test_auc_by_hand_with_ties_and_exclusion():
    # A: positives 0 (0.9), 2 (0.7), 5 (0.4); negatives 1, 3, 4.
    #    0 beats 3 negatives, 2 beats 3 and 4 (2), 5 beats none -> 5/9
    # B: positive 4 (0.5) beats only 5 of the other 5 items -> 1/5; C: NaN
    np.testing.assert_allclose(auc_per_user(SCORES, TRUTH), [5 / 9, 1 / 5, np.nan])
    # excluding item 1 for A leaves negatives 3, 4: 0 beats 2, 2 beats 2, 5 beats 0 -> 4/6
    ex = sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 0], [0] * 6, [0] * 6]))
    np.testing.assert_allclose(auc_per_user(SCORES, TRUTH, ex)[0], 2 / 3)
    # ties count 1/2: positive 0 ties with negative 1 and beats negative 2 -> 1.5/2
    tied = np.array([[0.5, 0.5, 0.1]])
    np.testing.assert_allclose(auc_per_user(tied, sp.csr_matrix(np.array([[1, 0, 0]]))), [0.75])


def test_confusion_counts_by_hand():
    # global threshold 0.65 on A: predicted {0, 1, 2}; relevant {0, 2, 5}
    # tp {0, 2} = 2, fp {1} = 1, fn {5} = 1, tn {3, 4} = 2
    c = confusion_counts(SCORES[:1], TRUTH[:1], 0.65)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 2)
    summary = c.summary()
    assert summary["accuracy"] == pytest.approx(4 / 6)
    assert summary["precision"] == pytest.approx(2 / 3)
    assert summary["recall"] == pytest.approx(2 / 3)
    assert summary["f1"] == pytest.approx(2 / 3)
    # per-user threshold = each user's 2nd best score: A and B predict {0, 1}; C is all negatives
    # A: tp 1 (0), fp 1 (1), fn 2 (2, 5), tn 2; B: fp 2, fn 1, tn 3; C: fp 2, tn 4
    thr = kth_score_threshold(SCORES, topk_indices(SCORES, 2))
    np.testing.assert_allclose(thr, [0.8, 0.8, 0.8])
    c = confusion_counts(SCORES, TRUTH, thr)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 5, 3, 9)
    # counts add up across batches
    assert confusion_counts(SCORES[:1], TRUTH[:1], 0.65) + confusion_counts(SCORES[1:], TRUTH[1:], 0.65) == \
        confusion_counts(SCORES, TRUTH, 0.65)


def test_coverage_and_novelty_by_hand():
    # two top-2 lists over 6 items: {0, 1} and {1, 3} -> 3 distinct items -> coverage 1/2
    top = np.array([[0, 1], [1, 3]])
    assert catalogue_coverage(top, 6) == pytest.approx(0.5)
    assert catalogue_coverage(np.array([[0, PAD]]), 4) == pytest.approx(0.25)
    # 3 training users; item 0 seen by 3, item 1 by 1, item 3 by 0
    # p = (count + 1) / (3 + 1): item 0 -> 1 (0 bits), item 1 -> 1/2 (1 bit), item 3 -> 1/4 (2 bits)
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]]))
    info = item_self_information(train)
    np.testing.assert_allclose(info[[0, 1, 3]], [0.0, 1.0, 2.0])
    # slots: 0, 1, 1, 3 -> (0 + 1 + 1 + 2) / 4 = 1
    assert novelty(top, info) == pytest.approx(1.0)


def test_auc_matches_scikit_learn_on_random_scores_with_ties_and_exclusions():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    s = np.round(rng.random((20, 50)), 1)  # rounding makes many ties
    truth = sp.random(20, 50, density=0.1, random_state=1, format="csr")
    ex = sp.random(20, 50, density=0.2, random_state=2, format="csr")
    t, e = truth.toarray() > 0, ex.toarray() > 0
    expected = [roc_auc_score(t[u][~e[u]], s[u][~e[u]]) if 0 < (t[u] & ~e[u]).sum() < (~e[u]).sum() else np.nan
                for u in range(20)]
    assert np.isfinite(expected).sum() > 10
    np.testing.assert_allclose(auc_per_user(s, truth, ex), expected)


def test_auc_by_comparison_equals_the_rank_computation(monkeypatch) -> None:
    import core.data.metrics as metrics

    rng = np.random.default_rng(5)
    scores = rng.integers(0, 6, size=(40, 30)).astype(np.float32)  # many ties
    scores[3, 4] = np.nan
    truth = sp.csr_matrix(rng.random((40, 30)) < rng.random((40, 1)) * 0.9)
    ex = sp.csr_matrix(rng.random((40, 30)) < 0.2)
    fast = auc_per_user(scores, truth, ex)
    monkeypatch.setattr(metrics, "AUC_COMPARE_MAX_POSITIVES", -1)  # every row by the full sort
    ranked = auc_per_user(scores, truth, ex)
    monkeypatch.setattr(metrics, "AUC_COMPARE_MAX_POSITIVES", 5)  # a mix of both paths
    mixed = auc_per_user(scores, truth, ex)
    assert np.isfinite(ranked).sum() > 30
    np.testing.assert_allclose(fast, ranked, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(mixed, ranked, rtol=1e-12, equal_nan=True)
