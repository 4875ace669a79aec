"""Plotly figures built from plain data (dicts, DataFrames), and the palette they share: used by the studio
(ui/) and by the HTML report (core/report/). No streamlit here."""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

MODALITY_COLORS: dict[str, str] = {"text": "#3B82F6", "image": "#F59E0B", "audio": "#10B981"}
MODALITY_LABELS: dict[str, str] = {"text": "Text", "image": "Image", "audio": "Audio"}
NEUTRAL = "#94A3B8"  # bias / base value / anything that is not a modality
POSITIVE, NEGATIVE = "#10B981", "#EF4444"
PRIMARY = "#6D28D9"


def modality_color(modality: str) -> str:
    """The modality's colour; grey for anything else (bias, id part)."""
    return MODALITY_COLORS.get(modality, NEUTRAL)


def style_figure(fig: go.Figure, height: int = 320, legend: bool = True) -> go.Figure:
    """Shared plotly layout: compact margins, light grid, the studio font."""
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=40, b=10), showlegend=legend,
        plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1, title=None),
        font=dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=13),
    )
    fig.update_xaxes(gridcolor="#ECE9F5", zerolinecolor="#D9D4EA")
    fig.update_yaxes(gridcolor="#ECE9F5", zerolinecolor="#D9D4EA")
    return fig


MODALITY_ORDER = ("text", "image", "audio")


def _ordered(keys) -> list[str]:
    keys = list(keys)
    return [m for m in MODALITY_ORDER if m in keys] + [k for k in keys if k not in MODALITY_ORDER]


def shapley_waterfall(base_value: float, shapley: Mapping[str, float], score: float,
                      title: str = "How the score is built, modality by modality",
                      history: float | None = None) -> go.Figure:
    """A waterfall from the base value (no modality) through each modality's Shapley value to the score.

    With `history` (the listening-history term, part of the base value) the first bar is the item's own
    offset (base − history) and the listening history gets its own bar before the modalities.
    """
    mods = _ordered(shapley)
    values = [float(shapley[m]) for m in mods]
    # tick labels carry the modality colour (waterfall bars take one colour per direction only)
    labels = [*(["item offset", "<b>listening history</b>"] if history is not None else ["base (no modality)"]),
              *[f'<span style="color:{modality_color(m)}"><b>{MODALITY_LABELS.get(m, m)}</b></span>' for m in mods],
              "<b>score</b>"]
    start = [float(base_value)] if history is None else [float(base_value) - float(history), float(history)]
    fig = go.Figure(go.Waterfall(
        orientation="v",
        measure=["absolute", *["relative"] * (len(mods) + len(start) - 1), "total"],
        x=labels,
        y=[*start, *values, float(score)],
        text=[f"{start[0]:.3f}", *[f"{v:+.3f}" for v in start[1:]], *[f"{v:+.3f}" for v in values],
              f"{score:.3f}"],
        textposition="outside",
        connector={"line": {"color": "#CBD5E1", "dash": "dot"}},
        increasing={"marker": {"color": POSITIVE}},
        decreasing={"marker": {"color": NEGATIVE}},
        totals={"marker": {"color": "#6D28D9"}},
        hovertemplate="%{x}<br>%{text}<extra></extra>",
    ))
    fig = style_figure(fig, height=340, legend=False)
    fig.update_layout(title=title, waterfallgap=0.35)
    steps = np.cumsum([*start, *values]).tolist()
    lo, hi = min([0.0, base_value, score, *steps]), max([0.0, base_value, score, *steps])
    pad = (hi - lo) * 0.15 + 1e-6
    fig.update_yaxes(range=[lo - pad, hi + pad], title="score")
    return fig


def modality_shares_bar(series: Mapping[str, Mapping[str, float]], title: str) -> go.Figure:
    """Grouped horizontal bars comparing modality shares from several sources (e.g. gate, Shapley, truth)."""
    rows = []
    for source, weights in series.items():
        total = sum(abs(float(v)) for v in weights.values()) or 1.0
        for m in _ordered(weights):
            rows.append({"source": source, "modality": MODALITY_LABELS.get(m, m), "key": m,
                         "share": abs(float(weights[m])) / total})
    frame = pd.DataFrame(rows)
    fig = go.Figure()
    for m in _ordered(frame["key"].unique()) if len(frame) else []:
        part = frame[frame["key"] == m]
        fig.add_trace(go.Bar(y=part["source"], x=part["share"], name=MODALITY_LABELS.get(m, m), orientation="h",
                             marker_color=modality_color(m), text=[f"{v:.0%}" for v in part["share"]],
                             textposition="inside", insidetextanchor="middle"))
    fig.update_layout(barmode="stack", title=title)
    fig = style_figure(fig, height=140 + 48 * max(1, len(series)))
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="center", x=0.5,
                                  traceorder="normal"))
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(autorange="reversed")
    return fig


