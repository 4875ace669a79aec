"""The bundled sentence encoder: verified weights, 384-d unit vectors, meaning-aware, and clear refusals."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from core.encoders.base import Encoder
from core.encoders.text import DEFAULT_SHA256, SentenceTransformerEncoder, default_model_path
from core.errors import ChecksumError, EncoderError
from tests.encoders.conftest import flip_byte


def test_default_encoder_is_named_by_its_weights(text_encoder):
    assert isinstance(text_encoder, Encoder)
    suffix = "+bf16" if text_encoder.precision == "bf16" else ""  # bfloat16 where the CPU runs it natively
    assert text_encoder.id == "sentence-transformers/all-MiniLM-L6-v2@53aa5117" + suffix
    assert text_encoder.dim == 384 and text_encoder.modality == "text"


def test_vectors_are_unit_deterministic_and_meaningful(text_encoder):
    texts = ["a calm piano piece for a rainy evening", "gentle relaxing piano music",
             "aggressive industrial techno with distorted drums"]
    a = text_encoder.encode(texts)
    b = text_encoder.encode(list(reversed(texts)))[::-1]
    assert a.shape == (3, 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)  # order and batching do not change a text's vector
    sims = a @ a.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # the two piano texts are far closer than piano vs techno
    assert text_encoder.encode([]).shape == (0, 384)


def test_bfloat16_vectors_match_float32():
    texts = ["a calm piano piece for a rainy evening", "aggressive industrial techno with distorted drums",
             "bright brass fanfare", "lo-fi beats to study to, warm and dusty"]
    fp32 = SentenceTransformerEncoder(precision="fp32")
    bf16 = SentenceTransformerEncoder(precision="bf16")
    assert fp32.id.endswith("@53aa5117") and bf16.id == fp32.id + "+bf16"  # cached vectors never mix
    a, b = fp32.encode(texts), bf16.encode(texts)
    assert b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.999
    with pytest.raises(EncoderError, match="PRISM_TEXT_PRECISION"):
        SentenceTransformerEncoder(precision="fp16")


def test_tampered_copy_is_refused(tmp_path):
    copy = tmp_path / "minilm"
    shutil.copytree(default_model_path(), copy)
    flip_byte(copy / "model.safetensors", 1_000_000)
    with pytest.raises(ChecksumError, match="expected " + DEFAULT_SHA256):
        SentenceTransformerEncoder(str(copy), expected_sha256=DEFAULT_SHA256)


def test_folder_without_weights_is_refused(tmp_path):
    with pytest.raises(EncoderError, match="no model.safetensors"):
        SentenceTransformerEncoder(str(tmp_path))


def test_hub_name_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(EncoderError, match="offline"):
        SentenceTransformerEncoder("sentence-transformers/some-model-not-in-the-cache")
    assert time.perf_counter() - start < 5.0


def test_the_default_and_a_local_folder_never_reach_the_hub(monkeypatch, tmp_path):
    """The offline default (the bundled MiniLM) and a local folder load and encode with every network
    connection refused and the hub's download function replaced by one that fails the test."""
    import socket

    import huggingface_hub

    def no_download(*args, **kwargs):
        raise AssertionError(f"the model hub was asked for {args} {kwargs}")

    def no_connection(*args, **kwargs):
        raise AssertionError(f"a network connection was opened: {args}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_download)
    monkeypatch.setattr(socket.socket, "connect", no_connection)
    monkeypatch.setattr(socket, "create_connection", no_connection)
    folder = tmp_path / "minilm"
    shutil.copytree(default_model_path(), folder)
    for model in (None, str(folder)):
        encoder = SentenceTransformerEncoder(model, precision="fp32")
        vectors = encoder.encode(["a quiet piano piece", "loud guitars"])
        assert vectors.shape[0] == 2 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_a_hub_name_offline_asks_the_local_cache_only(monkeypatch, tmp_path):
    import huggingface_hub

    asked = []

    def cache_only(name, **kwargs):
        asked.append((name, kwargs))
        raise FileNotFoundError("not in the cache")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cache_only)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderError, match="offline"):
        SentenceTransformerEncoder("someone/some-model")
    assert asked == [("someone/some-model", {"local_files_only": True})]
