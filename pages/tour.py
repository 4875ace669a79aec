"""Tour: a guided story over the live studio — steps from a tour file (assets/tours/), each run through the
real services; Next / Back (or the arrow keys), a progress bar, hideable presenter notes, and a report at the end.

Every string from a tour file or a catalog (titles, narration, notes, labels, messages) is drawn as plain text:
md_escape where Streamlit reads markdown, html_text inside HTML snippets; nothing in data makes a browser fetch."""
from __future__ import annotations

import hashlib

import streamlit as st

from core.errors import PrismError
from core.explain.narration import card_sentence, relative_scores
from core.report.render import runs_long
from core.tour.schema import available_tours, load_tour, parse_tour
from core.tour.steps import (CatalogOutcome, ExplainOutcome, FeedbackOutcome, ImportOutcome, ProofOutcome, QueryOutcome,
                             StepSkipped, TourContext, TourRun)
from ui import charts, components, loaders
from ui.navigation import ensure_frame
from ui.reports import download_report
from ui.components import html_text, md_escape
from ui.theme import MODALITY_LABELS, modality_bar, modality_color, page_header, rank_change

ensure_frame()

PER_ROW = 5
page_header("Tour", "A guided walk through Prism on the live catalog — every step runs the real services.")
ws = loaders.workspace()
catalog = ws.catalog
ss = st.session_state

# -- which tour ------------------------------------------------------------------------------------------
shipped = available_tours()
pick_col, upload_col = st.columns([2, 3], gap="large")
names = list(shipped)
choice = pick_col.selectbox("Tour", names, index=names.index("demo") if "demo" in names else 0, key="tour_file")
with upload_col.expander("Your own tour (YAML or JSON)"):
    own = st.file_uploader("Tour file", type=["yaml", "yml", "json"], key="tour_upload",
                           help="Steps with queries, item ids and narration; see assets/tours/demo.yaml")
try:
    if own is not None:
        data = own.getvalue()  # parse_tour bounds the size before decoding or parsing anything
        tour, tour_key = parse_tour(data, own.name), hashlib.sha256(data).hexdigest()[:12]
    else:
        tour, tour_key = load_tour(shipped[choice]), choice
    run_key = (tour_key, catalog.name, ws.stamp)
    if ss.get("tour_run_key") != run_key:
        ctx = TourContext(catalog=catalog, embeddings=ws.embeddings, model=ws.model, store=loaders.store(),
                          recommend_service=lambda: loaders.recommend_service(ws),
                          explain_service=lambda: loaders.explain_service(ws),
                          ground_truth=loaders.workspace_ground_truth(ws))
        ss["tour_run"], ss["tour_run_key"], ss["tour_step"] = TourRun(tour, ctx), run_key, 0
except PrismError as e:
    ss.pop("tour_run_key", None)
    components.show_error(e, "This tour cannot be used")
    st.stop()

run: TourRun = ss["tour_run"]
n = len(run.tour.steps)
index = min(max(int(ss.get("tour_step", 0)), 0), n - 1)
step = run.tour.steps[index]


def _go(delta: int) -> None:
    ss["tour_step"] = min(max(int(ss.get("tour_step", 0)) + delta, 0), n - 1)


def _flip_notes() -> None:
    ss["tour_notes"] = not ss.get("tour_notes", False)


# -- progress and navigation ---------------------------------------------------------------------------------
st.progress((index + 1) / n, text=f"Step {index + 1} of {n} · {md_escape(step.title)}")
trail = " › ".join(f"<b>{html_text(s.title)}</b>" if i == index else html_text(s.title)
                   for i, s in enumerate(run.tour.steps))
st.markdown(f'<div class="prism-card-meta">{trail}</div>', unsafe_allow_html=True)
nav = st.container(horizontal=True, vertical_alignment="center")
nav.button("Back", icon=":material/arrow_back:", key="tour_back", on_click=_go, args=(-1,), disabled=index == 0,
           shortcut="Left", help="Previous step (← key)")
nav.button("Next", icon=":material/arrow_forward:", key="tour_next", on_click=_go, args=(1,), type="primary",
           disabled=index == n - 1, shortcut="Right", help="Next step (→ key)")
components.tour_arrow_keys()  # also in a new tab's first seconds, and whatever button was clicked last
# Notes start hidden: the screen the room sees shows the story, not the presenter's cues. A button, not a
# switch: a focused switch is an input, and Streamlit ignores ← / → while an input has the focus
show_notes = bool(ss.setdefault("tour_notes", False))
nav.button("Hide presenter notes" if show_notes else "Presenter notes", key="tour_notes_button",
           icon=":material/speaker_notes_off:" if show_notes else ":material/speaker_notes:", type="tertiary",
           on_click=_flip_notes, shortcut="N", help="Show or hide the presenter's notes (N key); off by default")

