"""Every page renders inside the frame: no exception, the shared sidebar, its title."""
from __future__ import annotations

import pytest

from tests.app.conftest import goto

PAGES = {"home": None, "tour": "Tour", "recommend": "Recommend", "explain": "Explain", "evaluate": "Evaluate",
         "catalog": "Catalog", "train": "Train"}


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_in_frame(app, page):
    goto(app, page)
    # the sidebar comes from app.py: the catalog picker and the encoders with their weights ids
    assert app.sidebar.selectbox(key="sidebar_catalog").value == "demo"
    sidebar_text = " ".join(m.value for m in app.sidebar.markdown)
    assert "Encoders" in sidebar_text and "Active model" in sidebar_text
    if PAGES[page]:
        assert app.title[0].value == PAGES[page]


def test_first_start_builds_the_demo_with_progress(tmp_path, monkeypatch, app_env):
    """A fresh data folder: the first run generates, encodes and trains, showing each step, then Home."""
    from streamlit.testing.v1 import AppTest

    from core.store.database import Store
    from tests.app.conftest import APP, TIMEOUT

    monkeypatch.setenv("PRISM_DATA_DIR", str(tmp_path / "fresh"))
    monkeypatch.setenv("PRISM_DEMO_TRACKS", "24")
    monkeypatch.setenv("PRISM_DEMO_LISTENERS", "20")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT * 2)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    steps = " ".join(m.value for m in at.markdown)
    assert "1 / 4" in steps and "4 / 4" in steps  # every step was announced
    assert at.status[0].label == "Studio ready"
    store = Store(tmp_path / "fresh")
    assert store.has_catalog("demo") and store.active_model("demo") is not None
    assert {m.label: m.value for m in at.metric}["Items"] == "24"
