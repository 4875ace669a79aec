"""Home: loads, shows the active catalog and encoders, and the one-click demo query lands on results."""
from __future__ import annotations

import html

from tests.app.conftest import texts


def test_home_shows_catalog_and_encoders(app):
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Items"] == "60"
    assert metrics["Users"] == "40"
    page = html.unescape(texts(app))  # as the browser shows it (ids are drawn as HTML text)
    assert "Catalog · demo" in page
    # every encoder is named by the exact weights id its embeddings were computed with
    from core.workspace.prepare import load_embeddings
    from ui.loaders import store

    embeddings = load_embeddings(store(), store().load_catalog("demo"))
    for encoder_id in embeddings.encoder_ids.values():
        assert encoder_id in page
    assert "EfficientNet-Lite0" in page or "CLIP" in page
    if any(i.startswith("aisfx/") for i in embeddings.encoder_ids.values()):  # its licence asks for attribution
        assert "aiSFX" in page and "CC BY 4.0" in page
    active = store().active_model("demo")["id"]
    assert active in page


def test_demo_query_lands_on_recommend_with_results(app):
    app.button(key="home_demo_query").click().run()
    assert not app.exception, app.exception
    result = app.session_state["result"]
    assert result is not None and len(result.items) == 10
    assert len({r.item_id for r in result.items}) == 10
    # the Recommend page is on screen: its inputs and the cards' "Why?" buttons
    from core.tour.schema import tour_sentence

    assert app.text_area(key="q_text").value == tour_sentence()  # the tour's sentence, said once
    assert len([b for b in app.button if b.label == "Why?"]) == 10
