"""Explain: why one item scored as it did for your query or for a known listener — modality weights, exact
modality Shapley values, named-feature SHAP, word SHAP, a deletion check and (demo) the generator's truth."""
from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.explain.narration import relative_scores, rounded_parts, score_parts, sentences_for
from core.serving.service import Query
from ui import charts, components, loaders
from ui.navigation import ensure_frame
from ui.theme import MODALITY_LABELS, modality_color, page_header

ensure_frame()

page_header("Explain", "Why an item was recommended: how much each modality counted, which named features "
            "and which words moved the score.")
ws = loaders.workspace()
catalog = ws.catalog
ss = st.session_state
titles = {item.id: item.title for item in catalog.items}

target = ss.get("explain_target") or {}
if target.get("catalog") not in (None, catalog.name):
    target = {}
has_query = ss.get("encoded") is not None and ss.get("query_catalog") == catalog.name and ss.get("result")

# -- what to explain ---------------------------------------------------------------------------------
modes = ["Your query", "A listener"] if has_query else ["A listener"]
default_mode = "Your query" if has_query and target.get("mode", "query") == "query" else "A listener"
pick = st.columns([2, 3, 4], gap="medium")
mode = pick[0].radio("Explain a recommendation for", modes, index=modes.index(default_mode), key="ex_mode",
                     horizontal=True)
service = loaders.recommend_service(ws)
user_id = None
if mode == "A listener":
    users = loaders.users_frame(ws.root, catalog.name, ws.stamp, ws)
    if users.empty:
        st.info("This catalog has no listeners yet; run a query on the Recommend page to explain it.")
        st.stop()
    info = users.set_index("user_id")
    options = users["user_id"].tolist()
    wanted = target.get("user_id") if target.get("mode") == "user" else None

    def _user_label(u: str) -> str:
        dom, kind = info.at[u, "dominant_modality"], info.at[u, "kind"]
        if isinstance(dom, str):
            return f"{u} · {MODALITY_LABELS.get(dom, dom).lower()}-driven taste ({kind})"
        return f"{u} · mixed taste" + (f" ({kind})" if isinstance(kind, str) else "")

    user_id = pick[1].selectbox("Listener", options, index=options.index(wanted) if wanted in options else 0,
                                format_func=_user_label, key="ex_user",
                                help="Listeners whose taste lives in one modality come first: their "
                                     "explanations can be checked against the generator's truth.")
    recs_key = ("user-recs", catalog.name, ws.stamp, user_id)
    if recs_key not in ss["explanations"]:
        try:
            ss["explanations"][recs_key] = service.recommend(Query(user_id=user_id), k=10)
        except PrismError as e:
            components.show_error(e, "Could not rank items for this listener")
            st.stop()
    ranked = ss["explanations"][recs_key].items
    subject = user_id
else:
    ranked = ss["result"].items
    subject = ss["encoded"]
item_options = [r.item_id for r in ranked]
relative = dict(zip(item_options, relative_scores([r.score for r in ranked])))

wanted_item = target.get("item_id")
item_id = pick[2].selectbox("Recommended item", item_options,
                            index=item_options.index(wanted_item) if wanted_item in item_options else 0,
                            format_func=lambda i: f"#{item_options.index(i) + 1} · {titles[i]} ({i})",
                            key=f"ex_item_{mode}_{user_id}")
ss["explain_target"] = {"item_id": item_id, "mode": "user" if user_id else "query", "user_id": user_id,
                        "catalog": catalog.name}

# the popularity prior's weight the Recommend page ranked with (content queries; a listener keeps the learned bias)
prior_weight = None if user_id else ss.get("prior_weight")
# and the weights of the similarity to the upload and of "items like your upload" (upload queries only)
similarity_weight = None if user_id else ss.get("similarity_weight")
like_weight = None if user_id else ss.get("like_weight")


