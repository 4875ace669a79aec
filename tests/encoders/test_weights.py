"""sha256 checks: known digests pass, a single flipped byte is refused with a message saying what to do."""
from __future__ import annotations

import hashlib

import pytest

from core.encoders.weights import find_weights_file, hub_offline, sha256_file, verify_sha256
from core.errors import ChecksumError, EncoderError
from tests.encoders.conftest import flip_byte


def test_sha256_file_matches_known_digest(tmp_path):
    path = tmp_path / "abc.bin"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "big.bin"
    payload = bytes(range(256)) * 20_000  # several read chunks
    big.write_bytes(payload)
    assert sha256_file(big) == hashlib.sha256(payload).hexdigest()


def test_verify_refuses_a_tampered_copy(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(256)) * 40)
    good = sha256_file(path)
    assert verify_sha256(path, good.upper(), "the package x") == good
    flip_byte(path, 100)
    with pytest.raises(ChecksumError) as info:
        verify_sha256(path, good, "the package some-weights")
    message = str(info.value)
    assert str(path) in message and good in message and "reinstall the package some-weights" in message
    assert "tampered" in message


def test_verify_names_an_unreadable_file(tmp_path):
    with pytest.raises(EncoderError, match="cannot read the weights file"):
        verify_sha256(tmp_path / "absent.bin", "0" * 64, "the package x")


def test_hub_offline_reads_the_environment(monkeypatch):
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not hub_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_offline()


def test_find_weights_file_prefers_safetensors(tmp_path):
    assert find_weights_file(tmp_path) is None
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    assert find_weights_file(tmp_path).name == "pytorch_model.bin"
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert find_weights_file(tmp_path).name == "model.safetensors"
