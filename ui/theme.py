"""The studio's look: one colour and icon per modality, the CSS, and plotly defaults."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import streamlit as st

# the palette and the figure style are shared with the HTML report (core.report.figures); pages import them from here
from core.report.figures import (MODALITY_COLORS, MODALITY_LABELS, NEGATIVE, NEUTRAL, POSITIVE,  # noqa: F401
                          PRIMARY, modality_color, style_figure)

ASSETS = Path(__file__).resolve().parents[1] / "assets"

MODALITY_ICONS: dict[str, str] = {"text": ":material/notes:", "image": ":material/image:",
                                  "audio": ":material/graphic_eq:"}  # markdown and widget labels only


@lru_cache(maxsize=1)
def _css() -> str:
    return (ASSETS / "style.css").read_text(encoding="utf-8")


def inject_css() -> None:
    """Apply the studio stylesheet (cards, badges, modality bars) to the current page."""
    st.html(f"<style>{_css()}</style>")


def modality_bar(weights: dict[str, float], height: int = 8) -> str:
    """A small horizontal stacked bar (HTML) of modality weights, each part in its modality's colour."""
    total = sum(max(0.0, float(v)) for v in weights.values()) or 1.0
    parts = []
    for m in ("text", "image", "audio"):
        if m not in weights:
            continue
        share = max(0.0, float(weights[m])) / total
        if share <= 0:
            continue
        parts.append(f'<span class="prism-bar-part" title="{MODALITY_LABELS[m]} {share:.0%}" '
                     f'style="width:{share * 100:.1f}%;background:{modality_color(m)}"></span>')
    return f'<div class="prism-bar" style="height:{height}px">{"".join(parts)}</div>'


def modality_legend(modalities: list[str] | None = None) -> str:
    """An inline legend of modality colours (HTML)."""
    mods = modalities or list(MODALITY_COLORS)
    return " ".join(f'<span class="prism-legend"><span class="prism-dot" style="background:{modality_color(m)}">'
                    f'</span>{MODALITY_LABELS.get(m, m)}</span>' for m in mods)


def rank_change(rank: int, previous_rank: int | None, had_previous: bool) -> str:
    """The rank change badge (HTML): ↑3, ↓2, = or new; empty before the first re-rank."""
    if not had_previous:
        return ""
    if previous_rank is None:
        return '<span class="prism-rank prism-new">new</span>'
    delta = previous_rank - rank
    if delta > 0:
        return f'<span class="prism-rank prism-up">↑{delta}</span>'
    if delta < 0:
        return f'<span class="prism-rank prism-down">↓{-delta}</span>'
    return '<span class="prism-rank prism-same">=</span>'


def page_header(title: str, subtitle: str) -> None:
    """The page title with a one-line explanation under it."""
    inject_css()
    st.title(title)
    st.markdown(f'<p class="prism-subtitle">{subtitle}</p>', unsafe_allow_html=True)