st.subheader(f"{index + 1}. {md_escape(step.title)}")
if step.narration:
    st.markdown(md_escape(step.narration))
if show_notes and step.notes:
    st.info(md_escape(step.notes), icon=":material/record_voice_over:")


# -- drawing the outcomes -------------------------------------------------------------------------------------
def cards(result, had_previous: bool = False, noun: str = "your query") -> None:
    """Ranked items as compact cards: cover, rank (and its change), title, score as a share of #1's (raw on
    hover), modality bar and one sentence on what brought the item here, the query named by `noun`."""
    relative = relative_scores([r.score for r in result.items])
    for start in range(0, len(result.items), PER_ROW):
        cols = st.columns(PER_ROW, gap="small")
        for col, rec, share in zip(cols, result.items[start:start + PER_ROW], relative[start:start + PER_ROW]):
            item = catalog.item(rec.item_id)
            with col.container(border=True):
                components.item_image(catalog, item)
                badge = rank_change(rec.rank, rec.previous_rank, had_previous)
                sentence = components.name_query(card_sentence(rec), noun)
                st.markdown(f'<div class="prism-card-title"><span class="prism-rankno">{rec.rank}</span>'
                            f'{html_text(item.title)}{badge}</div>'
                            f'<div class="prism-card-meta">{html_text(components.item_subtitle(item))}</div>'
                            + (f'<span class="prism-score" title="raw score {rec.score:.3f}">{share:.0f}% of #1'
                               '</span>' if share is not None else
                               f'<span class="prism-score">score {rec.score:.3f}</span>')
                            + f'{modality_bar(dict(rec.modality_weights))}'
                            f'<div class="prism-card-meta">{html_text(sentence)}</div>',
                            unsafe_allow_html=True)


def draw_catalog(out: CatalogOutcome) -> None:
    c1, c2, c3 = st.columns(3)
    c1.metric("Items", f"{len(catalog.items):,}")
    c2.metric("Listeners", f"{out.n_users:,}")
    c3.metric("Interactions", f"{out.n_interactions:,}")
    chips = "".join(f'<span class="prism-chip" style="background:{modality_color(m)}">'
                    f'{MODALITY_LABELS.get(m, m)} · {count:,} items</span>' for m, count in out.modalities.items())
    st.markdown("Modalities present: " + chips, unsafe_allow_html=True)
    grid, side = st.columns([3, 2], gap="large")
    with grid:
        for start in range(0, len(out.covers), 6):
            cols = st.columns(6, gap="small")
            for col, item_id in zip(cols, out.covers[start:start + 6]):
                with col:
                    components.item_image(catalog, catalog.item(item_id))
                    st.caption(md_escape(catalog.item(item_id).title))
    with side:
        if out.clip:
            st.markdown(f"**Listen:** {md_escape(catalog.item(out.clip).title)}")
            components.item_audio(catalog, catalog.item(out.clip))
        st.markdown("**Encoders**")
        for field_name, enc_id in out.encoder_ids.items():
            modality = ws.embeddings.modality_of.get(field_name, "")
            st.markdown(f'<span class="prism-chip" style="background:{modality_color(modality)}">'
                        f'{MODALITY_LABELS.get(modality, modality)}</span> <b>{html_text(field_name)}</b> — '
                        f'{html_text(components.backend_label(enc_id))} <code>{html_text(enc_id)}</code>',
                        unsafe_allow_html=True)


def draw_query(out: QueryOutcome) -> None:
    first_text = next((s.text for s in step.stages if s.text is not None), None)
    if first_text is not None:
        key = f"tour_text_{index}"
        ss.setdefault(key, run.text_overrides.get((index, 0), first_text))
        st.text_input("The sentence (editable)", key=key,
                      on_change=lambda: run.set_text(index, 0, ss[key]))
    labels = [s.label for s in out.stages]
    chosen = st.segmented_control("Stage", labels, default=labels[-1], key=f"tour_stage_{index}",
                                  format_func=md_escape) or labels[-1]
    stage = out.stages[labels.index(chosen)]
    row = st.columns([1, 1, 4], gap="medium", vertical_alignment="center")
    if stage.query.images:
        row[0].image(stage.query.images[-1].data, caption=md_escape(stage.query.images[-1].name), width=120)
    if stage.query.audio:
        row[1].audio(stage.query.audio[-1].data)
        row[1].caption(md_escape(stage.query.audio[-1].name))
    used = [MODALITY_LABELS.get(m, m) for m in stage.result.query_modalities]
    row[2].caption(f"Query modalities: {', '.join(used) or '—'} · {len(stage.result.items)} results")
    for note in out.notes:
        st.info(md_escape(note), icon=":material/info:")
    cards(stage.result, noun=components.query_noun(stage.query))


