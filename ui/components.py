"""Reusable pieces of the studio's pages: the sidebar, item media, result cards, protocol cards."""
from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.catalog.model import Catalog, Item
from core.errors import PrismError
from core.explain.narration import card_sentence, name_query, query_noun  # noqa: F401 (pages call them here)
from core.serving.prior import LEARNED_BIAS_LABEL, PRIOR, PRIOR_LABEL
from core.serving.similarity import LIKE, LIKE_LABEL, SIMILARITY_LABEL
from core.store.database import Store
from ui import state
from ui.theme import MODALITY_LABELS, modality_bar, modality_color, rank_change


def backend_label(encoder_id: str) -> str:
    """A human name for the weights behind an encoder id."""
    low = encoder_id.lower()
    if low.startswith("precomputed:"):
        return "precomputed features"
    if "clip" in low:
        return "CLIP" + (" (random weights)" if "random" in low else "")
    if "efficientnet" in low:
        return "EfficientNet-Lite0 (offline)"
    if "minilm" in low or "sentence-transformers" in low:
        return "MiniLM sentence encoder"
    if "aisfx" in low:
        return "aiSFX sound-effects CNN (offline)"
    if "descriptor" in low or "librosa" in low:
        return "named descriptor"
    return "encoder"


def sidebar(ws, catalog_names: list[str]) -> None:
    """The shared sidebar: catalog picker, encoders with their weights ids, the active model."""
    with st.sidebar:
        current = ws.catalog.name
        options = catalog_names if current in catalog_names else [current, *catalog_names]
        message = st.session_state.pop("catalog_message", None)  # e.g. a catalog removed by a button
        if message:
            st.info(md_escape(message), icon=":material/info:")  # it names a catalog: a string from data
        st.session_state["sidebar_catalog"] = current  # follows switches made elsewhere (e.g. after an import)
        st.selectbox("Active catalog", options, key="sidebar_catalog",
                     on_change=lambda: state.set_catalog(st.session_state["sidebar_catalog"]),
                     help="Every page works on this catalog; import more on the Catalog page.")
        users = ws.catalog.interactions["user_id"].nunique() if len(ws.catalog.interactions) else 0
        present = ws.embeddings.modalities
        chips = "".join(f'<span class="prism-chip" style="background:{modality_color(m)}">'
                        f'{MODALITY_LABELS[m]}</span>' for m in present)
        st.markdown(f"{len(ws.catalog.items):,} items · {users:,} users<br>{chips}", unsafe_allow_html=True)
        st.markdown("**Encoders**")
        lines = []
        for field_name, enc_id in ws.embeddings.encoder_ids.items():
            modality = ws.embeddings.modality_of.get(field_name, "")
            lines.append(f'<span class="prism-dot" style="background:{modality_color(modality)}"></span> '
                         f'<b>{html_text(field_name)}</b> — '
                         f'{html_text(backend_label(enc_id))}<br><code>{html_text(enc_id)}</code>')
        st.markdown(f'<div class="prism-sidebar-small">{"<br>".join(lines)}</div>', unsafe_allow_html=True)
        st.markdown("**Active model**")
        cfg = ws.model_config or {}
        details = " · ".join(str(x) for x in (cfg.get("strategy"), f"dim {cfg['dim']}" if "dim" in cfg else None,
                                               cfg.get("loss")) if x)
        if cfg.get("name") == "content-only":  # core.models.content_only: no strategy or loss was trained
            details = "content only: no interactions, nothing trained"
        st.markdown(f'<div class="prism-sidebar-small"><code>{html.escape(ws.model_id or "—")}</code>'
                    f'<br>{html.escape(details)}</div>', unsafe_allow_html=True)


def item_image(catalog: Catalog, item: Item) -> None:
    """The item's cover, or a hatched placeholder when it has none (or the file is gone)."""
    path = catalog.media_path(item.image)
    if path is not None and Path(path).is_file():
        st.image(str(path), width="stretch")
    else:
        st.markdown('<div class="prism-missing">no cover</div>', unsafe_allow_html=True)


def item_audio(catalog: Catalog, item: Item) -> None:
    """The item's clip as an audio player, or a caption when it has none."""
    path = catalog.media_path(item.audio)
    if path is not None and Path(path).is_file():
        st.audio(str(path), format=_audio_mime(path))
    else:
        st.caption("no audio clip")


