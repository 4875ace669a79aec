"""The Evaluate page's New evaluation drawn while core.evaluation.suite.evaluate_in_studio fits and stores the
models: an overall bar, one bar a model and a line a stored run, tuned setting or failure."""
from __future__ import annotations

from typing import Any

import streamlit as st

from ui.components import md_escape


def model_choices(embeddings: Any) -> list[str]:
    """The registry's models this catalog's embeddings allow (core.models.registry.list_models)."""
    from core.models.registry import list_models

    return list_models(embeddings)


def evaluate_models(store: Any, ws: Any, data: Any, names: list[str], *, active: str, base: Any,
                    ks: tuple[int, ...], seed: int, mask: str, cold: bool, overall: Any
                    ) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Run `names` on `data` for the workspace's catalog (the one named `active` is its active model) with
    progress on the page; returns (stored run ids, what the verdict needs). `overall` is the page's bar."""
    from core.evaluation.suite import evaluate_in_studio

    def model_bar(i: int, name: str):
        overall.progress(i / len(names), text=f"{name} ({i + 1}/{len(names)})")
        bar = st.progress(0.0, text=f"{name}: training")
        return lambda fraction, text: bar.progress(fraction, text=text)

    def say(event: str, name: str, detail: str) -> None:
        if event == "tuned":
            st.write(f":material/tune: **{name}**: {md_escape(detail)}")
        elif event == "saved":
            st.write(f":material/check_circle: **{name}** — saved as `{detail}`")
        elif event == "cold start saved":
            st.write(f":material/check_circle: **{name}** (cold start) — saved as `{detail}`")
        else:
            st.write(f":material/warning: **{name}** failed: {md_escape(detail)}")

    return evaluate_in_studio(store, ws.catalog, ws.embeddings, data, names, active=active, active_model=ws.model,
                              base=base, ks=ks, seed=seed, mask=mask, cold=cold, model_bar=model_bar, say=say)
