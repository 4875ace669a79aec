"""Train: a search and a training run from the browser, with live progress. On the demo (and wherever the operator
has not allowed it) they change nothing other sessions see: the search stays in this session, the model is stored
as a candidate, and the active model and tuned configuration stay as they were."""
from __future__ import annotations

import json

import pytest

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
        new = json.loads(store().list_models("demo").iloc[0]["config"])  # stored as a candidate on the demo
        assert new["epochs"] == 3 and new["config_source"].startswith("untuned starting point")
        assert store().active_model("demo")["id"] == before
        ran = len(app.session_state["train_log"])
        assert 1 <= ran <= 3
        message = " ".join(str(s.value) for s in app.success)
        assert f"{ran} of 3 epochs ran" in message
        assert "no tuned configuration was stored" not in message
    finally:
        if kept.exists():
            kept.replace(path)


def test_training_from_the_browser_leaves_the_demo_as_others_see_it(app):
    from ui.loaders import store

    from core.tuning.store import load_tuned, tuned_path

    goto(app, "train")
    before = store().active_model("demo")["id"]
    n_models = len(store().list_models("demo"))
    path = tuned_path(store(), "demo")
    tuned_before = path.read_bytes() if path.exists() else None
    # a short search on validation: drawn and used as this session's starting point, stored for no one
    app.number_input(key="tr_tune_trials").set_value(2)
    app.button(key="tr_tune").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert (path.read_bytes() if path.exists() else None) == tuned_before
    assert load_tuned(store(), "demo") is None or tuned_before is not None
    assert len(app.session_state["tuned_candidates"]["demo"].history) == 2
    assert any("Search done: 2 trials" in str(s.value) and "not stored" in str(s.value) for s in app.success)
    assert any("this session's search" in str(s.value) for s in app.success)
    assert app.get("plotly_chart"), "the chart of the search is on screen"
    activate = app.checkbox(key="tr_activate_locked")
    assert activate.disabled and not activate.value
    app.selectbox(key="tr_strategy").set_value("weighted")
    app.number_input(key="tr_epochs").set_value(2)
    app.button[[b.label for b in app.button].index("Train")].click().run()
    assert not app.exception, [e.value for e in app.exception]
    models = store().list_models("demo")
    assert len(models) == n_models + 1
    assert store().active_model("demo")["id"] == before  # every other session still gets the same model
    new = models.iloc[0]
    assert not new["active"] and '"strategy": "weighted"' in new["config"]
    assert "tuned on validation" in new["config"] and "strategy=weighted" in new["config"]
    assert any("stored as a candidate" in str(s.value) for s in app.success)
    assert 1 <= len(app.session_state["train_log"]) <= 2
    assert app.get("plotly_chart"), "the loss chart of the run stays on screen"
    for key in ("tr_make_active", "tr_restore_model", "tr_restore_tuned"):
        assert app.button(key=key).disabled, f"{key} is usable on the demo"
    assert any("command line" in str(c.value) for c in app.caption)


