"""The named image descriptor: colours land in the right named bins, edges in the right orientation, and
images group by palette and pattern."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.encoders.base import DescriptorEncoder
from core.encoders.image_descriptor import FEATURE_NAMES, ImageDescriptor, colour_shares, srgb_to_lab

NAMED = {  # sRGB colour → the bin a person would name it
    (255, 0, 0): "red", (220, 20, 60): "red", (255, 165, 0): "orange", (139, 69, 19): "orange",
    (255, 255, 0): "yellow", (0, 128, 0): "green", (0, 255, 0): "green", (0, 255, 255): "cyan",
    (135, 206, 235): "cyan", (0, 0, 255): "blue", (0, 0, 128): "blue", (65, 105, 225): "blue",
    (138, 43, 226): "purple", (128, 0, 128): "purple", (255, 105, 180): "pink", (255, 192, 203): "pink",
    (0, 0, 0): "black", (128, 128, 128): "grey", (255, 255, 255): "white", (245, 245, 220): "white",
}


@pytest.mark.parametrize("rgb,name", NAMED.items())
def test_named_colours_land_in_their_bin(rgb, name):
    shares = colour_shares(srgb_to_lab(np.array([[rgb]], np.uint8)))
    assert FEATURE_NAMES[int(np.argmax(shares))] == name


def test_lab_conversion_matches_reference_values():
    lab = srgb_to_lab(np.array([[(255, 255, 255), (0, 0, 0), (255, 0, 0)]], np.uint8))[0]
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.1)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.1)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.1)  # the standard CIELab of sRGB red


def _stripes(orientation: str, period: int = 16) -> Image.Image:
    yy, xx = np.mgrid[:128, :128]
    q = {"horizontal": yy, "vertical": xx, "diagonal ↗": xx + yy, "diagonal ↘": xx - yy}[orientation]
    return Image.fromarray(np.where((q // (period // 2)) % 2 == 0, 230, 20).astype(np.uint8)).convert("RGB")


@pytest.mark.parametrize("orientation", ["horizontal", "vertical", "diagonal ↗", "diagonal ↘"])
def test_stripes_show_their_edge_orientation(orientation):
    row = dict(zip(FEATURE_NAMES, ImageDescriptor().describe([_stripes(orientation)])[0]))
    edges = {k: v for k, v in row.items() if k.startswith("edges ")}
    assert max(edges, key=edges.get) == f"edges {orientation}" and edges[f"edges {orientation}"] > 0.8
    assert row["edge coherence"] > 0.8


def _cover(palette: str, pattern: str, rng: np.random.Generator) -> Image.Image:
    """A 240×240 two-shade image: reds or blues, in stripes (any angle) or scattered dots."""
    hues = {"red": [(200, 30, 40), (250, 90, 80), (150, 10, 20)],
            "blue": [(30, 60, 200), (90, 140, 250), (10, 20, 120)]}
    base, ink = rng.choice(len(hues[palette]), size=2, replace=False)
    jitter = lambda c: tuple(int(np.clip(v + rng.integers(-20, 21), 0, 255)) for v in c)  # noqa: E731
    img = Image.new("RGB", (240, 240), jitter(hues[palette][base]))
    draw = ImageDraw.Draw(img)
    colour = jitter(hues[palette][ink])
    if pattern == "stripes":
        width = int(rng.integers(6, 16))
        for x in range(-240, 480, 2 * width):
            draw.rectangle([x, -240, x + width, 480], fill=colour)
        img = img.rotate(float(rng.uniform(0, 180)), resample=Image.Resampling.BILINEAR, expand=False,
                         fillcolor=jitter(hues[palette][base]))
    else:
        for _ in range(int(rng.integers(25, 60))):
            cx, cy, r = rng.integers(0, 240), rng.integers(0, 240), int(rng.integers(5, 14))
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    return img


def test_nearest_neighbours_share_palette_and_pattern():
    rng = np.random.default_rng(3)
    groups = [(p, q) for p in ("red", "blue") for q in ("stripes", "dots")]
    labels, images = [], []
    for group in groups:
        for _ in range(5):
            labels.append(group)
            images.append(_cover(*group, rng))
    desc = ImageDescriptor()
    raw = desc.describe(images)
    z = (raw - raw.mean(axis=0)) / np.maximum(raw.std(axis=0), 1e-6)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    sims = z @ z.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(axis=1)
    palette_hits = np.mean([labels[i][0] == labels[j][0] for i, j in enumerate(nearest)])
    group_hits = np.mean([labels[i] == labels[j] for i, j in enumerate(nearest)])
    print(f"1-NN palette accuracy {palette_hits:.2f}, palette+pattern accuracy {group_hits:.2f} (chance 0.21)")
    assert palette_hits == 1.0 and group_hits >= 0.9


def test_protocol_groups_and_encode_without_stats(tmp_path):
    desc = ImageDescriptor()
    assert isinstance(desc, DescriptorEncoder)
    grouped = [f for names in desc.feature_groups.values() for f in names]
    assert sorted(grouped) == sorted(desc.feature_names) and len(set(grouped)) == desc.dim
    assert set(desc.feature_groups) == {"colour", "light", "edges", "texture"}
    path = tmp_path / "red.png"
    Image.new("RGB", (300, 100), (255, 0, 0)).save(path)
    raw = desc.describe([path, path.read_bytes()])
    assert raw.shape == (2, desc.dim) and np.isfinite(raw).all()
    np.testing.assert_array_equal(raw[0], raw[1])
    row = dict(zip(desc.feature_names, raw[0]))
    assert row["red"] == pytest.approx(1.0) and row["edge density"] == 0.0
    enc = desc.encode([path, Image.new("RGB", (50, 50), (0, 0, 255))])
    np.testing.assert_allclose(np.linalg.norm(enc, axis=1), 1.0, atol=1e-5)
    fitted = ImageDescriptor(stats={"mean": raw[0], "std": np.ones(desc.dim, np.float32)})
    assert np.count_nonzero(fitted.encode([path])) == 0  # the fitted mean itself standardises to zero
