"""Every heavy object of the studio, loaded once per server through `st.cache_resource` — here and only here.

The first start builds what is missing (the demo catalog, its embeddings, the demo model) with visible
progress; later starts load everything from the store in seconds. Cached functions take their inputs as
arguments: the data folder, the catalog name and a *stamp* that changes whenever the stored catalog or its
active model changes, so a new import or a newly trained model is picked up without a restart. Nothing
per-user is cached here (uploads and feedback live in `ui.state`).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import streamlit as st

from core.catalog.model import Catalog
from core.encoders.embeddings import EmbeddingSet
from core.errors import DamagedFileError, PrismError
from core.store.paths import data_dir
from core.store.database import Store

if TYPE_CHECKING:
    from core.explain.service import ExplainService
    from core.serving.service import RecommendService

log = logging.getLogger(__name__)

DEMO_CATALOG = "demo"
_BOOT_LOCK = threading.Lock()  # two sessions starting at once must not build the demo twice


class NotReady(Exception):
    """The stored catalog lacks its embeddings or active model; `workspace()` builds them."""


@dataclass
class Workspace:
    """What every page needs about the active catalog: the catalog, its embeddings and its active model."""

    root: str  # data folder
    catalog: Catalog
    embeddings: EmbeddingSet
    model: Any  # core.models.fusion.recommender.FusionRecommender
    model_id: str
    model_config: dict[str, Any]
    stamp: str  # changes whenever the stored catalog or its active model changes
    loaded_s: float  # seconds the load took (shown in the sidebar)


# -- the store and the encoders ---------------------------------------------------------------------
def data_root() -> str:
    """The data folder as a string (a cache key): $PRISM_DATA_DIR or .prism/."""
    return str(data_dir())


@st.cache_resource(show_spinner=False)
def get_store(root: str) -> Store:
    """The store under `root` (one per server and folder)."""
    return Store(root)


def store() -> Store:
    """The store of the current data folder."""
    return get_store(data_root())


def encoder_config_key() -> str:
    """The encoder configuration from the environment, as a JSON cache key."""
    from core.encoders.factory import EncoderConfig

    return json.dumps(asdict(EncoderConfig.from_env()), sort_keys=True)


@st.cache_resource(show_spinner=False)
def get_encoders(config_key: str) -> dict[str, Any]:
    """The encoders (field -> Encoder) for a configuration key from `encoder_config_key()`."""
    from core.encoders.factory import EncoderConfig, build_encoders

    return build_encoders(EncoderConfig(**json.loads(config_key)))


def encoders() -> dict[str, Any]:
    """The encoders of the current configuration (a spinner while they load, once per server)."""
    with st.spinner("Loading the encoders (once per server)…"):
        return get_encoders(encoder_config_key())


def demo_config():
    """The demo catalog's configuration ($PRISM_DEMO_TRACKS / $PRISM_DEMO_LISTENERS size it)."""
    from core.catalog.demo import DemoConfig

    return DemoConfig.from_env()


# -- the active catalog ---------------------------------------------------------------------------
def catalog_names(st_store: Store) -> list[str]:
    """Stored catalog names, oldest first."""
    return st_store.list_catalogs()["name"].tolist()


