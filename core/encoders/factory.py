"""Which encoders run, from one small config: builds them keyed by field and describes them for the UI.

Fields: "text" (sentence embedding), "image" (CLIP or EfficientNet-Lite0), "image_desc" (named colour and
texture descriptor), "audio" (aiSFX embedding; the named audio descriptor when aiSFX is not installed),
"audio_desc" (named audio descriptor, beside aiSFX), and "clip_text" (CLIP's text tower, for text → image
queries) when CLIP is active.
"""
from __future__ import annotations

import importlib
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from core.encoders.base import Encoder
from core.errors import EncoderError

log = logging.getLogger(__name__)

IMAGE_BACKENDS = ("auto", "clip", "efficientnet")
AUDIO_BACKENDS = ("auto", "aisfx", "descriptor")


@dataclass
class EncoderConfig:
    """What to encode with; every field has an offline default."""

    text_model: str | None = None  # None = bundled all-MiniLM-L6-v2; or a local folder / hub name (online)
    image_backend: str = "auto"  # "auto" = CLIP when clip_pretrained loads, else EfficientNet-Lite0
    clip_arch: str = "ViT-B-32"  # open_clip architecture name
    clip_pretrained: str | None = None  # a weights file or an open_clip tag; None = no CLIP
    text_precision: str = "auto"  # "auto" = bfloat16 on CPUs with native bf16, else float32; or "fp32"/"bf16"
    audio_backend: str = "auto"  # "auto" = aiSFX when its package is installed, else the named descriptor only

    def __post_init__(self) -> None:
        if self.image_backend not in IMAGE_BACKENDS:
            raise EncoderError(f"image backend {self.image_backend!r} is unknown; use one of {IMAGE_BACKENDS} "
                               "(PRISM_IMAGE_BACKEND)")
        if self.image_backend == "clip" and not self.clip_pretrained:
            raise EncoderError("the CLIP image backend needs weights: set PRISM_CLIP_WEIGHTS to a weights file "
                               "or an open_clip pretrained tag, or use PRISM_IMAGE_BACKEND=auto")
        if self.audio_backend not in AUDIO_BACKENDS:
            raise EncoderError(f"audio backend {self.audio_backend!r} is unknown; use one of {AUDIO_BACKENDS} "
                               "(PRISM_AUDIO_BACKEND)")

    @classmethod
    def from_env(cls) -> EncoderConfig:
        """Defaults overridden by PRISM_TEXT_MODEL, PRISM_TEXT_PRECISION, PRISM_IMAGE_BACKEND, PRISM_CLIP_ARCH,
        PRISM_CLIP_WEIGHTS, PRISM_AUDIO_BACKEND."""
        env = os.environ
        return cls(text_model=env.get("PRISM_TEXT_MODEL") or None,
                   image_backend=(env.get("PRISM_IMAGE_BACKEND") or "auto").strip().lower(),
                   clip_arch=env.get("PRISM_CLIP_ARCH") or "ViT-B-32",
                   clip_pretrained=env.get("PRISM_CLIP_WEIGHTS") or None,
                   text_precision=(env.get("PRISM_TEXT_PRECISION") or "auto").strip().lower(),
                   audio_backend=(env.get("PRISM_AUDIO_BACKEND") or "auto").strip().lower())


def build_image_encoders(config: EncoderConfig) -> dict[str, Encoder]:
    """The "image" encoder (plus "clip_text" when it is CLIP) for `config`."""
    from core.encoders.image_effnet import EfficientNetLite0Encoder

    if config.image_backend in ("auto", "clip") and config.clip_pretrained:
        from core.encoders.image_clip import OpenClipImageEncoder

        try:
            clip = OpenClipImageEncoder(config.clip_arch, config.clip_pretrained)
            return {"image": clip, "clip_text": clip.text_encoder()}
        except EncoderError as e:
            if config.image_backend == "clip":
                raise
            log.warning("CLIP is not available (%s); using EfficientNet-Lite0", e)
            effnet = EfficientNetLite0Encoder()
            effnet.note = f"CLIP weights {config.clip_pretrained!r} did not load ({e}); {effnet.note}"
            return {"image": effnet}
    return {"image": EfficientNetLite0Encoder()}


