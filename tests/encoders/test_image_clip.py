"""CLIP towers with random weights: shapes, unit norms and determinism only; real weights are never fetched."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("open_clip")

from core.encoders.image_clip import OpenClipImageEncoder  # noqa: E402
from core.errors import EncoderError  # noqa: E402


@pytest.fixture(scope="module")
def clip() -> OpenClipImageEncoder:
    return OpenClipImageEncoder("ViT-B-32", pretrained=None)


def test_image_and_text_towers_share_one_space(clip):
    assert clip.id == "open_clip/ViT-B-32@random-init" and clip.dim == 512
    images = [Image.new("RGB", (200, 120), (200, 30, 30)), Image.new("RGB", (64, 64), (20, 40, 220))]
    a = clip.encode(images)
    assert a.shape == (2, 512) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(clip.encode(images[:1]), a[:1], atol=1e-5)
    text = clip.text_encoder()
    assert text.clip is clip.clip and text.dim == clip.dim and text.modality == "text"
    assert text.id == clip.id + "#text"
    t = text.encode(["a red cover", "a blue cover", ""])
    assert t.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow  # builds a second ViT-B-32
def test_random_init_is_seeded(clip):
    # a second build must give the same random weights, so embeddings are reproducible in tests
    a = clip.text_encoder().encode(["same"])
    b = OpenClipImageEncoder("ViT-B-32", pretrained=None).text_encoder().encode(["same"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_unknown_tag_and_architecture_are_refused():
    with pytest.raises(EncoderError, match="neither a file nor a pretrained tag"):
        OpenClipImageEncoder("ViT-B-32", pretrained="no-such-tag")
    with pytest.raises(EncoderError, match="unknown CLIP architecture"):
        OpenClipImageEncoder("ViT-Nonexistent", pretrained=None)


def test_uncached_tag_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(EncoderError, match="offline"):
        OpenClipImageEncoder("ViT-B-32", pretrained="laion2b_s34b_b79k")
    assert time.perf_counter() - start < 10.0
