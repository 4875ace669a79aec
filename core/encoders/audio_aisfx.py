"""aiSFX audio embeddings (512-d, a CNN pre-trained on sound-effects libraries; Ma & Lerch, ISMIR 2022) from
the checkpoint bundled in the `aisfx` PyPI wheel: the default audio embedding field.

Only the checkpoint and the small network definition are taken from the package; its input is built here, the
way the network was trained on it (the package's own librosa path feeds it transposed, its Essentia path is
AGPL): a 44.1 kHz clip, peak-normalised, 96 HTK-mel power bands of a 2048/1024 STFT, log10(1e4·x + 1) scaled
by the training maximum, cut into blocks of 100 frames (≈ 2.3 s). Each block is one forward pass; a clip's
embedding is the mean over its blocks. Clips shorter than one block are padded with silence.

The checkpoint is a pickle: it is checked against its sha256, read once with `torch.load(weights_only=True)`
and an allow-list of exactly the numpy globals it holds, and converted to safetensors in a cache folder; later
loads read only the verified safetensors file. Nothing in either file is ever executed.

Weights © 2022 A. B. Ma and A. Lerch, licensed CC BY 4.0 (the licence file of the aisfx wheel).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from core.encoders.base import l2_normalise
from core.encoders.weights import sha256_file, verify_sha256
from core.errors import ChecksumError, EncoderError
from core.catalog.media import load_audio, pad_short_clip

log = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "aisfx==0.1.2"  # PyPI package that bundles the checkpoint (install with --no-deps)
CHECKPOINT_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"
ENCODER_ID = "aisfx/X-Sequential-CE@499ea759"
LICENCE = "aiSFX weights © 2022 A. B. Ma and A. Lerch, CC BY 4.0"

SAMPLE_RATE = 44_100  # Hz, the rate the network was trained at
N_FFT = 2048  # STFT frame (≈ 46 ms)
HOP = 1024  # ≈ 23 ms between frames
N_MELS = 96  # HTK mel bands over 0–22,050 Hz
BLOCK_FRAMES = 100  # frames per network input (≈ 2.3 s)
BLOCK_SAMPLES = (BLOCK_FRAMES - 1) * HOP  # shortest clip that fills one block (centred frames)
SPEC_MAX = 9.457798957824707  # the package's min-max scale: max of log10(1e4·x + 1) over its training data
LOG_SCALE = 1e4  # log10(LOG_SCALE · power + 1), the training compression


def default_cache_dir() -> Path:
    """Where the converted safetensors weights are kept ($PRISM_WEIGHTS_DIR, else <data dir>/weights)."""
    from core.store.paths import data_dir

    return Path(os.environ.get("PRISM_WEIGHTS_DIR") or data_dir() / "weights")


def default_checkpoint_path() -> Path:
    """The checkpoint bundled in the aisfx package (found without importing it: its imports need old pins)."""
    import importlib.util

    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError(f"the pretrained audio encoder needs the package aisfx; "
                           f"`pip install --no-deps {WEIGHTS_PACKAGE}` (its pins conflict with Prism's, and only "
                           "its bundled weights are used)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "checkpoint.pth"
    if not path.is_file():
        raise EncoderError(f"{path} is missing from the aisfx package; `pip install --force-reinstall --no-deps "
                           f"{WEIGHTS_PACKAGE}`")
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The tensors of an aiSFX checkpoint, read without executing pickled code.

    `weights_only=True` refuses every global outside torch's tensor types and this allow-list: the numpy
    scalar, dtype (and its int64 class) and codec the checkpoint's dataset table holds.
    """
    import codecs

    import torch

    allowed = [(np._core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Int64DType,
               codecs.encode]
    try:
        with torch.serialization.safe_globals(allowed):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise EncoderError(f"{path}: refused or unreadable as an aiSFX checkpoint ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:300]}); reinstall {WEIGHTS_PACKAGE}") from e
    state = loaded[0] if isinstance(loaded, tuple) else loaded  # the package saves (state_dict, dataset table)
    if not isinstance(state, dict):
        raise EncoderError(f"{path} holds a {type(state).__name__}, not a state dict; it is not an aiSFX checkpoint")
    return state


def embedding_state(state: dict[str, Any]) -> dict[str, Any]:
    """The embedding network's tensors (the classifier heads dropped), keyed as in `EmbeddingNet`."""
    prefix = "embedding_net."
    out = {k[len(prefix):]: v.contiguous() for k, v in state.items()
           if k.startswith(prefix) and not k.endswith("num_batches_tracked")}
    if not out:
        raise EncoderError("the checkpoint has no embedding_net tensors; it is not an aiSFX checkpoint")
    return out


def converted_weights(checkpoint: Path, digest: str, cache_dir: Path) -> Path:
    """The safetensors copy of a verified checkpoint's embedding network, converting it on first use."""
    from safetensors.torch import save_file

    target = cache_dir / f"aisfx-{digest[:16]}.safetensors"
    if target.is_file():
        return target
    tensors = embedding_state(read_checkpoint(checkpoint))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata={"source_sha256": digest, "source": WEIGHTS_PACKAGE})
    tmp.replace(target)  # atomic: a concurrent reader sees the whole file or none
    log.info("converted the aiSFX checkpoint to %s", target)
    return target


