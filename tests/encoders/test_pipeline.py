"""encode_catalog and encode_inputs: masking of missing and unreadable media, precomputed features, descriptor
standardisation shared by catalog and queries, and progress."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from core.catalog.model import Catalog, FeatureMatrix, Item
from core.encoders.embeddings import EmbeddingSet
from core.encoders.audio import AudioDescriptor
from core.encoders.cache import EmbeddingCache
from core.encoders.image_descriptor import ImageDescriptor
from core.encoders.pipeline import encode_audio_uploads, encode_catalog, encode_inputs, fit_stats
from tests.encoders.test_cache import CountingTextEncoder

SR = 22_050


@pytest.fixture
def catalog(tmp_path) -> Catalog:
    """Five items: all modalities, image only, a corrupt image, a missing file, nothing but a title."""
    media = tmp_path / "media"
    media.mkdir()
    for name, colour in (("red.png", (230, 20, 20)), ("blue.png", (20, 40, 230)), ("green.png", (20, 200, 40))):
        Image.new("RGB", (96, 64), colour).save(media / name)
    (media / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    t = np.arange(2 * SR) / SR
    sf.write(media / "low.wav", 0.3 * np.sin(2 * np.pi * 220 * t), SR)
    sf.write(media / "high.wav", 0.3 * np.sin(2 * np.pi * 1760 * t), SR)
    items = [
        Item("all", "All", text="a red song", image="red.png", audio="low.wav"),
        Item("img", "Image only", image="blue.png"),
        Item("bad", "Corrupt cover", text="a broken cover", image="corrupt.png", audio="high.wav"),
        Item("gone", "Missing file", text="", image="nowhere.png"),
        Item("bare", "Title only", image=str(media / "green.png")),  # an absolute reference
    ]
    features = {"tags": FeatureMatrix("text", np.array([[3, 4], [0, 0], [0, 2], [1, 1], [5, 0]], np.float32),
                                      np.array([True, False, True, True, True]), "precomputed:tags.npy")}
    return Catalog("tiny", items, features=features, media_root=media)


@pytest.fixture
def encoders():
    return {"text": CountingTextEncoder(), "image_desc": ImageDescriptor(), "audio": AudioDescriptor()}


def test_masks_rows_and_warnings(catalog, encoders, tmp_path):
    calls = []
    emb = encode_catalog(catalog, encoders, EmbeddingCache(tmp_path / "cache"),
                         progress=lambda done, total, msg: calls.append((done, total)))
    assert emb.item_ids == ["all", "img", "bad", "gone", "bare"]
    assert emb.masks["text"].tolist() == [True, False, True, False, False]  # "" counts as no text
    assert emb.masks["image_desc"].tolist() == [True, True, False, False, True]
    assert emb.masks["audio"].tolist() == [True, False, True, False, False]
    for f, matrix in emb.matrices.items():
        norms = np.linalg.norm(matrix, axis=1)
        np.testing.assert_allclose(norms[emb.masks[f]], 1.0, atol=1e-5, err_msg=f)
        assert not matrix[~emb.masks[f]].any(), f
    assert len(emb.warnings) == 2
    assert any("'bad'" in w and "corrupt.png" in w for w in emb.warnings)
    assert any("'gone'" in w and "nowhere.png" in w for w in emb.warnings)
    assert emb.modality_of == {"tags": "text", "text": "text", "image_desc": "image", "audio": "audio"}
    assert emb.encoder_ids["tags"] == "precomputed:tags.npy"
    assert emb.encoder_ids["audio"] == "librosa-descriptor-v3"
    assert emb.content_hash == catalog.content_hash()
    assert calls[-1][0] == calls[-1][1] == 2 + 5 + 2  # item-fields: text 2, image 5 (2 unreadable), audio 2
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_precomputed_features_enter_normalised(catalog, encoders):
    emb = encode_catalog(catalog, encoders, None)
    np.testing.assert_allclose(emb.matrices["tags"][0], [0.6, 0.8], atol=1e-6)
    assert emb.masks["tags"].tolist() == [True, False, True, True, True]
    assert not emb.matrices["tags"][1].any()
    # an encoder for a field the catalog already has is not run: the precomputed matrix wins
    emb2 = encode_catalog(catalog, {"tags": CountingTextEncoder()}, None)
    assert emb2.encoder_ids["tags"] == "precomputed:tags.npy"


def test_descriptor_stats_are_fitted_and_shared_with_queries(catalog, encoders):
    emb = encode_catalog(catalog, encoders, None)
    assert emb.feature_names["image_desc"] == ImageDescriptor.feature_names
    assert emb.feature_names["audio"] == AudioDescriptor.feature_names
    assert set(emb.stats) == {"image_desc", "audio"}
    raw = ImageDescriptor().describe([catalog.media_path("red.png"), catalog.media_path("blue.png"),
                                      catalog.media_path(catalog.items[4].image)])
    expected = fit_stats(raw, ImageDescriptor())
    np.testing.assert_allclose(emb.stats["image_desc"]["mean"], expected["mean"], rtol=1e-5)
    # a query with the very same file lands exactly on the catalog item's row
    query = encode_inputs(encoders, emb, texts=["a red song"], images=[catalog.media_path("blue.png")],
                          audios=[catalog.media_path("high.wav")])
    assert set(query) == {"text", "image_desc", "audio"}
    np.testing.assert_allclose(query["image_desc"][0], emb.matrices["image_desc"][1], atol=1e-5)
    np.testing.assert_allclose(query["audio"][0], emb.matrices["audio"][2], atol=1e-5)
    np.testing.assert_allclose(query["text"][0], emb.matrices["text"][0], atol=1e-6)
    assert encode_inputs(encoders, emb) == {}


def test_tiny_catalogs_still_get_usable_descriptor_rows(tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (40, 40), (250, 200, 0)).save(path)
    emb = encode_catalog(Catalog("one", [Item("x", "X", image=str(path))]), {"image_desc": ImageDescriptor()})
    assert np.linalg.norm(emb.matrices["image_desc"][0]) == pytest.approx(1.0, abs=1e-5)


def test_fit_stats_matches_plain_moments_on_a_large_catalog():
    raw = np.random.default_rng(1).normal(0.3, 0.1, size=(5_000, ImageDescriptor.dim)).astype(np.float32)
    stats = fit_stats(raw, ImageDescriptor())
    np.testing.assert_allclose(stats["mean"], raw.mean(axis=0), atol=0.002)
    np.testing.assert_allclose(stats["std"], raw.std(axis=0), rtol=0.05)
    constant = fit_stats(np.full((5_000, ImageDescriptor.dim), 0.5, np.float32), ImageDescriptor())
    assert (constant["std"] >= 0.1 * ImageDescriptor.default_stats()["std"] - 1e-7).all()  # the floor


def test_saved_set_keeps_its_warnings(catalog, encoders, tmp_path):
    emb = encode_catalog(catalog, encoders, None)
    emb.save(tmp_path / "set.npz")
    loaded = EmbeddingSet.load(tmp_path / "set.npz")
    assert loaded.warnings == emb.warnings
    np.testing.assert_array_equal(loaded.stats["audio"]["std"], emb.stats["audio"]["std"])


def test_pretrained_and_named_audio_fields_side_by_side(catalog, aisfx_encoder):
    """aiSFX takes its clips at 44.1 kHz and the descriptor at 22,050 Hz; both fields come out of one pass,
    only the descriptor is named and standardised, and a query with the same file lands on the item's rows."""
    encoders = {"audio": aisfx_encoder, "audio_desc": AudioDescriptor()}
    emb = encode_catalog(catalog, encoders, None)
    assert emb.masks["audio"].tolist() == emb.masks["audio_desc"].tolist() == [True, False, True, False, False]
    assert emb.matrices["audio"].shape == (5, 512) and emb.encoder_ids["audio"] == aisfx_encoder.id
    assert set(emb.feature_names) == set(emb.stats) == {"audio_desc"}  # explanations use the named one
    assert emb.fields_of("audio") == ["audio", "audio_desc"]
    query = encode_inputs(encoders, emb, audios=[catalog.media_path("high.wav")])
    np.testing.assert_allclose(query["audio"][0], emb.matrices["audio"][2], atol=1e-5)
    np.testing.assert_allclose(query["audio_desc"][0], emb.matrices["audio_desc"][2], atol=1e-5)
    # an upload of the same file's bytes: each field decodes it at its own rate and lands on the item's rows
    upload = encode_audio_uploads(encoders, emb, [(catalog.media_path("high.wav").read_bytes(), "high.wav")])
    for f in ("audio", "audio_desc"):
        np.testing.assert_allclose(upload[f][0], emb.matrices[f][2], atol=1e-5)
    assert emb.matrices["audio"][0] @ emb.matrices["audio"][2] < 0.999  # a low and a high tone differ