def draw_explain(out: ExplainOutcome) -> None:
    exp = out.explanation
    item = catalog.item(exp.item_id)
    head, body = st.columns([1, 4], gap="large")
    with head:
        components.item_image(catalog, item)
        components.item_audio(catalog, item)
    asked = [o for i, o in sorted(run.outcomes.items()) if i < index and isinstance(o, QueryOutcome)]
    noun = components.query_noun(asked[-1].last.query) if asked else "your query"  # "your text, image and clip"
    with body:
        st.markdown(f"**{md_escape(item.title)}** — {md_escape(components.item_subtitle(item))}")
        for sentence in out.sentences:  # the query named as the chart below names it
            st.markdown(f"- {md_escape(components.name_query(sentence, noun))}")
    left, right = st.columns([3, 2], gap="large")
    history = float(getattr(exp, "history", 0.0) or 0.0)
    labels = {t: components.name_query(label, noun) for t, label in dict(exp.term_labels).items()}
    left.plotly_chart(charts.shapley_waterfall(exp.base_value, dict(exp.modality_shapley), exp.score,
                                               terms=dict(exp.terms), term_labels=labels,
                                               history=history if abs(history) > 1e-9 else None),
                      key=f"tour_waterfall_{index}")
    left.caption(":material/help: **What does this mean?** Each bar adds its part to the score, left to right; "
                 "the last bar is the score. The sentences above name the same parts, largest first.")
    if not exp.feature_shap.empty:
        right.plotly_chart(charts.feature_shap_bar(exp.feature_shap, top=10), key=f"tour_features_{index}")
    tokens = charts.token_pairs(exp.token_shap)
    if tokens:
        st.markdown(f'<div style="font-size:1.05rem">{charts.token_html(tokens)}</div>', unsafe_allow_html=True)
    for note in exp.notes:
        st.info(md_escape(note), icon=":material/info:")


def draw_feedback(out: FeedbackOutcome) -> None:
    st.markdown(md_escape(out.sentence))
    cards(out.result, had_previous=True, noun=components.query_noun(out.query))


def draw_proof(out: ProofOutcome) -> None:
    st.markdown(f"**Protocol.** {md_escape(out.protocol)}")
    for sentence in out.sentences:
        st.markdown(f"- {md_escape(sentence)}")
    metric, _, k = out.metric.partition("@")
    long = runs_long(out.runs)
    left, right = st.columns(2, gap="large")
    if k.isdigit() and len(long):
        left.plotly_chart(charts.metric_bars_ci(long, metric, int(k)), key=f"tour_bars_{index}")
    if out.paired:
        name_a, name_b, rows = out.paired[0] if len(out.paired) == 1 else next(
            (p for p in out.paired if p[0] in ("bprmf", "itemknn")), out.paired[0])
        right.plotly_chart(charts.paired_difference_fig(rows, name_a, name_b), key=f"tour_paired_{index}")
    f = out.faithfulness
    if f:
        st.markdown(f"**Faithfulness on the demo's ground truth.** For {f['listeners']} simulated listeners whose "
                    f"taste lives in one modality, the largest Shapley value named that modality for "
                    f"**{f['dominant_top_rate']:.0%}** of their {f['items']} top-{f['k']} items (chance "
                    f"{f['chance']:.0%}); removing the top-attributed modality lowered the score for "
                    f"**{f['deletion_drop_rate']:.0%}**.")


def draw_import(out: ImportOutcome) -> None:
    st.markdown("A manifest has one row per item with the columns " + ", ".join(f"`{c}`" for c in out.columns)
                + "; media paths are relative to it. From the command line:")
    st.code("\n".join(out.commands), language="bash")
    st.page_link("pages/catalog.py", label="Import on the Catalog page", icon=":material/upload:")


DRAW = {CatalogOutcome: draw_catalog, QueryOutcome: draw_query, ExplainOutcome: draw_explain,
        FeedbackOutcome: draw_feedback, ProofOutcome: draw_proof, ImportOutcome: draw_import}

with st.spinner(f"Running step {index + 1}: {md_escape(step.title)}…"):
    try:
        outcome = run.outcome(index)
    except PrismError as e:
        components.show_error(e, f"Step {index + 1} ({md_escape(step.title)}) failed")
        outcome = None
if isinstance(outcome, StepSkipped):
    st.info(f"Skipped on {md_escape(catalog.name)}: {md_escape(outcome)}", icon=":material/skip_next:")
elif outcome is not None:
    DRAW[type(outcome)](outcome)

if index == n - 1:
    st.divider()
    st.markdown("**Leave them something to read:** the whole tour as one HTML file that opens offline.")
    download_report(run.report, catalog, "tour", key="tour_report")