def _audio_mime(path: Path) -> str:
    return {".flac": "audio/flac", ".wav": "audio/wav", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}.get(
        Path(path).suffix.lower(), "audio/wav")


def item_subtitle(item: Item) -> str:
    """A short line of metadata under a title (artist · genre · mood, when known)."""
    meta = item.metadata or {}
    parts = [meta.get(k) for k in ("artist", "genre", "mood") if meta.get(k)]
    return " · ".join(str(p) for p in parts)


def result_card(catalog: Catalog, rec: Any, had_previous: bool, on_feedback: Callable[[str, bool], None],
                on_why: Callable[[str], None], relative: float | None = None, noun: str = "your query") -> None:
    """One recommendation: cover, rank (and its change), title, audio, its score as a share of the top
    result's (`relative`, 0-100; the raw score when None), one plain sentence on what brought it here, the
    modality-weight bar and the actions; the query is named by `noun` ("your text", ...). The raw parts of
    the score are in the page's "Raw numbers"."""
    item = catalog.item(rec.item_id)
    with st.container(border=True):
        item_image(catalog, item)
        badge = rank_change(rec.rank, getattr(rec, "previous_rank", None), had_previous)
        st.markdown(f'<div class="prism-card-title"><span class="prism-rankno">{rec.rank}</span>'
                    f'{html_text(item.title)}{badge}</div>'
                    f'<div class="prism-card-meta">{html_text(item_subtitle(item))}</div>',
                    unsafe_allow_html=True)
        item_audio(catalog, item)
        weights = dict(getattr(rec, "modality_weights", {}) or {})
        shares = " ".join(f'<span style="color:{modality_color(m)}" title="{MODALITY_LABELS[m]}">'
                          f'{m[0].upper()} {weights[m]:.0%}</span>' for m in ("text", "image", "audio")
                          if m in weights)
        scale = (f'<span class="prism-score" title="raw score {rec.score:.3f}">{relative:.0f}% of #1</span>'
                 if relative is not None else f'<span class="prism-score">score {rec.score:.3f}</span>')
        sentence = name_query(card_sentence(rec), noun)
        st.markdown(f'{scale}<span class="prism-card-meta" style="float:right">{shares}</span>'
                    f'{modality_bar(weights)}<div class="prism-card-meta">{html_text(sentence)}</div>'
                    f'{score_terms_line(rec, noun, raw=False)}', unsafe_allow_html=True)
        row = st.container(horizontal=True, gap="small", wrap=False)
        row.button("", icon=":material/thumb_up:", key=f"like_{rec.item_id}", help="More like this", on_click=on_feedback,
                   args=(rec.item_id, True))
        row.button("", icon=":material/thumb_down:", key=f"dislike_{rec.item_id}", help="Less like this", on_click=on_feedback,
                   args=(rec.item_id, False))
        if row.button("Why?", key=f"why_{rec.item_id}", help="Open the explanation of this result",
                      type="tertiary"):
            on_why(rec.item_id)


def score_terms_line(rec: Any, noun: str = "your query", raw: bool = True) -> str:
    """HTML: the card's named score terms (the popularity prior, or that the learned bias applies) and the
    what-if modalities the item lacks ("no audio"); the query is named by `noun` ("your text", ...);
    `raw=False` leaves the terms' raw numbers out (the card says them in its sentence, the page's "Raw
    numbers" holds them)."""
    terms = dict(getattr(rec, "terms", {}) or {})
    parts = []
    if raw and PRIOR in terms:  # (raw=False: the card's sentence names the terms; the what-if tags stay)
        parts.append(f'<span title="weight × log-plays prior; 0 for items nobody played">'
                     f'{PRIOR_LABEL} {terms[PRIOR]:+.3f}</span>')
        similarity = dict(getattr(rec, "similarity", {}) or {})
        if similarity:
            cells = " ".join(f'<span style="color:{modality_color(m)}">{m[0].upper()} {v:+.3f}</span>'
                             for m, v in similarity.items())
            parts.append(f'<span title="how close the item is to {html.escape(noun)} as each encoder reads '
                         f'them (cosine × its weight), counted in that modality\'s contribution">'
                         f'{html.escape(name_query(SIMILARITY_LABEL, noun))} {cells}</span>')
        if LIKE in terms:
            parts.append(f'<span title="how close the item is, in the model\'s joint space, to the items nearest '
                         f'{html.escape(noun)} (cosine × its weight)">'
                         f'{html.escape(name_query(LIKE_LABEL, noun))} {terms[LIKE]:+.3f}</span>')
    elif raw:
        parts.append(f'<span title="a known listener: the model\'s learned bias stays in the score">'
                     f'{LEARNED_BIAS_LABEL}</span>')
    parts += [f'<span class="prism-missing-tag">no {html.escape(MODALITY_LABELS.get(m, m).lower())}</span>'
              for m in getattr(rec, "lacks", []) or []]
    return f'<div class="prism-card-meta">{" · ".join(parts)}</div>'


