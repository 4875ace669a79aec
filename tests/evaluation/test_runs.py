"""Run records round-trip through the store and come back as plot-ready tables, cards and downloads."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from core.evaluation.protocol import run_evaluation
from core.data.splits import build_interaction_data
from core.models.popularity import Popularity
from core.errors import ComparisonError
from core.evaluation.runs import MAIN_METRICS, metrics_long, paired_comparison, protocol_card, run_to_csv, run_to_json, \
    runs_table, training_curves
from tests.evaluation.toy import FixedScores, make_catalog, make_embeddings

HISTORY = [{"epoch": 1, "loss": 0.69, "valid_metric": 0.10, "seconds": 0.1},
           {"epoch": 2, "loss": 0.52, "valid_metric": 0.14, "seconds": 0.1},
           {"epoch": 3, "loss": 0.47, "valid_metric": None, "seconds": 0.1}]


@pytest.fixture
def stored(store):
    """Two runs on catalog 'toy' (popularity, then a trained-looking model) and one on 'other'."""
    catalog = make_catalog()
    emb = make_embeddings(catalog.item_ids)
    data = build_interaction_data(catalog, emb, split="random")
    pop = run_evaluation(Popularity().fit(data), data, catalog, emb, ks=(5, 10, 20), n_bootstrap=100)
    pop["created_at"] = 1_000.0
    fixed = FixedScores(np.random.default_rng(0).random((data.n_users, data.n_items)), HISTORY)
    trained = run_evaluation(fixed, data, catalog, emb, ks=(5, 10, 20), n_bootstrap=100)
    trained["created_at"] = 2_000.0
    other_catalog = make_catalog(name="other", seed=1)
    other_data = build_interaction_data(other_catalog, None, split="leave-one-out")
    other = run_evaluation(Popularity().fit(other_data), other_data, other_catalog, None, ks=(10,), n_bootstrap=50)
    other["created_at"] = 3_000.0
    ids = [store.save_run(r) for r in (pop, trained, other)]
    return store, ids, [pop, trained, other]


def test_records_round_trip_through_the_store(stored):
    store, ids, records = stored
    for run_id, record in zip(ids, records):
        back = store.load_run(run_id)
        assert back == {**record, "id": run_id}


def test_runs_table_has_one_row_per_run_newest_first(stored):
    store, ids, records = stored
    table = runs_table(store)
    assert table["id"].tolist() == ids[::-1]
    assert {"id", "name", "kind", "catalog", "created_at", "split", "encoders", *MAIN_METRICS} <= set(table)
    toy = runs_table(store, "toy")
    assert toy["id"].tolist() == [ids[1], ids[0]]
    row = toy.set_index("id").loc[ids[0]]
    assert row["name"] == "popularity" and row["kind"] == "baseline" and row["split"] == "random-8:1:1"
    assert row["recall@20"] == pytest.approx(records[0]["metrics"]["recall@20"])
    assert row["encoders"] == "text=toy-text"
    other = table.set_index("id").loc[ids[2]]
    assert np.isnan(other["recall@20"]) and other["recall@10"] == pytest.approx(records[2]["metrics"]["recall@10"])
    assert runs_table(store, "nothing-here").empty


def test_metrics_long_lists_every_metric_at_k_with_its_interval(stored):
    store, ids, records = stored
    long = metrics_long(store, ids[:2])
    assert list(long.columns) == ["run_id", "model", "metric", "k", "value", "lo", "hi"]
    at_k = [k for k in records[0]["metrics"] if "@" in k]
    assert len(long) == 2 * len(at_k)
    assert sorted(long["k"].unique().tolist()) == [5, 10, 20]
    recall = long[(long["metric"] == "recall") & (long["k"] == 10) & (long["run_id"] == ids[0])].iloc[0]
    assert recall["value"] == pytest.approx(records[0]["metrics"]["recall@10"])
    assert recall["lo"] <= recall["value"] <= recall["hi"]
    with_ci = long.dropna(subset=["lo"])
    assert (with_ci["lo"] <= with_ci["value"] + 1e-12).all() and (with_ci["value"] <= with_ci["hi"] + 1e-12).all()
    assert long[long["metric"] == "coverage"]["lo"].isna().all()  # aggregate metrics have no interval
    assert metrics_long(store, []).empty


def test_training_curves_come_from_the_history(stored):
    store, ids, _ = stored
    curves = training_curves(store, ids)
    assert list(curves.columns) == ["run_id", "model", "epoch", "loss", "valid_metric"]
    assert curves["run_id"].unique().tolist() == [ids[1]]  # popularity has no epochs
    assert curves["epoch"].tolist() == [1, 2, 3]
    assert curves["loss"].tolist() == [0.69, 0.52, 0.47]
    assert np.isnan(curves["valid_metric"].iloc[2])


def test_protocol_card_is_human_readable(stored):
    _, ids, records = stored
    card = protocol_card({**records[0], "id": ids[0]})
    assert card["split"] == "random-8:1:1"
    assert card["ranking"] == "full (all items)"
    assert card["masked"] == "train"
    assert card["mask"].startswith("train items only")
    assert card["K"] == "5, 10, 20"
    assert records[0]["dataset"]["content_hash"][:10] in card["data"]
    assert card["encoders"] == "text=toy-text"
    assert all(isinstance(v, str) for v in card.values())
    assert protocol_card(records[2])["encoders"] == "none (ids only)"


def test_csv_and_json_downloads(stored):
    store, ids, _ = stored
    record = store.load_run(ids[0])
    frame = pd.read_csv(io.StringIO(run_to_csv(record)))
    assert list(frame.columns) == ["run_id", "model", "metric", "k", "value", "ci_low", "ci_high"]
    assert len(frame) == len(record["metrics"])
    auc = frame[frame["metric"] == "auc"].iloc[0]
    assert np.isnan(auc["k"]) and auc["value"] == pytest.approx(record["metrics"]["auc"])
    ndcg = frame[(frame["metric"] == "ndcg") & (frame["k"] == 20)].iloc[0]
    assert ndcg["value"] == pytest.approx(record["metrics"]["ndcg@20"])
    assert [ndcg["ci_low"], ndcg["ci_high"]] == pytest.approx(record["ci"]["ndcg@20"])
    text = run_to_json({**record, "extra": float("nan")})
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert back["metrics"] == record["metrics"] and back["extra"] is None


def test_cli_lists_and_shows_runs(stored, capsys):
    from core.cli.main import main

    store, ids, _ = stored
    assert main(["--data-dir", str(store.root), "runs", "list"]) == 0
    out = capsys.readouterr().out
    assert all(run_id in out for run_id in ids)
    assert main(["runs", "show", ids[0], "--data-dir", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "random-8:1:1" in out and "recall,10" in out
    assert main(["--data-dir", str(store.root), "runs", "show", "missing-id"]) == 2
    capsys.readouterr()
    assert main(["--data-dir", str(store.root), "runs", "compare", ids[0], ids[1], "--bootstrap", "100"]) == 0
    out = capsys.readouterr().out
    assert "ndcg@10" in out and "B-A" in out and "own CIs overlap" in out
    assert main(["--data-dir", str(store.root), "runs", "compare", ids[0], ids[2]]) == 2
    assert "differ in data" in capsys.readouterr().err


def test_runs_keep_per_user_values_for_paired_comparisons(stored):
    store, ids, records = stored
    per_user = store.load_run(ids[0])["per_user"]
    n = records[0]["protocol"]["users_evaluated"]
    assert len(per_user["users"]) == n and len(set(per_user["users"])) == n
    assert {"recall@10", "ndcg@10", "recall@20", "ndcg@20", "auc"} <= set(per_user)
    for key in ("ndcg@10", "recall@20"):
        values = np.array(per_user[key], dtype=float)
        assert values.shape == (n,)
        assert np.nanmean(values) == pytest.approx(records[0]["metrics"][key], abs=1e-6)


def test_paired_comparison_of_two_runs_on_the_same_users(stored):
    store, ids, records = stored
    same = paired_comparison(store, ids[0], ids[0], n_bootstrap=200)
    assert (same["difference"] == 0).all() and (same["lo"] == 0).all() and (same["hi"] == 0).all()
    assert same["separate_cis_overlap"].all()

    table = paired_comparison(store, ids[0], ids[1], n_bootstrap=500)
    assert list(table.columns) == ["name", "metric", "k", "A", "B", "difference", "lo", "hi", "users",
                                   "separate_cis_overlap"]
    assert "ndcg@10" in set(table["name"]) and "auc" in set(table["name"])
    ndcg10 = table[(table["metric"] == "ndcg") & (table["k"] == 10)].iloc[0]
    assert ndcg10["A"] == pytest.approx(records[0]["metrics"]["ndcg@10"], abs=1e-6)
    assert ndcg10["B"] == pytest.approx(records[1]["metrics"]["ndcg@10"], abs=1e-6)
    assert ndcg10["difference"] == pytest.approx(ndcg10["B"] - ndcg10["A"], abs=1e-9)
    assert ndcg10["lo"] <= ndcg10["difference"] <= ndcg10["hi"]
    assert ndcg10["users"] == records[0]["protocol"]["users_evaluated"]
    auc = table[table["metric"] == "auc"].iloc[0]
    assert pd.isna(auc["k"])
    # B − A here is A − B with the sign flipped, interval mirrored
    back = paired_comparison(store, ids[1], ids[0], n_bootstrap=500)
    nd = back[(back["metric"] == "ndcg") & (back["k"] == 10)].iloc[0]
    assert nd["difference"] == pytest.approx(-ndcg10["difference"])
    assert nd["lo"] == pytest.approx(-ndcg10["hi"]) and nd["hi"] == pytest.approx(-ndcg10["lo"])


def test_paired_comparison_refuses_runs_it_cannot_pair(stored):
    store, ids, records = stored
    with pytest.raises(ComparisonError, match="differ in data"):
        paired_comparison(store, ids[0], ids[2])
    with pytest.raises(ComparisonError, match="no run with id"):
        paired_comparison(store, ids[0], "nope")
    old = {k: v for k, v in records[1].items() if k != "per_user"}  # a run stored before per-user values
    old_id = store.save_run(old)
    with pytest.raises(ComparisonError, match="without per-user values"):
        paired_comparison(store, ids[0], old_id)


def test_paired_comparison_refuses_runs_under_different_masking_rules(stored):
    store, ids, records = stored
    catalog = make_catalog()
    emb = make_embeddings(catalog.item_ids)
    data = build_interaction_data(catalog, emb, split="random")
    strict = run_evaluation(Popularity().fit(data), data, catalog, emb, ks=(5, 10, 20), n_bootstrap=50,
                            mask="train+valid")
    assert strict["protocol"]["mask"] == "train+valid" and strict["protocol"]["masked"] == ["train", "valid"]
    assert protocol_card(strict)["mask"].startswith("train and valid")
    strict_id = store.save_run(strict)
    with pytest.raises(ComparisonError, match="differ in masking rule"):
        paired_comparison(store, ids[0], strict_id)
    assert runs_table(store, "toy").set_index("id").loc[strict_id, "mask"] == "train+valid"
    legacy = {**records[1], "protocol": {k: v for k, v in records[1]["protocol"].items() if k != "mask"}}
    legacy["protocol"]["masked"] = ["train", "valid"]  # a run stored before the rule was recorded
    legacy_id = store.save_run(legacy)
    assert not paired_comparison(store, strict_id, legacy_id).empty
