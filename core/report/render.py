"""One self-contained HTML file from ReportData: plotly.js embedded once (plotly's offline bundle), every
chart as figure JSON drawn by it, covers as data URIs, short clips inlined while they fit a budget (others
named), and every string that comes from data escaped. Nothing in the file is fetched."""
from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from core.report import figures
from core.catalog.model import Catalog, Item
from core.report.data import ReportData

_METRIC_AT_K = re.compile(r"^(?P<metric>.+)@(?P<k>\d+)$")
_AUDIO_MIME = {".flac": "audio/flac", ".wav": "audio/wav", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}
_IMAGE_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


@dataclass
class RenderConfig:
    """Size limits of what is inlined."""

    cover_px: int = 192  # covers larger than cover_bytes are re-encoded as a JPEG this wide (shown at 96 px)
    cover_bytes: int = 24_000  # covers up to this size are inlined as they are
    clip_bytes: int = 400_000  # clips up to this size are inlined; larger ones are named only
    audio_budget: int = 1_500_000  # total bytes of inlined clips; later clips are named only


def _esc(value: Any) -> str:
    """Any data value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def _json_for_script(payload: Any) -> str:
    """JSON that is safe inside a <script> element (no '<', '>' or '&' that could end or confuse it)."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class _Renderer:
    """Accumulates the figures and media of one report."""

    def __init__(self, data: ReportData, catalog: Catalog | None, config: RenderConfig) -> None:
        self.data = data
        self.catalog = catalog
        self.config = config
        self.figures: list[tuple[str, str]] = []  # (name, figure JSON)
        self.audio_left = config.audio_budget
        self.cover_cache: dict[str, str] = {}

    # -- media ------------------------------------------------------------------------------------
    def cover_uri(self, path: Path | None, data: bytes | None = None, name: str = "") -> str | None:
        """A data URI of an image (re-encoded smaller when large), or None when it cannot be read."""
        key = str(path) if path is not None else f"upload:{name}:{len(data or b'')}"
        if key in self.cover_cache:
            return self.cover_cache[key]
        try:
            raw = data if data is not None else Path(path).read_bytes()
        except OSError:
            return None
        suffix = Path(name or str(path)).suffix.lower()
        uri = None
        if len(raw) <= self.config.cover_bytes and suffix in _IMAGE_MIME:
            uri = _data_uri(_IMAGE_MIME[suffix], raw)
        else:
            try:
                from PIL import Image

                with Image.open(io.BytesIO(raw)) as im:
                    im = im.convert("RGB")
                    im.thumbnail((self.config.cover_px, self.config.cover_px))
                    buf = io.BytesIO()
                    im.save(buf, format="JPEG", quality=85)
                uri = _data_uri("image/jpeg", buf.getvalue())
            except Exception:  # an unreadable image: the report names it instead of failing
                uri = None
        self.cover_cache[key] = uri
        return uri

    def audio_html(self, path: Path | None, data: bytes | None = None, name: str = "") -> str:
        """An inline <audio> player when the clip is small and the budget allows, else its name."""
        label = name or (Path(path).name if path else "clip")
        try:
            raw = data if data is not None else Path(path).read_bytes()
        except OSError:
            return f'<span class="muted">clip {_esc(label)} (missing)</span>'
        mime = _AUDIO_MIME.get(Path(label).suffix.lower())
        if mime and len(raw) <= self.config.clip_bytes and len(raw) <= self.audio_left:
            self.audio_left -= len(raw)
            return f'<audio controls preload="none" src="{_data_uri(mime, raw)}"></audio>'
        return (f'<span class="muted">clip {_esc(label)} ({len(raw) / 1e3:.0f} kB, not embedded to keep '
                'the report small)</span>')

    def item(self, item_id: str) -> Item | None:
        if self.catalog is None:
            return None
        try:
            return self.catalog.item(item_id)
        except KeyError:
            return None

    def title(self, item_id: str) -> str:
        item = self.item(item_id)
        return item.title if item is not None else item_id

    def item_cover(self, item_id: str) -> str:
        item = self.item(item_id)
        uri = self.cover_uri(self.catalog.media_path(item.image)) if item is not None and item.image else None
        return f'<img class="cover" alt="{_esc(self.title(item_id))}" src="{uri}">' if uri else \
            '<div class="cover missing">no cover</div>'

    def item_clip(self, item_id: str) -> str:
        item = self.item(item_id)
        if item is None or not item.audio:
            return ""
        return self.audio_html(self.catalog.media_path(item.audio))

    # -- figures -----------------------------------------------------------------------------------
    def figure(self, name: str, fig: go.Figure) -> str:
        """A placeholder div for `fig`; its JSON goes into the file once, drawn by the embedded plotly.js."""
        index = len(self.figures)
        # plotly.js leaves no room for long tick labels unless asked (the studio's plotly theme asks)
        fig.update_xaxes(automargin=True)
        fig.update_yaxes(automargin=True)
        self.figures.append((name, fig.to_json()))
        return f'<div class="chart" id="chart-{index}" data-figure="{_esc(name)}"></div>'