def explained(part: str, spinner: str):
    """The explanation `part` ("modalities", "features" or "words") of the chosen item, computed once.

    The parts come one after the other so the modality view (milliseconds) is on screen while the
    feature-level and word-level SHAP (seconds) are still being computed.
    """
    key = ("explanation", part, catalog.name, ws.stamp, user_id or id(ss["encoded"]), item_id, prior_weight,
           similarity_weight, like_weight)
    if key not in ss["explanations"]:
        with st.spinner(spinner):
            try:
                ss["explanations"][key] = loaders.explain_service(ws).explain(
                    subject, item_id, features=part == "features", tokens=part == "words",
                    prior_weight=prior_weight, similarity_weight=similarity_weight, like_weight=like_weight)
            except PrismError as e:
                components.show_error(e, f"This item's {part} could not be explained")
                return None
    return ss["explanations"][key]


exp = explained("modalities", "Computing exact Shapley values over the modalities…")
if exp is None:
    st.stop()
shapley = {m: float(v) for m, v in dict(exp.modality_shapley).items()}
weights = {m: float(v) for m, v in dict(exp.modality_weights).items()}
terms = {t: float(v) for t, v in dict(getattr(exp, "terms", {}) or {}).items()}
noun = "your query" if user_id else components.query_noun(ss.get("query"))  # "your text", "your image"...
term_labels = {t: components.name_query(label, noun) for t, label in dict(getattr(exp, "term_labels", {}) or {}).items()}
base_label = "base (no modality, no prior)" if terms else "base (no modality; learned bias)"

# -- the item and the headline numbers --------------------------------------------------------------
item = catalog.item(item_id)
head = st.columns([1, 4], gap="large")
with head[0]:
    components.item_image(catalog, item)
    components.item_audio(catalog, item)
with head[1]:
    st.subheader(components.md_escape(item.title))
    st.caption(components.md_escape(components.item_subtitle(item)))
    if item.text:
        st.markdown(f"> {components.md_escape(item.text)}")
    top = max(shapley, key=lambda m: shapley[m]) if shapley else None
    pieces = score_parts(exp.base_value, shapley, terms, history=float(getattr(exp, "history", 0.0) or 0.0),
                        offset=float(getattr(exp, "offset", 0.0) or 0.0),
                        similarity=dict(getattr(exp, "similarity", {}) or {}))
    largest = pieces[0] if pieces else None  # every part of the score, modality or not, by size
    rank = item_options.index(item_id) + 1
    m1, m2, m3, m4 = st.columns(4)
    share = relative.get(item_id)
    m1.metric("Rank", f"#{rank} of {len(item_options)}",
              f"{share:.0f}% of #1's score" if share is not None else None, delta_color="off",
              help=f"Raw score {exp.score:.3f} (the exact numbers are under “Raw numbers” below)")
    m2.metric("Score", f"{exp.score:.3f}",
              help="What the model ranks by: the sum of the parts below (the waterfall builds it up)")
    largest_name = components.name_query(largest.label, noun).removeprefix("its ").removeprefix("being ") \
        if largest else "—"
    largest_shown = rounded_parts([p.value for p in pieces], exp.score)[0] if largest else 0.0  # as the sum prints it
    m3.metric("Largest part", largest_name[:1].upper() + largest_name[1:],
              f"{largest_shown:+.3f}" if largest else None,
              help="The part of the score that moved it most, modality or not (listening history, the "
                   f"popularity prior and {components.name_query('items like your upload', noun)} count too)")
    deletion = getattr(exp, "deletion", None)
    if deletion is not None:
        m4.metric(f"Rank without {MODALITY_LABELS.get(deletion.modality, deletion.modality).lower()}",
                  f"#{deletion.rank_after}", f"{deletion.rank_before - deletion.rank_after:+d} places",
                  delta_color="normal")

# -- in plain words: every part of the score named, largest first, adding up to the score ---------------------
st.markdown("#### In plain words")
for sentence in sentences_for(item.title, exp, features=False):
    st.markdown(f"- {components.md_escape(components.name_query(sentence, noun))}")

