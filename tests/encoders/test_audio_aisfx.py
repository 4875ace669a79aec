"""The aiSFX audio encoder: verified weights that load without running pickled code, the network's input
built as it was trained, deterministic 512-d embeddings, short clips, and like-with-like on real clips."""
from __future__ import annotations

import copy
import importlib.util
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from core.encoders import audio_aisfx
from core.encoders.audio_aisfx import (BLOCK_FRAMES, CHECKPOINT_SHA256, ENCODER_ID, AiSfxEncoder, block_starts,
                                       build_network, default_checkpoint_path, read_checkpoint,
                                       warped_mel_filters)
from core.encoders.base import Encoder
from core.errors import ChecksumError, EncoderError
from tests.encoders.conftest import flip_byte

SR = audio_aisfx.SAMPLE_RATE
needs_aisfx = pytest.mark.skipif(importlib.util.find_spec("aisfx") is None,
                                 reason="the aisfx package is not installed (pip install --no-deps aisfx==0.1.2)")


def _tone(freq: float, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _noise_bursts(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR), np.float32)
    for start in range(0, y.size - 2000, SR // 4):
        y[start:start + 2000] = rng.standard_normal(2000) * np.hanning(2000)
    return 0.3 * y


@needs_aisfx
def test_protocol_id_and_licence(aisfx_encoder):
    assert isinstance(aisfx_encoder, Encoder)
    assert aisfx_encoder.dim == 512 and aisfx_encoder.modality == "audio"
    assert aisfx_encoder.id.startswith(ENCODER_ID)  # names the checkpoint (+bf16 where the CPU runs it)
    assert "CC BY 4.0" in aisfx_encoder.note


@needs_aisfx
def test_a_tampered_checkpoint_is_refused(tmp_path):
    copy = tmp_path / "checkpoint.pth"
    shutil.copyfile(default_checkpoint_path(), copy)
    flip_byte(copy, offset=copy.stat().st_size // 2)
    with pytest.raises(ChecksumError, match="tampered"):
        AiSfxEncoder(weights=copy, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # nothing was read from it, let alone converted


class _Payload:
    """Pickles as a call that writes a marker file: what a malicious checkpoint would run on load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_a_checkpoint_with_pickled_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran.txt"
    crafted = tmp_path / "crafted.pth"
    state = {"embedding_net.conv_block1.conv1.weight": torch.zeros(64, 1, 3, 3), "extra": _Payload(marker)}
    torch.save(state, crafted)
    with pytest.raises(EncoderError, match="refused"):
        read_checkpoint(crafted)
    with pytest.raises(EncoderError, match="refused"):
        AiSfxEncoder(weights=crafted, expected_sha256=None, cache_dir=tmp_path / "cache")
    assert not marker.exists()
    torch.load(crafted, weights_only=False)  # the payload is live: an unsafe load does run it
    assert marker.read_text() == "ran"


@needs_aisfx
def test_later_loads_read_only_the_converted_file(tmp_path, monkeypatch):
    first = AiSfxEncoder(cache_dir=tmp_path)
    converted = list(tmp_path.glob("*.safetensors"))
    assert len(converted) == 1
    monkeypatch.setattr(audio_aisfx, "read_checkpoint", lambda path: pytest.fail("the pickle was read again"))
    second = AiSfxEncoder(cache_dir=tmp_path)
    clip = _noise_bursts(3.0, seed=1)
    np.testing.assert_array_equal(first.encode([clip]), second.encode([clip]))


@needs_aisfx
def test_a_foreign_converted_file_is_replaced(tmp_path):
    from safetensors.torch import save_file

    AiSfxEncoder(cache_dir=tmp_path)
    (converted,) = tmp_path.glob("*.safetensors")
    save_file({"conv_block1.conv1.weight": torch.ones(64, 1, 3, 3)}, str(converted),
              metadata={"source_sha256": "0" * 64})
    encoder = AiSfxEncoder(cache_dir=tmp_path)  # converted again from the verified checkpoint
    assert encoder.encode([_noise_bursts(3.0, seed=2)]).shape == (1, 512)
    from safetensors import safe_open

    with safe_open(str(converted), framework="pt") as f:
        assert f.metadata()["source_sha256"] == CHECKPOINT_SHA256


def test_a_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(EncoderError, match=r"pip install --no-deps aisfx==0\.1\.2"):
        default_checkpoint_path()


@needs_aisfx
def test_embeddings_are_deterministic_normalised_and_tell_sounds_apart(aisfx_encoder):
    clips = [_tone(220.0, 5.0), _noise_bursts(5.0, seed=3), _tone(3520.0, 5.0)]
    a, b = aisfx_encoder.encode(clips), aisfx_encoder.encode(clips)
    assert a.shape == (3, 512) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # alone or in a batch, a clip embeds the same (batching never mixes clips)
    np.testing.assert_allclose(aisfx_encoder.encode([clips[1]])[0], a[1], atol=1e-5)
    # the same sound at another level and another take of it stay closer than a different sound
    quieter = aisfx_encoder.encode([0.2 * clips[1], _noise_bursts(5.0, seed=4)])
    assert quieter[0] @ a[1] > 0.999
    assert quieter[1] @ a[1] > a[0] @ a[1]


@needs_aisfx
def test_short_clips_are_padded(aisfx_encoder, tmp_path):
    clip = _noise_bursts(0.1, seed=5)[: int(0.1 * SR)] + _tone(440.0, 0.1)
    path = tmp_path / "short.wav"
    sf.write(path, clip, SR, subtype="FLOAT")
    out = aisfx_encoder.encode([clip, path, path.read_bytes()])
    assert out.shape == (3, 512) and np.isfinite(out).all()
    np.testing.assert_allclose(out[1], out[0], atol=1e-5)
    np.testing.assert_allclose(out[2], out[0], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


@needs_aisfx
def test_folded_network_matches_the_reference_network(tmp_path):
    encoder = AiSfxEncoder(cache_dir=tmp_path, precision="fp32")
    reference = build_network()
    reference.load_state_dict(audio_aisfx.embedding_state(read_checkpoint(default_checkpoint_path())),
                              strict=False)
    x = encoder.blocks(_noise_bursts(4.0, seed=6))  # (2, 100, 96)
    assert tuple(x.shape) == (2, BLOCK_FRAMES, audio_aisfx.N_MELS)
    with torch.inference_mode():
        np.testing.assert_allclose(encoder.network(x).numpy(), reference.eval()(x).numpy(), rtol=1e-4, atol=1e-4)


def test_the_front_end_is_time_major_and_unit_sum():
    filters = warped_mel_filters()
    assert filters.shape == (96, 1025)
    nonempty = filters.sum(axis=1) > 0
    assert nonempty.mean() > 0.95
    np.testing.assert_allclose(filters.sum(axis=1)[nonempty], 1.0, rtol=1e-5)
    assert block_starts(50, 8) == [0]  # short: one (padded) block
    assert block_starts(216, 8) == [0, 116]  # a 5-s clip: two blocks covering all of it
    assert len(block_starts(10_000, 8)) == 8 and block_starts(10_000, 8)[-1] == 10_000 - BLOCK_FRAMES


@needs_aisfx
@pytest.mark.shared_data
def test_like_with_like_on_real_clips(aisfx_encoder, shared_data):
    files = sorted((shared_data / "sonic-pi-samples").glob("*.flac"))
    if len(files) < 50:
        pytest.skip(f"expected the 166 sonic-pi clips in {shared_data / 'sonic-pi-samples'}")
    # one-shot samples are often shorter than the catalog minimum: the encoder itself pads them; two blocks
    # of the long ambient clips keep the test fast
    encoder = copy.copy(aisfx_encoder)
    encoder.max_blocks, encoder.min_seconds = 2, 0.005
    z = encoder.encode(files)
    labels = np.array([f.name.split("_")[0] for f in files])
    sims = z @ z.T
    np.fill_diagonal(sims, -np.inf)
    accuracy = float(np.mean(labels[sims.argmax(axis=1)] == labels))
    _, counts = np.unique(labels, return_counts=True)
    chance = float(np.sum(counts / len(labels) * (counts - 1) / (len(labels) - 1)))
    print(f"aiSFX leave-one-out 1-NN category accuracy {accuracy:.3f} on {len(files)} clips, "
          f"{len(counts)} categories; chance {chance:.3f}")
    assert accuracy >= 5 * chance
