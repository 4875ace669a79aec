"""A catalog imported without interactions opens as a content-only catalog: it recommends and explains by
content, Evaluate and Train say what is missing and take an interactions upload, and it can be removed from
the browser (never the demo)."""
from __future__ import annotations

import pandas as pd
import pytest

from tests.app.conftest import goto, texts
from tests.catalog.test_manifest import make_catalog_folder, manifest_rows

NAME = "own-no-plays"
TEXTS = ["slow ambient piano for a rainy evening", "fast drum and bass with heavy sub bass",
         "indian percussion with tabla and sitar", "acoustic folk guitar and a soft voice",
         "brass band marching on a sunny street", "dark techno with a pounding kick"]


@pytest.fixture
def own_catalog(app_env, tmp_path):
    """The catalog NAME (six items with covers, clips and text, no interactions) in the app's store."""
    from core.workspace.imports import import_manifest
    from core.workspace.prepare import remove_catalog
    from ui.loaders import store

    rows = manifest_rows(len(TEXTS))
    for row, text in zip(rows, TEXTS):
        row["text"] = text
    folder = make_catalog_folder(tmp_path / NAME, n=len(TEXTS), interactions=False, rows=rows)
    if store().has_catalog(NAME):
        remove_catalog(store(), NAME)
    assert import_manifest(folder, store(), name=NAME).interactions == 0
    yield NAME
    if store().has_catalog(NAME):
        remove_catalog(store(), NAME)


def _open(app, page: str):
    app.session_state["catalog_name"] = NAME
    return goto(app, page)


def test_a_catalog_without_interactions_recommends_explains_and_takes_an_upload(app, own_catalog, tmp_path):
    from ui.loaders import store

    _open(app, "recommend")  # the first visit prepares it: encoded, and a content-only model (no training)
    assert store().active_model(NAME)["name"] == "content-only"
    sidebar = " ".join(str(m.value) for m in app.sidebar.markdown)
    assert "content only: no interactions, nothing trained" in sidebar and "bpr" not in sidebar
    app.text_area(key="q_text").input(TEXTS[2])
    app.button(key="q_submit").click().run()
    assert not app.exception, [e.value for e in app.exception]
    result = app.session_state["result"]
    assert result.items[0].item_id == "t2", "the item whose text is the query comes first"
    for page in ("explain", "tour"):  # without a chosen item, and the tour: no exception on either
        goto(app, page)
    app.session_state["explain_target"] = {"item_id": "t2", "mode": "query", "catalog": NAME}
    goto(app, "explain")
    assert app.get("plotly_chart"), "Explain draws its charts on a content-only catalog"
    for page in ("catalog", "home"):
        goto(app, page)
    for page, what in (("evaluate", "Evaluating needs listening data"), ("train", "Training needs listening data")):
        goto(app, page)
        assert "has no interactions yet" in texts(app) and what in texts(app)
    # a bad file is refused by name and changes nothing
    app.get("file_uploader")[0].set_value(("plays.csv", b"user_id,item_id\nu0,nope\n", "text/csv"))
    app.button[[b.label for b in app.button].index("Add these interactions")].click().run()
    assert not app.exception and "were not added" in texts(app) and "nope" in texts(app)
    assert len(store().load_catalog(NAME).interactions) == 0
    # a good one is stored, and the next run trains a model on it
    rows = [(f"u{u}", f"t{(u + j) % len(TEXTS)}") for u in range(12) for j in range(4)]
    csv = pd.DataFrame(rows, columns=["user_id", "item_id"]).to_csv(index=False).encode()
    app.get("file_uploader")[0].set_value(("plays.csv", csv, "text/csv"))
    app.button[[b.label for b in app.button].index("Add these interactions")].click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert len(store().load_catalog(NAME).interactions) == len(rows)
    record = store().active_model(NAME)
    assert record["name"] != "content-only", "a model was trained on the new interactions"
    assert "has no interactions yet" not in texts(app)


def test_a_catalog_that_fails_to_open_can_be_removed_from_the_browser(app, own_catalog, monkeypatch):
    """A catalog whose preparation fails offers the way back and its removal, after a confirmation."""
    import core.workspace.prepare
    from core.errors import CatalogError
    from ui.loaders import store

    def broken(*args, **kwargs):
        raise CatalogError("every clip of this catalog is unreadable")

    monkeypatch.setattr(core.workspace.prepare, "prepare_embeddings", broken)
    app.session_state["catalog_name"] = NAME
    app.switch_page("pages/recommend.py").run()
    assert "every clip of this catalog is unreadable" in texts(app)
    assert app.button(key=f"remove_catalog_{NAME}").disabled, "removal waits for its confirmation"
    app.checkbox(key=f"remove_confirm_{NAME}").check().run()
    app.button(key=f"remove_catalog_{NAME}").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert not store().has_catalog(NAME) and store().has_catalog("demo")
    assert "Removed catalog" in texts(app)


def test_the_demo_cannot_be_removed(app_env):
    from core.errors import CatalogError
    from core.workspace.prepare import remove_catalog
    from ui.loaders import store

    with pytest.raises(CatalogError, match="cannot be removed"):
        remove_catalog(store(), "demo")
    assert store().has_catalog("demo")
