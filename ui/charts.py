"""Plotly figures of the studio, built from plain data (dicts, DataFrames). No streamlit here, so they test alone;
the ones the HTML report draws too are in core.report.figures."""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

# the figures the HTML report shares live in core.report.figures; imported here so pages keep calling ui.charts
from core.report.figures import (CATEGORY_PALETTE, MODALITY_ORDER, legend_below, RUN_PALETTE, _alpha, _colors_for, _ordered,  # noqa: F401
                          feature_shap_bar, metric_at_k_lines, metric_bars_ci, modality_shares_bar,
                          paired_difference_fig, run_colors, shapley_waterfall, token_html, token_pairs,
                          BASE_COLOR, HISTORY_COLOR, TERM_COLOR, TOTAL_COLOR)
from ui.theme import MODALITY_COLORS, MODALITY_LABELS, POSITIVE, modality_color, style_figure


def group_shap_bar(frame: pd.DataFrame, title: str = "By feature group") -> go.Figure:
    """SHAP summed per (modality, group): the coarse view of feature attributions."""
    if frame is None or frame.empty:
        return style_figure(go.Figure(), height=120)
    g = frame.groupby(["modality", "group"], as_index=False)["shap"].sum()
    g["abs"] = g["shap"].abs()
    g = g.sort_values("abs").reset_index(drop=True)
    fig = go.Figure(go.Bar(x=g["shap"], y=[f"{MODALITY_LABELS.get(m, m)} · {gr}" for m, gr in
                                            zip(g["modality"], g["group"])],
                           orientation="h", marker_color=[modality_color(m) for m in g["modality"]],
                           hovertemplate="%{y}<br>SHAP %{x:+.4f}<extra></extra>"))
    fig.update_layout(title=title)
    fig = style_figure(fig, height=max(200, 30 * len(g) + 80), legend=False)
    fig.update_xaxes(title="summed SHAP", zeroline=True, zerolinewidth=1.5)
    return fig


def training_curves_fig(frame: pd.DataFrame, colors: Mapping[str, str] | None = None) -> go.Figure:
    """Training loss (left axis) and the validation metric (right axis) per epoch, per model."""
    fig = go.Figure()
    palette = _colors_for(frame["label"], colors)
    for label, part in frame.groupby("label", sort=False):
        color = palette[label]
        fig.add_trace(go.Scatter(x=part["epoch"], y=part["loss"], name=f"{label} · loss", mode="lines",
                                 line=dict(color=color, width=2)))
        if "valid_metric" in part and part["valid_metric"].notna().any():
            fig.add_trace(go.Scatter(x=part["epoch"], y=part["valid_metric"], name=f"{label} · valid",
                                     mode="lines+markers", line=dict(color=color, width=2, dash="dot"),
                                     yaxis="y2"))
    fig.update_layout(title="Training loss and validation metric",
                      yaxis2=dict(overlaying="y", side="right", title="validation metric", showgrid=False))
    fig = style_figure(fig, height=340 + 22 * max(0, len(fig.data) // 4))
    legend_below(fig, rows=max(1, -(-len(fig.data) // 4)))  # the right edge holds the validation axis
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="loss", selector=dict(overlaying=None))
    return fig


def live_loss_fig(history: Sequence[Mapping[str, float]]) -> go.Figure:
    """The loss (and validation metric) so far, redrawn after each epoch while a model trains."""
    frame = pd.DataFrame(list(history)) if history else pd.DataFrame({"epoch": [], "loss": []})
    frame["label"] = "this run"
    return training_curves_fig(frame)


def embedding_scatter(frame: pd.DataFrame, color: str, title: str) -> go.Figure:
    """The 2-D map of items, coloured by a metadata attribute or by dominant modality; hover shows the title."""
    is_modality = color == "dominant modality"
    color_map = ({MODALITY_LABELS[m]: c for m, c in MODALITY_COLORS.items()} if is_modality else None)
    colour_values = frame[color].map(lambda m: MODALITY_LABELS.get(m, m)) if is_modality else frame[color]
    numeric = pd.api.types.is_numeric_dtype(colour_values) and colour_values.nunique() > 12
    plot = frame.assign(_colour=colour_values if numeric else colour_values.astype(str))
    fig = px.scatter(plot, x="x", y="y", color="_colour", hover_name="title",
                     hover_data={"x": False, "y": False, "_colour": False, "item_id": True},
                     color_discrete_map=color_map,
                     color_discrete_sequence=None if is_modality else list(CATEGORY_PALETTE),
                     color_continuous_scale="Purp" if numeric else None,
                     labels={"_colour": color})
    fig.update_traces(marker=dict(size=8, opacity=0.85, line=dict(width=0.5, color="white")))
    fig.update_layout(title=title)
    fig = style_figure(fig, height=560)
    fig.update_layout(legend_title_text=color)
    fig.update_xaxes(showticklabels=False, title=None)
    fig.update_yaxes(showticklabels=False, title=None)
    return fig


def tuning_search_fig(history: Sequence[Mapping], metric: str = "validation metric") -> go.Figure:
    """A search's trials: trial number vs validation metric, pruned trials marked, the best-so-far line."""
    rows = [h for h in history if h.get("value") is not None]
    fig = go.Figure()
    for state, symbol, color in (("complete", "circle", POSITIVE), ("pruned", "x", "#94A3B8")):
        pts = [h for h in rows if h.get("state") == state]
        fig.add_trace(go.Scatter(
            x=[h["number"] for h in pts], y=[h["value"] for h in pts], mode="markers", name=state,
            marker={"symbol": symbol, "size": 9, "color": color},
            text=[f"{h.get('epochs', 0)} epochs · {h.get('seconds', 0):.0f} s" for h in pts],
            hovertemplate="trial %{x}<br>" + html.escape(metric) + " %{y:.4f}<br>%{text}<extra>" + state
                          + "</extra>"))
    best, xs, ys = -np.inf, [], []
    for h in sorted(rows, key=lambda h: h["number"]):
        if h.get("state") == "complete" and h["value"] > best:
            best = h["value"]
        if np.isfinite(best):
            xs.append(h["number"])
            ys.append(best)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="best so far", line={"shape": "hv", "color": "#6D28D9"}))
    fig = style_figure(fig, height=320)
    fig.update_layout(title="The search on the validation split")
    fig.update_xaxes(title="trial")
    fig.update_yaxes(title=f"validation {metric}")
    return fig