def catalog_stamp(st_store: Store, name: str) -> str:
    """A cheap fingerprint of the stored catalog and its active model (two SQLite lookups)."""
    with st_store.transaction() as con:
        row = con.execute("SELECT created_at, content_hash FROM catalogs WHERE name = ?", (name,)).fetchone()
        model = con.execute("SELECT id FROM models WHERE catalog = ? AND active = 1", (name,)).fetchone()
    return f"{row[0] if row else 0}:{row[1] if row else ''}:{model[0] if model else ''}"


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_workspace(root: str, name: str, stamp: str) -> Workspace:
    """Load the catalog, its embeddings and active model from the store; NotReady when one is missing."""
    from core.workspace.prepare import has_interactions, is_content_only, load_active_model, load_embeddings

    t0 = time.perf_counter()
    st_store = get_store(root)
    if not st_store.has_catalog(name):
        raise NotReady(f"catalog {name!r} is not stored yet")
    try:
        catalog = st_store.load_catalog(name)
    except PrismError:
        if name != DEMO_CATALOG:
            raise
        raise NotReady("the demo catalog does not load; it is rebuilt") from None
    if name == DEMO_CATALOG and catalog.metadata.get("source") != "demo":
        raise NotReady("the catalog named demo was not made by the demo generator; the demo is rebuilt")
    if name == DEMO_CATALOG and (catalog.media_root is None or not (catalog.media_root / "ground_truth.json").is_file()):
        raise NotReady("the demo catalog's media are gone; they are rebuilt")
    try:
        embeddings = load_embeddings(st_store, catalog)
        model = None if embeddings is None else load_active_model(st_store, catalog, embeddings)
    except DamagedFileError:
        if name != DEMO_CATALOG:
            raise  # named with its fix on this catalog's pages; the other catalogs keep working
        raise NotReady("a stored file of the demo is damaged; it is rebuilt") from None
    if embeddings is None:
        raise NotReady(f"catalog {name!r} has no embeddings for its current content")
    if model is None:
        raise NotReady(f"catalog {name!r} has no usable active model")
    record = st_store.active_model(name) or {"id": "", "config": {}}
    if is_content_only(record) and has_interactions(catalog):
        raise NotReady(f"catalog {name!r} has interactions now; a model is trained on them")
    return Workspace(root=root, catalog=catalog, embeddings=embeddings, model=model, model_id=record["id"],
                     model_config=record["config"], stamp=stamp, loaded_s=time.perf_counter() - t0)


def active_catalog_name(st_store: Store) -> str:
    """This session's catalog: the one picked in the sidebar, else the demo (built on first start)."""
    name = st.session_state.get("catalog_name")
    names = catalog_names(st_store)
    if name in names:
        return name
    return DEMO_CATALOG if DEMO_CATALOG in names or not names else names[0]


def workspace(name: str | None = None) -> Workspace:
    """The active catalog's workspace; builds what is missing (with progress on screen) on first use."""
    root = data_root()
    try:
        st_store = get_store(root)
    except PrismError as e:  # a read-only, damaged or unwritable store: say so instead of a traceback
        from ui.components import md_escape

        st.error(f"**The store cannot be opened** — {md_escape(e)}", icon=":material/error:")
        st.stop()
    try:
        name = name or active_catalog_name(st_store)
        try:
            return _load_workspace(root, name, catalog_stamp(st_store, name))
        except NotReady:
            pass
        with _BOOT_LOCK:  # another session may have finished it while we waited
            try:
                return _load_workspace(root, name, catalog_stamp(st_store, name))
            except NotReady:
                _bootstrap(st_store, name)
        return _load_workspace(root, name, catalog_stamp(st_store, name))
    except DamagedFileError as e:  # a damaged stored file: named with its fix, on this catalog only
        _refuse_catalog(name, e)


def _refuse_catalog(name: str | None, error: PrismError) -> None:
    """Say which stored file of catalog `name` is damaged and how to repair it; offer the demo; stop the page."""
    from ui import state
    from ui.components import md_escape

    st.error(f"**Catalog {md_escape(name or '?')} cannot be opened** — {md_escape(error)}", icon=":material/error:")
    if name != DEMO_CATALOG:
        st.button(f"Back to the {DEMO_CATALOG} catalog", on_click=state.set_catalog, args=(DEMO_CATALOG,),
                  type="primary", key="damaged_back")
    st.stop()


