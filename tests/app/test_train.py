"""Train: a configured model trains with live progress, is saved and becomes active; the choice can be undone."""
from __future__ import annotations

from tests.app.conftest import goto


def test_train_saves_and_activates_a_model(app):
    from ui.loaders import store

    goto(app, "train")
    before = store().active_model("demo")["id"]
    n_models = len(store().list_models("demo"))
    app.selectbox(key="tr_strategy").set_value("weighted")
    app.number_input(key="tr_epochs").set_value(2)
    app.button[[b.label for b in app.button].index("Train")].click().run()
    assert not app.exception, [e.value for e in app.exception]
    models = store().list_models("demo")
    assert len(models) == n_models + 1
    new = store().active_model("demo")
    assert new["id"] != before and new["config"]["strategy"] == "weighted"
    assert 1 <= len(app.session_state["train_log"]) <= 2
    assert app.get("plotly_chart"), "the loss chart of the run stays on screen"
    # put the previous model back, so other tests see the same workspace
    app.selectbox(key="tr_choose").set_value(before)
    app.button(key="tr_make_active").click().run()
    assert not app.exception
    assert store().active_model("demo")["id"] == before
