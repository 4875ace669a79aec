"""The large-set training benchmark's main path at a tiny size: one row per model, sane metrics, a JSON copy."""
from __future__ import annotations

import json
import math

import pytest

from benchmarks import scale_train


def test_scale_train_runs_every_model_end_to_end(tmp_path, capsys) -> None:
    out = tmp_path / "scale_train.json"
    rows = scale_train.main(["--users", "2000", "--items", "500", "--interactions", "30000", "--clusters", "10",
                             "--valid-users", "300", "--test-users", "400", "--batch-size", "2048",
                             "--als-iterations", "5", "--json", str(out)])
    assert [r["model"] for r in rows] == ["fusion", "als", "itemknn", "ease"]  # EASE fits 500 items
    report = json.loads(out.read_text())
    chance = report["random_recall@20"]
    assert 0 < chance < 0.1
    for r in rows:
        assert r["eval_users"] == 400
        assert math.isfinite(r["recall@20"]) and math.isfinite(r["ndcg@20"])
        assert r["recall@20"] > 3 * chance, r  # the clusters make every model far better than random
        assert 0 < r["ndcg@20"] <= 1 and r["fit_s"] >= 0 and r["eval_s"] >= 0
        assert 0 < r["rss_gib"] <= r["peak_gib"] + 0.01
    assert len(rows[0]["epoch_s"]) == 1 and len(rows[1]["epoch_s"]) == 5
    assert rows[2]["neighbours"] <= 50 * 500
    assert [r["model"] for r in report["rows"]] == ["fusion", "als", "itemknn", "ease"]
    table = capsys.readouterr().out
    assert "recall@20" in table and "ru_maxrss" in table


def test_scale_train_skips_ease_above_its_dense_limit_and_rejects_unknown_models(tmp_path) -> None:
    reason = scale_train.ease_skip_reason(200_000)
    assert reason is not None and "160 GB" in reason and "ItemKNN" in reason
    assert scale_train.ease_skip_reason(500) is None
    with pytest.raises(SystemExit):
        scale_train.main(["--models", "als,easy", "--json", str(tmp_path / "x.json")])


def test_fusion_engine_rows_local_once_and_ray_once_per_worker_count(tmp_path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    assert scale_train.fusion_engines(parser, "local", "1") == [("local", 1)]
    assert scale_train.fusion_engines(parser, "local,ray", "1,2") == [("local", 1), ("ray", 1), ("ray", 2)]
    assert scale_train.fusion_engines(parser, "ray", "2") == [("ray", 2)]
    assert scale_train.fusion_engines(parser, "former,local", "1") == [("former", 1), ("local", 1)]
    for engines, workers in (("spark", "1"), ("ray", "0"), ("ray", "two"), ("", "1")):
        with pytest.raises(SystemExit):
            scale_train.fusion_engines(parser, engines, workers)