# -- modality level -----------------------------------------------------------------------------------
st.markdown("#### Modalities")
left, right = st.columns([3, 2], gap="large")
with left:
    history = float(getattr(exp, "history", 0.0) or 0.0)
    has_history = abs(history) > 1e-9  # a model with ids or graph propagation: their term gets its own bar
    st.plotly_chart(charts.shapley_waterfall(exp.base_value, shapley, exp.score, terms=terms,
                                             term_labels=term_labels, base_label=base_label,
                                             history=history if has_history else None), key="ex_waterfall")
    st.caption(":material/help: **What does this mean?** Read it left to right: each bar adds its part to the "
               "score, and the last bar is the score itself. The tallest bar is what brought this item here.")
    total = sum(shapley.values()) + sum(terms.values())
    if has_history:
        st.caption(f"Listening history ({history:+.4f}) is what the ids and the interaction graph give this item "
                   "for this query, with, for a listener the model was trained on, its collaborative term (EASE, "
                   "ALS and ItemKNN fitted on the training listens, weighted on validation): the same with or without "
                   "any modality, so it is its own player, drawn from "
                   f"the item offset ({exp.offset:+.4f}) up; history + modalities + terms = score − item offset "
                   f"({exp.score - exp.offset:+.4f}).")
    if terms:
        named = "the popularity prior" if list(terms) == ["prior"] else f"{len(terms)} named terms"
        st.caption(f"Exact Shapley values with the {len(shapley)} modalities and {named} as players "
                   f"(all {2 ** (len(shapley) + len(terms))} coalitions). A named term adds the same amount whatever "
                   "else is present, so its Shapley value is exactly the term, its weight × its value "
                   f"({', '.join(f'{term_labels.get(t, t)}: {v:+.4f}' for t, v in terms.items())}), and the "
                   f"modality values are what they would be without it. All together: {total:+.4f} = score − base "
                   f"({exp.score - exp.base_value:+.4f}). Bar colour = modality, grey = named terms; hatched bars "
                   "lower the score.")
        similarity = dict(getattr(exp, "similarity", {}) or {})
        name_like = components.name_query("items like your upload", noun)
        if similarity:
            st.caption(f"Each modality of {noun} includes how close the item is to it as that modality's encoder "
                       f"reads them (cosine × {getattr(exp, 'similarity_weight', 0) or 0:.2f}: "
                       + ", ".join(f"{MODALITY_LABELS.get(m, m).lower()} {v:+.4f}" for m, v in similarity.items())
                       + f"), present exactly when the item carries that modality; “{name_like}” "
                       f"(how close the item is, in the model's joint space, to the items nearest {noun}) and the "
                       f"“{components.name_query('closest match to your upload', noun)}” (the one item most similar "
                       "to it) are players of their own, like the prior.")
    else:
        st.caption(f"Exact Shapley values over the {len(shapley)} modalities (all {2 ** len(shapley)} coalitions): "
                   f"they add up to {total:+.4f} = score − base ({exp.score - exp.base_value:+.4f}). This is a known "
                   "listener: the model's learned item bias applies and stays in the base, no popularity prior. "
                   "Bar colour = modality; hatched bars lower the score.")
with right:
    series = {"gate weights (model)": weights,
              "|Shapley| share": {m: abs(v) for m, v in shapley.items()}}
    truth = loaders.workspace_ground_truth(ws)
    listener = (truth or {}).get("listeners", {}).get(user_id) if user_id else None
    if listener:
        series["generator's truth (taste)"] = {m: v for m, v in listener["modality_weights"].items()
                                               if m in shapley or m in weights}
    st.plotly_chart(charts.modality_shares_bar(series, "Modality shares: model, explanation, truth"),
                    key="ex_shares")
    st.caption(":material/help: **What does this mean?** How much each modality counts for this item: as the "
               "model weighs it (gate weights) and as the explanation measures it (share of the Shapley values)."
               " When the rows agree, the model's own weighting and its effect on this score tell the same story.")
    if listener:
        dom = listener.get("dominant_modality")
        if dom:
            agree = top == dom
            st.markdown(f"{':material/check_circle:' if agree else ':material/warning:'} The generator made **{components.md_escape(user_id)}** a *{listener['kind']}* "
                        f"listener whose taste lives in **{MODALITY_LABELS.get(dom, dom).lower()}**; the "
                        f"explanation's strongest modality is **{MODALITY_LABELS.get(top, top).lower()}**.")
        else:
            st.markdown(f"The generator gave **{components.md_escape(user_id)}** a mixed taste ({listener['kind']}): no single "
                        "modality should dominate.")
    elif truth is not None and not user_id:
        st.caption("The demo's ground truth describes simulated listeners; choose *A listener* to compare.")