# -- sections --------------------------------------------------------------------------------------------
def _header(r: _Renderer) -> str:
    d = r.data
    encoders = "".join(f"<tr><td>{_esc(f)}</td><td><code>{_esc(e)}</code></td></tr>"
                       for f, e in d.encoder_ids.items())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(d.created_at))
    return (f"<header><h1>{_esc(d.title)}</h1><p class='muted'>Catalog <b>{_esc(d.catalog)}</b> · generated "
            f"{_esc(when)}</p><table class='kv'><tr><td>Model</td><td><code>{_esc(d.model_id or '—')}</code>"
            f"</td></tr>{encoders}</table></header>")


def _sections(r: _Renderer) -> str:
    out = []
    for s in r.data.sections:
        paragraphs = "".join(f"<p>{_esc(p)}</p>" for p in s.paragraphs)
        out.append(f"<section class='story'><h3>{_esc(s.heading)}</h3>{paragraphs}</section>")
    return "".join(out)


def _query(r: _Renderer) -> str:
    q = r.data.query
    if q is None:
        return ""
    parts = []
    if q.text:
        parts.append(f"<p class='query-text'>“{_esc(q.text)}”</p>")
    for m in q.images:
        uri = r.cover_uri(None, m.data, m.name)
        parts.append(f"<figure><img class='cover' alt='{_esc(m.name)}' src='{uri}'><figcaption>{_esc(m.name)}"
                     "</figcaption></figure>" if uri else f"<p>image {_esc(m.name)}</p>")
    for m in q.audio:
        parts.append(f"<figure>{r.audio_html(None, m.data, m.name)}<figcaption>{_esc(m.name)}</figcaption></figure>")
    for label, ids in (("Liked", q.liked), ("Disliked", q.disliked)):
        if ids:
            parts.append(f"<p>{label}: " + ", ".join(_esc(r.title(i)) for i in ids) + "</p>")
    if q.user_id:
        parts.append(f"<p>Listener: <b>{_esc(q.user_id)}</b></p>")
    return f"<section><h2>Query</h2><div class='query'>{''.join(parts)}</div></section>"


def _ranked(r: _Renderer) -> str:
    items = r.data.items
    if not items:
        return ""
    mods = figures._ordered({m for it in items for m in it.modality_weights})
    rows = []
    for it in items:
        change = ""
        if it.previous_rank is not None and it.previous_rank != it.rank:
            delta = it.previous_rank - it.rank
            arrow, css = ("↑", "up") if delta > 0 else ("↓", "down")
            change = f" <span class='{css}'>{arrow}{abs(delta)}</span>"
        shares = "".join(f"<td class='num' style='color:{figures.modality_color(m)}'>"
                         f"{it.modality_weights.get(m, 0.0):.0%}</td>" for m in mods)
        contrib = "".join(f"<td class='num'>{it.contributions.get(m, 0.0):+.3f}</td>" for m in mods)
        item = r.item(it.item_id)
        meta = " · ".join(str(item.metadata.get(k)) for k in ("artist", "genre", "mood")
                          if item is not None and item.metadata.get(k))
        rows.append(f"<tr><td class='num'>{it.rank}{change}</td><td>{r.item_cover(it.item_id)}</td>"
                    f"<td><b>{_esc(r.title(it.item_id))}</b><br><span class='muted'>{_esc(meta)}</span><br>"
                    f"<code>{_esc(it.item_id)}</code><br>{r.item_clip(it.item_id)}</td>"
                    f"<td class='num'>{it.score:.4f}</td>{shares}{contrib}</tr>")
    head = ("<tr><th>#</th><th>cover</th><th>item</th><th>score</th>"
            + "".join(f"<th>{_esc(figures.MODALITY_LABELS.get(m, m))} share</th>" for m in mods)
            + "".join(f"<th>{_esc(figures.MODALITY_LABELS.get(m, m))} contribution</th>" for m in mods) + "</tr>")
    series = {f"#{it.rank} {html.escape(r.title(it.item_id))}": it.modality_weights for it in items}
    chart = r.figure("modality-shares", figures.modality_shares_bar(series, "Modality shares of the ranked items"))
    return (f"<section><h2>Ranked items</h2><p class='muted'>Share = the gate's weight of each modality for the "
            "item; contribution = its exact Shapley value in the score.</p>"
            f"<table class='ranked'>{head}{''.join(rows)}</table>{chart}</section>")


