"""The "Download report" button the pages share: the HTML report (core.report) is rendered when clicked."""
from __future__ import annotations

import re
import time
from collections.abc import Callable

import streamlit as st

from core.catalog.model import Catalog
from core.report import ReportData, render_report


def report_file_name(catalog: str, what: str) -> str:
    """prism-<catalog>-<what>-<YYYYmmdd-HHMM>.html with only safe characters."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{catalog}-{what}").strip("-")
    return f"prism-{safe}-{time.strftime('%Y%m%d-%H%M')}.html"


def download_report(build: Callable[[], ReportData], catalog: Catalog, what: str, key: str,
                    help: str = "One HTML file that opens offline: charts, covers, short clips, protocol") -> None:
    """A download button whose file is rendered from `build()` when clicked (not on every rerun)."""
    def html() -> str:
        return render_report(build(), catalog)

    st.download_button("Download report", data=html, file_name=report_file_name(catalog.name, what),
                       mime="text/html", icon=":material/download:", key=key, on_click="ignore", help=help)


def merged_explanations(explanations: dict, subject: object) -> dict[str, object]:
    """The Explain page's explanation parts of one subject (modalities, features, words), merged per item."""
    import dataclasses

    parts: dict[str, dict[str, object]] = {}
    for key, exp in explanations.items():
        # keys: ("explanation", part, catalog, stamp, subject, item id, then the weights it was explained with)
        if isinstance(key, tuple) and len(key) >= 6 and key[0] == "explanation" and key[4] == subject:
            parts.setdefault(key[5], {})[key[1]] = exp
    merged = {}
    for item_id, p in parts.items():
        base = p.get("modalities")
        if base is None:
            continue
        features, words = p.get("features"), p.get("words")
        merged[item_id] = dataclasses.replace(
            base, feature_shap=features.feature_shap if features is not None else base.feature_shap,
            token_shap=words.token_shap if words is not None else base.token_shap)
    return merged


def query_report(ws, query, result, explanations: dict, subject: object, what: str) -> ReportData:
    """A report of one query (or listener): its ranking, the items explained so far, the catalog's runs."""
    from core.report import ReportQuery, explained_from, items_from_result, latest_runs, paired_against_fusion
    from core.explain.narration import query_noun
    from core.report.data import query_from
    from ui.loaders import get_store

    store = get_store(ws.root)
    runs = latest_runs(store, ws.catalog.name)
    return ReportData(catalog=ws.catalog.name, model_id=ws.model_id, encoder_ids=dict(ws.embeddings.encoder_ids),
                      title=f"Prism {what} · {ws.catalog.name}",
                      query=query_from(query) if query is not None else ReportQuery(),
                      items=items_from_result(result) if result is not None else [],
                      explained=[explained_from(ws.catalog, e, query_noun(query)) for e in
                                 merged_explanations(explanations, subject).values()],
                      runs=runs, paired=paired_against_fusion(store, runs))
