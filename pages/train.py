"""Train: configure a fusion model and train it with a live loss chart; list saved models; pick the active one."""
from __future__ import annotations

import dataclasses
import json
import time

import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.store.sharing import browser_may_change
from core.tuning import SHORT_TUNE_MINUTES, describe, quick_fusion_config, with_member_settings
from core.tuning.store import TunedConfig, data_fingerprint, load_tuned, save_tuned
from ui import charts, components, engines, loaders
from ui.navigation import ensure_frame
from ui.theme import page_header

ensure_frame()

page_header("Train", "Search fusion settings on the validation split, configure a fusion model, watch it learn "
            "epoch by epoch, and choose which saved model serves the studio.")
ws = loaders.workspace()
catalog = ws.catalog
if len(catalog.interactions) == 0:  # a content-only catalog: say what is missing, offer the upload
    components.interactions_missing(ws, "Training", loaders.store())
st_store = loaders.store()
ss = st.session_state
data = loaders.interaction_data(ws)
shared = browser_may_change(catalog.name)  # may this session change what every session sees on this catalog?
if ss.get("train_message_catalog") != catalog.name:  # "now the active model" was said of another catalog
    ss.pop("train_message", None)
    ss["train_message_catalog"] = catalog.name
candidates = ss.setdefault("tuned_candidates", {})  # catalog -> this session's own search result (TunedConfig)

# -- the catalog's tuned configuration -------------------------------------------------------------------
st.markdown("#### Tuned configuration")
try:
    tuned = load_tuned(st_store, catalog.name, data_hash=data_fingerprint(data))
except PrismError as e:
    components.show_error(e, "The stored tuned configuration cannot be read")
    tuned = None
candidate = candidates.get(catalog.name)
if candidate is not None and candidate.data_hash == data_fingerprint(data):
    tuned = candidate  # this session's search: its starting point here, stored for no one else
active_source = (ws.model_config or {}).get("config_source")
if active_source:
    st.caption(f"Active model `{ws.model_id}`: {active_source}.")
t_left, t_right = st.columns([2, 3], gap="large")
with t_left:
    if tuned is not None:
        mine = " (this session's search, not stored)" if tuned is candidate else ""
        st.success(describe(tuned).capitalize() + mine + ". Training below starts from it.", icon=":material/tune:")
    else:
        st.info(f"No tuned configuration for **{catalog.name}** yet: **Search on validation** picks one. "
                "Until then Train below trains the untuned starting point, with the settings shown in its form; "
                "no search runs unless you press that button.", icon=":material/tune:")
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
    if shared.allowed:  # the previous tuned configuration stays in its history (core.tuning.history)
        save_tuned(st_store, catalog.name, result.config, result.valid_metric(), result.history,
                   data_hash=data_fingerprint(data))
    else:  # kept for this session only: the catalog's stored configuration is what every other session uses
        candidates[catalog.name] = TunedConfig(config=result.config, metric=result.valid_metric(),
                                               history=result.history, created_at=time.time(),
                                               data_hash=data_fingerprint(data), catalog=catalog.name)
    return result


if tune_now:
    try:
        result = run_search(budget, trials)
    except (PrismError, ValueError) as e:
        components.show_error(e, "The search failed; the stored tuned configuration is unchanged")
    else:
        ss["train_message"] = (f"Search done: {result.n_trials} trials ({result.n_pruned} pruned) in "
                               f"{result.seconds / 60:.1f} min, validation {result.metric} {result.value:.4f}; "
                               + ("stored as this catalog's tuned configuration (the previous one is kept in its "
                                  "history)." if shared.allowed else "kept as this session's starting point, not "
                                  f"stored: {shared.reason}."))
        st.rerun()

preset, preset_source = (tuned.config, describe(tuned)) if tuned is not None else \
    quick_fusion_config(st_store, catalog, data)
preset = with_member_settings(st_store, catalog.name, preset, data)  # the members at their tuned settings
STRATEGIES = ["gated", "weighted", "concat", "adversarial"]