def build_audio_encoders(config: EncoderConfig) -> dict[str, Encoder]:
    """"audio" (aiSFX) + "audio_desc" (named descriptor); only "audio" = the descriptor without aiSFX."""
    from core.encoders.audio import AudioDescriptor

    if config.audio_backend in ("auto", "aisfx"):
        from core.encoders.audio_aisfx import AiSfxEncoder

        try:
            return {"audio": AiSfxEncoder(), "audio_desc": AudioDescriptor()}
        except EncoderError as e:
            if config.audio_backend == "aisfx":
                raise
            log.warning("aiSFX is not available (%s); audio uses the named descriptor only", e)
            descriptor = AudioDescriptor()
            descriptor.note = f"aiSFX did not load ({e}); {descriptor.note}"
            return {"audio": descriptor}
    return {"audio": AudioDescriptor()}


# What the encoders import: about nine tenths of loading them on a first start (torch and
# sentence-transformers alone take seconds), and the same modules whatever the weights.
PRELOAD_MODULES = ("torch", "sentence_transformers", "librosa", "safetensors.torch", "core.encoders.text",
                   "core.encoders.image_descriptor", "core.encoders.audio", "core.encoders.audio_aisfx")


def preload_encoder_libraries(config: EncoderConfig | None = None) -> threading.Thread:
    """Start importing what the encoders of `config` need in a background thread, and return the thread.

    A first start calls it before it builds the demo catalog, so that the imports overlap the rendering
    instead of following it, and `build_encoders` afterwards mostly reads weights. A module that does not
    import is skipped here: `build_encoders` reports it as usual.
    """
    config = config or EncoderConfig.from_env()
    image = ("open_clip",) if config.image_backend in ("auto", "clip") and config.clip_pretrained else ()
    modules = PRELOAD_MODULES + image + ("timm", "core.encoders.image_effnet")

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as e:  # noqa: BLE001 - reported by build_encoders, which imports it again
                log.debug("preloading %s failed (%s)", name, e)

    thread = threading.Thread(target=run, name="prism-preload-encoders", daemon=True)
    thread.start()
    return thread


def build_encoders(config: EncoderConfig | None = None) -> dict[str, Encoder]:
    """The encoders of `config` keyed by field: text, image, image_desc, audio, audio_desc (+ clip_text with
    CLIP)."""
    from core.encoders.image_descriptor import ImageDescriptor
    from core.encoders.text import SentenceTransformerEncoder

    config = config or EncoderConfig.from_env()
    encoders: dict[str, Encoder] = {"text": SentenceTransformerEncoder(config.text_model,
                                                                            precision=config.text_precision)}
    images = build_image_encoders(config)
    encoders["image"] = images["image"]
    encoders["image_desc"] = ImageDescriptor()
    encoders.update(build_audio_encoders(config))
    if "clip_text" in images:
        encoders["clip_text"] = images["clip_text"]
    return encoders


def build_field_encoder(field: str, config: EncoderConfig | None = None, device: str = "cpu") -> Encoder:
    """The encoder of one field of `config` (what build_encoders keys it by), on `device` where it has weights.

    Used where each field is encoded in its own process (a Ray actor), so only its weights are loaded."""
    config = config or EncoderConfig.from_env()
    if field == "text":
        from core.encoders.text import SentenceTransformerEncoder

        return SentenceTransformerEncoder(config.text_model, device=device, precision=config.text_precision)
    if field == "image" and device != "cpu":
        if config.image_backend in ("auto", "clip") and config.clip_pretrained:
            from core.encoders.image_clip import OpenClipImageEncoder

            return OpenClipImageEncoder(config.clip_arch, config.clip_pretrained, device=device)
        from core.encoders.image_effnet import EfficientNetLite0Encoder

        return EfficientNetLite0Encoder(device=device)
    if field in ("image", "clip_text"):
        encoder = build_image_encoders(config).get(field)
        if encoder is None:
            raise EncoderError(f"field {field!r} needs the CLIP backend; set PRISM_CLIP_WEIGHTS")
        return encoder
    if field == "image_desc":
        from core.encoders.image_descriptor import ImageDescriptor

        return ImageDescriptor()
    if field == "audio":
        from core.encoders.audio import AudioDescriptor

        return AudioDescriptor()
    raise EncoderError(f"no encoder is configured for field {field!r}; fields are text, image, image_desc, "
                       "audio and clip_text")


def describe_encoders(encoders: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per field for the UI: field, modality, id, dim, backend and a note on where the weights are from."""
    return [{"field": f, "modality": enc.modality, "id": enc.id, "dim": int(enc.dim),
             "backend": getattr(enc, "backend", type(enc).__name__), "note": getattr(enc, "note", "")}
            for f, enc in encoders.items()]