def _bootstrap(st_store: Store, name: str) -> None:
    """Build the catalog's missing pieces in the store, each step with a progress bar."""
    from core.encoders.factory import EncoderConfig, preload_encoder_libraries
    from core.workspace.prepare import ensure_model, load_embeddings, prepare_embeddings, train_model

    with st.status("Preparing the studio — first start only, later starts take seconds…",
                   expanded=True) as status:
        try:
            preload_encoder_libraries(EncoderConfig(**json.loads(encoder_config_key())))  # while step 1 runs
            if name == DEMO_CATALOG:
                cfg = demo_config()
                st.write(f"**1 / 4** Generating the demo catalog ({cfg.n_tracks} tracks with covers and audio "
                         f"clips, {cfg.n_listeners} listeners)")
                from core.workspace.imports import ensure_demo_catalog

                catalog = ensure_demo_catalog(st_store, cfg, progress=_bar_callback())
            else:
                catalog = st_store.load_catalog(name)
            st.write("**2 / 4** Loading the encoders")
            encs = encoders()
            st.write(f"**3 / 4** Encoding {len(catalog.items)} items (text, images, audio)")
            damaged = False
            try:
                load_embeddings(st_store, catalog)
            except DamagedFileError:  # only the demo reaches here with a damaged file: it is rebuilt
                damaged = True
            embeddings = prepare_embeddings(st_store, catalog, encs, progress=_bar_callback(), force=damaged)
            from core.workspace.prepare import ensure_content_only_model, has_interactions

            if not has_interactions(catalog):
                st.write("**4 / 4** No interactions: recommending by content alone (nothing to train)")
                ensure_content_only_model(st_store, catalog, embeddings)
                status.update(label="Studio ready (content only)", state="complete", expanded=False)
                return
            from core.data.splits import build_interaction_data
            from core.tuning import quick_fusion_config

            config, source = quick_fusion_config(st_store, catalog,
                                                 build_interaction_data(catalog, embeddings, split="auto", seed=0))
            st.write(f"**4 / 4** Training the fusion model — configuration: {source}")
            try:
                ensure_model(st_store, catalog, embeddings, config=config, progress=_epoch_callback(),
                             config_source=source)
            except DamagedFileError:  # the demo's active model is damaged: a fresh one replaces it
                train_model(st_store, catalog, embeddings, config=config, progress=_epoch_callback(),
                            config_source=source)
        except Exception as e:  # the boundary of the first start: say what failed, offer a way back
            log.exception("preparing catalog %s failed", name)
            status.update(label=f"Catalog {name!r} could not be prepared", state="error", expanded=True)
            from ui.components import show_error

            show_error(e, f"Catalog {name!r} could not be prepared")  # plain words, no Python class name
            fallback = DEMO_CATALOG if name != DEMO_CATALOG else None
            if fallback:
                from ui import state

                st.button(f"Back to the {fallback} catalog", on_click=state.set_catalog, args=(fallback,),
                          type="primary", key="boot_back")
                offer_removal(st_store, name, fallback)
            st.stop()
        status.update(label="Studio ready", state="complete", expanded=False)


def offer_removal(st_store: Store, name: str, fallback: str) -> None:
    """A confirmed button that removes the catalog `name` (never the demo) and switches to `fallback`."""
    from ui.components import md_escape

    shown = md_escape(name)  # a name from data: no markdown of its own in the labels
    sure = st.checkbox(f"Yes, remove catalog {shown} with its embeddings, models and runs",
                       key=f"remove_confirm_{name}")
    st.button(f"Remove catalog {shown}", on_click=remove_catalog_and_switch, args=(st_store, name, fallback),
              disabled=not sure, key=f"remove_catalog_{name}", icon=":material/delete:")


def remove_catalog_and_switch(st_store: Store, name: str, fallback: str) -> None:
    """Remove a stored catalog (core.workspace.prepare.remove_catalog) and switch this session to `fallback`."""
    from core.workspace.prepare import remove_catalog
    from ui import state

    try:
        remove_catalog(st_store, name)
    except PrismError as e:
        st.session_state["catalog_message"] = f"Catalog {name!r} was not removed: {e}"
        return
    state.set_catalog(fallback)
    st.session_state["catalog_message"] = f"Removed catalog {name!r}."


def _bar_callback():
    """A progress(done, total, message) callback drawing one st.progress bar."""
    bar = st.progress(0.0)

    def progress(done: int, total: int, message: str = "") -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{message} ({done}/{total})" if message else None)

    return progress


def _epoch_callback():
    """A progress(EpochReport) callback drawing a bar and the loss so far."""
    bar = st.progress(0.0)

    def progress(report) -> None:
        metric = (f" · valid {report.metric_name or 'metric'} {report.valid_metric:.3f}"
                  if report.valid_metric is not None else "")
        bar.progress(min(1.0, report.epoch / max(report.epochs, 1)),
                     text=f"epoch {report.epoch}/{report.epochs} · loss {report.loss:.4f}{metric}")

    return progress


# -- services -----------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=4)
def _recommend_service(root: str, name: str, stamp: str, encoder_key: str, _ws: Workspace,
                       _encoders: dict[str, Any]) -> RecommendService:
    from core.serving.service import RecommendService

    # an approximate index (large catalogs) is loaded from beside the model, built there only once
    return RecommendService(_ws.catalog, _ws.embeddings, _ws.model, _encoders,
                            index_dir=get_store(root).model_dir(_ws.model_id) if _ws.model_id else None)