def test_modalities_encode_side_by_side_as_one_at_a_time(catalog, encoders):
    """The local engine runs modalities in worker threads; progress still reaches the caller on its own
    thread (a UI draws only there), and the vectors, masks and warnings are those of one modality at a time."""
    import threading

    threads, calls = set(), []

    def progress(done: int, total: int, msg: str) -> None:
        threads.add(threading.current_thread().name)
        calls.append((done, total))

    together = encode_catalog(catalog, encoders, None, progress=progress)
    assert threads == {threading.current_thread().name}
    assert calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)
    parts = [encode_catalog(catalog, {f: enc}, None) for f, enc in encoders.items()]
    for f, part in zip(encoders, parts):
        np.testing.assert_array_equal(together.matrices[f], part.matrices[f])
        np.testing.assert_array_equal(together.masks[f], part.masks[f])
    assert together.warnings == [w for part in parts for w in part.warnings]
    assert list(together.matrices) == ["tags", *encoders]


class _OverlapText:
    """A fake text encoder that records how many of its calls overlap in time, and which threads made them."""

    id = "test/overlap@1"
    dim = 4
    modality = "text"

    def __init__(self, concurrent: bool, fail_on: str | None = None) -> None:
        import threading

        self.concurrent_batches = concurrent
        self.fail_on = fail_on
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.threads: set[str] = set()
        self.batches: list[list[str]] = []

    def encode(self, batch):
        import threading
        import time

        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
            self.batches.append(list(batch))
        try:
            time.sleep(0.02)  # long enough for a second worker to start its batch meanwhile
            if self.fail_on is not None and self.fail_on in batch:
                raise KeyError(f"cannot encode {self.fail_on!r}")  # not one of the errors retried item by item
            rows = [np.random.default_rng(list(t.encode())).standard_normal(self.dim) for t in batch]
            return np.asarray(rows, np.float32)
        finally:
            with self.lock:
                self.running -= 1


