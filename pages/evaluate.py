"""Evaluate: stored runs drawn under one protocol card per section; start a new run; compare two runs;
download a run as CSV or JSON."""
from __future__ import annotations

import re
import time

import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.limits import OPTION_BOUNDS, OptionError, check_option, parse_number_list
from ui import charts, components, evaluation, loaders
from ui.navigation import ensure_frame
from ui.theme import page_header

ensure_frame()

page_header("Evaluate", "Ranking quality of every stored run — metric@K with 95% bootstrap intervals, training "
            "curves, ablations — under the protocol that produced them.")
ws = loaders.workspace()
catalog = ws.catalog
if len(catalog.interactions) == 0:  # a content-only catalog: say what is missing, offer the upload
    components.interactions_missing(ws, "Evaluating", loaders.store())
st_store = loaders.store()
ss = st.session_state


@st.cache_data(show_spinner=False, max_entries=256)
def _record(root: str, run_id: str) -> dict:
    return loaders.get_store(root).load_run(run_id)


@st.cache_data(show_spinner=False, max_entries=32)
def _metrics(root: str, run_ids: tuple[str, ...]) -> pd.DataFrame:
    from core.evaluation.runs import metrics_long

    return metrics_long(loaders.get_store(root), list(run_ids))


@st.cache_data(show_spinner=False, max_entries=32)
def _paired(root: str, run_a: str, run_b: str) -> pd.DataFrame:
    from core.evaluation.runs import paired_comparison

    return paired_comparison(loaders.get_store(root), run_a, run_b)


@st.cache_data(show_spinner=False, max_entries=32)
def _curves(root: str, run_ids: tuple[str, ...]) -> pd.DataFrame:
    from core.evaluation.runs import training_curves

    return training_curves(loaders.get_store(root), list(run_ids))


def combined_card(records: list[dict]) -> dict[str, str]:
    """One protocol card for several runs: shared values once, differing ones listed per run."""
    from core.evaluation.runs import protocol_card

    cards = [protocol_card(r) for r in records]
    out: dict[str, str] = {}
    for key in dict.fromkeys(k for c in cards for k in c):
        if key in ("created", "model") and len(cards) > 1:  # the chart's legend already tells runs apart
            continue
        values = list(dict.fromkeys(_short(str(c.get(key, "—"))) for c in cards))
        out[key] = values[0] if len(values) == 1 else "differs: " + " | ".join(values)
    return out


def _short(value: str) -> str:
    # encoder ids keep their weights name and hash, not the hub owner ("sentence-transformers/…")
    return re.sub(r"(?<![\w.-])[\w.-]+/(?=[\w.-]+@)", "", value)


def labels_for(runs: pd.DataFrame) -> dict[str, str]:
    """A short unique label per run: the model name, plus a date when a name repeats."""
    dup = runs["name"].duplicated(keep=False)
    return {rid: (f"{name} · {time.strftime('%m-%d %H:%M', time.localtime(ts))}" if d else name)
            for rid, name, ts, d in zip(runs["id"], runs["name"], runs["created_at"], dup)}




@st.fragment(run_every=2)
def _reference_progress() -> None:
    """The demo's first-start evaluation (ui.loaders.evaluate_demo_in_background) while it runs."""
    job = loaders.reference_eval_status(ws) or {}
    if job.get("state") != "running":
        st.rerun()  # the whole page: the new runs appear
    st.progress(job["done"] / max(job["total"], 1),
                text=f"Evaluating the demo model against popularity, ItemKNN and BPR-MF in the background — "
                     f"now {job['current']} ({job['done']}/{job['total']}); the runs appear here when done")


reference = loaders.reference_eval_status(ws)
if reference and reference["state"] == "running":
    _reference_progress()
elif reference and reference["state"] == "failed":
    failure = components.md_escape(components.without_server_paths(reference["error"]))  # it may name files
    st.warning(f"The background evaluation of the demo failed ({failure}); start one in "
               "*New evaluation*.", icon=":material/warning:")