def _explained(r: _Renderer) -> str:
    if not r.data.explained:
        return ""
    out = ["<section><h2>Why these items</h2>"]
    for e in r.data.explained:
        title = r.title(e.item_id)
        sentences = "".join(f"<p>{_esc(s)}</p>" for s in e.sentences)
        waterfall = r.figure(f"waterfall:{e.item_id}", figures.shapley_waterfall(
            e.base_value, e.shapley, e.score, title=f"How the score of {html.escape(title)} is built",
            terms=e.terms, term_labels=e.term_labels, history=e.history))
        features = ""
        if isinstance(e.features, pd.DataFrame) and not e.features.empty:
            features = r.figure(f"features:{e.item_id}", figures.feature_shap_bar(e.features, top=10))
            top = e.features.assign(a=e.features["shap"].abs()).sort_values("a", ascending=False).head(8)
            features += ("<table class='small'><tr><th>modality</th><th>group</th><th>feature</th><th>value "
                         "(standardised)</th><th>SHAP</th></tr>"
                         + "".join(f"<tr><td>{_esc(m)}</td><td>{_esc(g)}</td><td>{_esc(f)}</td>"
                                   f"<td class='num'>{v:+.2f}</td><td class='num'>{s:+.4f}</td></tr>"
                                   for m, g, f, v, s in zip(top["modality"], top["group"], top["feature"],
                                                            top["value"], top["shap"]))
                         + "</table>")
        words = ""
        pairs = figures.token_pairs(e.tokens)
        if pairs:
            words = f"<p class='words'>{figures.token_html(pairs)}</p>"
        out.append(f"<article class='explained'><div class='explained-head'>{r.item_cover(e.item_id)}"
                   f"<div><h3>{_esc(title)} <code>{_esc(e.item_id)}</code></h3>{sentences}</div></div>"
                   f"<div class='grid2'><div>{waterfall}</div><div>{features}</div></div>{words}</article>")
    out.append("</section>")
    return "".join(out)