if deletion is not None:
    drop = deletion.score_before - deletion.score_after
    st.markdown(
        f"**Deletion check** — removing the top-attributed modality "
        f"(<span style='color:{modality_color(deletion.modality)}'><b>"
        f"{MODALITY_LABELS.get(deletion.modality, deletion.modality)}</b></span>) moves the score from "
        f"{deletion.score_before:.3f} to {deletion.score_after:.3f} ({-drop:+.3f}) and the rank from "
        f"#{deletion.rank_before} to #{deletion.rank_after}.", unsafe_allow_html=True)

# -- feature level ------------------------------------------------------------------------------------
feature_exp = explained("features", "Computing SHAP over the named features (colours, tempo, timbre…)…")
features = getattr(feature_exp, "feature_shap", None)
if isinstance(features, pd.DataFrame) and not features.empty:
    st.markdown("#### Named features")
    f_left, f_right = st.columns([3, 2], gap="large")
    f_left.plotly_chart(charts.feature_shap_bar(features), key="ex_features")
    f_right.plotly_chart(charts.group_shap_bar(features), key="ex_groups")
    st.caption(":material/help: **What does this mean?** Which measurable qualities of the cover and the sound "
               "pushed the score up (bars to the right) or down (to the left), left chart one by one, right chart "
               "by family.")
    st.caption("SHAP over named descriptor features (colours, light, edges, texture; timbre, pitch, rhythm…): "
               "a feature set replaced by the catalog mean. Bar colour = modality.")

word_exp = explained("words", "Computing SHAP over the words of the item's text…")
tokens = charts.token_pairs(getattr(word_exp, "token_shap", None))
if tokens:
    st.markdown("#### Words")
    st.markdown(f'<div style="font-size:1.05rem">{charts.token_html(tokens)}</div>', unsafe_allow_html=True)
    st.caption(":material/help: **What does this mean?** Green words raised the score, red ones lowered it "
               "(SHAP over words of the item's text, re-encoded with the text encoder).")

parts = [e for e in (exp, feature_exp, word_exp) if e is not None]
for note in dict.fromkeys(n for e in parts for n in (getattr(e, "notes", None) or [])):
    st.info(note, icon=":material/info:")
timings = {k: v for e in parts for k, v in (getattr(e, "timings_ms", None) or {}).items()
           if k not in ("encode", "deletion", "modality_shapley") or e is exp}
if timings:
    st.caption("Computed in " + " · ".join(f"{k.replace('_', ' ')} {v:.0f} ms" for k, v in timings.items()))

with st.expander("Raw numbers"):
    st.dataframe(pd.DataFrame({"player": [*shapley, *[term_labels.get(t, t) for t in terms]],
                               "shapley": [*shapley.values(), *terms.values()],
                               "gate weight": [*[weights.get(m) for m in shapley], *[None] * len(terms)]}),
                 hide_index=True)
    if isinstance(features, pd.DataFrame):
        st.dataframe(features, hide_index=True)
    st.dataframe(pd.DataFrame({"part": [p.label for p in pieces], "value": [p.value for p in pieces],
                               "detail": [p.detail for p in pieces]}), hide_index=True)
    st.markdown(html.escape(f"base value {exp.base_value:.6f}, score {exp.score:.6f}"))

# -- a report of this explanation (and, for a query, its ranking and the items explained so far) ----------
from ui.reports import download_report, query_report  # noqa: E402

if user_id:
    _report_args = (ws, Query(user_id=user_id), ss["explanations"].get(recs_key), dict(ss["explanations"]),
                    user_id, "explanation")
else:
    _report_args = (ws, ss.get("query"), ss.get("result"), dict(ss["explanations"]), id(ss["encoded"]),
                    "explanation")
download_report(lambda: query_report(*_report_args), catalog, "explain", key="ex_report")
