"""CLIP image and text towers (open_clip): images and text in one space, so a text query can find covers.

Weights come from a local file or an open_clip pretrained tag resolved through the Hugging Face cache; None
builds random weights (tests only). Both encoders share one model.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.encoders.base import l2_normalise
from core.encoders.weights import hub_offline, sha256_file
from core.errors import EncoderError
from core.catalog.media import load_image

DEFAULT_ARCH = "ViT-B-32"
RANDOM_INIT = "random-init"
RANDOM_SEED = 0  # random weights are seeded, so tests see the same vectors every run


class OpenClipModel:
    """One loaded open_clip model with its image preprocessing and tokenizer, shared by both towers."""

    def __init__(self, arch: str = DEFAULT_ARCH, pretrained: str | None = None, device: str = "cpu") -> None:
        try:
            import open_clip
            import torch
        except ImportError as e:
            raise EncoderError("CLIP needs the package open_clip_torch; `pip install open_clip_torch`, "
                               "or use the EfficientNet image backend") from e
        if arch not in open_clip.list_models():
            raise EncoderError(f"unknown CLIP architecture {arch!r}; open_clip knows e.g. "
                               f"{', '.join(open_clip.list_models()[:12])}, …")
        self.arch, self.device = arch, device
        if pretrained is None:
            weights_name, self.note = RANDOM_INIT, "random weights: for tests only, not for recommendations"
        elif Path(pretrained).expanduser().is_file():
            path = Path(pretrained).expanduser().resolve()
            weights_name, self.note = sha256_file(path)[:8], f"weights file {path}"
            pretrained = str(path)
        else:
            tags = open_clip.list_pretrained_tags_by_model(arch)
            if pretrained not in tags:
                raise EncoderError(f"CLIP weights {pretrained!r} are neither a file nor a pretrained tag of {arch}; "
                                   f"its tags are {tags}")
            weights_name = pretrained
            self.note = f"pretrained tag {pretrained!r} from the Hugging Face cache"
        self.weights = weights_name
        try:
            # fork_rng: seeding random init must not disturb the caller's torch random state
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_SEED)
                model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained,
                                                                             device=device)
        except Exception as e:
            hint = ("the hub is offline (HF_HUB_OFFLINE=1) and the weights are not in the Hugging Face cache; "
                    "download them once online or point PRISM_CLIP_WEIGHTS at a local weights file"
                    if hub_offline() else "check the tag, the file and the connection")
            raise EncoderError(f"cannot load CLIP {arch} weights {pretrained!r} ({type(e).__name__}: {e}); "
                               f"{hint}") from e
        self.model = model.eval()
        self.preprocess = preprocess
        try:
            self.tokenizer = open_clip.get_tokenizer(arch)
        except Exception as e:
            raise EncoderError(f"cannot load the tokenizer of CLIP {arch} ({type(e).__name__}: {e})") from e
        self.dim = int(open_clip.get_model_config(arch)["embed_dim"])
        self.id = f"open_clip/{arch}@{weights_name}"
        self.lock = threading.Lock()  # one forward pass at a time: torch already uses every core given


class OpenClipImageEncoder:
    """Image → L2-normalised CLIP image embedding."""

    modality = "image"
    backend = "CLIP (open_clip)"

    def __init__(self, arch: str = DEFAULT_ARCH, pretrained: str | None = None, device: str = "cpu",
                 batch_size: int = 32, model: OpenClipModel | None = None) -> None:
        self.clip = model or OpenClipModel(arch, pretrained, device)
        self.id, self.dim, self.note = self.clip.id, self.clip.dim, self.clip.note
        self.batch_size = batch_size

    def text_encoder(self) -> OpenClipTextEncoder:
        """The matching text tower, sharing this encoder's model."""
        return OpenClipTextEncoder(self.clip)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """(N, dim) float32 L2-normalised embeddings of PIL images, paths or bytes."""
        import torch

        batch = list(batch)
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start:start + self.batch_size]
            images = [img if hasattr(img, "convert") else load_image(img) for img in chunk]
            x = torch.stack([self.clip.preprocess(img.convert("RGB")) for img in images]).to(self.clip.device)
            with self.clip.lock, torch.inference_mode():
                out.append(self.clip.model.encode_image(x).float().cpu().numpy())  # (B, dim)
        return l2_normalise(np.concatenate(out))


class OpenClipTextEncoder:
    """Text → L2-normalised CLIP text embedding, in the same space as OpenClipImageEncoder's images."""

    modality = "text"
    backend = "CLIP text tower (open_clip)"

    def __init__(self, model: OpenClipModel, batch_size: int = 64) -> None:
        self.clip = model
        self.id = f"{model.id}#text"  # same weights, other tower: keeps the two apart in the cache
        self.dim, self.note = model.dim, model.note
        self.batch_size = batch_size

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        """(N, dim) float32 L2-normalised embeddings of the given strings."""
        import torch

        texts = [str(t) for t in batch]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.clip.tokenizer(texts[start:start + self.batch_size]).to(self.clip.device)
            with self.clip.lock, torch.inference_mode():
                out.append(self.clip.model.encode_text(tokens).float().cpu().numpy())  # (B, dim)
        return l2_normalise(np.concatenate(out))