def _texts(n: int) -> Catalog:
    return Catalog("texts", [Item(f"t{i}", f"T{i}", text=f"song number {i}") for i in range(n)])


@pytest.mark.parametrize("concurrent", [True, False])
def test_batches_spread_over_the_cores_only_when_the_encoder_allows(concurrent, monkeypatch):
    """An encoder that says concurrent_batches has its batches encoded on several threads at once, with the
    same batches and vectors as one after the other; any other encoder is never called twice at a time."""
    from core.encoders import pipeline

    monkeypatch.setattr(pipeline, "usable_cores", lambda: 2)
    catalog = _texts(40)
    spread = _OverlapText(concurrent)
    together = encode_catalog(catalog, {"text": spread}, None, batch_size=4)
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 1)
    alone = _OverlapText(concurrent)
    sequential = encode_catalog(catalog, {"text": alone}, None, batch_size=4)
    np.testing.assert_array_equal(together.matrices["text"], sequential.matrices["text"])
    assert sorted(spread.batches) == sorted(alone.batches) and len(alone.batches) == 10
    assert alone.most == 1
    if concurrent:
        assert spread.most == 2 and len(spread.threads) == 2
    else:
        assert spread.most == 1


def test_a_failing_batch_raises_its_own_error(monkeypatch):
    """When one batch of several fails, its error reaches the caller (not the cancellation of the others)."""
    from core.encoders import pipeline

    monkeypatch.setattr(pipeline, "usable_cores", lambda: 2)
    with pytest.raises(KeyError, match="song number 13"):
        encode_catalog(_texts(40), {"text": _OverlapText(True, fail_on="song number 13")}, None, batch_size=4)


@pytest.mark.parametrize("cores", [1, 2])
def test_progress_messages_count_what_is_done(cores, monkeypatch):
    """The running count is over (item, field) pairs; each message names its field and that field's own count
    of encoded items, which never runs ahead of the running count and ends at the field's item count."""
    import re

    from core.encoders import pipeline

    monkeypatch.setattr(pipeline, "usable_cores", lambda: cores)
    other = _OverlapText(True)
    other.id = "test/overlap-other@1"
    calls: list[tuple[int, int, str]] = []
    encode_catalog(_texts(40), {"text": _OverlapText(True), "text_b": other}, None, batch_size=4,
                   progress=lambda done, total, msg: calls.append((done, total, msg)))
    assert {total for _, total, _ in calls} == {80}  # 40 items × 2 fields
    last: dict[str, int] = {}
    for done, _, msg in calls:
        found = re.fullmatch(r"(text|text_b): (\d+)/(\d+) items encoded", msg)
        if not found:
            continue
        field, count, of = found.group(1), int(found.group(2)), int(found.group(3))
        assert of == 40 and count <= done and count >= last.get(field, 0), (done, msg)
        last[field] = count
    assert last and max(last.values()) == 40
    assert calls[-1][0] == 80