runs = loaders.runs_frame(ws.root, catalog.name, loaders.runs_stamp(st_store, catalog.name))
for _, damaged in loaders.damaged_runs(ws.root, catalog.name, loaders.runs_stamp(st_store, catalog.name)):
    st.warning(components.md_escape(damaged), icon=":material/warning:")  # left out of every list below
tab_results, tab_new, tab_compare = st.tabs(["Results", "New evaluation", "Compare two runs"])

# -- results -----------------------------------------------------------------------------------------
with tab_results:
    if runs.empty:
        st.info(f"No evaluation runs are stored for **{catalog.name}** yet — start one in *New evaluation*.",
                icon=":material/inbox:")
    else:
        labels = labels_for(runs)
        latest = runs.drop_duplicates("name")["id"].tolist()[:8]  # runs_table is newest first
        fresh = [r for r in ss.pop("ev_new_runs", []) if r in labels]
        if fresh:  # runs just saved in *New evaluation* join the chosen ones (the widget keeps its own state)
            kept = [r for r in ss.get("ev_runs", latest) if r in labels and r not in fresh]
            ss["ev_runs"] = fresh + kept
        chosen = st.multiselect("Runs", runs["id"].tolist(), default=latest, format_func=labels.get,
                                key="ev_runs", select_all=False)
        if not chosen:
            st.info("Pick at least one run.")
        else:
            records = [_record(ws.root, rid) for rid in chosen]
            card = combined_card(records)
            long = _metrics(ws.root, tuple(chosen)).copy()
            long["label"] = long["run_id"].map(labels)
            kinds = runs.set_index("id")["kind"] if "kind" in runs else pd.Series(dtype=str)
            long["kind"] = long["run_id"].map(kinds)
            run_labels = [labels[r] for r in chosen]
            colors = charts.run_colors(run_labels, [kinds.get(r, "") for r in chosen])
            metric_names = sorted(long["metric"].unique())
            ks = sorted(long["k"].dropna().unique().astype(int))
            c1, c2 = st.columns(2)
            default_metric = next((m for m in ("recall", "ndcg") if m in metric_names), metric_names[0])
            metric = c1.selectbox("Metric", metric_names, index=metric_names.index(default_metric),
                                  key="ev_metric")
            k = c2.selectbox("K", ks, index=ks.index(20) if 20 in ks else len(ks) - 1, key="ev_k")

            # one protocol card for every chart of this section (the cold-start runs have their own below)
            components.protocol_card(card, title="Protocol of the charts below")
            left, right = st.columns(2, gap="medium")
            left.plotly_chart(charts.metric_at_k_lines(long, metric, colors), key="ev_lines")
            right.plotly_chart(charts.metric_bars_ci(long, metric, k, colors), key="ev_bars")

            curves = _curves(ws.root, tuple(chosen))
            if not curves.empty:
                curves = curves.assign(label=curves["run_id"].map(labels))
                st.plotly_chart(charts.training_curves_fig(curves, colors), key="ev_curves")

            # modality ablation: the fusion model against models that see one modality only
            at_k = long[(long["k"] == k) & (long["metric"] == metric)]
            if {"fusion", "single-modality"} <= set(at_k["kind"].dropna()):
                ablation = at_k[at_k["kind"].isin(["fusion", "single-modality"])]
                fig = charts.metric_bars_ci(ablation, metric, k, colors)
                fig.update_layout(title=f"Modality ablation: fusion vs one modality ({metric}@{k})")
                st.plotly_chart(fig, key="ev_ablation")

            cold_ids = [r["id"] for r in records if "cold" in str(r.get("protocol", {}).get("split", "")).lower()
                        or "cold" in str(r.get("protocol", {}).get("name", "")).lower()]
            if cold_ids:
                cold = long[long["run_id"].isin(cold_ids)]
                chart, side = st.columns([5, 2], gap="medium")
                fig = charts.metric_bars_ci(cold, metric, k, colors)
                fig.update_layout(title=f"Cold-start items (content only): {metric}@{k}")
                chart.plotly_chart(fig, key="ev_cold")
                with side:
                    components.protocol_card(combined_card([r for r in records if r["id"] in cold_ids]),
                                             title="Protocol (cold start)")

            st.markdown("#### Download a run")
            d1, d2 = st.columns([2, 2], vertical_alignment="bottom")
            pick = d1.selectbox("Run", chosen, format_func=labels.get, key="ev_download_run")
            d3 = d2.container(horizontal=True)
            from core.evaluation.runs import run_to_csv, run_to_json

            record = _record(ws.root, pick)
            d3.download_button("CSV", run_to_csv(record), file_name=f"{pick}.csv", mime="text/csv",
                               icon=":material/download:", key="ev_csv")
            d3.download_button("JSON", run_to_json(record), file_name=f"{pick}.json", mime="application/json",
                               icon=":material/download:", key="ev_json")
            with d3:
                from core.report import ReportData, paired_against_fusion
                from ui.reports import download_report

                def _report(chosen_records=tuple(records)) -> ReportData:
                    runs_shown = list(chosen_records)
                    return ReportData(catalog=catalog.name, model_id=ws.model_id,
                                      encoder_ids=dict(ws.embeddings.encoder_ids),
                                      title=f"Prism evaluation · {catalog.name}", runs=runs_shown,
                                      paired=paired_against_fusion(st_store, runs_shown))

                download_report(_report, catalog, "evaluation", key="ev_report")

