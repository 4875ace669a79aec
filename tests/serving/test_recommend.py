"""The recommend service on a small demo-like world: queries of every kind, exclusions, uploads, bad input,
what-if weights and feedback.

The world (built once per session by `demo_world`) is the demo generator's own tracks, listeners and
interactions, without rendering media: item features are made from each track's latent attributes the way
the demo's media show them (text = the track's real description through a hashing encoder, image ← palette,
genre and mood, audio descriptor ← tempo, instrument, genre and mood), so the fused model learns the same
structure as on the real demo, in seconds. Uploads go through real encoders: the image and audio descriptors
and a hashing text encoder.
"""
from __future__ import annotations

import atexit
import dataclasses
import io
import json
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.catalog.demo import (CATEGORIES, GROUND_TRUTH_FILE, DemoConfig, ground_truth, sample_listeners,
                               sample_tracks, simulate_interactions)
from core.catalog.model import Catalog, Item
from core.encoders.embeddings import EmbeddingSet
from core.encoders import audio as audio_desc
from core.encoders import image_descriptor as image_desc
from core.encoders.base import l2_normalise
from core.errors import QueryError, UnsupportedMediaError
from core.data.splits import build_interaction_data
from core.models.fusion.config import PRESETS
from core.models.fusion.recommender import FusionRecommender
from core.tuning.baselines import member_search
from core.serving.service import (EncodedQuery, Query, RecommendationResult, RecommendService, Upload, apply_feedback,
                            shapley_from_coalitions, single_threaded)

WORLD_TRACKS, WORLD_LISTENERS = 120, 90
# The demo preset, smaller. Without the cross-modal alignment loss: that loss pulls every modality of an item
# towards the same vector, so any modality can stand in for the others and a single-modality taste cannot
# show in the Shapley values, which the ground-truth check in test_explain needs to see.
TRAIN = dict(epochs=40, patience=8, batch_size=256, hidden=64, dim=32, lr=5e-3, align_weight=0.0, seed=0)


# -- light encoders for the fields the world's uploads need --------------------------------------------
class HashingTextEncoder:
    """Bag of words hashed into 256 dimensions: deterministic, offline, milliseconds."""

    id = "test/hashing-text-256"
    dim = 256
    modality = "text"

    def encode(self, batch: Any) -> np.ndarray:
        from sklearn.feature_extraction.text import HashingVectorizer

        vec = HashingVectorizer(n_features=self.dim, alternate_sign=False, norm=None)
        return l2_normalise(vec.transform([str(t) for t in batch]).toarray())


class MeanColourEncoder:
    """Mean RGB of a 4 × 2 grid of the image (24 values): stands in for the CNN field."""

    id = "test/mean-colour-24"
    dim = 24
    modality = "image"

    def encode(self, batch: Any) -> np.ndarray:
        from core.catalog.media import load_image

        rows = []
        for img in batch:
            img = img if hasattr(img, "resize") else load_image(img)
            rows.append(np.asarray(img.convert("RGB").resize((4, 2)), np.float32).ravel() / 255.0 - 0.5)
        return l2_normalise(np.stack(rows))


def world_encoders() -> dict[str, Any]:
    return {"text": HashingTextEncoder(), "image": MeanColourEncoder(),
            "image_desc": image_desc.ImageDescriptor(), "audio": audio_desc.AudioDescriptor()}


# -- the world ------------------------------------------------------------------------------------------
@dataclass
class World:
    catalog: Catalog
    embeddings: EmbeddingSet
    model: FusionRecommender
    data: Any
    encoders: dict[str, Any]
    truth: dict


def _one_hot(values: list[str], options: tuple[str, ...]) -> np.ndarray:
    return np.eye(len(options), dtype=np.float32)[[options.index(v) for v in values]]


