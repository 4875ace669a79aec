"""Train: configure a fusion model and train it with a live loss chart; list saved models; pick the active one."""
from __future__ import annotations

import dataclasses
import json
import time

import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.tuning import SHORT_TUNE_MINUTES, describe, quick_fusion_config, with_member_settings
from core.tuning.store import data_fingerprint, load_tuned, save_tuned
from ui import charts, components, loaders
from ui.navigation import ensure_frame
from ui.theme import page_header

ensure_frame()

page_header("Train", "Search fusion settings on the validation split, configure a fusion model, watch it learn "
            "epoch by epoch, and choose which saved model serves the studio.")
ws = loaders.workspace()
catalog = ws.catalog
st_store = loaders.store()
ss = st.session_state
data = loaders.interaction_data(ws)

# -- the catalog's tuned configuration -------------------------------------------------------------------
st.markdown("#### Tuned configuration")
try:
    tuned = load_tuned(st_store, catalog.name, data_hash=data_fingerprint(data))
except PrismError as e:
    components.show_error(e, "The stored tuned configuration cannot be read")
    tuned = None
active_source = (ws.model_config or {}).get("config_source")
if active_source:
    st.caption(f"Active model `{ws.model_id}`: {active_source}.")
t_left, t_right = st.columns([2, 3], gap="large")
with t_left:
    if tuned is not None:
        st.success(describe(tuned).capitalize() + ". Training below starts from it.", icon=":material/tune:")
    else:
        st.info(f"No tuned configuration for **{catalog.name}** yet: a search on the validation split picks "
                f"one. Without it, Train first runs a short search (at most {SHORT_TUNE_MINUTES:g} min).",
                icon=":material/tune:")
    budget = st.number_input("Search budget (minutes)", 0.5, 60.0, float(SHORT_TUNE_MINUTES), step=0.5,
                             key="tr_tune_budget")
    trials = st.number_input("At most this many trials", 2, 500, 30, key="tr_tune_trials")
    tune_now = st.button("Search on validation", key="tr_tune", icon=":material/manage_search:")
with t_right:
    tune_slot = st.empty()
    if tuned is not None and tuned.history:
        tune_slot.plotly_chart(charts.tuning_search_fig(tuned.history, tuned.metric.get("name", "metric")),
                               key="tr_tune_chart")


def run_search(budget_minutes: float, max_trials: int):
    """A search with st.progress; stores and returns the result."""
    from core.tuning.study import TuneConfig, tune

    bar = st.progress(0.0, text=f"searching for at most {budget_minutes:g} min / {max_trials} trials")

    def on_trial(done: int, total: int, message: str) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=message)

    result = tune(data, TuneConfig(trials=int(max_trials), budget_minutes=float(budget_minutes)), progress=on_trial)
    save_tuned(st_store, catalog.name, result.config, result.valid_metric(), result.history,
               data_hash=data_fingerprint(data))
    return result


if tune_now:
    try:
        result = run_search(budget, trials)
    except (PrismError, ValueError) as e:
        components.show_error(e, "The search failed; the stored tuned configuration is unchanged")
    else:
        ss["train_message"] = (f"Search done: {result.n_trials} trials ({result.n_pruned} pruned) in "
                               f"{result.seconds / 60:.1f} min, validation {result.metric} {result.value:.4f}; "
                               "stored as this catalog's tuned configuration.")
        st.rerun()

preset = (with_member_settings(st_store, catalog.name, tuned.config, data) if tuned is not None
          else quick_fusion_config(st_store, catalog, data)[0])
STRATEGIES = ["gated", "weighted", "concat", "adversarial"]

st.markdown("#### Train")
left, right = st.columns([2, 3], gap="large")
with left:
    with st.form("train_form"):
        st.markdown("Starting point: **the tuned configuration**." if tuned is not None else
                    "No tuned configuration yet: **Train** first runs a short search and trains the best "
                    "configuration it finds (these fields apply once one is stored).")
        strategy = st.selectbox("Fusion strategy", STRATEGIES,
                                index=STRATEGIES.index(preset.strategy) if preset.strategy in STRATEGIES else 0,
                                help="gated: each item gets its own modality weights · weighted: one global "
                                     "weight per modality · concat: an MLP over all modalities · adversarial: "
                                     "gated + a modality discriminator", key="tr_strategy")
        c1, c2 = st.columns(2)
        dim = c1.select_slider("Dimension", [16, 32, 64, 128, 256], value=preset.dim if preset.dim in
                               (16, 32, 64, 128, 256) else 64, key="tr_dim")
        losses = ["softmax", "full-softmax", "bpr", "bce"]
        loss = c2.radio("Loss", losses, index=losses.index(preset.loss) if preset.loss in losses else 0,
                        horizontal=True, key="tr_loss",
                        help="softmax: sampled softmax over the negatives · bpr: pairwise · bce: pointwise")
        epochs = c1.number_input("Epochs (max)", 1, 500, int(preset.epochs), key="tr_epochs")
        lr = c2.number_input("Learning rate", 1e-5, 1.0, float(preset.lr), format="%.4f", key="tr_lr")
        with st.expander("More options"):
            m1, m2 = st.columns(2)
            graph_layers = m1.number_input("Graph layers (0 = off)", 0, 4, int(preset.graph_layers), key="tr_graph")
            align = m2.number_input("Alignment weight", 0.0, 10.0, float(preset.align_weight), key="tr_align")
            dropout = m1.number_input("Dropout", 0.0, 0.9, float(preset.dropout), key="tr_dropout")
            l2 = m2.number_input("L2 (weight decay)", 0.0, 1.0, float(preset.l2), format="%.6f", key="tr_l2")
            patience = m1.number_input("Patience (epochs)", 1, 100, int(preset.patience), key="tr_patience")
            seed = m2.number_input("Seed", 0, 10_000, int(preset.seed), key="tr_seed")
        activate = st.checkbox("Make it the active model when done", value=True, key="tr_activate")
        start = st.form_submit_button("Train", type="primary", icon=":material/model_training:")

