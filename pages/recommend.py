"""Recommend: a query in any mix of text, images, audio and liked tracks → ranked cards; what-if modality
weights re-rank at once; like/dislike refine the session profile; "Why?" opens the explanation."""
from __future__ import annotations

import streamlit as st

from core.errors import PrismError, QueryError
from core.limits import check_upload_size, limits
from core.catalog.media import load_audio, load_image
from core.explain.narration import relative_scores, score_table
from core.serving.service import TERM_WEIGHTS, Query, Upload, apply_feedback
from ui import components, loaders, state
from ui.navigation import ensure_frame
from ui.theme import MODALITY_ICONS, MODALITY_LABELS, modality_color, page_header

ensure_frame()

# Extensions steer the browser's file picker; the MIME types beside them make Streamlit leave the check to
# core.catalog.media, so a file of the wrong type gets a message saying what to upload instead of an exception.
IMAGE_TYPES = [".png", ".jpg", ".jpeg", ".webp", "image/png", "image/jpeg", "image/webp"]
AUDIO_TYPES = [".wav", ".flac", ".ogg", ".mp3", "audio/wav", "audio/flac", "audio/ogg", "audio/mpeg"]
PER_ROW = 5

page_header("Recommend", "Describe it, show it, play it, or pick tracks you like — in any mix.")
ws = loaders.workspace()
catalog = ws.catalog
modalities = list(ws.model.modalities)
titles = {item.id: item.title for item in catalog.items}
ss = st.session_state

if ss.get("query_catalog") not in (None, catalog.name):  # results of another catalog no longer apply
    state.reset_query()


# -- uploads: validated on submit and kept in the session (uploader widgets empty when you come back) ------
def _upload_limit_mb() -> float:
    """The largest file one upload may be, in MB: the studio's limit or the server's, whichever is lower."""
    return min(limits().max_upload_mb, float(st.get_option("server.maxUploadSize")))


def _validated(files, kind: str) -> tuple[list[Upload], list[str]]:
    """The readable uploads of `kind`, and a message naming each refused file and what to fix."""
    kept, errors = [], []
    for f in files:
        try:
            check_upload_size(f.name, f.size, _upload_limit_mb())  # before its bytes are decoded
        except PrismError as e:
            errors.append(f"{f.name} was not added: {e}")
            continue
        data = f.getvalue()
        try:
            (load_image if kind == "image" else load_audio)(data, name=f.name)
        except PrismError as e:
            errors.append(f"{f.name} was not added: {e}")
            continue
        kept.append(Upload(name=f.name, data=data))
    return kept, errors


def _take_uploads() -> bool:
    """Move the uploaders' files into the session query; False (and messages) when a file was refused."""
    errors: list[str] = []
    for kind in ("image", "audio"):
        files = ss.get(_uploader_key(kind)) or []
        if not files:  # nothing new: the uploads already in the query stay
            continue
        kept, refused = _validated(files, kind)
        ss[f"{kind}_uploads"] = kept
        if refused:  # a fresh uploader, so the refused file is not left on screen as if it were in the query
            ss[f"uploader_gen_{kind}"] = ss.get(f"uploader_gen_{kind}", 0) + 1
            errors += refused
    ss["upload_errors"] = errors
    return not errors


def _uploader_key(kind: str) -> str:
    return f"up_{kind}_{ss.get(f'uploader_gen_{kind}', 0)}"


def _clear_uploads() -> None:
    for kind in ("image", "audio"):
        ss[f"{kind}_uploads"] = []
        ss[f"uploader_gen_{kind}"] = ss.get(f"uploader_gen_{kind}", 0) + 1


def _weights() -> dict[str, float] | None:
    return dict(ss["weights"]) if ss.get("whatif") and ss.get("weights") else None


def _prior() -> float:
    """The popularity prior's weight for queries that are not a known listener."""
    value = ss.get("prior_weight")
    return float(TERM_WEIGHTS["prior"][0] if value is None else value)


def _similarity() -> tuple[float, float]:
    """(λ, μ): the weights of the similarity to the upload and of "items like your upload"."""
    lam, mu = ss.get("similarity_weight"), ss.get("like_weight")
    return (float(TERM_WEIGHTS["similarity"][0] if lam is None else lam),
            float(TERM_WEIGHTS["like"][0] if mu is None else mu))


def _flash(level: str, message: str) -> None:
    ss["flash"] = [*ss.get("flash", []), (level, message)]


