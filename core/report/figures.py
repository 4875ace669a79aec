"""Plotly figures built from plain data (dicts, DataFrames), and the palette they share: used by the studio
(ui/) and by the HTML report (core/report/). No streamlit here."""
from __future__ import annotations

import html
import zlib
from collections.abc import Mapping, Sequence

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


# The legend stands right of the plot, top-aligned: above the plot it ran into the title, and inside the plot
# it covered bars and axes. Plotly widens the right margin to fit it.
LEGEND_RIGHT = dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top", title=None)


def legend_below(fig: go.Figure, rows: int = 1) -> go.Figure:
    """The legend at the foot of the figure, under the axis title, with room kept for `rows` rows: for a chart
    whose right edge carries a second axis."""
    fig.update_layout(legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0.5,
                                  xanchor="center", title=None),
                      margin=dict(b=56 + 22 * rows))
    return fig


def style_figure(fig: go.Figure, height: int = 320, legend: bool = True) -> go.Figure:
    """Shared plotly layout: compact margins, light grid, the studio font, the legend right of the plot."""
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=64, b=10), showlegend=legend,
        plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)",
        legend=LEGEND_RIGHT,
        font=dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=13),
    )
    # automargin: the axis titles and tick labels get room of their own instead of being cut at the edge
    fig.update_xaxes(gridcolor="#ECE9F5", zerolinecolor="#D9D4EA", automargin=True)
    fig.update_yaxes(gridcolor="#ECE9F5", zerolinecolor="#D9D4EA", automargin=True)
    return fig


MODALITY_ORDER = ("text", "image", "audio")


def _ordered(keys) -> list[str]:
    keys = list(keys)
    return [m for m in MODALITY_ORDER if m in keys] + [k for k in keys if k not in MODALITY_ORDER]


BASE_COLOR, TOTAL_COLOR = "#CBD5E1", "#6D28D9"  # the base value's bar and the score's bar
TERM_COLOR = NEUTRAL  # named score terms that are not a modality (the popularity prior, items like the upload)
HISTORY_COLOR = "#475569"  # the listening-history term (ids and the interaction graph)


def _signed(v: float) -> str:
    return f"{'+' if v >= 0 else '−'}{abs(v):.3f}"


def shapley_waterfall(base_value: float, shapley: Mapping[str, float], score: float,
                      title: str = "How the score is built, modality by modality",
                      terms: Mapping[str, float] | None = None, term_labels: Mapping[str, str] | None = None,
                      base_label: str = "base (no modality)", history: float | None = None) -> go.Figure:
    """A waterfall from the base value through each modality's Shapley value and each named term (e.g. the
    popularity prior) to the score.

    With `history` (the listening-history term, part of the base value) the first bar is the item's own
    offset (base − history) and the listening history gets its own bar before the modalities. Bars take the
    modality colours (text, image, audio as everywhere in the studio), grey for terms and slate for the
    history; the sign is in the label (+/−) and in the fill: a bar that lowers the score is hatched.
    """
    mods = _ordered(shapley)
    terms = dict(terms or {})
    labels = dict(term_labels or {})
    steps = [] if history is None else [("<b>listening history</b>", float(history), HISTORY_COLOR)]
    steps += [(MODALITY_LABELS.get(m, m), float(shapley[m]), modality_color(m)) for m in mods]
    steps += [(labels.get(t, t), float(v), TERM_COLOR) for t, v in terms.items()]
    start = float(base_value) if history is None else float(base_value) - float(history)
    names = ["item offset" if history is not None else base_label, *[name for name, _, _ in steps], "score"]
    values = [start, *[v for _, v, _ in steps], float(score)]
    starts = [0.0]
    level = start
    for _, v, _ in steps:
        starts.append(level)
        level += v
    starts.append(0.0)
    colors = [BASE_COLOR, *[c for _, _, c in steps], TOTAL_COLOR]
    hatch = ["", *["/" if v < 0 else "" for _, v, _ in steps], ""]
    text = [f"{start:.3f}", *[_signed(v) for _, v, _ in steps], f"{score:.3f}"]
    fig = go.Figure(go.Bar(
        x=names, y=values, base=starts, text=text, textposition="outside", cliponaxis=False,
        marker=dict(color=colors, line=dict(color="#334155", width=1),
                    pattern=dict(shape=hatch, fgcolor="#334155", size=7, solidity=0.35)),
        customdata=[("lowers the score" if v < 0 else "raises the score") if 0 < i < len(values) - 1 else ""
                    for i, v in enumerate(values)],
        hovertemplate="%{x}: %{text} %{customdata}<extra></extra>",
    ))
    for i in range(len(values) - 1):  # dotted connectors from each bar's end to the next bar's start
        end = starts[i] + values[i] if i > 0 else values[0]
        fig.add_shape(type="line", x0=i + 0.35, x1=i + 0.65, y0=end, y1=end,
                      line=dict(color="#94A3B8", dash="dot", width=1))
    fig = style_figure(fig, height=340, legend=False)
    fig.update_layout(title=title, bargap=0.35)
    ends = [b + v for b, v in zip(starts, values)]
    lo, hi = min([0.0, *starts, *ends]), max([0.0, *starts, *ends])
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
    fig.update_layout(legend=dict(traceorder="normal"))
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


