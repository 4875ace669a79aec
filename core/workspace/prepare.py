"""Ties a stored catalog to its embedding set and active model: load what is stored and still valid,
compute (and store) what is missing. The app and the CLI both go through here."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.catalog.model import Catalog
from core.encoders.embeddings import EmbeddingSet
from core.errors import DamagedFileError
from core.encoders.base import Encoder
from core.store.database import Store

if TYPE_CHECKING:
    from core.models.fusion.recommender import FusionRecommender

log = logging.getLogger(__name__)

EMBEDDING_KEY = "default"
Progress = Callable[[int, int, str], None]


def raw_media_encoders(catalog: Catalog, encoders: dict[str, Encoder]) -> dict[str, Encoder]:
    """The encoders to run over `catalog`: fields it already has as precomputed features are skipped,
    and so are modalities none of its items carry as raw media."""
    present = {m for m in ("text", "image", "audio") if any(item.has(m) for item in catalog.items)}
    return {f: e for f, e in encoders.items()
            if f not in catalog.features and e.modality in present and f != "clip_text"}


def load_embeddings(store: Store, catalog: Catalog) -> EmbeddingSet | None:
    """The stored embedding set of `catalog` if it was computed from this exact content, else None.

    A damaged file, or one over other items than the catalog's, raises StoreError naming it and the fix."""
    path = store.embedding_path(catalog.name, EMBEDDING_KEY)
    if not path.exists():
        return None
    fix = f"encode the catalog again with `python -m core encode --catalog {catalog.name} --force`"
    emb = EmbeddingSet.load(path, fix=fix)
    if emb.content_hash != catalog.content_hash():
        return None
    if len(emb.item_ids) != len(catalog.items) or set(emb.item_ids) != set(catalog.item_ids):
        raise DamagedFileError(f"the embeddings file {path.name} of catalog {catalog.name!r} covers "
                         f"{len(emb.item_ids):,} items that are not the catalog's {len(catalog.items):,}; {fix}")
    return emb


def prepare_embeddings(store: Store, catalog: Catalog, encoders: dict[str, Encoder] | None = None,
                       progress: Progress | None = None, force: bool = False, engine=None,
                       batch_size: int = 32) -> EmbeddingSet:
    """The catalog's embedding set: reused when content and encoder ids match, else encoded and stored.

    `engine` computes the cache misses (None = in this process; core.scale.ray_encode.RayEncodeEngine = Ray)."""
    from core.encoders.cache import EmbeddingCache
    from core.encoders.factory import EncoderConfig, build_encoders
    from core.encoders.pipeline import encode_catalog

    if encoders is None:
        encoders = build_encoders(EncoderConfig.from_env())
    todo = raw_media_encoders(catalog, encoders)
    if not force:
        stored = load_embeddings(store, catalog)
        wanted = {f: e.id for f, e in todo.items()}
        if stored is not None and all(stored.encoder_ids.get(f) == i for f, i in wanted.items()):
            return stored
    cache = EmbeddingCache(store.embedding_cache_dir)
    emb = encode_catalog(catalog, todo, cache, progress=progress, batch_size=batch_size, engine=engine)
    path = store.embedding_path(catalog.name, EMBEDDING_KEY)
    emb.save(path)
    store.record_embedding_set(catalog.name, EMBEDDING_KEY, emb.encoder_ids, emb.content_hash, path)
    return emb


def load_active_model(store: Store, catalog: Catalog, embeddings: EmbeddingSet) -> FusionRecommender | None:
    """The catalog's active saved fusion model, or None when there is none or it no longer fits."""
    from core.models.fusion.recommender import FusionRecommender

    record = store.active_model(catalog.name)
    if record is None:
        return None
    try:
        return FusionRecommender.load(store.model_dir(record["id"]), embeddings)
    except DamagedFileError:
        raise  # named with its fix; the operator chooses another model (`python -m core restore`)
    except Exception as e:  # a model saved for other embeddings: retrain rather than crash the app
        log.warning("active model %s does not load (%s); it will be retrained", record["id"], e)
        return None


