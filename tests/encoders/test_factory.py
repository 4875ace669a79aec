"""Encoder configuration from the environment, the offline default set, and CLIP's fallback rules."""
from __future__ import annotations

import pytest

from core.encoders.factory import (EncoderConfig, build_audio_encoders, build_encoders, build_image_encoders,
                                   describe_encoders)
from core.errors import EncoderError


def test_config_reads_the_environment(monkeypatch):
    for var in ("PRISM_TEXT_MODEL", "PRISM_IMAGE_BACKEND", "PRISM_CLIP_ARCH", "PRISM_CLIP_WEIGHTS",
                "PRISM_AUDIO_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    assert EncoderConfig.from_env() == EncoderConfig()
    monkeypatch.setenv("PRISM_TEXT_MODEL", "/models/minilm")
    monkeypatch.setenv("PRISM_IMAGE_BACKEND", "EfficientNet")
    monkeypatch.setenv("PRISM_CLIP_ARCH", "ViT-B-16")
    monkeypatch.setenv("PRISM_CLIP_WEIGHTS", "laion2b_s34b_b79k")
    assert EncoderConfig.from_env() == EncoderConfig("/models/minilm", "efficientnet", "ViT-B-16", "laion2b_s34b_b79k")
    monkeypatch.setenv("PRISM_AUDIO_BACKEND", "Descriptor")
    assert EncoderConfig.from_env().audio_backend == "descriptor"


def test_config_refuses_what_cannot_work():
    with pytest.raises(EncoderError, match="image backend 'resnet' is unknown"):
        EncoderConfig(image_backend="resnet")
    with pytest.raises(EncoderError, match="PRISM_CLIP_WEIGHTS"):
        EncoderConfig(image_backend="clip")
    with pytest.raises(EncoderError, match="audio backend 'vggish' is unknown"):
        EncoderConfig(audio_backend="vggish")


def test_without_aisfx_audio_falls_back_to_the_descriptor(monkeypatch):
    from core.encoders import audio_aisfx

    def absent():
        raise EncoderError("the pretrained audio encoder needs the package aisfx")

    monkeypatch.setattr(audio_aisfx, "default_checkpoint_path", absent)
    audio = build_audio_encoders(EncoderConfig())
    assert list(audio) == ["audio"] and audio["audio"].id == "librosa-descriptor-v3"
    assert "aisfx" in audio["audio"].note  # the Home page says why
    with pytest.raises(EncoderError, match="aisfx"):
        build_audio_encoders(EncoderConfig(audio_backend="aisfx"))
    assert list(build_audio_encoders(EncoderConfig(audio_backend="descriptor"))) == ["audio"]


def test_offline_default_set(monkeypatch, tmp_path):
    for var in ("PRISM_TEXT_MODEL", "PRISM_IMAGE_BACKEND", "PRISM_CLIP_ARCH", "PRISM_CLIP_WEIGHTS",
                "PRISM_AUDIO_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PRISM_TEXT_PRECISION", "fp32")
    monkeypatch.setenv("PRISM_WEIGHTS_DIR", str(tmp_path))
    encoders = build_encoders()
    assert list(encoders) == ["text", "image", "image_desc", "audio", "audio_desc"]
    rows = {r["field"]: r for r in describe_encoders(encoders)}
    assert rows["text"]["id"] == "sentence-transformers/all-MiniLM-L6-v2@53aa5117" and rows["text"]["dim"] == 384
    assert rows["image"]["id"] == "timm/tf_efficientnet_lite0@57934424" and rows["image"]["dim"] == 1280
    assert rows["image_desc"]["modality"] == "image" and rows["audio"]["modality"] == "audio"
    assert rows["audio"]["id"].startswith("aisfx/X-Sequential-CE@499ea759") and rows["audio"]["dim"] == 512
    assert rows["audio_desc"]["id"] == "librosa-descriptor-v3" and rows["audio_desc"]["modality"] == "audio"
    assert all(r["backend"] and r["note"] for r in rows.values())
    assert "offline" in rows["image"]["note"]


def test_auto_falls_back_to_efficientnet_when_clip_does_not_load(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    images = build_image_encoders(EncoderConfig(clip_pretrained="laion2b_s34b_b79k"))
    assert list(images) == ["image"] and "efficientnet" in images["image"].id
    assert "laion2b_s34b_b79k" in images["image"].note  # the UI can say why CLIP is not active
    with pytest.raises(EncoderError, match="laion2b_s34b_b79k"):
        build_image_encoders(EncoderConfig(image_backend="clip", clip_pretrained="laion2b_s34b_b79k"))


@pytest.mark.slow  # writes and reads a 600 MB weights file
def test_clip_backend_adds_its_text_tower(tmp_path):
    pytest.importorskip("open_clip")
    import open_clip
    import torch

    # a local weights file (random ViT-B-32 weights saved once) loads like real weights would
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    path = tmp_path / "clip.pt"
    torch.save(model.state_dict(), path)
    images = build_image_encoders(EncoderConfig(image_backend="clip", clip_pretrained=str(path)))
    assert set(images) == {"image", "clip_text"}
    assert images["image"].id.startswith("open_clip/ViT-B-32@") and images["clip_text"].dim == 512
    assert "random" not in images["image"].id


def test_preloading_imports_the_encoder_modules_and_skips_what_is_missing(monkeypatch):
    import sys

    from core.encoders import factory

    monkeypatch.setattr(factory, "PRELOAD_MODULES", ("no_such_module_for_prism", "core.encoders.audio"))
    thread = factory.preload_encoder_libraries(factory.EncoderConfig())
    thread.join(timeout=120)
    assert not thread.is_alive() and thread.daemon
    assert "core.encoders.audio" in sys.modules and "no_such_module_for_prism" not in sys.modules