# Runs and categories (genres on the map) are drawn in hues no modality uses (text blue, image amber, audio
# green): violets, reds, pinks, browns and greys, so a bar never reads as a modality.
RUN_PALETTE = ("#6D28D9", "#64748B", "#E11D48", "#9D174D", "#7C2D12", "#C026D3", "#DB2777", "#1E293B", "#A855F7",
               "#B91C1C", "#A8A29E", "#57534E", "#F472B6", "#4C1D95")
CATEGORY_PALETTE = ("#6D28D9", "#E11D48", "#7C2D12", "#DB2777", "#475569", "#A855F7", "#1E293B", "#B91C1C",
                    "#C026D3", "#A8A29E", "#9D174D", "#F472B6")
# each model keeps its colour on every page and in the report, whichever runs are shown beside it
MODEL_ORDER = ("fusion", "popularity", "itemknn", "bprmf", "ease", "als", "implicit-bpr", "lightgcn", "vbpr",
               "late-fusion", "text-only", "image-only", "audio-only")


def _model_key(label: str, kind: str = "") -> str:
    """The model a run label names: "fusion-gated · 12-07 10:30" -> "fusion"; "ease" -> "ease"."""
    name = str(label).split(" · ")[0].strip()
    return "fusion" if kind == "fusion" or name.startswith("fusion") else name


# what each ranking metric means, in the words a room understands (the charts' subtitles)
METRIC_MEANING = {
    "recall": "share of each listener's held-out tracks found in the top K",
    "ndcg": "held-out tracks found in the top K, those ranked higher counting more",
    "precision": "share of the top K that are held-out tracks",
    "hit": "share of listeners with at least one held-out track in the top K",
    "hitrate": "share of listeners with at least one held-out track in the top K",
    "map": "precision averaged over the ranks where held-out tracks appear",
    "mrr": "1 / the rank of the first held-out track, averaged over listeners",
    "coverage": "share of the catalog that appears in someone's top K",
}


def metric_subtitle(metric: str) -> str:
    """The plain meaning of a metric (e.g. recall: share of held-out tracks found), or '' when unknown."""
    return METRIC_MEANING.get(str(metric).lower(), "")


def run_colors(labels: Sequence[str], kinds: Sequence[str] | None = None) -> dict[str, str]:
    """One colour per run label, the same for a model wherever it is drawn (fusion violet, popularity slate,
    ...); a second run of a model already drawn takes the next colour nobody uses."""
    kinds = list(kinds) if kinds is not None else ["" for _ in labels]
    order = sorted(range(len(labels)), key=lambda i: (_model_key(labels[i], kinds[i]) != "fusion", i))
    out: dict[str, str] = {}
    for i in order:
        key = _model_key(labels[i], kinds[i])
        slot = MODEL_ORDER.index(key) if key in MODEL_ORDER else zlib.crc32(key.encode()) % len(RUN_PALETTE)
        colour = RUN_PALETTE[slot % len(RUN_PALETTE)]
        if colour in out.values():
            colour = next((c for c in RUN_PALETTE if c not in out.values()), colour)
        out[labels[i]] = colour
    return out


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
    fig.update_layout(title=dict(text=f"{metric}@K", subtitle=dict(text=metric_subtitle(metric))))
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
    meaning = metric_subtitle(metric)
    fig.update_layout(title=dict(text=f"{metric}@{k} with 95% CI", subtitle=dict(
        text=(meaning.replace("top K", f"top {k}") + "; the line is the 95% interval") if meaning else "")))
    fig = style_figure(fig, height=360, legend=False)
    fig.update_yaxes(title=f"{metric}@{k}", rangemode="tozero")
    return fig


def paired_difference_fig(frame: pd.DataFrame, label_a: str, label_b: str) -> go.Figure:
    """Dots at B − A per metric (rows of core.evaluation.runs.paired_comparison) with their paired 95% CI, zero marked:
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
    fig.update_layout(title=dict(text=f"{label_b} − {label_a}, paired 95% CI", subtitle=dict(
        text="right of zero: B is better for the same listeners; an interval clear of zero is a real difference")))
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