def train_model(store: Store, catalog: Catalog, embeddings: EmbeddingSet, config=None,
                progress=None, split: str = "auto", seed: int = 0,
                activate: bool = True, *, config_source: str | None = None, tune_progress: Progress | None = None,
                tune_budget_minutes: float | None = None) -> tuple[str, FusionRecommender]:
    """Fit a fusion model on `catalog` (early stopping on its validation split), save it, record it.

    Without `config`, the catalog's tuned configuration (core.tuning.resolve_fusion_config: a short tune
    within its budget when none is stored, reported through `tune_progress`). The record keeps
    `config_source`, the line saying where the configuration came from.
    """
    import time
    import uuid

    from core.data.splits import build_interaction_data
    from core.models.fusion.recommender import FusionRecommender

    data = build_interaction_data(catalog, embeddings, split=split, seed=seed)
    if config is None:
        from core.tuning import SHORT_TUNE_MINUTES, resolve_fusion_config

        config, config_source = resolve_fusion_config(
            store, catalog, embeddings, data, progress=tune_progress,
            budget_minutes=tune_budget_minutes or SHORT_TUNE_MINUTES)
    from core.tuning.baselines import member_search

    model = FusionRecommender(config, member_search=member_search).fit(data, progress=progress)
    model_id = f"{catalog.name}-{model.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    folder = store.model_dir(model_id)
    model.save(folder)
    from core.serving.index import resolve_kind

    if resolve_kind("auto", len(catalog.items)) != "exact":  # an approximate index: built now, saved beside it
        from core.serving.service import RecommendService

        RecommendService(catalog, embeddings, model, encoders={}, data=data, index_dir=folder)
    store.record_model(model_id, catalog.name, model.name,
                       {**model.get_config(), "split": data.split_name, "seed": seed,
                        "encoders": embeddings.encoder_ids, "config_source": config_source or "given settings"},
                       folder, active=activate)
    return model_id, model


def describe_training(model: FusionRecommender, epochs: int, patience: int) -> str:
    """How a training ran, in words ("3 of 3 epochs ran", or where early stopping ended it)."""
    from core.models.fusion.train import describe_epochs

    return describe_epochs(model.history, model.best_epoch, epochs, patience)


def ensure_model(store: Store, catalog: Catalog, embeddings: EmbeddingSet, config=None,
                 progress=None, config_source: str | None = None) -> FusionRecommender:
    """The catalog's active fusion model; when there is none, trains, saves and activates one from the
    catalog's stored tuned configuration, else from the fast untuned starting point (no search: a first
    start stays quick), and records which (core.tuning.quick_fusion_config)."""
    if not has_interactions(catalog):  # nothing to train on: the catalog is served by its content alone
        return ensure_content_only_model(store, catalog, embeddings)
    model = load_active_model(store, catalog, embeddings)
    if model is not None and is_content_only(store.active_model(catalog.name)):
        model = None  # interactions arrived since: a model is trained on them
    if model is None:
        source = config_source or "given settings"
        if config is None:
            from core.data.splits import build_interaction_data
            from core.tuning import quick_fusion_config

            config, source = quick_fusion_config(store, catalog,
                                                 build_interaction_data(catalog, embeddings, split="auto", seed=0))
        _, model = train_model(store, catalog, embeddings, config=config, progress=progress, config_source=source)
    return model


def has_interactions(catalog: Catalog) -> bool:
    """Whether the catalog has any interactions to train and evaluate on."""
    return len(catalog.interactions) > 0


def ensure_content_only_model(store: Store, catalog: Catalog, embeddings: EmbeddingSet) -> FusionRecommender:
    """The active content-only model of a catalog without interactions (core.models.content_only); made,
    saved and activated when the catalog has none that loads."""
    import time
    import uuid

    from core.models.content_only import CONTENT_ONLY_SOURCE, content_only_model

    if is_content_only(store.active_model(catalog.name)):
        model = load_active_model(store, catalog, embeddings)
        if model is not None:
            return model
    model = content_only_model(embeddings)
    model_id = f"{catalog.name}-{model.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    folder = store.model_dir(model_id)
    model.save(folder)
    store.record_model(model_id, catalog.name, model.name,
                       {**model.get_config(), "split": None, "seed": 0, "encoders": embeddings.encoder_ids,
                        "config_source": CONTENT_ONLY_SOURCE}, folder, active=True)
    return model