st.markdown("#### Train")
left, right = st.columns([2, 3], gap="large")
with left:
    with st.form("train_form"):
        st.markdown("Starting point: **the tuned configuration**; Train trains the settings below as they "
                    "stand." if tuned is not None else
                    "Starting point: **the untuned starting point** (no search has run for this catalog); Train "
                    "trains the settings below as they stand.")
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
            where, workers, ray_address = engines.TRAIN_HERE, 1, ""
            if engines.ray_installed():
                where = m1.radio("Train on", [engines.TRAIN_HERE, engines.TRAIN_RAY], horizontal=True,
                                 key="tr_engine", help="Ray Train: the same training loop on Ray workers (one "
                                 "process each, users shared out by index, gradients averaged every step); the "
                                 "result is a normal model")
                workers = m2.number_input("Ray workers", 1, 64, 2, key="tr_workers", help="Used with Ray Train")
                ray_address = st.text_input("Ray address", key="tr_ray_address", help="Used with Ray Train",
                                            placeholder="blank = Ray on this machine; auto; ray://HOST:10001")
        activate = st.checkbox("Make it the active model when done", value=shared.allowed,
                               key="tr_activate" if shared.allowed else "tr_activate_locked",  # no stale value
                               disabled=not shared.allowed,
                               help=None if shared.allowed else f"Stored as a candidate only: {shared.reason}.")
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
    # the form is what trains: a search runs only from its own button above
    edited = {k: v for k, v in form.items() if getattr(preset, k) != v}
    config = dataclasses.replace(preset, **form)
    source = (preset_source + (" in this session, not stored" if tuned is not None and tuned is candidate else "")
              + ("; set by hand: " + ", ".join(f"{k}={v}" for k, v in edited.items()) if edited else ""))
    history: list[dict] = []
    bar = progress_slot.progress(0.0, text="preparing the split")

    def on_epoch(report) -> None:
        history.append({"epoch": report.epoch, "loss": report.loss, "valid_metric": report.valid_metric})
        metric = (f" · valid {report.metric_name or 'metric'} {report.valid_metric:.4f}"
                  if report.valid_metric is not None else "")
        bar.progress(min(1.0, report.epoch / max(report.epochs, 1)),
                     text=f"epoch {report.epoch}/{report.epochs} · loss {report.loss:.4f}{metric}")
        chart_slot.plotly_chart(charts.live_loss_fig(history))

    from core.workspace.prepare import describe_training, train_model

    t0 = time.perf_counter()
    try:
        if where == engines.TRAIN_RAY:
            bar.progress(0.0, text=f"starting Ray Train ({int(workers)} worker(s))…")
        with engines.training_block(where, int(workers), ray_address):
            model_id, model = train_model(st_store, catalog, ws.embeddings, config=config, progress=on_epoch,
                                          activate=bool(activate and shared.allowed), config_source=source)
    except PrismError as e:
        components.show_error(e, "Training failed; the saved models are unchanged")
    else:
        ss["train_log"] = history
        activate = activate and shared.allowed
        ss["train_message"] = (f"Trained `{model_id}` in {time.perf_counter() - t0:.1f} s: "
                               + describe_training(model, config.epochs, config.patience)
                               + (". It is now the active model." if activate else
                                  ". It is stored as a candidate; the active model is unchanged."))
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
    if not shared.allowed:
        st.caption(f"Choosing the active model is off here: {shared.reason}.")
    if a2.button("Make active", key="tr_make_active", disabled=chosen == ws.model_id or not shared.allowed):
        try:
            st_store.set_active_model(catalog.name, chosen)
        except PrismError as e:
            components.show_error(e, "Could not change the active model")
        else:
            ss["train_message"] = f"`{chosen}` is now the active model."
            ss["explanations"] = {}
            st.rerun()

# -- history: what was active and tuned before, and putting it back -----------------------------------------
with st.expander("History: earlier active models and tuned configurations"):
    from core.workspace.history import catalog_history, restore
    from core.tuning.history import describe_entry

    try:
        past = catalog_history(st_store, catalog.name)
    except PrismError as e:
        components.show_error(e, "The history cannot be read")
        st.stop()
    if not shared.allowed:
        st.caption(f"Restoring is off here: {shared.reason}. From the command line: "
                   f"`python -m core restore --catalog {catalog.name} --model ID|previous` or `--tuned ID|previous`.")
    acts = pd.DataFrame(past["activations"])
    if acts.empty:
        st.info("No activation recorded yet.")
    else:
        acts["at"] = [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) for t in acts["at"]]
        st.dataframe(acts.assign(active=acts["active"].map({1: "★", 0: ""})), hide_index=True)
    earlier_models = [m for m, stored in zip(acts.get("model_id", []), acts.get("stored", [])) if stored]
    h1, h2 = st.columns([3, 1], vertical_alignment="bottom")
    earlier_models = list(dict.fromkeys(earlier_models))
    # keyed by their options: a new entry resets the pick to the newest, never leaving a stale empty choice
    pick_model = h1.selectbox("Earlier active model", earlier_models, key=f"tr_hist_model:{'|'.join(earlier_models)}")
    tuned_rows = [{"id": e.id, "configuration": describe_entry(e), "current": "★" if e.current else ""}
                  for e in past["tuned"]]
    if tuned_rows:
        st.dataframe(pd.DataFrame(tuned_rows), hide_index=True)
    earlier_tuned = [e.id for e in past["tuned"] if not e.current and not e.problem]
    t1, t2 = st.columns([3, 1], vertical_alignment="bottom")
    pick_tuned = t1.selectbox("Earlier tuned configuration", earlier_tuned,
                              key=f"tr_hist_tuned:{'|'.join(earlier_tuned)}")
    for column, label, key, kwargs in ((h2, "Restore model", "tr_restore_model", {"model": pick_model}),
                                      (t2, "Restore configuration", "tr_restore_tuned", {"tuned": pick_tuned})):
        chosen_value = next(iter(kwargs.values()))
        if column.button(label, key=key, disabled=not shared.allowed or chosen_value is None):
            try:
                lines = restore(st_store, catalog.name, **kwargs)
            except PrismError as e:
                components.show_error(e, "Nothing was restored")
            else:
                ss["train_message"] = " ".join(lines) + "."
                ss["explanations"] = {}
                st.rerun()
