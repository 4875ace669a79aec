"""Train: a configured model trains with live progress, is saved and becomes active; the choice can be undone."""
from __future__ import annotations

from tests.app.conftest import goto


def test_train_without_a_tuned_configuration_trains_the_form_and_searches_nothing(app, tmp_path):
    """No tuned configuration stored: Train trains the form's settings (the epochs asked, at most) and runs
    no search; the message says how many epochs ran and why it stopped there."""
    from ui.loaders import store

    from core.tuning.store import load_tuned, tuned_path

    path = tuned_path(store(), "demo")
    kept = tmp_path / "tuned.json"
    if path.exists():  # another test stored one: set it aside for this test
        path.replace(kept)
    try:
        goto(app, "train")
        before = store().active_model("demo")["id"]
        assert "no search runs unless you press that button" in " ".join(str(i.value) for i in app.info)
        app.number_input(key="tr_epochs").set_value(3)
        app.button[[b.label for b in app.button].index("Train")].click().run()
        assert not app.exception, [e.value for e in app.exception]
        assert load_tuned(store(), "demo") is None, "Train ran a search nobody asked for"
        new = store().active_model("demo")
        assert new["id"] != before and new["config"]["epochs"] == 3
        assert new["config"]["config_source"].startswith("untuned starting point")
        ran = len(app.session_state["train_log"])
        assert 1 <= ran <= 3
        message = " ".join(str(s.value) for s in app.success)
        assert f"{ran} of 3 epochs ran" in message
        assert "no tuned configuration was stored" not in message
        app.selectbox(key="tr_choose").set_value(before)
        app.button(key="tr_make_active").click().run()
        assert not app.exception
        assert store().active_model("demo")["id"] == before
    finally:
        if kept.exists():
            kept.replace(path)


def test_train_saves_and_activates_a_model(app):
    from ui.loaders import store

    from core.tuning.store import load_tuned

    goto(app, "train")
    before = store().active_model("demo")["id"]
    n_models = len(store().list_models("demo"))
    # a short search on validation first: it is stored and drawn, and the form starts from it
    app.number_input(key="tr_tune_trials").set_value(2)
    app.button(key="tr_tune").click().run()
    assert not app.exception, [e.value for e in app.exception]
    tuned = load_tuned(store(), "demo")
    assert tuned is not None and len(tuned.history) == 2
    assert any("Search done: 2 trials" in str(s.value) for s in app.success)
    assert app.get("plotly_chart"), "the chart of the search is on screen"
    app.selectbox(key="tr_strategy").set_value("weighted")
    app.number_input(key="tr_epochs").set_value(2)
    app.button[[b.label for b in app.button].index("Train")].click().run()
    assert not app.exception, [e.value for e in app.exception]
    models = store().list_models("demo")
    assert len(models) == n_models + 1
    new = store().active_model("demo")
    assert new["id"] != before and new["config"]["strategy"] == "weighted"
    assert new["config"]["config_source"].startswith("tuned on validation") and "strategy=weighted" in \
        new["config"]["config_source"]
    assert 1 <= len(app.session_state["train_log"]) <= 2
    assert app.get("plotly_chart"), "the loss chart of the run stays on screen"
    # put the previous model back, so other tests see the same workspace
    app.selectbox(key="tr_choose").set_value(before)
    app.button(key="tr_make_active").click().run()
    assert not app.exception
    assert store().active_model("demo")["id"] == before
