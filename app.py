"""Prism studio: the router and frame — page config, navigation, the shared sidebar. Pages live in pages/."""
from __future__ import annotations

import os

# The studio never reaches a model hub: weights come from installed packages or local files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# OpenMP threads that busy-wait starve each other when the CPU is shared (other processes, other sessions):
# encoding one query then takes seconds instead of tens of milliseconds. Passive waiting avoids it; it must
# be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

from ui import components, loaders, state, theme  # noqa: E402

st.set_page_config(page_title="Prism — cross-modal recommendations", page_icon=str(theme.ASSETS / "icon.svg"),
                   layout="wide", initial_sidebar_state="expanded")
state.init_state()
theme.inject_css()
st.logo(str(theme.ASSETS / "logo.svg"), icon_image=str(theme.ASSETS / "icon.svg"), size="large")

PAGES = [
    # the default page is served at / but still reserves its own path, which then answers "Page not found";
    # it reserves "index" instead, so that /home can be the alias below
    st.Page("pages/home.py", title="Home", icon=":material/home:", url_path="index", default=True),
    st.Page("pages/tour.py", title="Tour", icon=":material/tour:", url_path="tour"),
    st.Page("pages/recommend.py", title="Recommend", icon=":material/auto_awesome:", url_path="recommend"),
    st.Page("pages/explain.py", title="Explain", icon=":material/insights:", url_path="explain"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/monitoring:", url_path="evaluate"),
    st.Page("pages/catalog.py", title="Catalog", icon=":material/library_music:", url_path="catalog"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
]


def home_alias() -> None:
    """/home, where links to Home may point: switch to Home at /."""
    st.switch_page(PAGES[0])


page = st.navigation([*PAGES, st.Page(home_alias, title="Home", url_path="home", visibility="hidden")],
                     position="sidebar")

ws = loaders.workspace()  # first start: builds the demo catalog, its embeddings and model, with progress
components.sidebar(ws, loaders.catalog_names(loaders.store()))
page.run()
loaders.warm_up_in_background(ws)  # after the page is drawn, so the first query does not wait
loaders.evaluate_demo_in_background(ws)  # first start on the demo: the Evaluate page then has runs to plot
