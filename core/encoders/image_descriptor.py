"""A named image descriptor: colour shares, light, edge orientation and texture, each a feature a person can
read ("blue", "edges horizontal", "local contrast"), so explanations can say what in a cover mattered."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from core.encoders.base import l2_normalise
from core.catalog.media import load_image

DESCRIPTOR_ID = "prism/image-descriptor-v1"
SIDE = 128  # images are downscaled so their longer side is this many pixels before any feature is computed

# CIELab hue angle (degrees, D65) where each named hue ends, going round from pink's end at 15°.
# Chosen from the LCh hues of named sRGB colours: crimson 25°, red 40°, brown 57°, orange 73°, yellow 103°,
# green 136°, cyan 196°, sky blue 235°, blue 306°, violet 313°, purple/magenta 328°, hot pink 351°, pink 8°.
HUE_BINS: tuple[tuple[str, float], ...] = (
    ("red", 50.0), ("orange", 80.0), ("yellow", 115.0), ("green", 170.0), ("cyan", 250.0),
    ("blue", 310.0), ("purple", 340.0), ("pink", 375.0),  # pink wraps round 0° to 15°
)
HUE_START = 15.0  # degrees where "red" begins
ACHROMATIC_CHROMA = 15.0  # Lab chroma below which a pixel is black, grey or white (beige 13 is; pale pink 24 is not)
BLACK_L, WHITE_L = 25.0, 85.0  # Lab lightness bounds of achromatic black and white
EDGE_THRESHOLD = 4.0  # Sobel magnitude (lightness units per pixel) that counts as an edge

COLOUR_FEATURES = [name for name, _ in HUE_BINS] + ["black", "grey", "white", "colour variety"]
LIGHT_FEATURES = ["brightness mean", "brightness std", "saturation mean", "saturation std"]
EDGE_FEATURES = ["edges horizontal", "edges vertical", "edges diagonal ↗", "edges diagonal ↘",
                 "edge strength", "edge coherence"]
TEXTURE_FEATURES = ["edge density", "local contrast", "entropy", "fine detail"]
FEATURE_GROUPS: dict[str, list[str]] = {"colour": COLOUR_FEATURES, "light": LIGHT_FEATURES,
                                        "edges": EDGE_FEATURES, "texture": TEXTURE_FEATURES}
FEATURE_NAMES: list[str] = [f for group in FEATURE_GROUPS.values() for f in group]

# Typical mean and spread of each raw feature over album-cover-like images; used to standardise when no
# catalog statistics are given, and (scaled down) as the floor of fitted standard deviations.
_DEFAULTS: dict[str, tuple[float, float]] = {
    **{name: (1 / 11, 0.15) for name, _ in HUE_BINS}, "black": (0.15, 0.2), "grey": (0.15, 0.2),
    "white": (0.1, 0.15), "colour variety": (0.45, 0.2),
    "brightness mean": (0.5, 0.2), "brightness std": (0.2, 0.1),
    "saturation mean": (0.3, 0.2), "saturation std": (0.15, 0.1),
    **{name: (0.25, 0.12) for name in EDGE_FEATURES[:4]}, "edge strength": (0.04, 0.04),
    "edge coherence": (0.25, 0.2),
    "edge density": (0.2, 0.15), "local contrast": (0.05, 0.04), "entropy": (0.7, 0.15), "fine detail": (0.03, 0.03),
}

_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]], np.float32)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883], np.float32)
_LINEAR_LUT = np.where((c := np.arange(256) / 255.0) <= 0.04045, c / 12.92,
                       ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)  # sRGB byte → linear light


def default_stats() -> dict[str, np.ndarray]:
    """Per-feature typical mean and standard deviation of the raw image descriptor."""
    mean, std = zip(*(_DEFAULTS[f] for f in FEATURE_NAMES))
    return {"mean": np.array(mean, np.float32), "std": np.array(std, np.float32)}


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 sRGB → (..., 3) float32 CIELab (D65): L in [0, 100], a and b roughly ±128."""
    # einsum, not @: a BLAS product this small is slower than numpy's own loop, and stalls on busy cores
    xyz = np.einsum("...c,rc->...r", _LINEAR_LUT[rgb], _SRGB_TO_XYZ) / _D65_WHITE
    eps = (6 / 29) ** 3
    f = np.where(xyz > eps, np.cbrt(np.maximum(xyz, eps)), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def colour_shares(lab: np.ndarray) -> np.ndarray:
    """(11,) share of pixels per named colour: 8 hues, then achromatic black, grey and white."""
    L, a, b = lab[..., 0].ravel(), lab[..., 1].ravel(), lab[..., 2].ravel()
    chroma = np.hypot(a, b)
    hue = (np.degrees(np.arctan2(b, a)) - HUE_START) % 360.0  # 0 = where red begins
    edges = np.array([end - HUE_START for _, end in HUE_BINS])
    hue_bin = np.searchsorted(edges, hue, side="right")  # 0..7
    achromatic = chroma < ACHROMATIC_CHROMA
    grey_bin = np.where(L < BLACK_L, 8, np.where(L > WHITE_L, 10, 9))
    bins = np.where(achromatic, grey_bin, np.minimum(hue_bin, 7))
    return np.bincount(bins, minlength=11).astype(np.float32) / max(bins.size, 1)


def _sobel(lum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y Sobel gradients (y pointing down) of a 2-D array, in units per pixel."""
    from scipy.ndimage import sobel

    return sobel(lum, axis=1, mode="nearest") / 8.0, sobel(lum, axis=0, mode="nearest") / 8.0


def _features(img: Image.Image) -> np.ndarray:
    """The raw (F,) descriptor of one RGB image."""
    from scipy.ndimage import laplace, uniform_filter

    img = img.convert("RGB")
    scale = SIDE / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BILINEAR, reducing_gap=2.0)
    lab = srgb_to_lab(np.asarray(img, dtype=np.uint8))
    lum = lab[..., 0]  # (H, W) lightness 0..100
    chroma = np.hypot(lab[..., 1], lab[..., 2])

    shares = colour_shares(lab)
    nz = shares[shares > 0]
    variety = float(-(nz * np.log(nz)).sum() / np.log(len(shares)))

    gx, gy = _sobel(lum)
    mag = np.hypot(gx, gy)
    total = float(mag.sum()) + 1e-6
    # gradient angle mod 180°, y down: 0° = intensity changes left→right, i.e. a vertical edge;
    # 45° = gradient towards bottom-right, i.e. an edge running bottom-left → top-right (↗)
    angle = np.degrees(np.arctan2(gy, gx)) % 180.0
    sector = (((angle + 22.5) % 180.0) // 45.0).astype(int)  # 0 vertical, 1 ↗, 2 horizontal, 3 ↘
    orient = np.bincount(sector.ravel(), weights=mag.ravel(), minlength=4)[:4] / total
    # coherence: how much the gradients agree on one orientation (stripes ≈ 1, dots or noise ≈ 0)
    doubled = np.radians(2 * angle)
    coherence = float(np.hypot((mag * np.cos(doubled)).sum(), (mag * np.sin(doubled)).sum()) / total)

    local_mean = uniform_filter(lum, size=5, mode="nearest")
    local_var = np.maximum(uniform_filter(lum * lum, size=5, mode="nearest") - local_mean ** 2, 0.0)
    hist = np.bincount(np.clip(lum / 100 * 32, 0, 31).astype(int).ravel(), minlength=32) / lum.size
    hist = hist[hist > 0]
    entropy = float(-(hist * np.log2(hist)).sum() / 5.0)  # / log2(32): 1 = all lightness levels equally used

    values = [
        *shares, variety,
        lum.mean() / 100, lum.std() / 100, chroma.mean() / 100, chroma.std() / 100,
        orient[2], orient[0], orient[1], orient[3], mag.mean() / 100, coherence,
        float((mag > EDGE_THRESHOLD).mean()), float(np.sqrt(local_var).mean() / 100), entropy,
        float(np.abs(laplace(lum, mode="nearest")).mean() / 100),
    ]
    return np.nan_to_num(np.asarray(values, np.float32))


@dataclass
class ImageDescriptor:
    """Image → named colour, light, edge and texture features (numpy on a 128-px copy of the image).

    `describe` gives the raw features; `encode` standardises them with `stats` (fitted on a catalog and kept
    in the EmbeddingSet; typical defaults when None) and L2-normalises.
    """

    stats: dict[str, np.ndarray] | None = None  # {"mean": (F,), "std": (F,)}; None = default_stats()

    id = DESCRIPTOR_ID
    modality = "image"
    backend = "named image descriptor (numpy)"
    concurrent_batches = True  # batches may run on several threads at once (see core.encoders.pipeline)
    note = "no weights: computed from the pixels"
    feature_names = FEATURE_NAMES
    feature_groups = FEATURE_GROUPS
    dim = len(FEATURE_NAMES)

    @staticmethod
    def default_stats() -> dict[str, np.ndarray]:
        """Typical per-feature mean and std (see module default_stats)."""
        return default_stats()

    def describe(self, batch: Sequence[Any]) -> np.ndarray:
        """(N, F) float32 raw features of PIL images, paths or bytes."""
        rows = [_features(img if isinstance(img, Image.Image) else load_image(img)) for img in batch]
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """(N, F) float32 standardised, L2-normalised features."""
        stats = self.stats or default_stats()
        return l2_normalise((self.describe(batch) - stats["mean"]) / stats["std"])
