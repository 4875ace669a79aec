"""Ties a stored catalog to its embedding set and active model: load what is stored and still valid,
compute (and store) what is missing. The app and the CLI both go through here."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.catalog.model import Catalog
from core.embeddings import EmbeddingSet
from core.encoders.base import Encoder
from core.store import Store

if TYPE_CHECKING:
    from core.models.fusion import FusionRecommender

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
    """The stored embedding set of `catalog` if it was computed from this exact content, else None."""
    path = store.embedding_path(catalog.name, EMBEDDING_KEY)
    if not path.exists():
        return None
    emb = EmbeddingSet.load(path)
    return emb if emb.content_hash == catalog.content_hash() else None


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
    cache = EmbeddingCache(store.root / "embedding-cache")
    emb = encode_catalog(catalog, todo, cache, progress=progress, batch_size=batch_size, engine=engine)
    path = store.embedding_path(catalog.name, EMBEDDING_KEY)
    emb.save(path)
    store.record_embedding_set(catalog.name, EMBEDDING_KEY, emb.encoder_ids, emb.content_hash, path)
    return emb


def load_active_model(store: Store, catalog: Catalog, embeddings: EmbeddingSet) -> FusionRecommender | None:
    """The catalog's active saved fusion model, or None when there is none or it no longer fits."""
    from core.models.fusion import FusionRecommender

    record = store.active_model(catalog.name)
    if record is None:
        return None
    try:
        return FusionRecommender.load(store.model_dir(record["id"]), embeddings)
    except Exception as e:  # a model saved for other embeddings: retrain rather than crash the app
        log.warning("active model %s does not load (%s); it will be retrained", record["id"], e)
        return None


def train_model(store: Store, catalog: Catalog, embeddings: EmbeddingSet, config=None,
                progress=None, split: str = "auto", seed: int = 0,
                activate: bool = True) -> tuple[str, FusionRecommender]:
    """Fit a fusion model on `catalog` (early stopping on its validation split), save it, record it."""
    import time
    import uuid

    from core.evaluation.splits import build_interaction_data
    from core.models.fusion import FusionRecommender, preset_for

    if config is None:
        config = preset_for(catalog.name)
    data = build_interaction_data(catalog, embeddings, split=split, seed=seed)
    model = FusionRecommender(config).fit(data, progress=progress)
    model_id = f"{catalog.name}-{model.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    folder = store.model_dir(model_id)
    model.save(folder)
    from core.index import AUTO_EXACT_BELOW

    if len(catalog.items) >= AUTO_EXACT_BELOW:  # the approximate index is built with the model, saved beside it
        from core.recommend import RecommendService

        RecommendService(catalog, embeddings, model, encoders={}, data=data, index_dir=folder)
    store.record_model(model_id, catalog.name, model.name,
                       {**model.get_config(), "split": data.split_name, "seed": seed,
                        "encoders": embeddings.encoder_ids}, folder, active=activate)
    return model_id, model


def ensure_model(store: Store, catalog: Catalog, embeddings: EmbeddingSet, config=None,
                 progress=None) -> FusionRecommender:
    """The catalog's active fusion model; trains, saves and activates the preset one when there is none."""
    model = load_active_model(store, catalog, embeddings)
    if model is None:
        _, model = train_model(store, catalog, embeddings, config=config, progress=progress)
    return model