def _run(query: Query, previous=None) -> bool:
    """Encode `query` and rank; on bad input say what to fix and keep the results already on screen."""
    service = loaders.recommend_service(ws)
    try:
        encoded = service.encode_query(query)
        result = service.recommend(encoded, k=int(ss.get("top_k", 10)), modality_weights=_weights(),
                                   previous=previous, prior_weight=_prior(), encoded_now=True,
                                   similarity_weight=_similarity()[0], like_weight=_similarity()[1])
    except QueryError as e:
        hint = (f" A file over {_upload_limit_mb():g} MB is not uploaded at all: the uploader says so in red under "
                "its drop zone." if query.is_empty() else "")
        _flash("warning", f"Nothing to recommend from yet — {str(e).rstrip('.')}.{hint}")
        return False
    except PrismError as e:
        _flash("error", f"The query could not be run — {e}")
        return False
    ss.update(query=query, encoded=encoded, result=result, had_rerank=previous is not None,
              query_catalog=catalog.name, explanations={})
    return True


def _on_feedback(item_id: str, liked: bool) -> None:
    query = ss.get("query")
    if query is None:
        return
    ss["feedback"] = [*ss.get("feedback", []), (item_id, "like" if liked else "dislike")]
    _run(apply_feedback(query, item_id, liked), previous=ss.get("result"))


def _on_why(item_id: str) -> None:
    ss["explain_target"] = {"item_id": item_id, "mode": "query", "catalog": catalog.name}
    st.switch_page("pages/explain.py")


def _on_reset() -> None:
    state.reset_query()
    # set, not popped: a popped form widget comes back with the value the browser still shows
    ss.update(q_text="", q_liked=[], q_user="—")
    for kind in ("image", "audio"):  # fresh, empty uploader widgets
        ss[f"uploader_gen_{kind}"] = ss.get(f"uploader_gen_{kind}", 0) + 1


def _options() -> None:
    """Copy the result options (count, what-if weights) from their widgets into the session settings."""
    whatif = bool(ss.get("opt_whatif"))
    weights = {m: float(ss.get(f"opt_w_{m}", 1.0)) for m in modalities} if whatif else None
    ss.update(top_k=int(ss.get("opt_top_k", ss.get("top_k", 10))), whatif=whatif,
              weights=weights if weights and sum(weights.values()) > 0 else None,
              prior_weight=float(ss.get("opt_prior", _prior())),
              similarity_weight=float(ss.get("opt_similarity", _similarity()[0])),
              like_weight=float(ss.get("opt_like", _similarity()[1])))


def _on_submit() -> None:
    # a callback: it runs before the page is drawn, so the page shows the new uploads and results at once
    _options()
    if _take_uploads():  # a refused upload stops here: fix it first; the results on screen stay
        _run(_build_query())


def _build_query() -> Query:
    liked = list(ss.get("q_liked") or [])
    disliked: list[str] = []
    for item_id, verdict in ss.get("feedback", []):  # feedback of this session stays part of the profile
        target, other = (liked, disliked) if verdict == "like" else (disliked, liked)
        if item_id in other:
            other.remove(item_id)
        if item_id not in target:
            target.append(item_id)
    user = ss.get("q_user") or None
    return Query(text=(ss.get("q_text") or "").strip(), images=list(ss.get("image_uploads", [])),
                 audio=list(ss.get("audio_uploads", [])), liked=liked, disliked=disliked,
                 user_id=None if user == "—" else user)


# -- the demo query from Home -------------------------------------------------------------------------
if ss.get("pending_demo_query"):
    ss["pending_demo_query"] = False
    ss["q_text"] = ss.get("pending_query_text") or ""
    _run(_build_query())
elif "q_text" not in ss and ss.get("query") is not None:  # back on the page: show the query that is active
    ss["q_text"] = ss["query"].text

# -- inputs: one form, so composing a query (typing, picking liked tracks) runs nothing until submitted ----
with st.form("query_form", enter_to_submit=False):
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.text_area("Describe what you want to hear", key="q_text", height=90,
                     placeholder="e.g. dreamy synth pads for a late-night drive")
        # no "Select N matches" entry: it is the first of the list, so Enter after a typed word took every match
        st.multiselect("Tracks you like", options=list(titles), format_func=lambda i: f"{titles[i]} ({i})",
                       key="q_liked", placeholder="Pick one or more tracks from the catalog", select_all=False)
        users = ["—", *loaders.users_frame(ws.root, catalog.name, ws.stamp, ws)["user_id"].tolist()]
        st.selectbox("Or start from a known listener (optional)", users, key="q_user")
    with right:
        st.file_uploader("Images (PNG, JPEG, WebP)", type=IMAGE_TYPES, accept_multiple_files=True,
                         key=_uploader_key("image"), help=f"Up to {_upload_limit_mb():g} MB per file")
        st.file_uploader("Audio clips (WAV, FLAC, OGG, MP3)", type=AUDIO_TYPES, accept_multiple_files=True,
                         key=_uploader_key("audio"), help=f"Up to {_upload_limit_mb():g} MB per file")
    buttons = st.container(horizontal=True)
    with buttons:
        st.form_submit_button("Recommend", type="primary", icon=":material/auto_awesome:", key="q_submit",
                              on_click=_on_submit)
        st.form_submit_button("Reset", icon=":material/restart_alt:", key="q_reset", on_click=_on_reset,
                              help="Clear the query, uploads, feedback and results of this session")