def feature_shap_bar(frame: pd.DataFrame, top: int = 15, title: str = "Which named features matter") -> go.Figure:
    """Horizontal bars of the largest feature-level SHAP values, coloured by modality, labelled with group."""
    if frame is None or frame.empty:
        return style_figure(go.Figure(), height=120)
    f = frame.copy()
    f["abs"] = f["shap"].abs()
    f = f.sort_values("abs", ascending=False).head(top).iloc[::-1]
    group = f["group"].astype(str) if "group" in f else ""
    labels = [f"{feat}  ·  {g}" for feat, g in zip(f["feature"].astype(str), group)]
    colors = [modality_color(m) for m in f["modality"]]
    fig = go.Figure(go.Bar(x=f["shap"], y=labels, orientation="h", marker_color=colors,
                           marker_line_color=[POSITIVE if v >= 0 else NEGATIVE for v in f["shap"]],
                           marker_line_width=1.5,
                           hovertemplate="%{y}<br>SHAP %{x:+.4f}<extra></extra>"))
    fig.update_layout(title=title)
    fig = style_figure(fig, height=max(220, 26 * len(f) + 80), legend=False)
    fig.update_xaxes(title="SHAP value (score change)", zeroline=True, zerolinewidth=1.5)
    return fig




def token_html(tokens: Sequence[tuple[str, float]]) -> str:
    """The text with each word shaded by its SHAP value (green raises the score, red lowers it)."""
    if not tokens:
        return ""
    peak = max(abs(float(v)) for _, v in tokens) or 1.0
    spans = []
    for token, value in tokens:
        a = min(1.0, abs(float(value)) / peak) * 0.75
        rgb = "16,185,129" if value >= 0 else "239,68,68"
        spans.append(f'<span class="prism-token" title="{float(value):+.4f}" '
                     f'style="background:rgba({rgb},{a:.2f})">{html.escape(" ".join(str(token).split()))}</span>')
    return " ".join(spans)


RUN_PALETTE = ("#6D28D9", "#0EA5E9", "#F97316", "#14B8A6", "#E11D48", "#84CC16", "#A855F7", "#64748B",
               "#EAB308", "#0F766E")


def run_colors(labels: Sequence[str], kinds: Sequence[str] | None = None) -> dict[str, str]:
    """One colour per run label, fusion runs first (violet), so every chart of a page agrees."""
    kinds = list(kinds) if kinds is not None else ["" for _ in labels]
    order = sorted(range(len(labels)), key=lambda i: (kinds[i] != "fusion", i))
    return {labels[i]: RUN_PALETTE[n % len(RUN_PALETTE)] for n, i in enumerate(order)}


def _colors_for(labels, colors: Mapping[str, str] | None) -> dict[str, str]:
    labels = list(dict.fromkeys(labels))
    return {**run_colors(labels), **(colors or {})}


def metric_at_k_lines(frame: pd.DataFrame, metric: str, colors: Mapping[str, str] | None = None) -> go.Figure:
    """metric@K curves per model (with the 95% CI as a band where stored)."""
    f = frame[frame["metric"] == metric].sort_values("k")
    fig = go.Figure()
    palette = _colors_for(f["label"], colors)
    for label, part in f.groupby("label", sort=False):
        color = palette[label]
        if part["lo"].notna().all() and part["hi"].notna().all() and len(part) > 1:
            fig.add_trace(go.Scatter(x=[*part["k"], *part["k"][::-1]], y=[*part["hi"], *part["lo"][::-1]],
                                     fill="toself", fillcolor=_alpha(color, 0.12), line_width=0, mode="lines",
                                     hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=part["k"], y=part["value"], mode="lines+markers", name=label,
                                 line=dict(color=color, width=2.5),
                                 hovertemplate=f"{label}<br>{metric}@%{{x}} = %{{y:.4f}}<extra></extra>"))
    fig.update_layout(title=f"{metric}@K")
    fig = style_figure(fig, height=360)
    fig.update_xaxes(title="K", tickmode="array", tickvals=sorted(f["k"].unique()))
    fig.update_yaxes(title=metric)
    return fig


