"""Evaluate: stored runs are drawn with their protocol beside every chart, can be compared and downloaded."""
from __future__ import annotations

import json

from tests.app.conftest import goto


def test_evaluate_draws_stored_runs(app):
    goto(app, "evaluate")
    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    assert len(charts) >= 2  # metric@K curves and the CI bars
    titles = " ".join(str(c["layout"].get("title", {}).get("text", "")) for c in charts)
    assert "@K" in titles and "95% CI" in titles
    bars = next(c for c in charts if "95% CI" in str(c["layout"]["title"]["text"]))
    assert bars["data"][0]["error_y"]["visible"] is True
    cards = [m.value for m in app.markdown if "prism-protocol" in m.value]
    assert len(cards) >= len(charts)  # a protocol card beside every chart
    assert "split" in cards[0].lower()
    assert [b.proto.label for b in app.get("download_button")] == ["CSV", "JSON", "Download report"]


def test_compare_two_runs(app):
    goto(app, "evaluate")
    a, b = app.selectbox(key="ev_cmp_a"), app.selectbox(key="ev_cmp_b")
    assert a.value != b.value
    assert any("B − A" in str(df.value.columns.tolist()) for df in app.dataframe)
    # user by user: the paired differences as a chart and a table, one row per metric kept per user
    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    paired = next(c for c in charts if "paired 95% CI" in str(c["layout"]["title"]["text"]))
    assert paired["data"][0]["error_x"]["visible"] is True
    table = next(df.value for df in app.dataframe if "own CIs overlap" in df.value.columns)
    assert {"ndcg@10", "recall@10", "auc"} <= set(table["metric"])
    assert len(paired["data"][0]["y"]) == len(table)
    assert (table["95% CI low"] <= table["B − A"] + 1e-12).all()


def test_new_evaluation_runs_and_is_stored(app):
    from ui.loaders import store

    goto(app, "evaluate")
    before = len(store().list_runs("demo"))
    app.multiselect(key="ev_models").set_value(["popularity"])
    app.text_input(key="ev_ks").input("10, 20")
    app.radio(key="ev_mask").set_value("train+valid")
    app.button[[b.label for b in app.button].index("Start evaluation")].click().run()
    assert not app.exception, [e.value for e in app.exception]
    runs = store().list_runs("demo")
    assert len(runs) == before + 1
    record = store().load_run(runs["id"].iloc[0])  # newest first
    assert record["protocol"]["mask"] == "train+valid" and record["protocol"]["masked"] == ["train", "valid"]
    assert "Saved 1 run" in app.session_state["eval_message"]


def test_bad_k_values_are_refused(app):
    goto(app, "evaluate")
    app.multiselect(key="ev_models").set_value(["popularity"])
    app.text_input(key="ev_ks").input("ten")
    app.button[[b.label for b in app.button].index("Start evaluation")].click().run()
    assert not app.exception
    assert any("whole numbers" in e.value for e in app.error)


def test_new_evaluation_gives_the_verdict_against_the_strongest_tuned_baseline(app):
    from ui.loaders import store

    from core.tuning.baseline_store import load_baseline

    goto(app, "evaluate")
    active = next(o for o in app.multiselect(key="ev_models").options if o.startswith("active fusion model"))
    app.multiselect(key="ev_models").set_value([active, "popularity", "ease"])
    app.text_input(key="ev_ks").input("10, 20")
    app.button[[b.label for b in app.button].index("Start evaluation")].click().run()
    assert not app.exception, [e.value for e in app.exception]
    tuned = load_baseline(store(), "demo", "ease")  # EASE was searched on validation and its setting stored
    assert tuned is not None and tuned.record["trials"] >= 1
    newest = store().load_run(store().list_runs("demo")["id"].iloc[0])
    card = app.session_state["eval_verdict"]
    assert "Holm-corrected" in card["verdict"] and "over 2 baseline(s)" in card["verdict"]
    strongest = card["strongest baseline"].split(":")[0]
    assert strongest in ("popularity", "ease") and f"the strongest baseline, {strongest}" in card["verdict"]
    assert any(w in card["verdict"] for w in ("leads", "ties", "trails")) and newest["name"]
    assert any("Verdict against the strongest baseline" in m.value for m in app.markdown)