def protocol_card(card: Mapping[str, Any], title: str = "Protocol") -> None:
    """The protocol a result was produced under, drawn as a small card beside its chart."""
    rows = "".join(f"<div><b>{html_text(k)}</b>: {html_text(v)}</div>" for k, v in card.items())
    st.markdown(f'<div class="prism-protocol"><div><b>{html_text(title)}</b></div>{rows}</div>',
                unsafe_allow_html=True)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#!|~$:])")  # links, autolinks, images, HTML, maths, icons
_WWW = re.compile(r"(?i)\b(www)\.")
_HTML_MARKDOWN = re.compile(r"[\\`*_{}\[\]()#!|~$:]")


def md_escape(text: object) -> str:
    """`text` shown literally by st.markdown (and st.error, st.caption …): no links, images, HTML or maths
    from data strings; use it for every title, file name or message that came from a catalog or an upload."""
    out = _MARKDOWN_SPECIAL.sub(r"\\\1", str(text).replace("&", "&amp;"))
    # headings and captions linkify bare URLs whatever the escapes: an invisible word joiner breaks them
    out = _WWW.sub("\\1\u2060.", out.replace("\\://", "\\:\u2060//"))
    return out.replace("\n", "  \n")


def html_text(text: object) -> str:
    """`text` for an HTML snippet drawn with unsafe_allow_html: tags escaped, and the characters markdown
    would still read (links, images, emphasis, a blank line ending the HTML block) turned into entities."""
    escaped = html.escape(" ".join(str(text).split()), quote=False)  # newlines become spaces: no blank line
    out = _HTML_MARKDOWN.sub(lambda m: f"&#{ord(m.group(0))};", escaped)
    # quotes last, so the '#' of their entities is not escaped again (it would show as "&#x27;")
    return out.replace('"', "&quot;").replace("'", "&#39;")


def _server_temp_paths() -> re.Pattern[str]:
    import tempfile

    return re.compile(re.escape(tempfile.gettempdir().rstrip("/")) + r"/prism-[A-Za-z0-9_.-]+/(?:unpacked/)?")


def without_server_paths(text: object) -> str:
    """`text` with the server's temporary upload and import folders cut from file paths ("/tmp/prism-upload-x/
    mine.zip" → "mine.zip"): a visitor learns nothing of the server's layout from a message."""
    return _server_temp_paths().sub("", str(text))


_COMMAND = re.compile(r"\s*\(?(?:run |with |see |list them with |e\.g\. )?`(python -m [^`]+)`\)?")


def plain_error(error: Exception | str) -> tuple[str, list[str]]:
    """(the message in plain words, the command-line commands it named): a page says what went wrong and what
    to fix without a Python class name, and shows the commands apart, for whoever runs the server."""
    text = str(error).strip()
    commands = [m.group(1) for m in _COMMAND.finditer(text)]
    plain = _COMMAND.sub("", text).replace("()", "").strip().rstrip(";:,")
    plain = re.sub(r"\s+([;,.])", r"\1", plain)
    return plain or text, commands


def show_error(error: Exception, what: str) -> None:
    """An error as an st.error saying what failed and what to fix, in plain words (the server's temporary
    folders cut from paths); command-line commands the message names go in a caption under it (for the
    operator). The session goes on."""
    plain, commands = plain_error(without_server_paths(error))
    st.error(f"**{what}** — {md_escape(plain)}", icon=":material/error:")
    if commands:
        st.caption("From the command line: " + " · ".join(f"`{c}`" for c in commands))