# -- a new evaluation ----------------------------------------------------------------------------------
with tab_new:
    ACTIVE = f"active fusion model ({ws.model_id})"
    options = [ACTIVE, *evaluation.model_choices(ws.embeddings)]
    with st.form("ev_form"):
        models = st.multiselect("Models", options, default=[ACTIVE, *[m for m in ("popularity", "itemknn")
                                                                       if m in options]], key="ev_models",
                                help="fusion-… models train from this catalog's configuration tuned on validation "
                                     "(the Train page's search) with the named fusion strategy")
        f1, f2, f3 = st.columns(3)
        split = f1.selectbox("Split", ["auto", "random", "leave-one-out", "temporal", "label"], key="ev_split",
                             help="auto = the catalog's own split labels when it has them, else random 8:1:1")
        ks_text = f2.text_input("K values", "5, 10, 20", key="ev_ks", max_chars=200,
                                help=f"Whole numbers from 1 to {OPTION_BOUNDS['k'].high:,g} separated by commas, at "
                                     f"most {OPTION_BOUNDS['ks_count'].high:,g} of them")
        seed = f3.number_input("Seed", 0, int(OPTION_BOUNDS["seed"].high), 0, key="ev_seed")
        mask = st.radio("Masked at test", ["train", "train+valid"], horizontal=True, key="ev_mask",
                        format_func={"train": "training items only (MMRec/RecBole)",
                                     "train+valid": "training and validation items"}.get,
                        help="Under *training items only* validation items stay candidates at test, as in the "
                             "published MMRec figures; runs under different rules are never paired")
        cold = st.checkbox("Also run the cold-start protocol (20% of items held out of training, ranked from "
                           "content alone)", key="ev_cold", help="Models are trained afresh for it; the active "
                           "model is skipped there")
        st.caption("The active model is evaluated as it was trained (split *auto*, seed 0): choose another split "
                   "or seed only for models trained here, or its numbers are optimistic.")
        start = st.form_submit_button("Start evaluation", type="primary", icon=":material/play_arrow:")
    if ss.get("eval_message"):
        st.success(ss["eval_message"])
    if ss.get("eval_verdict"):
        components.protocol_card(ss["eval_verdict"], title="Verdict against the strongest baseline")
    if start:
        try:
            ks_eval = parse_number_list(ks_text, "k", "K values", "ks_count")
            seed = check_option("seed", seed, "Seed")
        except OptionError as e:
            components.show_error(e, "Nothing was started")
            st.stop()
        if not models:
            st.warning("Choose at least one model.")
            st.stop()
        from core.data.splits import build_interaction_data
        from core.store.sharing import browser_may_change

        with st.status(f"Evaluating {len(models)} model(s) on {catalog.name}…", expanded=True) as status:
            overall = st.progress(0.0, text="building the split")
            try:
                data = build_interaction_data(catalog, ws.embeddings, split=split, seed=int(seed))
            except PrismError as e:
                status.update(label="The split could not be built", state="error")
                components.show_error(e, "Split")
                st.stop()
            base = None
            if any(n.startswith("fusion-") and n != ACTIVE for n in models):
                from core.tuning import resolve_fusion_config

                tune_bar = st.progress(0.0, text="fusion configuration: the catalog's tuned one")
                shared = browser_may_change(catalog.name)  # a short tune is stored only where allowed
                try:
                    base, source = resolve_fusion_config(
                        st_store, catalog, ws.embeddings, data,
                        progress=lambda d, t, m: tune_bar.progress(min(1.0, d / max(t, 1)), text=m),
                        persist=shared.allowed, not_stored_why=shared.reason)
                except (PrismError, ValueError) as e:
                    status.update(label="No fusion configuration could be chosen", state="error")
                    components.show_error(e, "Tuning")
                    st.stop()
                st.write(f":material/tune: Fusion configuration: {source}")
            saved, judged = evaluation.evaluate_models(st_store, ws, data, models, active=ACTIVE, base=base,
                                                       ks=ks_eval, seed=int(seed), mask=mask, cold=cold,
                                                       overall=overall)
            overall.progress(1.0, text="done")
            status.update(label=f"Saved {len(saved)} run(s)", state="complete", expanded=False)
        ss["eval_message"] = (f"Saved {len(saved)} run(s): {', '.join(saved)} — shown in *Results* beside the "
                              "runs chosen there.")
        ss["ev_new_runs"] = saved
        from core.evaluation.verdict import verdict_card

        ss["eval_verdict"] = verdict_card(judged, f"ndcg@{max(ks_eval)}", seed=int(seed))
        st.rerun()

