"""Keeps every page inside the app's frame (app.py's st.navigation), even when Streamlit starts it alone."""
from __future__ import annotations

import runpy

import streamlit as st

from core.store.paths import REPO_ROOT


def ensure_frame() -> None:
    """Run the page through app.py when Streamlit started the page script without it.

    A script folder holding `pages/` puts Streamlit in its legacy multipage mode until app.py has called
    `st.navigation`: on a fresh server a first request straight to e.g. /explain (and every run of an
    AppTest switched to a page) would run the page alone — no sidebar, no session defaults. Running app.py
    here, in the same script run, draws the frame and then this page (so a button click of this run is
    not lost, as it would be with a rerun); the outer, frameless run of the page then stops.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - a Streamlit without this internal: nothing to correct
        return
    if PagesManager.uses_pages_directory:
        runpy.run_path(str(REPO_ROOT / "app.py"), run_name="__main__")
        st.stop()
