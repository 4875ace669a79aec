"""Train: a search and a training run from the browser, with live progress. On the demo (and wherever the operator
has not allowed it) they change nothing other sessions see: the search stays in this session, the model is stored
as a candidate, and the active model and tuned configuration stay as they were."""
from __future__ import annotations

from tests.app.conftest import goto


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
    activate = app.checkbox(key="tr_activate")
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