def load_converted(path: Path, digest: str) -> dict[str, Any]:
    """Tensors of a converted file, refused when it was not made from the checkpoint with sha256 `digest`."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("source_sha256") != digest:
                raise ChecksumError(f"{path} was not converted from the checkpoint with sha256 {digest}")
            return {k: f.get_tensor(k) for k in f.keys()}
    except ChecksumError:
        raise
    except Exception as e:
        raise EncoderError(f"{path}: unreadable converted weights ({type(e).__name__}: {e}); delete it to "
                           "convert the checkpoint again") from e


def build_network() -> Any:
    """The aiSFX embedding network: four VGG-style blocks (64–512 channels), mean over mel bands, max over time."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class ConvBlock(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False)
            self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, padding=1, bias=False)
            self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

        def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
            x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
            return F.max_pool2d(x, kernel_size=pool) if pool > 1 else x

    class EmbeddingNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_block1, self.conv_block2 = ConvBlock(1, 64), ConvBlock(64, 128)
            self.conv_block3, self.conv_block4 = ConvBlock(128, 256), ConvBlock(256, 512)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.unsqueeze(1)  # (B, 1, T=100, F=96): time first, as trained
            x = self.conv_block3(self.conv_block2(self.conv_block1(x, 2), 2), 2)  # (B, 256, 12, 12)
            x = self.conv_block4(x, 1)  # (B, 512, 12, 12)
            return x.mean(dim=3).amax(dim=2)  # (B, 512): mean over mel bands, max over time

    return EmbeddingNet()