with right:
    progress_slot = st.empty()
    chart_slot = st.empty()
    if not start and ss.get("train_log"):
        chart_slot.plotly_chart(charts.live_loss_fig(ss["train_log"]), key="tr_last_chart")
        st.caption("The last training run of this session.")
    elif not start:
        st.info("Set the options and press **Train**: the loss and the validation metric appear here after "
                "every epoch.", icon=":material/lightbulb:")

if start:
    form = dict(strategy=strategy, dim=int(dim), loss=loss, epochs=int(epochs), lr=float(lr),
                graph_layers=int(graph_layers), align_weight=float(align), dropout=float(dropout), l2=float(l2),
                patience=int(patience), seed=int(seed))
    if tuned is None:  # no tuned configuration: a short search first, and its best configuration is trained
        try:
            result = run_search(SHORT_TUNE_MINUTES, 20)
        except (PrismError, ValueError) as e:
            components.show_error(e, "The short search failed; nothing was trained")
            st.stop()
        config = with_member_settings(st_store, catalog.name, result.config, data)
        source = (f"no tuned configuration existed; a short tune stored one: {result.n_trials} trials within "
                  f"{SHORT_TUNE_MINUTES:g} min (validation {result.metric} {result.value:.4f})")
        st.info(f"{source[0].upper()}{source[1:]}; training its best configuration.", icon=":material/tune:")
    else:
        edited = {k: v for k, v in form.items() if getattr(preset, k) != v}
        config = dataclasses.replace(preset, **form)
        source = describe(tuned) + ("; set by hand: " + ", ".join(f"{k}={v}" for k, v in edited.items())
                                    if edited else "")
    history: list[dict] = []
    bar = progress_slot.progress(0.0, text="preparing the split")

    def on_epoch(report) -> None:
        history.append({"epoch": report.epoch, "loss": report.loss, "valid_metric": report.valid_metric})
        metric = (f" · valid {report.metric_name or 'metric'} {report.valid_metric:.4f}"
                  if report.valid_metric is not None else "")
        bar.progress(min(1.0, report.epoch / max(report.epochs, 1)),
                     text=f"epoch {report.epoch}/{report.epochs} · loss {report.loss:.4f}{metric}")
        chart_slot.plotly_chart(charts.live_loss_fig(history))

    from core.workspace import train_model

    t0 = time.perf_counter()
    try:
        model_id, _ = train_model(st_store, catalog, ws.embeddings, config=config, progress=on_epoch,
                                  activate=activate, config_source=source)
    except PrismError as e:
        components.show_error(e, "Training failed; the saved models are unchanged")
    else:
        ss["train_log"] = history
        ss["train_message"] = (f"Trained `{model_id}` in {time.perf_counter() - t0:.1f} s"
                               + (" — it is now the active model." if activate else "."))
        st.rerun()

if ss.get("train_message"):
    st.success(ss["train_message"], icon=":material/check_circle:")

def collaborative_text(cfg: dict) -> str:
    """A saved model's collaborative term as its members and weights, e.g. "als × 2.47 + itemknn × 0.327"."""
    weights = (cfg.get("collaborative_term") or {}).get("weights") or {}
    return " + ".join(f"{m} × {w:.3g}" for m, w in weights.items()) or "—"


# -- saved models --------------------------------------------------------------------------------------
st.markdown("#### Saved models")
models = st_store.list_models(catalog.name)
if models.empty:
    st.info("No saved models for this catalog yet.")
else:
    rows = []
    for _, row in models.iterrows():
        cfg = json.loads(row["config"]) if isinstance(row["config"], str) else dict(row["config"])
        rows.append({"active": "★" if row["active"] else "", "id": row["id"], "name": row["name"],
                     "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created_at"])),
                     "strategy": cfg.get("strategy"), "dim": cfg.get("dim"), "loss": cfg.get("loss"),
                     "epochs": cfg.get("epochs"), "split": cfg.get("split"),
                     "collaborative term": collaborative_text(cfg)})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    ids = models["id"].tolist()
    a1, a2 = st.columns([3, 1], vertical_alignment="bottom")
    chosen = a1.selectbox("Model", ids, index=ids.index(ws.model_id) if ws.model_id in ids else 0,
                          key="tr_choose")
    if a2.button("Make active", key="tr_make_active", disabled=chosen == ws.model_id):
        try:
            st_store.set_active_model(catalog.name, chosen)
        except PrismError as e:
            components.show_error(e, "Could not change the active model")
        else:
            ss["train_message"] = f"`{chosen}` is now the active model."
            ss["explanations"] = {}
            st.rerun()