def _features(tracks: list, encoders: dict[str, Any], seed: int) -> EmbeddingSet:
    """Per-field matrices showing each attribute where the demo's media show it (see the module doc)."""
    rng = np.random.default_rng(seed)
    n = len(tracks)
    attr = {a: [getattr(t, a) for t in tracks] for a in ("genre", "mood", "instrument", "palette", "theme")}
    hot = {a: _one_hot(v, CATEGORIES[a]) for a, v in attr.items()}
    bpm = np.array([t.bpm for t in tracks], np.float32)
    texts = [t.text or "" for t in tracks]
    matrices = {"text": encoders["text"].encode(texts)}
    # image CNN stand-in: palette strongly, genre and mood weakly, through a fixed random map
    latent = np.hstack([2.0 * hot["palette"], 0.7 * hot["genre"], 0.7 * hot["mood"]])
    matrices["image"] = latent @ rng.normal(size=(latent.shape[1], 24)).astype(np.float32)
    # named image descriptor (standardised): colour shares follow the palette
    desc = 0.3 * rng.normal(size=(n, len(image_desc.FEATURE_NAMES))).astype(np.float32)
    colour = image_desc.FEATURE_GROUPS["colour"]
    desc[:, :len(colour)] += 1.5 * hot["palette"] @ rng.normal(size=(hot["palette"].shape[1], len(colour)))
    matrices["image_desc"] = desc
    # named audio descriptor (standardised): tempo column = bpm, timbre ← instrument, spectrum ← genre/mood
    names = audio_desc.FEATURE_NAMES
    aud = 0.3 * rng.normal(size=(n, len(names))).astype(np.float32)
    aud[:, names.index("tempo (BPM)")] = 3.0 * (bpm - bpm.mean()) / bpm.std()
    aud[:, names.index("onset strength mean")] += 1.5 * (bpm - bpm.mean()) / bpm.std()
    timbre = [names.index(f) for f in audio_desc.FEATURE_GROUPS["timbre"]]
    aud[:, timbre] += hot["instrument"] @ rng.normal(size=(hot["instrument"].shape[1], len(timbre)))
    spectrum = [names.index(f) for f in audio_desc.FEATURE_GROUPS["spectrum"]]
    aud[:, spectrum] += np.hstack([hot["genre"], hot["mood"]]) @ rng.normal(size=(11, len(spectrum))) * 0.7
    matrices["audio"] = aud
    modality_of = {"text": "text", "image": "image", "image_desc": "image", "audio": "audio"}
    masks = {}
    for f, m in modality_of.items():
        masks[f] = np.array([t.missing != m for t in tracks])
        matrices[f] = l2_normalise(np.where(masks[f][:, None], matrices[f], 0.0))
    stats = {"image_desc": image_desc.default_stats(), "audio": audio_desc.default_stats()}
    return EmbeddingSet(item_ids=[t.id for t in tracks], matrices=matrices, masks=masks, modality_of=modality_of,
                        encoder_ids={f: encoders[f].id for f in modality_of},
                        feature_names={"image_desc": list(image_desc.FEATURE_NAMES), "audio": list(names)},
                        stats=stats)


@lru_cache(maxsize=2)
def _world(n_tracks: int = WORLD_TRACKS, n_listeners: int = WORLD_LISTENERS, seed: int = 7) -> World:
    """Built once per process (test_explain shares it); its ground truth lives in a temporary folder."""
    folder = tempfile.mkdtemp(prefix="prism-world-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    config = DemoConfig(seed=seed, n_tracks=n_tracks, n_listeners=n_listeners, min_interactions=12,
                        max_interactions=24)
    tracks, listeners = sample_tracks(config), sample_listeners(config)
    interactions = simulate_interactions(config, tracks, listeners)
    truth = ground_truth(config, tracks, listeners)
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    (root / GROUND_TRUTH_FILE).write_text(json.dumps(truth))
    items = [Item(id=t.id, title=t.title, text=t.text, metadata=t.metadata()) for t in tracks]
    catalog = Catalog(name="demo", items=items, interactions=interactions, media_root=root)
    encoders = world_encoders()
    embeddings = _features(tracks, encoders, seed)
    data = build_interaction_data(catalog, embeddings, split="auto", seed=0)
    with single_threaded():  # tiny batches: one thread is faster, and kinder to a shared machine
        model = FusionRecommender(dataclasses.replace(PRESETS["demo"], **TRAIN),
                                  member_search=member_search).fit(data)
    return World(catalog, embeddings, model, data, encoders, truth)


@pytest.fixture(scope="session")
def demo_world() -> World:
    """The demo-like world with a trained fusion model (shared by the recommend and explain tests)."""
    return _world()


