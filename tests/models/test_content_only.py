"""A catalog without interactions opens as a content-only catalog: its model is its content (no training),
its own text ranks an item first, scores add up, and interactions added later bring a trained model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.workspace.imports import import_manifest
from core.encoders.embeddings import EmbeddingSet
from core.models.content_only import CONTENT_ONLY_NAME, content_only_model, principal_directions
from core.store.database import Store
from tests.catalog.test_manifest import make_catalog_folder, manifest_rows

TEXTS = ["slow ambient piano for a rainy evening", "fast drum and bass with heavy sub bass",
         "indian percussion with tabla and sitar", "acoustic folk guitar and a soft voice",
         "brass band marching on a sunny street", "dark techno with a pounding kick"]


def rows() -> list[dict[str, str]]:
    out = manifest_rows(len(TEXTS))
    for row, text in zip(out, TEXTS):
        row["text"] = text
    return out


def test_principal_directions_keep_dot_products_within_the_rank() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3)) @ rng.normal(size=(3, 20))  # rank 3 in 20 dimensions
    v = principal_directions(x, 8)
    assert v.shape == (3, 20)  # never more directions than the data's rank
    np.testing.assert_allclose((x @ v.T) @ (x @ v.T).T, x @ x.T, atol=1e-8)


def test_content_only_model_scores_are_blockwise_dot_products() -> None:
    rng = np.random.default_rng(1)
    n = 5
    text, image = rng.normal(size=(n, 8)).astype(np.float32), rng.normal(size=(n, 6)).astype(np.float32)
    masks = {"text": np.ones(n, bool), "image": np.array([1, 1, 1, 0, 1], bool)}
    emb = EmbeddingSet(item_ids=[f"i{k}" for k in range(n)], matrices={"text": text, "image": image},
                       masks=masks, modality_of={"text": "text", "image": "image"},
                       encoder_ids={"text": "t", "image": "m"}, content_hash="h")
    model = content_only_model(emb, block=8)
    q = model.query_vector(content={"text": model.project_content({"text": text[:1]})["text"]})
    # a text query meets items through their text block only, weighted by 1 / (modalities the item has)
    expected = (text @ text[0]) / np.where(masks["image"], 2.0, 1.0)
    np.testing.assert_allclose(model.score_vector(q), expected, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def content_only_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("content-only")
    folder = make_catalog_folder(root / "six", n=len(TEXTS), interactions=False, rows=rows())
    store = Store(root / "store")
    report = import_manifest(folder, store, name="six")
    assert report.interactions == 0
    return store


def test_a_catalog_without_interactions_recommends_by_content(content_only_store) -> None:
    from core.encoders.factory import EncoderConfig, build_encoders
    from core.serving.service import Query, RecommendService
    from core.workspace.prepare import ensure_model, prepare_embeddings

    store = content_only_store
    catalog = store.load_catalog("six")
    encoders = build_encoders(EncoderConfig.from_env())
    embeddings = prepare_embeddings(store, catalog, encoders)
    model = ensure_model(store, catalog, embeddings)
    record = store.active_model("six")
    assert record["name"] == CONTENT_ONLY_NAME and record["config"]["config_source"].startswith("content only")
    service = RecommendService(catalog, embeddings, model, encoders)
    hits = 0
    for k, text in enumerate(TEXTS):
        result = service.recommend(Query(text=text), k=3)
        hits += result.items[0].item_id == f"t{k}"
        for r in result.items:  # the parts add up to the score shown
            total = r.base + sum(r.contributions.values()) + sum(r.terms.values())
            assert total == pytest.approx(r.score, abs=1e-3)
    assert hits == len(TEXTS), "an item's own text ranks it first"
    liked = service.recommend(Query(liked=["t0"]), k=3)
    assert "t0" not in [r.item_id for r in liked.items] and len(liked.items) == 3
    # the same model comes back on the next start (nothing retrained)
    again = ensure_model(store, catalog, embeddings)
    assert store.active_model("six")["id"] == record["id"]
    np.testing.assert_allclose(again.item_vectors(), model.item_vectors(), atol=1e-6)


def test_interactions_added_later_bring_a_trained_model(content_only_store, tmp_path) -> None:
    import dataclasses

    from core.workspace.imports import import_interactions
    from core.models.fusion.config import FusionConfig
    from core.workspace.prepare import ensure_model, load_embeddings, prepare_embeddings

    store = content_only_store
    csv = tmp_path / "interactions.csv"
    users = [f"u{u}" for u in range(8) for _ in range(4)]
    items = [f"t{(u + j) % len(TEXTS)}" for u in range(8) for j in range(4)]
    pd.DataFrame({"user_id": users, "item_id": items}).to_csv(csv, index=False)
    import_interactions(csv, store, "six")
    catalog = store.load_catalog("six")
    embeddings = load_embeddings(store, catalog) or prepare_embeddings(store, catalog)
    config = dataclasses.replace(FusionConfig(), epochs=2, hidden=0, dim=8, collaborative="none")
    model = ensure_model(store, catalog, embeddings, config=config)
    record = store.active_model("six")
    assert record["name"] != CONTENT_ONLY_NAME and model.net.n_users == 8