def metric_bars_ci(frame: pd.DataFrame, metric: str, k: int, colors: Mapping[str, str] | None = None) -> go.Figure:
    """One bar per model for metric@k with its 95% bootstrap CI as error bars."""
    f = frame[(frame["metric"] == metric) & (frame["k"] == k)].sort_values("value", ascending=False)
    upper = (f["hi"] - f["value"]).clip(lower=0).fillna(0)
    lower = (f["value"] - f["lo"]).clip(lower=0).fillna(0)
    palette = _colors_for(f["label"], colors)
    bar_colors = [palette[label] for label in f["label"]]
    fig = go.Figure(go.Bar(x=f["label"], y=f["value"], marker_color=bar_colors,
                           error_y=dict(type="data", array=upper, arrayminus=lower, visible=True,
                                        color="#334155", thickness=1.5, width=6),
                           text=[f"{v:.3f}" for v in f["value"]], textposition="inside",
                           insidetextanchor="start", textfont=dict(color="white"),
                           hovertemplate="%{x}<br>%{y:.4f}<extra></extra>"))
    fig.update_layout(uniformtext=dict(minsize=10, mode="show"))
    fig.update_layout(title=f"{metric}@{k} with 95% CI")
    fig = style_figure(fig, height=360, legend=False)
    fig.update_yaxes(title=f"{metric}@{k}", rangemode="tozero")
    return fig


def paired_difference_fig(frame: pd.DataFrame, label_a: str, label_b: str) -> go.Figure:
    """Dots at B − A per metric (rows of core.runs.paired_comparison) with their paired 95% CI, zero marked:
    an interval clear of zero is a difference that holds across the same users."""
    f = frame.iloc[::-1]  # the first metric on top
    colors = [POSITIVE if lo > 0 else NEGATIVE if hi < 0 else "#94a3b8" for lo, hi in zip(f["lo"], f["hi"])]
    fig = go.Figure(go.Scatter(
        x=f["difference"], y=f["name"], mode="markers", marker=dict(size=10, color=colors),
        error_x=dict(type="data", array=(f["hi"] - f["difference"]).clip(lower=0),
                     arrayminus=(f["difference"] - f["lo"]).clip(lower=0), visible=True, color="#334155",
                     thickness=1.5, width=5),
        hovertemplate="%{y}: %{x:+.4f}<extra></extra>"))
    fig.add_vline(x=0, line_width=1, line_dash="dot", line_color="#64748b")
    fig.update_layout(title=f"{label_b} − {label_a}, paired 95% CI")
    fig = style_figure(fig, height=max(220, 36 * len(f) + 110), legend=False)
    fig.update_xaxes(title="difference (B − A)")
    return fig




def _alpha(hex_or_rgb: str, a: float) -> str:
    if hex_or_rgb.startswith("#"):
        h = hex_or_rgb.lstrip("#")
        r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
        return f"rgba({r},{g},{b},{a})"
    if hex_or_rgb.startswith("rgb("):
        return hex_or_rgb.replace("rgb(", "rgba(").replace(")", f",{a})")
    return hex_or_rgb


def token_pairs(token_shap) -> list[tuple[str, float]]:
    """(word, SHAP) pairs from a DataFrame[token, shap], a mapping or a list of pairs; [] when absent."""
    if token_shap is None:
        return []
    if isinstance(token_shap, pd.DataFrame):
        if token_shap.empty:
            return []
        word_col = next((c for c in ("token", "word") if c in token_shap), token_shap.columns[0])
        value_col = "shap" if "shap" in token_shap else token_shap.columns[-1]
        return [(str(w), float(v)) for w, v in zip(token_shap[word_col], token_shap[value_col])]
    if isinstance(token_shap, Mapping):
        return [(str(w), float(v)) for w, v in token_shap.items()]
    return [(str(w), float(v)) for w, v in token_shap]
