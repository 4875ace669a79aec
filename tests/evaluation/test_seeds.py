"""Aggregation over model seeds on a small known case: spread, per-user means, the paired CI on them."""
from __future__ import annotations

import numpy as np
import pytest

from core.evaluation.bootstrap import paired_difference_ci
from core.evaluation.seeds import aggregate_metrics, mean_over_seeds, paired_over_users, spread


def test_spread_is_mean_sample_std_and_range() -> None:
    s = spread([0.2, 0.4, 0.3])
    assert s["mean"] == pytest.approx(0.3) and s["std"] == pytest.approx(0.1)
    assert (s["min"], s["max"], s["n"]) == (0.2, 0.4, 3)
    assert spread([0.5])["std"] == 0.0 and spread([None])["mean"] is None
    agg = aggregate_metrics([{"ndcg@20": 0.1, "auc": 0.8}, {"ndcg@20": 0.3}], ["ndcg@20", "auc", "map@10"])
    assert agg["ndcg@20"]["mean"] == pytest.approx(0.2) and agg["auc"]["n"] == 1 and "map@10" not in agg


def test_per_user_means_over_seeds_align_users_by_id() -> None:
    seed0 = {"users": ["a", "b", "c"], "ndcg@20": [0.0, 0.5, 1.0]}
    seed1 = {"users": ["c", "a", "b"], "ndcg@20": [0.0, 1.0, None]}  # another order; b NaN for this seed
    means = mean_over_seeds([seed0, seed1])
    assert means["users"] == ["a", "b", "c"]
    assert means["ndcg@20"] == pytest.approx([0.5, 0.5, 0.5])
    partial = mean_over_seeds([seed0, {"users": ["a", "c"], "ndcg@20": [1.0, 1.0]}])
    assert partial["users"] == ["a", "c"] and partial["ndcg@20"] == pytest.approx([0.5, 1.0])


def test_paired_ci_is_taken_on_the_per_user_means() -> None:
    # model A over two seeds, model B over two seeds, four users; B lists its users in another order
    a = mean_over_seeds([{"users": ["u1", "u2", "u3", "u4"], "recall@20": [0.2, 0.4, 0.6, 0.8]},
                         {"users": ["u1", "u2", "u3", "u4"], "recall@20": [0.4, 0.4, 0.8, 0.8]}])
    b = mean_over_seeds([{"users": ["u4", "u3", "u2", "u1"], "recall@20": [0.5, 0.5, 0.3, 0.1]},
                         {"users": ["u4", "u3", "u2", "u1"], "recall@20": [0.7, 0.5, 0.3, 0.1]}])
    # per-user means: A = [.3, .4, .7, .8], B = [.1, .3, .5, .6] -> differences [.2, .1, .2, .2]
    c = paired_over_users(a, b, "recall@20", n_bootstrap=500, seed=3)
    assert c["difference"] == pytest.approx(0.175) and c["users"] == 4
    expected = paired_difference_ci(np.array([0.3, 0.4, 0.7, 0.8]), np.array([0.1, 0.3, 0.5, 0.6]), 500, seed=3)
    assert c["ci"] == pytest.approx([expected.lo[0], expected.hi[0]])
    assert 0.1 - 1e-12 <= c["ci"][0] <= c["difference"] <= c["ci"][1] <= 0.2 + 1e-12
