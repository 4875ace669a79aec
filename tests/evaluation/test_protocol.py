"""evaluate / run_evaluation on a toy model whose ranking is known, against hand-computed numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from core.evaluation.protocol import evaluate, model_kind, run_evaluation
from core.data.splits import build_interaction_data
from core.data.interactions import InteractionData
from core.models.popularity import Popularity
from tests.evaluation.toy import FixedScores, make_catalog, make_embeddings


def _csr(rows: list[list[int]]) -> sp.csr_matrix:
    return sp.csr_matrix(np.array(rows, dtype=np.float32))


@pytest.fixture
def toy() -> tuple[InteractionData, FixedScores]:
    """3 users × 6 items; every user scores items in index order (item 0 best).

    user 0: train {0}, valid {1}, test {2, 5}
    user 1: train {3}, valid {},  test {0}
    user 2: train {0, 1}, no test -> skipped
    """
    data = InteractionData(
        user_ids=["a", "b", "c"], item_ids=[f"i{j}" for j in range(6)],
        train=_csr([[1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0], [1, 1, 0, 0, 0, 0]]),
        valid=_csr([[0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]),
        test=_csr([[0, 0, 1, 0, 0, 1], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]),
        split_name="hand", seed=0)
    scores = np.tile(np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4]), (3, 1))
    return data, FixedScores(scores)


def test_evaluate_masks_train_and_valid_and_matches_hand_numbers(toy):
    data, model = toy
    r = evaluate(model, data, ks=(1, 2), n_bootstrap=200, mask="train+valid")
    # user 0: items 0 (train) and 1 (valid) masked -> ranking 2, 3, 4, 5: top-2 = [2, 3], hits [1, 0]
    #   recall@2 = 1/2, precision@2 = 1/2, ndcg@2 = 1 / (1 + 1/log2 3), recall@1 = 1/2, ndcg@1 = 1
    # user 1: item 3 masked -> ranking 0, 1, 2, 4, 5: top-2 = [0, 1], hits [1, 0]
    #   recall@2 = 1, precision@2 = 1/2, ndcg@2 = 1, recall@1 = 1, ndcg@1 = 1
    # user 2 has no test items: skipped
    assert r.users_evaluated == 2 and r.users_skipped == 1
    assert r.metrics["recall@2"] == pytest.approx((0.5 + 1) / 2)
    assert r.metrics["precision@2"] == pytest.approx(0.5)
    assert r.metrics["ndcg@2"] == pytest.approx((1 / (1 + 1 / np.log2(3)) + 1) / 2)
    assert r.metrics["recall@1"] == pytest.approx(0.75)
    assert r.metrics["ndcg@1"] == pytest.approx(1.0)
    assert r.metrics["hit_rate@1"] == pytest.approx(1.0)
    # AUC user 0: allowed 2..5, positives 2 (beats 3, 4) and 5 (beats none) -> 2/4
    #     user 1: allowed 0,1,2,4,5, positive 0 beats all 4 -> 1
    assert r.metrics["auc"] == pytest.approx(0.75)
    # coverage@2: lists [2, 3] and [0, 1] -> 4 of 6 items
    assert r.metrics["coverage@2"] == pytest.approx(4 / 6)
    # binary view @1: predicted {2} for user 0 (tp), {0} for user 1 (tp); fn: item 5 of user 0;
    #   negatives: user 0 {3, 4} and user 1 {1, 2, 4, 5} -> tn 6; accuracy (2 + 6) / 9
    assert r.metrics["binary_precision@1"] == pytest.approx(1.0)
    assert r.metrics["binary_recall@1"] == pytest.approx(2 / 3)
    assert r.metrics["binary_accuracy@1"] == pytest.approx(8 / 9)
    assert r.curves["k"] == [1, 2] and r.curves["recall"] == [r.metrics["recall@1"], r.metrics["recall@2"]]
    lo, hi = r.ci["recall@2"]
    assert 0.5 <= lo <= r.metrics["recall@2"] <= hi <= 1.0
    assert r.protocol["masked"] == ["train", "valid"] and r.protocol["ranking"] == "full"
    assert r.protocol["mask"] == "train+valid"


def test_train_only_mask_keeps_validation_items_as_candidates(toy):
    data, model = toy
    r = evaluate(model, data, ks=(1, 2), n_bootstrap=50, keep_per_user=True)  # default: mask "train"
    # user 0: only item 0 (train) masked -> ranking 1 (valid, a candidate now), 2, 3, 4, 5: top-2 = [1, 2],
    #   hits [0, 1]: recall@2 = 1/2, ndcg@2 = (1/log2 3) / (1 + 1/log2 3), recall@1 = 0, ndcg@1 = 0
    # user 1 has no validation items: the same as under "train+valid" (recall@2 = 1, ndcg@2 = 1, @1 = 1)
    assert r.protocol["mask"] == "train" and r.protocol["masked"] == ["train"]
    assert r.per_user["recall@2"].tolist() == pytest.approx([0.5, 1.0])
    assert r.per_user["ndcg@2"].tolist() == pytest.approx([(1 / np.log2(3)) / (1 + 1 / np.log2(3)), 1.0])
    assert r.per_user["recall@1"].tolist() == pytest.approx([0.0, 1.0])
    assert r.metrics["ndcg@1"] == pytest.approx(0.5)
    strict = evaluate(model, data, ks=(1, 2), n_bootstrap=50, mask="train+valid")
    assert strict.metrics["recall@1"] == pytest.approx(0.75) and strict.metrics["ndcg@2"] > r.metrics["ndcg@2"]
    with pytest.raises(ValueError, match="mask 'valid' must be one of"):
        evaluate(model, data, mask="valid")


def test_validation_target_masks_train_only(toy):
    data, model = toy
    r = evaluate(model, data, ks=(1,), target="valid", n_bootstrap=50, keep_per_user=True)
    # only user 0 has a validation item (1); train item 0 masked -> item 1 is ranked first
    assert r.users_evaluated == 1 and r.users.tolist() == [0]
    assert r.metrics["recall@1"] == 1.0 and r.per_user["recall@1"].tolist() == [1.0]
    assert r.protocol["masked"] == ["train"] and r.protocol["mask"] == "train"
    assert evaluate(model, data, ks=(1,), target="valid", n_bootstrap=0, mask="train+valid").protocol["masked"] \
        == ["train"]  # validation never masks validation items
    with pytest.raises(ValueError, match="target"):
        evaluate(model, data, target="train")


def test_batching_does_not_change_the_numbers():
    catalog = make_catalog(n_users=60)
    data = build_interaction_data(catalog, None, split="random")
    model = Popularity().fit(data)
    a = evaluate(model, data, ks=(5, 10), n_bootstrap=100, batch_users=7)
    b = evaluate(model, data, ks=(5, 10), n_bootstrap=100, batch_users=512)
    assert a.metrics.keys() == b.metrics.keys()
    for key in a.metrics:
        assert a.metrics[key] == pytest.approx(b.metrics[key], nan_ok=True)


def test_a_perfect_model_scores_one_and_a_wrong_shape_is_reported():
    catalog = make_catalog(n_users=40)
    data = build_interaction_data(catalog, None, split="random")
    oracle = FixedScores(data.test.toarray() + 0.01 * np.random.default_rng(0).random(data.test.shape))
    r = evaluate(oracle, data, ks=(10,), n_bootstrap=50)
    assert r.metrics["recall@10"] == pytest.approx(1.0) and r.metrics["ndcg@10"] == pytest.approx(1.0)
    assert r.metrics["auc"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        evaluate(FixedScores(np.zeros((data.n_users, 3))), data, ks=(10,), n_bootstrap=10)


def test_run_record_has_the_documented_shape_and_is_json_safe():
    catalog = make_catalog()
    emb = make_embeddings(catalog.item_ids)
    data = build_interaction_data(catalog, emb, split="random")
    history = [{"epoch": 1, "loss": 0.7, "valid_metric": 0.1, "seconds": 0.5},
               {"epoch": 2, "loss": 0.6, "valid_metric": 0.2, "seconds": 0.5}]
    model = FixedScores(np.random.default_rng(0).random((data.n_users, data.n_items)), history)
    record = run_evaluation(model, data, catalog, emb, ks=(5, 10), n_bootstrap=100, seed=4)
    assert record["name"] == "fixed" and record["catalog"] == "toy"
    assert record["model"] == {"name": "fixed", "kind": "baseline", "config": model.get_config()}
    assert record["dataset"]["content_hash"] == catalog.content_hash()
    assert record["dataset"]["n_interactions"] == data.train.nnz + data.valid.nnz + data.test.nnz
    p = record["protocol"]
    assert (p["split"], p["target"], p["ranking"], p["ks"], p["seed"], p["n_bootstrap"]) == \
        ("random-8:1:1", "test", "full", [5, 10], 4, 100)
    assert p["users_evaluated"] == int((np.diff(data.test.indptr) > 0).sum())
    assert record["encoders"] == {"text": "toy-text"}
    assert record["training"] == history and record["training_time_s"] == pytest.approx(1.0)
    assert record["wall_time_s"] > 0 and record["peak_memory_mb"] > 0
    assert set(record["ci"]) <= set(record["metrics"]) and "recall@10" in record["ci"]
    json.dumps(record, allow_nan=False)  # NaN became None, numpy became Python


def test_model_kind_from_attribute_or_name():
    class Named:
        def __init__(self, name):
            self.name = name

    assert model_kind(Popularity()) == "baseline"
    assert model_kind(Named("fusion-gated")) == "fusion"
    assert model_kind(Named("audio-only")) == "single-modality"
    assert model_kind(Named("whatever")) == "baseline"
