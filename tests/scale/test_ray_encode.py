"""Ray Data encoding gives the local pipeline's vectors, records them in the same cache, and a re-run skips them."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from core.catalog.model import Catalog, Item
from core.encoders.cache import EmbeddingCache
from core.encoders.pipeline import encode_catalog
from core.workspace.prepare import load_embeddings, prepare_embeddings

SR = 22_050


def make_encoder(field: str, device: str = "cpu"):
    """The test's encoders by field, built inside each Ray actor as the real factory builds them."""
    from core.encoders.audio import AudioDescriptor
    from core.encoders.image_descriptor import ImageDescriptor
    from core.encoders.text import SentenceTransformerEncoder

    if field == "text":
        return SentenceTransformerEncoder()  # the bundled MiniLM: real weights, batching-sensitive padding
    return {"image_desc": ImageDescriptor, "audio": AudioDescriptor}[field]()


FIELDS = ("text", "image_desc", "audio")


@pytest.fixture(scope="module")
def tiny_catalog(tmp_path_factory) -> Catalog:
    """14 generated items: covers, clips and descriptions of different lengths, a few missing media and one
    corrupt cover."""
    rng = np.random.default_rng(0)
    media = tmp_path_factory.mktemp("media")
    items = []
    words = "warm bright slow fast guitar synth drums piano quiet loud dark airy".split()
    for i in range(14):
        image = audio = None
        if i % 5 != 4:
            image = f"cover{i}.png"
            pixels = (rng.random((48, 64, 3)) * 80 + rng.integers(0, 170, size=3)).astype(np.uint8)
            Image.fromarray(pixels).save(media / image)
        if i % 4 != 3:
            audio = f"clip{i}.wav"
            t = np.arange(SR) / SR
            sf.write(media / audio, 0.2 * np.sin(2 * np.pi * (110 + 40 * i) * t) + 0.01 * rng.standard_normal(SR), SR)
        text = " ".join(rng.choice(words, size=3 + 2 * i)) if i != 6 else ""
        items.append(Item(f"t{i:02d}", f"Track {i}", text=text, image=image, audio=audio))
    (media / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    items.append(Item("bad", "Broken cover", text="a broken cover", image="broken.png"))
    return Catalog("tiny-ray", items, media_root=media)


@pytest.fixture(scope="module")
def encoders():
    return {f: make_encoder(f) for f in FIELDS}


def ray_engine(**kwargs):
    from core.scale.ray_encode import RayEncodeEngine

    return RayEncodeEngine(factories={f: partial(make_encoder, f) for f in FIELDS}, **kwargs)


@pytest.fixture(scope="module")
def text_catalog() -> Catalog:
    """12 descriptions of different lengths (MiniLM pads each batch to its longest), one empty."""
    rng = np.random.default_rng(1)
    words = "warm bright slow fast guitar synth drums piano quiet loud dark airy".split()
    return Catalog("tiny-text", [Item(f"d{i:02d}", f"Track {i}", text=" ".join(rng.choice(words, size=2 + 3 * i))
                                      if i != 5 else "") for i in range(12)])


def test_local_and_ray_text_vectors_agree_and_are_recorded(ray_session, text_catalog, encoders, store):
    """The default suite's Ray check: real MiniLM weights, one Ray dataset, the store's own path."""
    text = {"text": encoders["text"]}
    local = encode_catalog(text_catalog, text, EmbeddingCache(store.root / "local-cache"), batch_size=4)
    engine = ray_engine()
    emb = prepare_embeddings(store, text_catalog, text, engine=engine, batch_size=4)
    assert engine.stats["rows"] == 11 and engine.stats["shards"] >= 3
    assert emb.encoder_ids == local.encoder_ids and emb.masks["text"].tolist() == local.masks["text"].tolist()
    a, b = local.matrices["text"][local.masks["text"]], emb.matrices["text"][emb.masks["text"]]
    assert ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() >= 0.9999
    stored = load_embeddings(store, text_catalog)
    assert stored is not None and stored.encoder_ids == emb.encoder_ids
    assert store.list_embedding_sets(text_catalog.name)["key"].tolist() == ["default"]
    again = ray_engine()  # same cache keys: a forced re-encode on Ray finds every vector cached
    prepare_embeddings(store, text_catalog, text, engine=again, force=True)
    assert again.stats == {}


@pytest.mark.slow
def test_local_and_ray_vectors_agree_and_rerun_skips(ray_session, tiny_catalog, encoders, tmp_path):
    local = encode_catalog(tiny_catalog, encoders, EmbeddingCache(tmp_path / "local"), batch_size=4)
    cache = EmbeddingCache(tmp_path / "ray")
    engine = ray_engine()
    seen = []
    remote = encode_catalog(tiny_catalog, encoders, cache, batch_size=4, engine=engine,
                            progress=lambda done, total, msg: seen.append((done, total)))
    has = {m: sum(item.has(m) for item in tiny_catalog.items) for m in ("text", "image", "audio")}
    assert engine.stats["rows"] == sum(has.values()) and engine.stats["shards"] >= 3
    assert seen[-1][0] == seen[-1][1] > 0
    assert remote.encoder_ids == local.encoder_ids
    for f in FIELDS:
        assert remote.masks[f].tolist() == local.masks[f].tolist(), f
        a, b = local.matrices[f][local.masks[f]], remote.matrices[f][remote.masks[f]]
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert cosine.min() >= 0.9999, (f, cosine.min())
    for f in ("image_desc", "audio"):  # descriptor statistics fitted on the same raw rows
        np.testing.assert_allclose(remote.stats[f]["mean"], local.stats[f]["mean"], rtol=1e-5, atol=1e-6)
    assert not remote.masks["image_desc"][tiny_catalog.item_ids.index("bad")]
    assert sorted(remote.warnings) == sorted(local.warnings) and any("broken.png" in w for w in remote.warnings)
    assert not list((tmp_path / "ray").glob("ray-shards/*/*.npz"))  # shards removed once recorded

    # the same cache keys: a re-run finds everything cached; only the unreadable cover is tried again (as the
    # local path tries it again)
    again = ray_engine()
    rerun = encode_catalog(tiny_catalog, encoders, cache, batch_size=4, engine=again)
    assert again.stats["rows"] == 1 and again.stats["fields"] == ["image_desc"]
    np.testing.assert_array_equal(rerun.matrices["text"], remote.matrices["text"])
    counted = {f: cache.count() for f in FIELDS}
    encode_catalog(tiny_catalog, encoders, cache, batch_size=4)
    assert {f: cache.count() for f in FIELDS} == counted


@pytest.mark.slow
def test_a_worker_with_other_weights_is_refused(ray_session, tiny_catalog, encoders, tmp_path):
    from core.errors import EncoderError
    from core.scale.ray_encode import RayEncodeEngine

    engine = RayEncodeEngine(factories={"text": partial(_renamed_text)})
    with pytest.raises(EncoderError, match="install the same weights on every worker"):
        encode_catalog(tiny_catalog, {"text": encoders["text"]}, EmbeddingCache(tmp_path / "c"), engine=engine)


def _renamed_text(device: str = "cpu"):
    from tests.encoders.test_cache import CountingTextEncoder

    return CountingTextEncoder()