def recommend_service(ws: Workspace) -> RecommendService:
    """The recommend service of the workspace (with the current encoders)."""
    key = encoder_config_key()
    return _recommend_service(ws.root, ws.catalog.name, ws.stamp, key, ws, encoders())


def explain_budget() -> tuple[int | None, int | None]:
    """SHAP evaluation budgets (named features, words) from $PRISM_EXPLAIN_FEATURE_EVALS and
    $PRISM_EXPLAIN_TOKEN_EVALS; None keeps the explainer's defaults."""
    def read(var: str) -> int | None:
        value = os.environ.get(var)
        if not value:
            return None
        try:
            return max(2, int(value))
        except ValueError as e:
            raise ValueError(f"${var}={value!r} is not a whole number; unset it or give e.g. 200") from e

    return read("PRISM_EXPLAIN_FEATURE_EVALS"), read("PRISM_EXPLAIN_TOKEN_EVALS")


@st.cache_resource(show_spinner=False, max_entries=4)
def _explain_service(root: str, name: str, stamp: str, encoder_key: str, budget: tuple[int | None, int | None],
                     _service: RecommendService) -> ExplainService:
    from core.explain.service import ExplainConfig, ExplainService

    config = ExplainConfig()
    features, tokens = budget
    config = replace(config, **({"feature_evals": features} if features else {}),
                                 **({"token_evals": tokens} if tokens else {}))
    return ExplainService(_service, config)


def explain_service(ws: Workspace) -> ExplainService:
    """The explain service of the workspace."""
    key = encoder_config_key()
    return _explain_service(ws.root, ws.catalog.name, ws.stamp, key, explain_budget(), recommend_service(ws))


def encoder_mismatch(ws: Workspace, encs: dict[str, Any]) -> list[str]:
    """Fields whose stored embeddings came from other weights than the encoders loaded now."""
    return [f for f, e in encs.items() if f in ws.embeddings.encoder_ids and ws.embeddings.encoder_ids[f] != e.id]


def warm_up_in_background(ws: Workspace) -> None:
    """Load the encoders and services in a thread, and compile shap's kernels in another, so the first query
    and the first explanation do not wait for them."""
    key = encoder_config_key()
    if os.environ.get("PRISM_NO_WARMUP") or st.session_state.get("_warm_started"):
        return
    st.session_state["_warm_started"] = True
    ctx = None
    try:
        from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

        ctx = get_script_run_ctx()
    except ImportError:  # pragma: no cover - older streamlit
        add_script_run_ctx = None
    thread = threading.Thread(target=_warm_up, args=(ws, key), daemon=True, name="prism-warm-up")
    if ctx is not None and add_script_run_ctx is not None:
        add_script_run_ctx(thread, ctx)
    thread.start()
    # shap's kernels compile beside the services (about 6 s of one core, idle): started only after them, the
    # first "Why?" 5 s after a restart waited for the compilation. At a lower CPU priority, so that on a busy
    # machine the services, which the first query needs, come first.
    threading.Thread(target=_compile_shap, kwargs={"nice": SHAP_WARM_NICE}, daemon=True,
                     name="prism-warm-shap").start()


# background evaluations of the demo (one per data folder and catalog): key -> status dict
_REFERENCE_JOBS: dict[tuple[str, str], dict[str, Any]] = {}
_REFERENCE_LOCK = threading.Lock()


def reference_eval_status(ws: Workspace) -> dict[str, Any] | None:
    """The background evaluation of the workspace's catalog: state ("running", "done", "failed"), done,
    total, current model and error; None when none was started in this server."""
    job = _REFERENCE_JOBS.get((ws.root, ws.catalog.name))
    return dict(job) if job else None


def evaluate_demo_in_background(ws: Workspace) -> None:
    """On the demo, store an evaluation of the active model against popularity, ItemKNN and BPR-MF in a
    thread (after the page is drawn), so the Evaluate page has plots on first visit. Once per server."""
    if ws.catalog.name != DEMO_CATALOG or os.environ.get("PRISM_NO_BACKGROUND_EVAL"):
        return
    key = (ws.root, ws.catalog.name)
    with _REFERENCE_LOCK:
        if key in _REFERENCE_JOBS:
            return
        from core.workspace.prepare import missing_reference_runs

        todo = missing_reference_runs(get_store(ws.root), ws.catalog, ws.model_id)
        if not todo:
            return
        _REFERENCE_JOBS[key] = {"state": "running", "done": 0, "total": len(todo), "current": todo[0],
                                "error": None}
    threading.Thread(target=_evaluate_reference, args=(ws, key), daemon=True, name="prism-reference-eval").start()