def runs_long(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (run, metric@K) of run records: run_id, label, metric, k, value, lo, hi."""
    rows = []
    for rec in runs:
        ci = rec.get("ci", {})
        for key, value in rec.get("metrics", {}).items():
            match = _METRIC_AT_K.match(key)
            if match is None or value is None:
                continue
            lo, hi = (ci.get(key) or [None, None])[:2]
            rows.append({"run_id": rec.get("id"), "label": str(rec.get("name")), "metric": match["metric"],
                         "k": int(match["k"]), "value": float(value),
                         "lo": math.nan if lo is None else float(lo), "hi": math.nan if hi is None else float(hi)})
    return pd.DataFrame(rows, columns=["run_id", "label", "metric", "k", "value", "lo", "hi"])


def _evaluation(r: _Renderer) -> str:
    runs = r.data.runs
    if not runs:
        return ""
    from core.explain.narration import comparison_sentence, protocol_sentence
    from core.evaluation.runs import protocol_card

    long = runs_long(runs)
    ks = sorted(long["k"].unique()) if len(long) else []
    k = 20 if 20 in ks else (ks[-1] if ks else None)
    shown = [m for m in ("recall", "ndcg", "precision", "hit_rate") if m in set(long["metric"])]
    colors = figures.run_colors([str(x.get("name")) for x in runs], [x.get("model", {}).get("kind", "") for x in runs])
    head = "<tr><th>model</th><th>kind</th>" + "".join(f"<th>{_esc(m)}@{kk}</th>" for m in shown[:2] for kk in ks) \
        + "</tr>"
    rows = []
    for rec in runs:
        cells = []
        for m in shown[:2]:
            for kk in ks:
                key = f"{m}@{kk}"
                value = rec.get("metrics", {}).get(key)
                lo, hi = (rec.get("ci", {}).get(key) or [None, None])[:2]
                cells.append(f"<td class='num'>{value:.4f}<br><span class='muted'>[{lo:.4f}, {hi:.4f}]</span></td>"
                             if value is not None and lo is not None and hi is not None else
                             f"<td class='num'>{'' if value is None else f'{value:.4f}'}</td>")
        rows.append(f"<tr><td><b>{_esc(rec.get('name'))}</b><br><code class='muted'>{_esc(rec.get('id'))}</code>"
                    f"</td><td>{_esc(rec.get('model', {}).get('kind', ''))}</td>{''.join(cells)}</tr>")
    escaped = long.assign(label=long["label"].map(html.escape))  # plotly reads labels as (pseudo-)HTML
    palette = {html.escape(a): c for a, c in colors.items()}
    charts = "".join(r.figure(f"eval:{m}@{k}", figures.metric_bars_ci(escaped, m, k, palette))
                     for m in shown[:2] if k is not None)
    card = protocol_card(runs[0])
    card_rows = "".join(f"<tr><td>{_esc(key)}</td><td>{_esc(v)}</td></tr>" for key, v in card.items()
                        if key not in ("model", "created"))
    paired = []
    for name_a, name_b, rows_ab in r.data.paired:
        main = rows_ab[rows_ab["name"].isin([f"ndcg@{k}", f"recall@{k}"])]
        paired.append("".join(f"<p>{_esc(comparison_sentence(name_a, name_b, row))}</p>"
                              for row in main.to_dict("records")))
        paired.append(r.figure(f"paired:{name_a}:{name_b}", figures.paired_difference_fig(
            rows_ab, html.escape(name_a), html.escape(name_b))))
    paired_html = (f"<h3>Paired differences (same users)</h3>{''.join(paired)}" if paired else "")
    return (f"<section><h2>Evaluation</h2><p>{_esc(protocol_sentence(runs[0]))}</p>"
            f"<table class='eval'>{head}{''.join(rows)}</table><p class='muted'>Brackets: 95% bootstrap CI over "
            f"users.</p><div class='grid2'>{charts}</div>{paired_html}"
            f"<h3>Protocol</h3><table class='kv'>{card_rows}</table></section>")


def _faithfulness(r: _Renderer) -> str:
    f = r.data.faithfulness
    if not f:
        return ""
    return (f"<section><h2>Explanation faithfulness (demo ground truth)</h2><p>For {f['listeners']} simulated "
            f"listeners whose taste lives in one modality, the largest Shapley value named that modality for "
            f"{f['dominant_top_rate']:.0%} of their {f['items']} top-{f['k']} items (chance "
            f"{f['chance']:.0%}); removing the top-attributed modality lowered the score for "
            f"{f['deletion_drop_rate']:.0%}.</p></section>")


_CSS = """
body{font-family:Inter,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1400px;padding:24px 32px;
color:#1e1b4b;background:#fbfaff}
h1{color:#6D28D9;margin-bottom:4px}h2{border-bottom:2px solid #ede9fe;padding-bottom:4px;margin-top:36px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:6px 10px;border-bottom:1px solid #ece9f5;
text-align:left;vertical-align:top}th{background:#f5f3ff;font-weight:600}.num{text-align:right;
font-variant-numeric:tabular-nums}.muted{color:#64748b;font-size:.85em}.cover{width:96px;height:96px;
object-fit:cover;border-radius:8px;display:block}.cover.missing{background:#e2e8f0;color:#64748b;
font-size:.75em;display:flex;align-items:center;justify-content:center}.query{display:flex;gap:16px;
align-items:center;flex-wrap:wrap}.query-text{font-size:1.2em;font-style:italic}figure{margin:0}
.chart{width:100%;min-height:240px}.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.explained{border:1px solid #ede9fe;border-radius:12px;padding:12px 16px;margin:16px 0;background:white}
.explained-head{display:flex;gap:16px;align-items:flex-start}.up{color:#10B981}.down{color:#EF4444}
.story{background:#f5f3ff;border-radius:10px;padding:8px 16px;margin:12px 0}audio{width:220px;height:32px}
.prism-token{border-radius:4px;padding:1px 3px}.words{line-height:2}table.small td,table.small th{padding:3px 8px;
font-size:.85em}
"""


def render_report(data: ReportData, catalog: Catalog | None = None, config: RenderConfig | None = None) -> str:
    """The report as one HTML document (str); `catalog` supplies titles, covers and clips of its items."""
    import plotly.offline

    r = _Renderer(data, catalog, config or RenderConfig())
    body = "".join([_header(r), _sections(r), _query(r), _ranked(r), _explained(r), _evaluation(r),
                    _faithfulness(r)])
    figures_json = "".join(f'<script type="application/json" class="prism-figure" data-target="chart-{i}" '
                           f'data-figure="{_esc(name)}">{_json_for_script(payload)}</script>'
                           for i, (name, payload) in enumerate(r.figures))
    draw = ("document.querySelectorAll('script.prism-figure').forEach(function(s){var f=JSON.parse(s.textContent);"
            "Plotly.newPlot(s.dataset.target,f.data,f.layout||{},{responsive:true,displaylogo:false});});")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{_esc(data.title)}</title><style>{_CSS}</style>"
            f"<script>{plotly.offline.get_plotlyjs()}</script></head><body>{body}"
            f"{figures_json}<script>{draw}</script></body></html>")


def write_report(data: ReportData, path: str | Path, catalog: Catalog | None = None,
                 config: RenderConfig | None = None) -> Path:
    """Render the report and write it to `path` (UTF-8); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(data, catalog, config), encoding="utf-8")
    return path
