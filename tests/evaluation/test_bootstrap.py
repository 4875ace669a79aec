"""Percentile bootstrap: known answers on tiny samples, coverage of the mean, narrowing with more users."""
from __future__ import annotations

import numpy as np
import pytest

from core.evaluation.bootstrap import bootstrap_ci, bootstrap_means, paired_difference_ci


def test_two_values_by_hand():
    # resampling [0, 1] twice gives means 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5th percentile is 0 and the 97.5th is 1 (with 2,000 resamples both tails are populated)
    r = bootstrap_ci(np.array([0.0, 1.0]), n_bootstrap=2000, seed=0)
    assert r.mean[0] == pytest.approx(0.5)
    assert r.lo[0] == 0.0 and r.hi[0] == 1.0
    means = bootstrap_means(np.array([0.0, 1.0]), n_bootstrap=4000, seed=1)[:, 0]
    assert set(np.unique(means)) == {0.0, 0.5, 1.0}
    assert np.mean(means == 0.5) == pytest.approx(0.5, abs=0.03)


def test_constant_values_give_a_zero_width_interval():
    r = bootstrap_ci(np.full(50, 0.3), n_bootstrap=200)
    assert r.lo[0] == pytest.approx(0.3) and r.hi[0] == pytest.approx(0.3)


def test_interval_contains_the_mean_and_narrows_with_more_users():
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.random(40), n_bootstrap=500, seed=0)
    large = bootstrap_ci(rng.random(4000), n_bootstrap=500, seed=0)
    for r in (small, large):
        assert r.lo[0] <= r.mean[0] <= r.hi[0]
    # the width shrinks like 1/sqrt(n): 10x less here; allow slack
    assert (large.hi - large.lo)[0] < 0.3 * (small.hi - small.lo)[0]
    # for uniform values the 95% half-width is about 1.96 * sqrt(1/12) / sqrt(n)
    assert (large.hi - large.lo)[0] / 2 == pytest.approx(1.96 * np.sqrt(1 / 12) / np.sqrt(4000), rel=0.15)


def test_seeded_and_columns_share_resamples_with_nan_left_out():
    rng = np.random.default_rng(1)
    x = rng.random((300, 3))
    x[::7, 2] = np.nan
    a, b = bootstrap_ci(x, 300, seed=5), bootstrap_ci(x, 300, seed=5)
    np.testing.assert_array_equal(a.lo, b.lo)
    assert not np.array_equal(a.lo, bootstrap_ci(x, 300, seed=6).lo)
    assert a.mean[2] == pytest.approx(np.nanmean(x[:, 2]))
    assert a.lo[2] <= a.mean[2] <= a.hi[2]
    # a column is bootstrapped exactly as it would be alone (same resamples, NaN rows dropped per resample)
    alone = bootstrap_ci(x[:, 0], 300, seed=5)
    assert alone.lo[0] == pytest.approx(a.lo[0]) and alone.hi[0] == pytest.approx(a.hi[0])


def test_no_resamples_gives_mean_without_interval():
    r = bootstrap_ci(np.array([1.0, 2.0, 3.0]), n_bootstrap=0)
    assert r.mean[0] == 2.0 and np.isnan(r.lo[0]) and np.isnan(r.hi[0])


def test_paired_difference_of_a_constant_shift_is_exact():
    rng = np.random.default_rng(2)
    b = rng.random(200)
    r = paired_difference_ci(b + 0.05, b, n_bootstrap=300)
    assert r.mean[0] == pytest.approx(0.05) and r.lo[0] == pytest.approx(0.05) and r.hi[0] == pytest.approx(0.05)


def test_paired_difference_separates_what_overlapping_intervals_do_not():
    # two models that differ little on each user but a lot between users: their own intervals overlap,
    # while the paired interval of the difference lies clear of zero
    rng = np.random.default_rng(3)
    user_effect = rng.random(300)
    a = user_effect + 0.03 + rng.normal(0, 0.02, 300)
    b = user_effect
    ra, rb = bootstrap_ci(a, 1000, seed=0), bootstrap_ci(b, 1000, seed=0)
    assert ra.lo[0] < rb.hi[0]  # the separate 95% intervals overlap
    d = paired_difference_ci(a, b, 1000, seed=0)
    assert d.mean[0] == pytest.approx(np.mean(a - b))
    assert 0.025 < d.lo[0] < d.mean[0] < d.hi[0] < 0.035


def test_paired_difference_leaves_out_users_missing_either_value_and_checks_shapes():
    a, b = np.array([0.5, np.nan, 0.2, 0.4]), np.array([0.1, 0.3, np.nan, 0.2])
    assert paired_difference_ci(a, b, n_bootstrap=50).mean[0] == pytest.approx(0.3)  # users 0 and 3
    with pytest.raises(ValueError, match="same users"):
        paired_difference_ci(np.zeros(3), np.zeros(4))
