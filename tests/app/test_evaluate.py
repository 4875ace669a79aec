"""Evaluate: stored runs are drawn under their protocol (one card per section), can be compared and downloaded;
runs started here join the Results at once."""
from __future__ import annotations

import json

import pytest

from tests.app.conftest import goto


@pytest.fixture
def runs_removed(app_env):
    """Deletes the runs a test stores on the shared demo, so the tests that draw the stored runs see the same
    runs whichever ran first."""
    from ui.loaders import store

    before = set(store().list_runs("demo")["id"])
    yield
    for run_id in set(store().list_runs("demo")["id"]) - before:
        store().delete_run(run_id)


def test_evaluate_draws_stored_runs(app):
    goto(app, "evaluate")
    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    assert len(charts) >= 2  # metric@K curves and the CI bars
    titles = " ".join(str(c["layout"].get("title", {}).get("text", "")) for c in charts)
    assert "@K" in titles and "95% CI" in titles
    bars = next(c for c in charts if "95% CI" in str(c["layout"]["title"]["text"]))
    assert bars["data"][0]["error_y"]["visible"] is True
    cards = [m.value for m in app.markdown if "prism-protocol" in m.value]
    results = [c for c in cards if "Protocol of the charts below" in c]
    assert len(results) == 1  # once for the section, not beside each chart
    assert "split" in results[0].lower()
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


def test_new_evaluation_runs_and_is_stored(app, runs_removed):
    from ui.loaders import store

    goto(app, "evaluate")
    before = len(store().list_runs("demo"))
    shown = app.multiselect(key="ev_runs").value
    app.multiselect(key="ev_runs").set_value(shown[:1]).run()  # the widget now keeps its own choice
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
    # the new run is in Results in this session: chosen, and drawn in the charts
    new_id = runs["id"].iloc[0]
    assert app.multiselect(key="ev_runs").value == [new_id, *shown[:1]]
    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    bars = next(c for c in charts if "95% CI" in str(c["layout"]["title"]["text"]))
    assert len(bars["data"][0]["x"]) == 2


def test_bad_k_values_are_refused(app):
    goto(app, "evaluate")
    app.multiselect(key="ev_models").set_value(["popularity"])
    app.text_input(key="ev_ks").input("ten")
    app.button[[b.label for b in app.button].index("Start evaluation")].click().run()
    assert not app.exception
    assert any("whole number" in e.value for e in app.error)


def test_a_k_of_a_million_is_refused_before_work(app):
    from ui.loaders import store

    goto(app, "evaluate")
    before = len(store().list_runs("demo"))
    app.multiselect(key="ev_models").set_value(["popularity"])
    app.text_input(key="ev_ks").input("10, 1000000")
    app.button[[b.label for b in app.button].index("Start evaluation")].click().run()
    assert not app.exception
    message = " ".join(e.value for e in app.error)
    assert "K values" in message and "1 to 500" in message and "1000000" in message
    assert len(store().list_runs("demo")) == before  # nothing ran, nothing stored


def test_new_evaluation_gives_the_verdict_against_the_strongest_tuned_baseline(app, runs_removed):
    from ui.loaders import store

    from core.tuning.baseline_store import load_baseline

    goto(app, "evaluate")
    active = next(o for o in app.multiselect(key="ev_models").options if o.startswith("active fusion model"))
    app.multiselect(key="ev_models").set_value([active, "popularity", "ease"])
    app.text_input(key="ev_ks").input("10, 20")
    app.button[[b.label for b in app.button].index("Start evaluation")].click().run()
    assert not app.exception, [e.value for e in app.exception]
    stored_before = load_baseline(store(), "demo", "ease")
    newest = store().load_run(store().list_runs("demo")["id"].iloc[0])
    card = app.session_state["eval_verdict"]
    assert "Holm-corrected" in card["verdict"] and "over 2 baseline(s)" in card["verdict"]
    strongest = card["strongest baseline"].split(":")[0]
    assert strongest in ("popularity", "ease") and f"the strongest baseline, {strongest}" in card["verdict"]
    assert any(w in card["verdict"] for w in ("leads", "ties", "trails")) and newest["name"]
    assert any("Verdict against the strongest baseline" in m.value for m in app.markdown)
    if stored_before is None:  # EASE was searched on validation for this run; on the demo, stored for no one
        assert load_baseline(store(), "demo", "ease") is None


def test_a_failed_background_evaluation_is_reported_as_text(app, app_env):
    """The failure's message may hold names from data: shown escaped, without the server's paths."""
    import html

    from ui import loaders

    key = (app_env["PRISM_DATA_DIR"], "demo")
    loaders._REFERENCE_JOBS[key] = {"state": "failed", "done": 0, "total": 3, "current": "itemknn",
                                    "error": "clip [x](javascript:alert(1)) **bold** cannot be read"}
    try:
        goto(app, "evaluate")
        warning = next(w.value for w in app.warning if "background evaluation of the demo failed" in w.value)
        assert "](" not in warning and "**bold**" not in warning
        assert "[x](javascript:alert(1)) **bold**" in html.unescape(warning.replace("\\", ""))
    finally:
        loaders._REFERENCE_JOBS.pop(key, None)