def _evaluate_reference(ws: Workspace, key: tuple[str, str]) -> None:
    from core.workspace.prepare import ensure_reference_runs

    job = _REFERENCE_JOBS[key]
    try:  # below the page's own work: this thread alone runs at a lower CPU priority (Linux)
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass

    def progress(done: int, total: int, name: str) -> None:
        job.update(done=done, total=total, current=name)

    try:
        ensure_reference_runs(get_store(ws.root), ws.catalog, ws.embeddings, ws.model, ws.model_id,
                              progress=progress)
        job["state"] = "done"
    except Exception as e:  # shown on the Evaluate page; the studio goes on
        log.exception("background evaluation of %s failed", ws.catalog.name)
        job.update(state="failed", error=str(e) if isinstance(e, PrismError) else f"an unexpected error: {e}")


_WARMED: set[str] = set()  # explain services whose shap kernels are compiled (once per process)
SHAP_WARM_NICE = 10  # CPU priority of the thread compiling shap's kernels (as the background evaluation's)


def _warm_up(ws: Workspace, key: str) -> None:
    try:
        # in the order a visitor needs them: a text query, then its "Why?", then uploads (shap's kernels
        # compile on a thread of their own at a lower priority: on a loaded 2-core machine, at the same
        # priority, they delayed the first query 3-4×)
        service = _recommend_service(ws.root, ws.catalog.name, ws.stamp, key, ws, get_encoders(key))
        _explain_service(ws.root, ws.catalog.name, ws.stamp, key, explain_budget(), service)
        _encode_samples(service)
    except Exception:  # a warm-up only saves time; the page that needs these reports any real error
        log.debug("warm-up failed", exc_info=True)


def _compile_shap(nice: int = 0) -> None:
    """Compile shap's numba kernels once per process (core.explain.service.ExplainService.warm_up), on this
    thread at CPU priority `nice` (Linux; 0 leaves it)."""
    with _REFERENCE_LOCK:  # any lock: two sessions starting at once compile once
        if "shap" in _WARMED:
            return
        _WARMED.add("shap")
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except (AttributeError, OSError):
            pass
    try:
        from core.explain.service import ExplainService

        ExplainService.warm_up()
    except Exception:  # a warm-up only saves time
        log.debug("shap warm-up failed", exc_info=True)


def _encode_samples(service: RecommendService) -> None:
    """Encode the sample cover and clip once: first calls compile kernels (librosa's numba, torch's)."""
    from core.workspace.warm import encode_samples

    encode_samples(service)


# -- derived tables (st.cache_data) ----------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=8)
def items_frame(root: str, name: str, stamp: str, _ws: Workspace) -> pd.DataFrame:
    """One row per item: id, title, text, which modalities it has, media paths and metadata columns."""
    catalog = _ws.catalog
    rows = []
    for item in catalog.items:
        row = {"id": item.id, "title": item.title, "text": item.text or "",
               "has_text": item.has("text"), "has_image": item.has("image"), "has_audio": item.has("audio"),
               "image_path": str(catalog.media_path(item.image)) if item.image else "",
               "audio_path": str(catalog.media_path(item.audio)) if item.audio else ""}
        for key, value in item.metadata.items():
            if isinstance(value, (str, int, float, bool)) or value is None:
                row[f"meta.{key}"] = value
        rows.append(row)
    frame = pd.DataFrame(rows)
    inter = catalog.interactions
    counts = inter["item_id"].astype(str).value_counts() if len(inter) else pd.Series(dtype=int)
    frame["interactions"] = frame["id"].map(counts).fillna(0).astype(int)
    return frame


@st.cache_data(show_spinner=False, max_entries=8)
def gate_frame(root: str, name: str, stamp: str, _ws: Workspace) -> pd.DataFrame:
    """Per-item modality weights of the active model (rows = items, columns = modalities)."""
    weights = np.asarray(_ws.model.gate_weights(), dtype=float)
    return pd.DataFrame(weights, columns=list(_ws.model.modalities), index=_ws.catalog.item_ids)