@pytest.fixture(scope="session")
def service(demo_world) -> RecommendService:
    w = demo_world
    return RecommendService(w.catalog, w.embeddings, w.model, w.encoders)


def png_bytes(colour: tuple[int, int, int] = (30, 60, 200), stripes: bool = True) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (96, 96), colour)
    if stripes:
        px = np.asarray(img).copy()
        px[::8] = 255 - np.asarray(colour, np.uint8)
        img = Image.fromarray(px)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def wav_bytes(bpm: float = 120.0, seconds: float = 3.0, sr: int = 22050) -> bytes:
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    tone = 0.2 * np.sin(2 * np.pi * 330 * t)
    clicks = (np.mod(t, 60.0 / bpm) < 0.02) * 0.6 * np.sin(2 * np.pi * 2000 * t)
    buf = io.BytesIO()
    sf.write(buf, (tone + clicks).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def ids(result: RecommendationResult) -> list[str]:
    return [r.item_id for r in result.items]


# -- queries ---------------------------------------------------------------------------------------------
def test_known_listener_gets_k_distinct_unseen_items(service, demo_world):
    user = demo_world.data.user_ids[3]
    result = service.recommend(Query(user_id=user), k=10)
    got = ids(result)
    assert len(got) == 10 and len(set(got)) == 10
    seen = {demo_world.data.item_ids[j] for j in demo_world.data.train[3].indices}
    assert seen and not seen & set(got)
    assert [r.rank for r in result.items] == list(range(1, 11))
    scores = [r.score for r in result.items]
    assert scores == sorted(scores, reverse=True)
    # the ranking is the model's own: the best unseen item by model.score comes first
    model_scores = demo_world.model.score(np.array([3]))[0].astype(float)
    model_scores[demo_world.data.train[3].indices] = -np.inf
    assert got[0] == demo_world.data.item_ids[int(np.argmax(model_scores))]


def test_liked_items_are_never_recommended_and_pull_similar_ones(service, demo_world):
    catalog = demo_world.catalog
    palette = catalog.items[0].metadata["palette"]
    liked = [it.id for it in catalog.items if it.metadata["palette"] == palette][:3]
    result = service.recommend(Query(liked=liked, disliked=[catalog.items[-1].id]), k=10)
    got = ids(result)
    assert len(set(got)) == 10 and not set(liked) & set(got) and catalog.items[-1].id not in got
    same = np.mean([catalog.item(i).metadata["palette"] == palette for i in got])
    base = np.mean([it.metadata["palette"] == palette for it in catalog.items])
    assert same > base, f"{same:.2f} of the results share the liked palette; the catalog base rate is {base:.2f}"


def test_upload_query_returns_results_with_every_modality(service):
    query = Query(text="energetic techno about the city at night",
                  images=[Upload("cover.png", png_bytes())], audio=[Upload("beat.wav", wav_bytes())])
    encoded = service.encode_query(query)
    assert set(encoded.content) == {"text", "image", "audio"}
    assert {f: a.shape[0] for f, a in encoded.field_inputs.items()} == {"text": 1, "image": 1, "image_desc": 1,
                                                                        "audio": 1}
    result = service.recommend(encoded, k=8)
    assert len(set(ids(result))) == 8
    assert result.query_modalities == ["text", "image", "audio"] and not result.warnings
    assert result.encode_ms == 0.0 and result.rank_ms > 0  # an encoded query is re-ranked without encoding
    assert result.encoder_ids["audio"] == audio_desc.AudioDescriptor().id
    again = service.recommend(query, k=8)
    assert again.encode_ms > 0 and np.isclose(again.latency_ms, again.encode_ms + again.rank_ms)
    assert ids(again) == ids(result)


def test_each_upload_changes_the_query_vector(service):
    text_only = service.encode_query(Query(text="quiet folk about the forest"))
    with_image = service.encode_query(Query(text="quiet folk about the forest",
                                            images=[Upload("c.png", png_bytes((220, 40, 40)))]))
    assert not np.allclose(text_only.vector, with_image.vector)
    assert text_only.modalities == ["text"] and with_image.modalities == ["text", "image"]


def test_empty_query_raises_query_error(service):
    assert Query().is_empty() and Query(text="   ").is_empty() and Query(disliked=["x"]).is_empty()
    with pytest.raises(QueryError, match="empty"):
        service.encode_query(Query(text="  "))
    with pytest.raises(QueryError, match="empty"):
        service.recommend(Query(), k=5)


def test_corrupt_upload_raises_naming_the_file(service):
    broken = png_bytes()[:60]
    with pytest.raises(UnsupportedMediaError, match="broken-cover.png"):
        service.encode_query(Query(images=[Upload("broken-cover.png", broken)]))
    with pytest.raises(UnsupportedMediaError, match="noise.wav"):
        service.encode_query(Query(text="jazz", audio=[Upload("noise.wav", b"RIFF0000WAVEnot audio")]))


def test_unknown_listener_and_unknown_items(service):
    with pytest.raises(QueryError, match="nobody"):
        service.encode_query(Query(user_id="nobody"))
    encoded = service.encode_query(Query(text="calm piano", liked=["no-such-track"]))
    assert any("no-such-track" in w for w in encoded.warnings)
    with pytest.raises(QueryError, match="nothing in the query"):
        service.encode_query(Query(liked=["no-such-track"]))


def test_upload_for_a_missing_modality_is_a_warning(demo_world):
    w = demo_world
    no_image = w.embeddings.subset(np.arange(len(w.catalog.items)))
    for f in ("image", "image_desc"):
        del no_image.matrices[f], no_image.masks[f], no_image.modality_of[f], no_image.encoder_ids[f]
    data = build_interaction_data(w.catalog, no_image, split="auto", seed=0)
    model = FusionRecommender(dataclasses.replace(PRESETS["demo"], **{**TRAIN, "epochs": 2}),
                              member_search=member_search).fit(data)
    service = RecommendService(w.catalog, no_image, model, w.encoders)
    result = service.recommend(Query(text="dark techno", images=[Upload("cover.png", png_bytes())]), k=5)
    assert len(result.items) == 5 and result.query_modalities == ["text"]
    assert any("image uploads were ignored" in m and "no image modality" in m for m in result.warnings)
    with pytest.raises(QueryError, match="nothing in the query"):
        service.encode_query(Query(images=[Upload("cover.png", png_bytes())]))


def test_stale_encoder_is_a_warning_not_a_wrong_vector(demo_world):
    w = demo_world
    other = HashingTextEncoder()
    other.id = "test/other-text-encoder"
    service = RecommendService(w.catalog, w.embeddings, w.model, {**w.encoders, "text": other})
    encoded = service.encode_query(Query(text="calm", liked=[w.catalog.items[0].id]))
    assert "text" not in encoded.content
    assert any("test/other-text-encoder" in m for m in encoded.warnings)


# -- weights and contributions --------------------------------------------------------------------------
def test_contributions_are_exact_shapley_and_add_up(service, demo_world):
    encoded = service.encode_query(Query(user_id=demo_world.data.user_ids[0]))
    result = service.recommend(encoded, k=5)
    for rec in result.items:
        assert np.isclose(sum(rec.contributions.values()), rec.score - rec.base, atol=1e-4)
        assert np.isclose(rec.offset + rec.history, rec.base, atol=1e-5)
        weights = np.array(list(rec.modality_weights.values()))
        assert np.all(weights >= 0) and np.isclose(weights.sum(), 1.0)
    # contributions agree with the model's own masked scores: v({m}) − v(∅) for the single-modality item
    row = demo_world.catalog.index_of(result.items[0].item_id)
    history = service.history_part(encoded)  # the model's collaborative term of this listener, if any
    full = service.scores(encoded.vector, np.array([row]))[0] + (0.0 if history is None else history[row])
    assert np.isclose(full, result.items[0].score, atol=1e-5)
    # a known listener is ranked by the model's own score, its collaborative term included
    own = demo_world.model.score(np.array([encoded.user_row]))[0]
    assert np.allclose([own[demo_world.catalog.index_of(r.item_id)] for r in result.items],
                       [r.score for r in result.items], atol=1e-4)


def test_shapley_formula_on_a_known_game():
    # v(S) = sum of member values + 1 when both a and b are in S: the interaction splits evenly
    modalities = ["a", "b", "c"]
    value = {"a": 1.0, "b": 2.0, "c": -0.5}
    games = {}
    for mask in range(8):
        s = frozenset(m for k, m in enumerate(modalities) if mask >> k & 1)
        games[s] = np.array([sum(value[m] for m in s) + (1.0 if {"a", "b"} <= s else 0.0)])
    phi = shapley_from_coalitions(games, modalities)
    assert [float(phi[m][0]) for m in modalities] == pytest.approx([1.5, 2.5, -0.5])


def test_modality_weight_override_changes_the_ranking(service, demo_world):
    encoded = service.encode_query(Query(user_id=demo_world.data.user_ids[5]))
    plain = service.recommend(encoded, k=10)
    image_only = service.recommend(encoded, k=10, modality_weights={"text": 0, "image": 1, "audio": 0})
    text_only = service.recommend(encoded, k=10, modality_weights={"text": 1, "image": 0, "audio": 0})
    assert ids(image_only) != ids(text_only)
    assert ids(plain) != ids(image_only) or ids(plain) != ids(text_only)
    assert image_only.index_kind == "parts"  # the gated fusion is linear: re-ranked without the model
    for rec in image_only.items:  # the what-if weights are what each card shows
        item_has_image = service.present[demo_world.catalog.index_of(rec.item_id), 1]
        assert rec.modality_weights["image"] == pytest.approx(1.0 if item_has_image else 0.0)


def test_all_weight_on_one_modality_equals_masking_the_others(service, demo_world):
    encoded = service.encode_query(Query(user_id=demo_world.data.user_ids[7]))
    history = service.history_part(encoded)  # the listener's collaborative term, in every ranking
    for m in service.modalities:
        weights = {o: float(o == m) for o in service.modalities}
        weighted = service.scores(encoded.vector, modality_weights=weights)
        masked = service.scores(encoded.vector, keep=[m])
        np.testing.assert_allclose(weighted, masked, rtol=1e-5, atol=1e-5)
        top_weighted = ids(service.recommend(encoded, k=10, modality_weights=weights))
        masked = masked + (0.0 if history is None else history)
        order = np.argsort(-np.where(np.isin(np.arange(len(masked)), list(encoded.exclude_rows)), -np.inf, masked),
                           kind="stable")[:10]
        assert top_weighted == [demo_world.catalog.items[j].id for j in order]


def test_what_if_scores_from_parts_equal_the_models(service, demo_world):
    assert service.weights_linear
    encoded = service.encode_query(Query(user_id=demo_world.data.user_ids[4]))
    weights = {"text": 0.7, "image": 0.2, "audio": 0.45}
    fast = service.scores(encoded.vector, modality_weights=weights)
    model = demo_world.model.score_vector(encoded.vector, modality_weights=weights)
    np.testing.assert_allclose(fast, model, rtol=1e-4, atol=1e-4)
    rows = np.arange(0, service.n_items, 7)
    for keep in ([], ["audio"], ["text", "image"]):
        masked = demo_world.model.score_vector(encoded.vector, items=rows, modality_weights=weights,
                                               modality_mask=service.modality_mask(keep))
        np.testing.assert_allclose(service.scores(encoded.vector, rows, keep=keep, modality_weights=weights),
                                   masked, rtol=1e-4, atol=1e-4)


def test_concat_fusion_re_ranks_through_the_model(demo_world):
    w = demo_world
    model = FusionRecommender(dataclasses.replace(PRESETS["demo"], **{**TRAIN, "epochs": 2, "strategy": "concat"}),
                              member_search=member_search)
    model.fit(w.data)
    service = RecommendService(w.catalog, w.embeddings, model, w.encoders)
    assert service.linear and not service.weights_linear  # the concat MLP is not a weighted sum
    encoded = service.encode_query(Query(user_id=w.data.user_ids[0]))
    result = service.recommend(encoded, k=5, modality_weights={"text": 1, "image": 0.5, "audio": 0.1})
    assert result.index_kind == "model" and len(result.items) == 5
    for rec in result.items:
        assert sum(rec.contributions.values()) == pytest.approx(rec.score - rec.base, abs=1e-4)


def test_all_zero_weights_are_refused(service, demo_world):
    encoded = service.encode_query(Query(user_id=demo_world.data.user_ids[0]))
    with pytest.raises(QueryError, match="zero"):
        service.recommend(encoded, k=5, modality_weights={"text": 0, "image": 0, "audio": 0})


# -- feedback and previous ranks -----------------------------------------------------------------------
def test_apply_feedback_is_pure_and_moves_items():
    q = Query(text="x", liked=["a"], disliked=["b"])
    liked_b = apply_feedback(q, "b", liked=True)
    assert liked_b.liked == ["a", "b"] and liked_b.disliked == []
    assert q.liked == ["a"] and q.disliked == ["b"]  # unchanged
    disliked_a = apply_feedback(liked_b, "a", liked=False)
    assert disliked_a.liked == ["b"] and disliked_a.disliked == ["a"]
    assert apply_feedback(disliked_a, "a", liked=False).disliked == ["a"]  # no duplicates


def test_feedback_reranks_and_previous_rank_is_filled(service):
    query = Query(text="melancholic piano about the rain")
    first = service.recommend(query, k=10)
    top = first.items[0].item_id
    second = service.recommend(apply_feedback(query, top, liked=False), k=10, previous=first)
    assert top not in ids(second)
    before = {r.item_id: r.rank for r in first.items}
    for rec in second.items:
        assert rec.previous_rank == before.get(rec.item_id)
    assert any(r.previous_rank is not None for r in second.items)


def test_exclude_and_hnsw_path_agree_with_exact(demo_world):
    w = demo_world
    exact = RecommendService(w.catalog, w.embeddings, w.model, w.encoders, index="exact")
    hnsw = RecommendService(w.catalog, w.embeddings, w.model, w.encoders, index="hnsw")
    assert exact.linear and hnsw.index.kind == "hnsw"
    encoded = exact.encode_query(Query(user_id=w.data.user_ids[2]))
    a = exact.recommend(encoded, k=10, exclude={w.catalog.items[0].id})
    b = hnsw.recommend(encoded, k=10, exclude={w.catalog.items[0].id})
    assert w.catalog.items[0].id not in ids(a)
    assert len(set(ids(a)) & set(ids(b))) >= 9
    assert isinstance(encoded, EncodedQuery)


def test_a_what_if_weight_of_zero_removes_that_modality_from_items_like_the_upload(service, demo_world):
    """'Items like your upload' is found through the weighted modalities only: a text upload under a what-if
    that gives text weight 0 gets nothing from that term, and at text weight 1 it gets what it gets without
    a what-if."""
    from core.serving.similarity import LIKE

    emb = demo_world.embeddings
    encoded = service.encode_fields({f: emb.matrices[f][3][None, :] for f in emb.fields_of("text")})
    assert encoded.like is not None and np.any(encoded.like)
    off = {m: float(m != "text") for m in service.modalities}
    like_off = next(t for t in service.score_terms(encoded, modality_weights=off) if t.name == LIKE)
    assert not np.any(like_off.part())
    result = service.recommend(encoded, k=5, modality_weights=off)
    assert all(r.terms.get(LIKE, 0.0) == 0.0 for r in result.items)
    # nor is any item the closest match through a modality at weight 0
    from core.serving.similarity import CLOSEST

    assert all(r.terms.get(CLOSEST, 0.0) == 0.0 for r in result.items)
    closest_on = next(t for t in service.score_terms(encoded, modality_weights={"text": 1.0}) if t.name == CLOSEST)
    assert closest_on.values.sum() == 1.0 and closest_on.values[3] == 1.0  # item 3's own text: itself
    on = {m: float(m == "text") for m in service.modalities}
    like_on = next(t for t in service.score_terms(encoded, modality_weights=on) if t.name == LIKE)
    plain = next(t for t in service.score_terms(encoded) if t.name == LIKE)
    np.testing.assert_allclose(like_on.part(), plain.part())


def test_shapley_matrix_is_the_shapley_formula():
    from core.serving.service import coalition_subsets, shapley_matrix

    modalities = ("a", "b", "c", "d")
    rng = np.random.default_rng(4)
    games = {frozenset(s): rng.standard_normal(3) for s in coalition_subsets(modalities)}
    want = shapley_from_coalitions(games, modalities)
    got = shapley_matrix(modalities) @ np.stack([games[frozenset(s)] for s in coalition_subsets(modalities)])
    np.testing.assert_allclose(got, np.stack([want[m] for m in modalities]), atol=1e-12)