kept = [f":material/image: {u.name}" for u in ss.get("image_uploads", [])] + \
       [f":material/graphic_eq: {u.name}" for u in ss.get("audio_uploads", [])]
if kept:
    row = st.container(horizontal=True, vertical_alignment="center")
    row.caption("In the query: " + " · ".join(kept))
    row.button("Remove uploads", icon=":material/close:", type="tertiary", key="q_clear_uploads",
               on_click=_clear_uploads)

# -- options: how many results, what-if modality weights -------------------------------------------------
# widget values follow the session's settings when the page is drawn anew (widget state is dropped on leaving)
ss.setdefault("opt_top_k", int(ss.get("top_k", 10)))
ss.setdefault("opt_whatif", bool(ss.get("whatif")))
for m in modalities:
    ss.setdefault(f"opt_w_{m}", float((ss.get("weights") or {}).get(m, 1.0)))
ss.setdefault("opt_prior", _prior())
ss.setdefault("opt_similarity", _similarity()[0])
ss.setdefault("opt_like", _similarity()[1])
opt_k, opt_prior, opt_toggle, opt_sliders = st.columns([1.2, 1.6, 1.6, 4], gap="large", vertical_alignment="center")
top_k = opt_k.select_slider("Results", options=[5, 10, 15, 20, 30], key="opt_top_k")
prior_weight = opt_prior.slider(
    "Popularity prior", 0.0, float(TERM_WEIGHTS["prior"][1]), step=0.05, key="opt_prior",
    help="Weight of the popularity prior (log plays, 0 for items nobody played) in the score of a query that "
         "is not a known listener; 0 ranks uploads and liked tracks by content alone. The default was chosen "
         "on the retrieval benchmark. A known listener keeps the model's learned item bias instead.")
similarity_weight = opt_prior.slider(
    "Similarity to the query", 0.0, float(TERM_WEIGHTS["similarity"][1]), step=0.5, key="opt_similarity",
    help="How much it counts that an item is close to your text, image or clip as each encoder reads them "
         "(per query modality; 0 for items lacking it; counted in that modality's share). Content queries only; "
         "the default was chosen on the retrieval benchmark.")
like_weight = opt_prior.slider(
    "Items like the query", 0.0, float(TERM_WEIGHTS["like"][1]), step=0.5, key="opt_like",
    help="How much it counts that an item is close, in the model's joint space, to the items nearest your text, "
         "image or clip. Content queries only; the default was chosen on the retrieval benchmark.")
whatif = opt_toggle.toggle("What-if weights", key="opt_whatif", wrap=True,
                           help="Override each item's learned modality weights and re-rank at once (no re-encoding)")
weights = None
if whatif:
    cols = opt_sliders.columns(len(modalities))
    weights = {m: cols[i].slider(f"{MODALITY_ICONS[m]} {MODALITY_LABELS[m]}", 0.0, 1.0, step=0.05,
                                 key=f"opt_w_{m}") for i, m in enumerate(modalities)}
    if sum(weights.values()) <= 0:
        opt_sliders.warning("All weights are zero: give at least one modality some weight.")
        weights = None

if ss.get("encoded") is not None and (top_k != ss.get("top_k") or whatif != ss.get("whatif")
                                        or (whatif and weights != ss.get("weights"))
                                        or prior_weight != _prior()
                                        or (similarity_weight, like_weight) != _similarity()):
    # a slider moved: re-rank the encoded query with the new weights (previous ranks give the arrows)
    ss.update(top_k=top_k, whatif=whatif, weights=weights, prior_weight=float(prior_weight),
              similarity_weight=float(similarity_weight), like_weight=float(like_weight))
    service = loaders.recommend_service(ws)
    try:
        ss["result"] = service.recommend(ss["encoded"], k=top_k, modality_weights=_weights(),
                                         previous=ss.get("result"), prior_weight=_prior(),
                                         similarity_weight=_similarity()[0], like_weight=_similarity()[1])
        ss["had_rerank"] = True
    except PrismError as e:
        _flash("error", f"Re-ranking failed — {e}")