@st.cache_data(show_spinner=False, max_entries=8)
def embedding_map(root: str, name: str, stamp: str, method: str, space: str, _ws: Workspace) -> pd.DataFrame:
    """2-D coordinates of every item: PCA, UMAP or t-SNE of the joint model vectors or of one modality's
    fields; computed once per model (cached on disk beside it)."""
    from core.explain.projection import item_map

    folder = get_store(root).model_dir(_ws.model_id) if _ws.model_id else None
    ids, xy = item_map(folder, _ws.catalog, _ws.embeddings, _ws.model, space, method)
    return pd.DataFrame({"item_id": ids, "x": xy[:, 0], "y": xy[:, 1]})


def map_is_cached(root: str, method: str, space: str, _ws: Workspace) -> bool:
    """Whether the active model's `method` map of `space` was computed before (on disk beside the model)."""
    from core.explain.projection import has_cached_projection

    folder = get_store(root).model_dir(_ws.model_id) if _ws.model_id else None
    return has_cached_projection(folder, space, method)


@st.cache_data(show_spinner=False, max_entries=4)
def ground_truth(media_root: str) -> dict[str, Any] | None:
    """The demo generator's ground truth beside the media, or None for other catalogs."""
    from core.catalog.demo import load_ground_truth

    try:
        return load_ground_truth(media_root)
    except PrismError:
        return None


def workspace_ground_truth(ws: Workspace) -> dict[str, Any] | None:
    """Ground truth of the workspace's catalog when it is a demo catalog."""
    if ws.catalog.metadata.get("source") != "demo" or ws.catalog.media_root is None:
        return None
    return ground_truth(str(ws.catalog.media_root))


@st.cache_data(show_spinner=False, max_entries=8)
def users_frame(root: str, name: str, stamp: str, _ws: Workspace) -> pd.DataFrame:
    """Known users with their interaction counts and (demo) ground-truth kind and dominant modality."""
    inter = _ws.catalog.interactions
    counts = inter["user_id"].astype(str).value_counts()
    frame = pd.DataFrame({"user_id": counts.index, "interactions": counts.values})
    truth = workspace_ground_truth(_ws)
    listeners = (truth or {}).get("listeners", {})
    frame["kind"] = frame["user_id"].map(lambda u: listeners.get(u, {}).get("kind"))
    frame["dominant_modality"] = frame["user_id"].map(lambda u: listeners.get(u, {}).get("dominant_modality"))
    # listeners with a dominant modality first: the ones whose explanations can be checked
    frame["_order"] = frame["dominant_modality"].isna()
    return frame.sort_values(["_order", "user_id"]).drop(columns="_order").reset_index(drop=True)


def runs_stamp(st_store: Store, name: str) -> str:
    """Changes whenever a run of the catalog is saved or deleted."""
    with st_store.transaction() as con:
        row = con.execute("SELECT COUNT(*), MAX(created_at) FROM runs WHERE catalog = ?", (name,)).fetchone()
    return f"{row[0]}:{row[1]}"


@st.cache_data(show_spinner=False, max_entries=8)
def runs_frame(root: str, name: str, stamp: str) -> pd.DataFrame:
    """The catalog's stored runs as one row each (core.evaluation.runs.runs_table)."""
    from core.evaluation.runs import runs_table

    return runs_table(get_store(root), name)


@st.cache_data(show_spinner=False, max_entries=8)
def damaged_runs(root: str, name: str, stamp: str) -> list[tuple[str, str]]:
    """(run id, message with its fix) for each stored run record of the catalog that cannot be read."""
    from core.evaluation.runs import damaged_runs as find

    return find(get_store(root), name)


# -- the training split (tuning and training read it) -------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=4)
def _interaction_data(root: str, name: str, stamp: str, _ws: Workspace) -> Any:
    from core.data.splits import build_interaction_data

    return build_interaction_data(_ws.catalog, _ws.embeddings, split="auto", seed=0)


def interaction_data(ws: Workspace) -> Any:
    """The catalog's auto split (seed 0), as the workspace trains on it."""
    return _interaction_data(ws.root, ws.catalog.name, ws.stamp, ws)