def test_where_the_operator_allows_it_the_browser_activates_and_restores(app, monkeypatch):
    from ui.loaders import data_root, store

    from core.tuning.history import tuned_history
    from core.tuning.store import tuned_path
    from core.workspace.prepare import remove_catalog
    from tests.hostile.cases import trained_store

    monkeypatch.setenv("PRISM_ALLOW_BROWSER_ACTIVATION", "1")
    if not store().has_catalog("shop"):
        trained_store(data_root(), ("shop",))
    first = store().active_model("shop")["id"]
    try:
        goto(app, "train")
        app.session_state["catalog_name"] = "shop"
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        for trials in (2, 3):  # two searches: the second replaces the first, which stays in the history
            app.number_input(key="tr_tune_trials").set_value(trials)
            app.button(key="tr_tune").click().run()
            assert not app.exception, [e.value for e in app.exception]
        history = tuned_history(tuned_path(store(), "shop"))
        assert [e.trials for e in history] == [3, 2] and history[0].current
        assert app.checkbox(key="tr_activate").value
        app.number_input(key="tr_epochs").set_value(2)
        app.button[[b.label for b in app.button].index("Train")].click().run()
        assert not app.exception, [e.value for e in app.exception]
        trained = store().active_model("shop")["id"]
        assert trained != first  # activated for every session, as the operator allowed
        next(b for b in app.selectbox if b.label == "Earlier active model").set_value(first)
        app.button(key="tr_restore_model").click().run()
        assert not app.exception, [e.value for e in app.exception]
        assert store().active_model("shop")["id"] == first
        assert store().activation_history("shop")["source"].tolist()[:2] == ["restored", "trained"]
        app.button(key="tr_restore_tuned").click().run()  # the earlier (2-trial) configuration back
        assert [e.trials for e in tuned_history(tuned_path(store(), "shop")) if e.current] == [2]
    finally:
        app.session_state["catalog_name"] = "demo"
        remove_catalog(store(), "shop")  # with its models, runs and tuned settings


def test_a_message_about_another_catalog_is_not_shown_on_this_one(app):
    """Train's last message ("… is now the active model") names what happened on the catalog it was said on:
    after a switch to another catalog it is gone, and it stays while the catalog does."""
    goto(app, "train")
    said = "`m-shop` is now the active model."
    app.session_state["train_message"] = said
    app.run()
    assert said in [s.value for s in app.success]  # same catalog: still shown
    app.session_state["train_message_catalog"] = "shop"  # as if it was said before a switch from "shop"
    app.session_state["train_message"] = said
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert said not in [s.value for s in app.success]


def test_the_train_page_offers_ray_train_and_routes_the_fit_through_it(app):
    """With Ray installed the Train form offers "Train on: Ray Train" with a worker count; the block the fit runs
    in hands fit_fusion a RayTrainEngine with those workers and address, and this process's block hands none."""

    pytest.importorskip("ray")
    from core.models.fusion.train import ENGINE
    from core.scale.ray_train import RayTrainEngine
    from ui import engines

    goto(app, "train")
    assert app.radio(key="tr_engine").options == [engines.TRAIN_HERE, engines.TRAIN_RAY]
    assert app.radio(key="tr_engine").value == engines.TRAIN_HERE  # the local loop by default
    assert app.number_input(key="tr_workers").value == 2 and app.text_input(key="tr_ray_address").value == ""

    with engines.training_block(engines.TRAIN_RAY, 2, " auto "):
        engine = ENGINE.get()
    assert isinstance(engine, RayTrainEngine) and (engine.workers, engine.address) == (2, "auto")
    assert ENGINE.get() is None  # the block ends with the fit
    with engines.training_block(engines.TRAIN_HERE, 2, "auto"):
        assert ENGINE.get() is None


@pytest.mark.slow
def test_a_ray_train_run_from_the_train_page_reports_its_epochs_and_stores_a_model(app):
    """Train on: Ray Train (1 worker, Ray on this machine) trains the form's epochs on a Ray worker, the page's
    live log gets every epoch, and the model is stored like a local one (a candidate on the demo)."""
    pytest.importorskip("ray")
    from ui import engines
    from ui.loaders import store

    goto(app, "train")
    before = set(store().list_models("demo")["id"])
    app.number_input(key="tr_epochs").set_value(2)
    app.radio(key="tr_engine").set_value(engines.TRAIN_RAY)
    app.number_input(key="tr_workers").set_value(1)
    app.button[[b.label for b in app.button].index("Train")].click().run(timeout=600)
    assert not app.exception, [e.value for e in app.exception]
    assert [row["epoch"] for row in app.session_state["train_log"]] == [1, 2]
    new = set(store().list_models("demo")["id"]) - before
    assert len(new) == 1 and "2 of 2 epochs ran" in " ".join(str(s.value) for s in app.success)
