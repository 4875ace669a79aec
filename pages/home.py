"""Home: what Prism does, the active catalog and encoders, a one-click demo query, where to go next."""
from __future__ import annotations

import streamlit as st

from core.tour.schema import tour_sentence
from ui import components, loaders
from ui.navigation import ensure_frame
from ui.theme import MODALITY_LABELS, inject_css, modality_color

ensure_frame()

DEMO_QUERY = tour_sentence() or "calm ambient piano"  # the demo tour's first sentence

inject_css()
ws = loaders.workspace()
catalog = ws.catalog

st.markdown(
    '<div class="prism-hero"><h3>Prism — recommendations from words, pictures and sound</h3>'
    "Describe a track, drop in a cover or a clip, or pick tracks you like: Prism's fusion model ranks the "
    "catalog in one joint space learned from text, images, audio and listening history. "
    "Then ask <b>why</b> — how much each modality counted, down to named colours, tempo and words.</div>",
    unsafe_allow_html=True)

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader(f"Catalog · {catalog.name}")
    present = catalog.modalities_present()
    n_users = catalog.interactions["user_id"].nunique() if len(catalog.interactions) else 0
    c1, c2, c3 = st.columns(3)
    c1.metric("Items", f"{len(catalog.items):,}")
    c2.metric("Users", f"{n_users:,}")
    c3.metric("Interactions", f"{len(catalog.interactions):,}")
    chips = []
    for m in ("text", "image", "audio"):
        count = present.get(m, 0)
        style = f"background:{modality_color(m)}" if count else "background:#CBD5E1"
        chips.append(f'<span class="prism-chip" style="{style}">{MODALITY_LABELS[m]} · '
                     f'{count:,}</span>')
    st.markdown("Modalities present (items carrying each): " + "".join(chips), unsafe_allow_html=True)

    st.subheader("Try it")
    st.markdown(f"One click runs the text query *“{components.md_escape(DEMO_QUERY)}”* and opens the results.")
    if st.button("Run a demo query", type="primary", icon=":material/play_arrow:", key="home_demo_query"):
        st.session_state["pending_demo_query"] = True
        st.session_state["pending_query_text"] = DEMO_QUERY
        st.switch_page("pages/recommend.py")

with right:
    st.subheader("Encoders")
    rows = []
    for field_name, enc_id in ws.embeddings.encoder_ids.items():
        modality = ws.embeddings.modality_of.get(field_name, "")
        field, backend = components.html_text(field_name), components.html_text(components.backend_label(enc_id))
        rows.append(f'<div style="margin-bottom:.45rem"><span class="prism-chip" '
                    f'style="background:{modality_color(modality)}">{MODALITY_LABELS.get(modality, modality)}'
                    f'</span><b>{field}</b> — {backend}'
                    f'<br><code style="font-size:.78rem">{components.html_text(enc_id)}</code></div>')
    st.markdown("".join(rows), unsafe_allow_html=True)
    if any("aisfx" in enc_id.lower() for enc_id in ws.embeddings.encoder_ids.values()):
        st.caption("Audio embeddings: aiSFX (Ma & Lerch, ISMIR 2022), weights © 2022 A. B. Ma and A. Lerch, "
                   "licensed [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/).")
    st.subheader("Active model")
    cfg = ws.model_config or {}
    st.markdown(f"`{ws.model_id}`  \n" + " · ".join(
        f"{k} **{cfg[k]}**" for k in ("strategy", "dim", "loss", "epochs") if k in cfg))
    if cfg.get("config_source"):
        st.caption(f"Configuration: {cfg['config_source']}.")

st.divider()
st.subheader("Where to go next")
cols = st.columns(5)
links = [
    ("pages/recommend.py", "Recommend", ":material/auto_awesome:", "Query with text, images, audio or liked "
     "tracks; steer the modality weights."),
    ("pages/explain.py", "Explain", ":material/insights:", "Shapley values per modality, named features, words."),
    ("pages/evaluate.py", "Evaluate", ":material/monitoring:", "Stored runs with confidence intervals and "
     "their protocol."),
    ("pages/catalog.py", "Catalog", ":material/library_music:", "Browse items, import your own, map the "
     "embedding space."),
    ("pages/train.py", "Train", ":material/model_training:", "Configure and train a fusion model live."),
]
for col, (target, label, icon, text) in zip(cols, links):
    with col.container(border=True, height="stretch"):
        st.page_link(target, label=label, icon=icon)
        st.caption(text)
