"""Encoders that take seconds to load are built once per test session and shared (they are stateless)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def text_encoder():
    """The bundled all-MiniLM-L6-v2 sentence encoder."""
    from core.encoders.text import SentenceTransformerEncoder

    return SentenceTransformerEncoder()


@pytest.fixture(scope="session")
def effnet_encoder():
    """The bundled EfficientNet-Lite0 image encoder."""
    from core.encoders.image_effnet import EfficientNetLite0Encoder

    return EfficientNetLite0Encoder()


def flip_byte(path, offset: int = 4096) -> None:
    """Corrupt one byte of a file in place (a tampered copy)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="session")
def aisfx_encoder(tmp_path_factory):
    """The aiSFX audio encoder from the installed aisfx package, its converted weights in a temporary folder."""
    import importlib.util

    from core.encoders.audio_aisfx import AiSfxEncoder

    if importlib.util.find_spec("aisfx") is None:
        pytest.skip("the aisfx package is not installed (pip install --no-deps aisfx==0.1.2)")

    return AiSfxEncoder(cache_dir=tmp_path_factory.mktemp("aisfx-weights"))
