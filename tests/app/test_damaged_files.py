"""A damaged stored file is named with its fix on its own catalog's pages; the rest of the studio keeps working."""
from __future__ import annotations

from tests.app.conftest import goto, texts


def test_a_damaged_embeddings_file_is_named_and_the_demo_is_one_click_away(app):
    from ui.loaders import store

    from core.catalog.model import Catalog, Item

    st_store = store()
    st_store.save_catalog(Catalog(name="broken", items=[Item(id="a", title="A", text="a song")]), overwrite=True)
    path = st_store.embedding_path("broken", "default")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x03\x04 truncated")
    try:
        goto(app, "recommend")
        app.session_state["catalog_name"] = "broken"  # as the sidebar picker would set it
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        shown = texts(app)
        assert "cannot be opened" in shown and "default.npz" in shown
        assert "encode --catalog broken --force" in shown
        app.button(key="damaged_back").click().run()
        assert not app.exception and app.session_state["catalog_name"] == "demo"
        assert "cannot be opened" not in texts(app)
    finally:
        st_store.delete_catalog("broken")
        path.unlink(missing_ok=True)


def test_a_damaged_run_record_is_named_and_the_others_still_drawn(app):
    from ui.loaders import store

    st_store = store()
    bad = st_store.save_run({"catalog": "demo", "name": "broken", "created_at": 1.0})
    with st_store.transaction() as con:
        con.execute("UPDATE runs SET record = ? WHERE id = ?", ("[1, 2", bad))
    try:
        goto(app, "evaluate")
        assert any(f"runs delete {bad}" in str(w.value) for w in app.warning)
        assert app.get("plotly_chart"), "the readable runs are still drawn"
    finally:
        st_store.delete_run(bad)
