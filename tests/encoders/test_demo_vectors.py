"""The shipped demo vectors: they are the default demo's (same content hashes, same encoder outputs), a first start
seeds the cache with them and encodes nothing it covers, and anything else falls back to encoding."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from core.catalog.demo import DemoConfig, render_track_media, sample_tracks
from core.catalog.model import Catalog
from core.encoders import demo_vectors
from core.encoders.audio import AudioDescriptor
from core.encoders.cache import EmbeddingCache
from core.encoders.image_descriptor import ImageDescriptor
from core.encoders.pipeline import cache_id, content_keys, encode_catalog
from core.store.database import Store
from core.workspace.imports import ensure_demo_catalog
from core.workspace.prepare import prepare_embeddings, raw_media_encoders
from tests.encoders.test_cache import CountingTextEncoder

SMALL = DemoConfig(n_tracks=6, n_listeners=4, min_interactions=2, max_interactions=3)


class _Refusing:
    """Stands in for an encoder and fails the test if it is asked to encode anything."""

    def __init__(self, inner) -> None:
        self.id, self.dim, self.modality = inner.id, inner.dim, inner.modality
        for name in ("feature_names", "default_stats"):  # a descriptor's names and typical values
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def encode(self, batch):
        raise AssertionError(f"{self.id} was asked to encode {len(batch)} inputs the shipped vectors hold")

    def describe(self, batch):
        raise AssertionError(f"{self.id} was asked to describe {len(batch)} inputs the shipped vectors hold")


def _small_encoders() -> dict:
    return {"text": CountingTextEncoder(), "image_desc": ImageDescriptor(), "audio_desc": AudioDescriptor()}


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A vectors file written from a small demo encoded in one store, in place of the shipped one; returns its
    path and that store's embedding set."""
    monkeypatch.delenv(demo_vectors.ENV_SWITCH, raising=False)
    first = Store(tmp_path / "first")
    catalog = ensure_demo_catalog(first, SMALL)
    encoders = raw_media_encoders(catalog, _small_encoders())
    embeddings = prepare_embeddings(first, catalog, encoders)
    path = tmp_path / "vectors.npz"
    n = demo_vectors.write_vectors(path, catalog, SMALL, EmbeddingCache(first.embedding_cache_dir), encoders)
    assert n == sum(len(content_keys(catalog, e.modality)) for e in encoders.values())
    monkeypatch.setattr(demo_vectors, "SHIPPED", path)
    return path, embeddings


def test_a_first_start_encodes_nothing_the_shipped_vectors_hold(shipped, tmp_path):
    path, expected = shipped
    store = Store(tmp_path / "second")
    catalog = ensure_demo_catalog(store, SMALL)  # renders the same bytes, then seeds the cache
    refusing = {f: _Refusing(e) for f, e in raw_media_encoders(catalog, _small_encoders()).items()}
    embeddings = prepare_embeddings(store, catalog, refusing)
    assert embeddings.encoder_ids == expected.encoder_ids
    for field in expected.matrices:
        np.testing.assert_array_equal(embeddings.matrices[field], expected.matrices[field], err_msg=field)
        np.testing.assert_array_equal(embeddings.masks[field], expected.masks[field])


def test_seeding_adds_only_what_is_missing_and_only_for_its_own_demo(shipped, tmp_path, monkeypatch, caplog):
    path, _ = shipped
    cache = EmbeddingCache(tmp_path / "cache")
    added = demo_vectors.seed_cache(cache, SMALL)
    assert added > 0 and cache.count() == added
    assert demo_vectors.seed_cache(cache, SMALL) == 0  # nothing missing any more
    other = EmbeddingCache(tmp_path / "other")
    assert demo_vectors.seed_cache(other, DemoConfig(n_tracks=7, n_listeners=4, min_interactions=2,
                                                     max_interactions=3)) == 0  # other demo settings
    monkeypatch.setenv(demo_vectors.ENV_SWITCH, "0")
    assert demo_vectors.seed_cache(other, SMALL) == 0  # switched off
    monkeypatch.delenv(demo_vectors.ENV_SWITCH)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(path.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        assert demo_vectors.seed_cache(other, SMALL, damaged) == 0
    assert "do not load" in caplog.text and other.count() == 0
    assert demo_vectors.seed_cache(other, SMALL, tmp_path / "absent.npz") == 0


def test_writing_refuses_a_demo_that_is_not_encoded(tmp_path):
    store = Store(tmp_path)
    catalog = ensure_demo_catalog(store, SMALL)
    with pytest.raises(Exception, match="encode the demo"):
        demo_vectors.write_vectors(tmp_path / "v.npz", catalog, SMALL, EmbeddingCache(tmp_path / "empty"),
                                   {"text": CountingTextEncoder()})


def test_the_shipped_file_holds_the_default_demos_encoder_outputs(tmp_path, text_encoder, effnet_encoder,
                                                                   aisfx_encoder):
    """Three tracks of the default demo rendered now have their content hashes in the shipped file, and encoding
    them gives the shipped vectors (cosine ≥ .999 a row: the same computation, up to the CPU's rounding). A change
    to the renderer or an encoder fails here until the file is written again (see core.encoders.demo_vectors)."""
    config = DemoConfig()
    (tmp_path / "covers").mkdir()
    (tmp_path / "audio").mkdir()
    items = [render_track_media(tmp_path, config, i, t) for i, t in enumerate(sample_tracks(config)[:3])]
    catalog = Catalog("demo-sample", items, media_root=tmp_path)
    encoders = {"text": text_encoder, "image": effnet_encoder, "image_desc": ImageDescriptor(),
                "audio": aisfx_encoder, "audio_desc": AudioDescriptor()}
    with np.load(demo_vectors.SHIPPED, allow_pickle=False) as f:
        assert str(f["config"]) == demo_vectors._config_json(config)
        ids = f["encoder_ids"].tolist()
        shipped = {name: dict(zip((k.decode() for k in f[f"keys_{k}"].tolist()), f[f"vectors_{k}"]))
                   for k, name in enumerate(ids)}
    usable = {field: e for field, e in encoders.items() if cache_id(e) in shipped}
    if not usable:
        pytest.skip(f"no default encoder here has a shipped id ({ids}): e.g. a CPU without bfloat16")
    cache = EmbeddingCache(tmp_path / "cache")
    encode_catalog(catalog, usable, cache)
    for field, encoder in usable.items():
        keys = list(content_keys(catalog, encoder.modality).values())
        assert keys and all(k in shipped[cache_id(encoder)] for k in keys), f"{field}: rendered inputs not shipped"
        for key, now in cache.get_many(cache_id(encoder), keys).items():
            then = shipped[cache_id(encoder)][key]
            cosine = float(now @ then / (np.linalg.norm(now) * np.linalg.norm(then)))
            assert cosine >= 0.999, f"{field}: the shipped vector differs from today's (cosine {cosine:.4f})"