def media_problems(problems: list[dict[str, str]], catalog_name: str, key: str) -> None:
    """The media cells an import masked, in full: a table and its CSV download (formulas neutralised)."""
    if not problems:
        return
    import pandas as pd

    from core.store.export import neutralise_frame, safe_csv

    frame = pd.DataFrame(problems, columns=["file", "row", "column", "reference", "reason"])
    st.warning(f"{len(frame):,} media cell(s) could not be used; those items were imported without that "
               "modality (tick *Strict* to refuse such imports instead).", icon=":material/warning:")
    st.dataframe(neutralise_frame(frame), hide_index=True, height=min(36 * (len(frame) + 1), 300), key=f"{key}_table")
    st.download_button("Download the import report (CSV)", safe_csv(frame), file_name=f"{catalog_name}-import-report.csv",
                       mime="text/csv", key=f"{key}_csv", icon=":material/download:")


CATEGORY_COLUMNS = ("genre", "category", "mood")  # what a map is coloured by first, when the catalog has it


def categorical_columns(frame: pd.DataFrame, max_values: int = 30) -> list[str]:
    """The `meta.*` columns that hold a few distinct text values (2 to `max_values`): what a table can be
    filtered and a map coloured by. Text columns are `object` or pandas' `str`/`string` dtype alike."""
    out = []
    for c in frame.columns:
        if not c.startswith("meta."):
            continue
        column = frame[c]
        if not (pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column)
                or isinstance(column.dtype, pd.CategoricalDtype)):
            continue
        values = column.dropna()
        if not values.map(lambda v: isinstance(v, str)).all():
            continue  # lists or mixed values: not a category
        if 1 < values.nunique() <= max_values:
            out.append(c)
    return out


def default_map_colour(categorical: list[str]) -> str | None:
    """The category a map is coloured by when the page opens (a genre, when the catalog has one), or None."""
    names = [c.removeprefix("meta.") for c in categorical]
    return next((n for n in CATEGORY_COLUMNS if n in names), names[0] if names else None)


def tour_arrow_keys() -> None:
    """Let ← / → press the Tour's Back and Next buttons (keys tour_back, tour_next) from the page's first
    moment, whatever has the focus outside text fields (assets/arrow_keys.js)."""
    script = (Path(__file__).resolve().parents[1] / "assets" / "arrow_keys.js").read_text(encoding="utf-8")
    st.html(f"<script>{script}</script>", unsafe_allow_javascript=True)


def interactions_missing(ws, what: str, store: Store) -> None:
    """On a catalog without interactions: say what `what` (e.g. "Evaluating") needs, offer an upload of an
    interactions CSV, and stop the page. Importing it into `store` (ui.loaders.store()) stores the
    interactions and trains a model."""
    import tempfile

    from core.limits import limits

    name = ws.catalog.name
    st.warning(f"**{md_escape(name)} has no interactions yet**: it recommends by content alone (Recommend, "
               f"Explain and Catalog work). {what} needs listening data: add a CSV with columns `user_id, item_id` "
               "(optional `rating, timestamp, split`), one row per interaction, whose item ids are this "
               "catalog's. A model is then trained on it.", icon=":material/group_off:")
    lim = limits()
    with st.form(f"interactions_form_{name}"):
        upload = st.file_uploader(f"Interactions CSV (up to {lim.max_upload_mb:g} MB)", type=["csv", "tsv"],
                                  key=f"interactions_upload_{name}")
        go = st.form_submit_button("Add these interactions", type="primary", icon=":material/upload:")
    if go:
        from core.workspace.imports import import_interactions

        try:
            if upload is None:
                raise PrismError("no file was received: choose an interactions CSV first")
            if upload.size > lim.max_upload_bytes:
                raise PrismError(f"the upload is {upload.size / 2**20:,.1f} MB, over the {lim.max_upload_mb:g} MB "
                                 "upload limit (PRISM_MAX_UPLOAD_MB); import it with `python -m core import "
                                 "interactions`")
            with tempfile.TemporaryDirectory(prefix="prism-interactions-") as tmp:
                suffix = ".tsv" if upload.name.lower().endswith(".tsv") else ".csv"
                path = Path(tmp) / f"interactions{suffix}"
                path.write_bytes(upload.getvalue())
                report = import_interactions(path, store, name)
        except PrismError as e:
            show_error(e, "The interactions were not added (nothing was changed)")
        else:
            st.session_state["catalog_message"] = (f"Added {report.interactions:,} interactions from "
                                                   f"{report.users:,} users to {name}; a model is trained on them.")
            st.rerun()
    st.stop()