def is_content_only(record: dict | None) -> bool:
    """Whether a stored model record is a content-only model."""
    from core.models.content_only import is_content_only as check

    return check(record)


PROTECTED_CATALOGS = ("demo",)  # the studio's own catalog: rebuilt, never removed from the browser


def remove_catalog(store: Store, name: str) -> None:
    """Remove a stored catalog with everything made from it (embeddings, models, runs, tuned settings);
    the other catalogs are untouched. CatalogError for the demo or a name that is not stored."""
    import shutil

    from core.errors import CatalogError

    if name in PROTECTED_CATALOGS:
        raise CatalogError(f"catalog {name!r} is the studio's demo and cannot be removed; remove another one")
    if not store.has_catalog(name):
        raise CatalogError(f"no stored catalog is named {name!r}; nothing was removed")
    models = store.list_models(name)
    with store.transaction() as con:  # the rows first, in one transaction: a failure leaves all of them
        for table in ("models", "runs", "embedding_sets"):
            con.execute(f"DELETE FROM {table} WHERE catalog = ?", (name,))
    store.delete_catalog(name)
    for model_id in models["id"]:
        shutil.rmtree(store.model_dir(model_id), ignore_errors=True)
    shutil.rmtree(store.embedding_path(name, EMBEDDING_KEY).parent, ignore_errors=True)
    try:
        from core.tuning.store import tuned_path

        tuned_path(store, name).unlink(missing_ok=True)
    except Exception:  # noqa: BLE001 - a name that cannot name a tuned file has none to remove
        pass


REFERENCE_BASELINES = ("popularity", "itemknn", "bprmf")  # what the active model is compared with first
REFERENCE_KS = (5, 10, 20)


def missing_reference_runs(store: Store, catalog: Catalog, model_id: str,
                           baselines: tuple[str, ...] = REFERENCE_BASELINES) -> list[str]:
    """Which of the active model (named by `model_id`) and `baselines` have no stored run on the catalog's
    current content with the workspace's split (auto, seed 0)."""
    from core.evaluation.runs import _records

    content = catalog.content_hash()
    have_models, have_names = set(), set()
    for r in _records(store, catalog.name):
        p = r.get("protocol", {})
        if r.get("dataset", {}).get("content_hash") != content or p.get("split_seed", 0) != 0 \
                or p.get("target", "test") != "test" or "cold" in str(p.get("split", "")):
            continue
        have_names.add(r.get("name"))
        if r.get("model", {}).get("id"):
            have_models.add(r["model"]["id"])
    missing = [] if model_id in have_models else [model_id]
    return missing + [b for b in baselines if b not in have_names]


def ensure_reference_runs(store: Store, catalog: Catalog, embeddings: EmbeddingSet, model, model_id: str,
                          baselines: tuple[str, ...] = REFERENCE_BASELINES,
                          progress: Progress | None = None) -> list[str]:
    """Evaluate and store what `missing_reference_runs` lists: the active model as trained (split auto, seed
    0) and each baseline fitted on the same split; returns the new run ids. progress(done, total, name)."""
    from core.evaluation.protocol import run_evaluation
    from core.data.splits import build_interaction_data
    from core.models.registry import build_model

    todo = missing_reference_runs(store, catalog, model_id, baselines)
    if not todo:
        return []
    data = build_interaction_data(catalog, embeddings, split="auto", seed=0)
    saved = []
    for n, name in enumerate(todo):
        if progress is not None:
            progress(n, len(todo), name)
        recommender = model if name == model_id else build_model(name).fit(data)
        record = run_evaluation(recommender, data, catalog, embeddings, ks=REFERENCE_KS, seed=0)
        if name == model_id:
            record["model"]["id"] = model_id  # so the next start knows this model was evaluated
        saved.append(store.save_run(record))
    if progress is not None:
        progress(len(todo), len(todo), "done")
    return saved