def warped_mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, 1 + n_fft/2) HTK-mel triangles over 0–sr/2, drawn on the mel axis, each summing to 1.

    The training front end's filter bank (triangles linear in mel, "warping" weighting, unit-sum bands);
    librosa's are linear in Hz between the same edges, which shifts the lowest bands slightly.
    """
    def mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    bins = mel(np.linspace(0.0, sr / 2, 1 + n_fft // 2))  # (K,) each FFT bin on the mel axis
    edges = np.linspace(0.0, mel(np.asarray(sr / 2)), n_mels + 2)  # (M + 2,)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))  # (M, K)
    sums = tri.sum(axis=1, keepdims=True)
    return (tri / np.where(sums > 0, sums, 1.0)).astype(np.float32)


def fold_batch_norm(net: Any, dtype: Any) -> list[tuple[Any, Any]]:
    """(weight, bias) of each convolution with its eval-mode batch norm folded in (exact), in `dtype` and the
    channels-last layout: the eight convolutions of the forward pass, nothing else to run between them."""
    import torch

    layers = []
    with torch.no_grad():
        for block in (net.conv_block1, net.conv_block2, net.conv_block3, net.conv_block4):
            for conv, bn in ((block.conv1, block.bn1), (block.conv2, block.bn2)):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
                weight = conv.weight * scale[:, None, None, None]  # (C_out, C_in, 3, 3)
                bias = bn.bias - bn.running_mean * scale
                layers.append((weight.to(dtype).contiguous(memory_format=torch.channels_last), bias.to(dtype)))
    return layers


def block_starts(n_frames: int, max_blocks: int) -> list[int]:
    """First frames of the blocks of a clip of `n_frames`: about one per 100 frames, evenly spread over the
    whole clip (at most `max_blocks`); one central block when the clip is about one block long."""
    if n_frames <= BLOCK_FRAMES:
        return [0]
    n = int(min(max_blocks, max(1, round(n_frames / BLOCK_FRAMES))))
    if n == 1:
        return [(n_frames - BLOCK_FRAMES) // 2]
    return [int(s) for s in np.round(np.linspace(0, n_frames - BLOCK_FRAMES, n))]


class AiSfxEncoder:
    """Audio → L2-normalised 512-d aiSFX embedding: the mean of the network's outputs over the clip's blocks.

    Inputs are paths, bytes or mono float32 waveforms already at 44.1 kHz. The clips of a batch are shared
    among `workers` threads; each computes its clips' spectrograms and runs their blocks through the network
    in batches of `forward_batch`, on one torch thread (on two shared cores, one thread per worker beats
    torch's own threading).
    """

    modality = "audio"
    backend = "aiSFX CNN (pretrained on sound effects)"
    dim = 512
    sample_rate = SAMPLE_RATE
    concurrent_batches = True  # batches may run on several threads at once (see core.encoders.pipeline)

    def __init__(self, weights: Path | str | None = None, expected_sha256: str | None = CHECKPOINT_SHA256,
                 cache_dir: Path | str | None = None, precision: str = "auto", max_blocks: int = 8,
                 workers: int = 2, forward_batch: int = 16, min_seconds: float = 0.05) -> None:
        import torch

        from core.encoders.text import PRECISIONS, bf16_supported

        if precision not in PRECISIONS:
            raise EncoderError(f"audio precision {precision!r} is unknown; use one of {PRECISIONS}")
        checkpoint = Path(weights) if weights is not None else default_checkpoint_path()
        what = WEIGHTS_PACKAGE if weights is None else f"the weights file {checkpoint}"
        digest = verify_sha256(checkpoint, expected_sha256, what) if expected_sha256 else sha256_file(checkpoint)
        # bfloat16 on CPUs built for it (AMX / AVX-512 BF16): several times the blocks per second, embeddings
        # within cosine 0.99999 of float32
        self.precision = ("bf16" if bf16_supported() else "fp32") if precision == "auto" else precision
        base = ENCODER_ID if digest == CHECKPOINT_SHA256 else f"aisfx/X-Sequential-CE@{digest[:8]}"
        self.id = base + ("+bf16" if self.precision == "bf16" else "")
        self.note = (f"bundled weights from {WEIGHTS_PACKAGE} (offline); {LICENCE}" if weights is None
                     else f"weights file {checkpoint}")
        self.max_blocks = max_blocks  # longer clips: this many blocks spread over the clip (8 ≈ 18.6 s heard)
        self.workers = max(1, workers)  # threads, each with its share of a batch's clips
        self.forward_batch = forward_batch  # blocks per forward pass
        self.min_seconds = min_seconds  # shorter files are refused by the loader; longer ones padded here
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = converted_weights(checkpoint, digest, folder)
        try:
            tensors = load_converted(path, digest)
        except ChecksumError:  # a stale or foreign file under our name: convert again from the verified source
            path.unlink(missing_ok=True)
            tensors = load_converted(converted_weights(checkpoint, digest, folder), digest)
        net = build_network()
        missing, unexpected = net.load_state_dict(tensors, strict=False)
        if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
            raise EncoderError(f"{path} does not fit the aiSFX network (missing {missing[:3]}, unexpected "
                               f"{unexpected[:3]}); delete it to convert the checkpoint again")
        self._dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self._layers = fold_batch_norm(net.eval(), self._dtype)
        self._mel = torch.from_numpy(warped_mel_filters().T.copy())  # (1025, 96)
        # symmetric Hann, as the training front end's
        self._window = torch.from_numpy(np.hanning(N_FFT).astype(np.float32))
        self._torch = torch

    def waveform(self, source: Any) -> np.ndarray:
        """A mono float32 waveform at 44.1 kHz from a path, bytes or an array (assumed at 44.1 kHz)."""
        if isinstance(source, np.ndarray):
            y = np.asarray(source, np.float32)
            return pad_short_clip(y.mean(axis=0) if y.ndim == 2 else y, SAMPLE_RATE)
        return load_audio(source, sr=SAMPLE_RATE, min_seconds=self.min_seconds)

    def blocks(self, source: Any) -> Any:
        """(n_blocks, 100, 96) float32 network inputs of one clip: scaled log-mel blocks spread over the clip."""
        torch = self._torch
        y = self.waveform(source)
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        y = y / peak if peak > 0 else y  # peak-normalised: the same sound at another level embeds alike
        if y.size < BLOCK_SAMPLES:  # short clips: silence after them, up to one block
            y = np.pad(y, (0, BLOCK_SAMPLES - y.size))
        n_frames = 1 + y.size // HOP
        span = (BLOCK_FRAMES - 1) * HOP + N_FFT  # samples under one block's frames
        padded = torch.from_numpy(np.pad(y, (N_FFT // 2, span)).astype(np.float32))  # frame t centred on t·HOP
        out = []
        for start in block_starts(n_frames, self.max_blocks):
            frames = padded[start * HOP:start * HOP + span].unfold(0, N_FFT, HOP)  # (100, 2048)
            power = torch.fft.rfft(frames * self._window).abs().square()  # (100, 1025)
            mel = power @ self._mel  # (100, 96): time first, as the network was trained
            out.append(torch.log10(LOG_SCALE * mel + 1.0) / SPEC_MAX)
        return torch.stack(out)

    def network(self, x: Any) -> Any:
        """(B, 512) float32 outputs of (B, 100, 96) blocks: the embedding network with batch norms folded in."""
        import torch.nn.functional as F

        torch = self._torch
        h = x.unsqueeze(1).to(self._dtype).contiguous(memory_format=torch.channels_last)  # (B, 1, 100, 96)
        for i, (weight, bias) in enumerate(self._layers):
            h = F.relu_(F.conv2d(h, weight, bias, padding=1))
            if i in (1, 3, 5):  # after blocks 1–3: (B, 64, 50, 48) → (B, 128, 25, 24) → (B, 256, 12, 12)
                h = F.max_pool2d(h, 2)
        return h.float().mean(dim=3).amax(dim=2)  # (B, 512): mean over mel bands, max over time

    def _encode_share(self, clips: list[Any]) -> np.ndarray:
        """(len(clips), 512) block-mean outputs of some clips, on one torch thread."""
        torch = self._torch
        torch.set_num_threads(1)
        with torch.inference_mode():
            per_clip = [self.blocks(c) for c in clips]
            x = torch.cat(per_clip)  # (total blocks, 100, 96)
            y = torch.cat([self.network(x[i:i + self.forward_batch])
                           for i in range(0, len(x), self.forward_batch)])  # (total blocks, 512)
            sizes = [len(b) for b in per_clip]
            return torch.stack([part.mean(dim=0) for part in torch.split(y, sizes)]).numpy()

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """(N, 512) float32 L2-normalised embeddings of paths, bytes or 44.1 kHz waveforms."""
        batch = list(batch)
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        torch = self._torch
        threads = torch.get_num_threads()
        n_shares = min(self.workers, len(batch))
        shares = [batch[k::n_shares] for k in range(n_shares)]  # interleaved: long and short clips mixed
        try:
            if n_shares > 1:
                with ThreadPoolExecutor(max_workers=n_shares) as pool:
                    outs = list(pool.map(self._encode_share, shares))
            else:
                outs = [self._encode_share(batch)]
        finally:
            torch.set_num_threads(threads)
        out = np.zeros((len(batch), self.dim), np.float32)
        for k, rows in enumerate(outs):
            out[k::n_shares] = rows
        return l2_normalise(out)