else:
    ss.update(top_k=top_k, whatif=whatif, prior_weight=float(prior_weight),
              similarity_weight=float(similarity_weight), like_weight=float(like_weight))

for message in ss.get("upload_errors", []):
    st.error(components.md_escape(message), icon=":material/error:")
for level, message in ss.get("flash", []):
    (st.warning if level == "warning" else st.error)(components.md_escape(message), icon=":material/warning:" if level == "warning" else
                                                         ":material/error:")
ss["flash"] = []

# -- results -------------------------------------------------------------------------------------------
result = ss.get("result")
if result is None:
    st.info("Type a description, upload a cover or a clip, or pick tracks you like — then press **Recommend**. "
            "The Home page has a one-click demo query.", icon=":material/lightbulb:")
    st.stop()

query = ss.get("query")
parts = []
if query is not None:
    if query.text:
        parts.append(f":material/notes: “{components.html_text(query.text)}”")
    if query.images:
        parts.append(f":material/image: {len(query.images)} image{'s' * (len(query.images) > 1)}")
    if query.audio:
        parts.append(f":material/graphic_eq: {len(query.audio)} clip{'s' * (len(query.audio) > 1)}")
    if query.liked:
        parts.append(f":material/thumb_up: {len(query.liked)} liked")
    if query.disliked:
        parts.append(f":material/thumb_down: {len(query.disliked)} disliked")
    if query.user_id:
        parts.append(f":material/person: {components.html_text(query.user_id)}")
chips = "".join(f'<span class="prism-chip" style="background:{modality_color(m)}">{MODALITY_LABELS[m]}</span>'
                for m in getattr(result, "query_modalities", []) if m in MODALITY_LABELS)
st.markdown(f"**Query:** {' · '.join(parts)} &nbsp; {chips}", unsafe_allow_html=True)
if getattr(result, "encoding", "encoded") == "encoded":
    timing = (f"{result.latency_ms:.0f} ms in all — encoding this query {result.encode_ms:.0f} ms, ranking "
              f"{result.rank_ms:.0f} ms")
else:  # re-ranked: nothing was encoded for this result
    encoded = ss.get("encoded")
    timing = (f"re-ranked in {result.rank_ms:.0f} ms without re-encoding (the query was encoded once, in "
              f"{getattr(encoded, 'encode_ms', 0.0):.0f} ms)")
st.caption(f":material/timer: {timing} · {len(result.items)} results"
           + (" · what-if weights active" if _weights() else "")
           + (f" · item offset: {result.item_offset}" if getattr(result, "item_offset", "") else ""))
for warning in getattr(result, "warnings", []) or []:
    st.warning(components.md_escape(warning))
for note in getattr(result, "notes", []) or []:
    st.info(components.md_escape(note), icon=":material/info:")

had_previous = bool(ss.get("had_rerank"))
relative = relative_scores([r.score for r in result.items])
if relative and relative[0] is not None:
    st.caption(":material/help: **What does this mean?** Cards are in rank order; “% of #1” is each score as a "
               "share of the first result's, and the sentence under each card names what brought it here, largest "
               "part first. The exact scores and every part of them are under “Raw numbers” below the cards.")
for start in range(0, len(result.items), PER_ROW):
    cols = st.columns(PER_ROW, gap="small")
    for col, rec, share in zip(cols, result.items[start:start + PER_ROW], relative[start:start + PER_ROW]):
        with col:
            components.result_card(catalog, rec, had_previous, _on_feedback, _on_why, relative=share,
                                   noun=components.query_noun(query))

with st.expander("Raw numbers"):
    noun = components.query_noun(query)  # named as on the cards: "your text", "your image and clip"…
    raw = score_table(result.items)
    st.dataframe(raw.rename(columns=lambda c: components.name_query(c, noun)), hide_index=True)
    st.caption(f"score = listening history + item offset + each modality (its similarity to {noun} "
               "included) + each named term; “… similarity” columns are the part of that modality's value that "
               f"is how close the item is to {noun} as that modality's encoder reads them (cosine × its weight).")
    if getattr(result, "protocol", None):  # how this ranking was made: the index and the serving settings
        components.protocol_card(result.protocol, title="How this ranking was made")

# -- a report of this query: ranking, the items explained so far, the stored runs ------------------------
from ui.reports import download_report, query_report  # noqa: E402

_report_args = (ws, query, result, dict(ss.get("explanations") or {}), id(ss.get("encoded")), "recommendations")
download_report(lambda: query_report(*_report_args), catalog, "recommend", key="rec_report")