# -- compare two runs ------------------------------------------------------------------------------------
with tab_compare:
    if len(runs) < 2:
        st.info("Two stored runs are needed to compare.")
    else:
        labels = labels_for(runs)
        ids = runs["id"].tolist()
        a_col, b_col = st.columns(2, gap="large")
        run_a = a_col.selectbox("Run A", ids, index=0, format_func=labels.get, key="ev_cmp_a")
        run_b = b_col.selectbox("Run B", ids, index=1, format_func=labels.get, key="ev_cmp_b")
        long = _metrics(ws.root, (run_a, run_b))
        table = long.assign(metric_k=long["metric"] + "@" + long["k"].astype(int).astype(str))
        wide = table.pivot_table(index="metric_k", columns="run_id", values="value", aggfunc="first")
        for col, rid in ((a_col, run_a), (b_col, run_b)):
            with col:
                from core.evaluation.runs import protocol_card

                components.protocol_card(protocol_card(_record(ws.root, rid)), title=labels[rid])
                part = table[table["run_id"] == rid][["metric_k", "value", "lo", "hi"]]
                st.dataframe(part.rename(columns={"metric_k": "metric", "lo": "95% CI low", "hi": "95% CI high"}),
                             hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.4f")
                                                             for c in ("value", "95% CI low", "95% CI high")})
        if run_a in wide and run_b in wide:
            diff = pd.DataFrame({"A": wide[run_a], "B": wide[run_b]})
            diff["B − A"] = diff["B"] - diff["A"]
            st.markdown("#### Side by side")
            st.dataframe(diff, column_config={c: st.column_config.NumberColumn(format="%.4f") for c in diff})
        st.markdown("#### User by user")
        st.caption("The same users resampled for both runs: a difference whose interval stays clear of zero "
                   "holds across users, even where the two runs' own intervals overlap.")
        try:
            paired = _paired(ws.root, run_a, run_b)
        except PrismError as e:
            st.info(f"No paired comparison: {components.md_escape(e)}")
        else:
            figure = charts.paired_difference_fig(paired, labels[run_a], labels[run_b])
            st.plotly_chart(figure, key="ev_paired_chart")
            st.dataframe(
                paired.drop(columns=["metric", "k"]).rename(columns={
                    "name": "metric", "difference": "B − A", "lo": "95% CI low", "hi": "95% CI high",
                    "separate_cis_overlap": "own CIs overlap"}),
                hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.4f")
                                                for c in ("A", "B", "B − A", "95% CI low", "95% CI high")})
