"""Cover art and audio synthesis for the demo catalog: pure functions of a track's attributes and a seeded
generator, so the same seed always yields byte-identical files."""
from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont
from scipy.signal import fftconvolve, lfilter

# ------------------------------------------------------------------------------------------------
# Palettes: the colour schemes of the covers. Independent of genre and mood, so a listener's taste for
# one can only be learnt from the image.
# ------------------------------------------------------------------------------------------------
PALETTES: dict[str, dict[str, tuple[str, ...]]] = {
    "dusk": {"bg": ("#1d1340", "#e2846a"), "accents": ("#ff6f91", "#ffc75f", "#8a5bd6")},
    "lagoon": {"bg": ("#06244f", "#1f8fb8"), "accents": ("#18c6d9", "#a8ecea", "#f4e6c8")},
    "verdant": {"bg": ("#0c2b1e", "#4d7d5a"), "accents": ("#a9b98c", "#e0a35f", "#f2e8cf")},
    "neon": {"bg": ("#0b0420", "#2b1a63"), "accents": ("#ff2a6d", "#05d9e8", "#f5f35a")},
    "pastel": {"bg": ("#fbf1e6", "#f6d3e1"), "accents": ("#9fa9ff", "#86ddd9", "#ff9f9a")},
    "monochrome": {"bg": ("#141414", "#5a5a5a"), "accents": ("#f0f0f0", "#a0a0a0", "#d2d2d2")},
    "ember": {"bg": ("#2a0905", "#92201a"), "accents": ("#f46b22", "#fbb444", "#ffe6c0")},
    "glacier": {"bg": ("#eaf2f9", "#a6c3dc"), "accents": ("#3b6a99", "#ffffff", "#1a3a5a")},
}


def _rgb(hex_colour: str) -> np.ndarray:
    """'#rrggbb' as a float array in [0, 1]."""
    h = hex_colour.lstrip("#")
    return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], dtype=np.float32) / 255.0


def _rgba(colour: np.ndarray, alpha: float) -> tuple[int, int, int, int]:
    c = np.clip(np.round(colour * 255), 0, 255).astype(int)
    return int(c[0]), int(c[1]), int(c[2]), int(round(alpha * 255))


def _jitter(colour: np.ndarray, rng: np.random.Generator, amount: float = 0.04) -> np.ndarray:
    """A colour nudged in lightness so repeated shapes are not flat copies of one swatch."""
    h, l, s = colorsys.rgb_to_hls(*colour.tolist())
    l = float(np.clip(l + rng.uniform(-amount, amount), 0, 1))
    return np.array(colorsys.hls_to_rgb(h, l, s), dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# Covers
# ------------------------------------------------------------------------------------------------
def _gradient(size: int, top: np.ndarray, bottom: np.ndarray, angle: float) -> np.ndarray:
    """(size, size, 3) smooth linear gradient between two colours at `angle` radians."""
    axis = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    t = axis[:, None] * np.float32(np.cos(angle)) + axis[None, :] * np.float32(np.sin(angle))
    lo, hi = t.min(), t.max()
    t -= lo  # in place, here and below: the same values as the plain expressions, fewer arrays
    t /= hi - lo
    smooth = t * t  # smoothstep t²(3 − 2t): no visible banding at the ends
    t *= -2
    t += 3
    smooth *= t
    out = np.multiply((bottom - top)[None, None], smooth[..., None])  # (size, size, 3)
    out += top[None, None]
    return out


def _glow(size: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """(size, size) radial falloff in [0, 1], 1 at the centre."""
    axis = np.arange(size, dtype=np.float32) / size
    dx, dy = ((axis - cx) / radius) ** 2, ((axis - cy) / radius) ** 2
    return np.exp(-(dy[:, None] + dx[None, :]))


class _Canvas:
    """An RGBA working canvas at `scale`× the output size, with soft (low-res, blurred) and sharp layers."""

    def __init__(self, base: np.ndarray) -> None:
        self.size = base.shape[0]
        rgb = np.clip(base, 0, 1)
        rgb *= 255
        self.img = Image.fromarray(rgb.astype(np.uint8), "RGB").convert("RGBA")

    def layer(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        lay = Image.new("RGBA", (self.size, self.size), (0, 0, 0, 0))
        return lay, ImageDraw.Draw(lay)

    def add(self, lay: Image.Image, blur: float = 0.0) -> None:
        """Composite a layer onto the canvas, blurred by `blur` px (at quarter resolution: ~16× cheaper than
        at full size and just as smooth). Only the drawn part of the layer is processed: its bounding box,
        widened by the reach of the blur and of both resamplings and aligned to the quarter-resolution grid,
        so every pixel is the one the whole layer would give (outside it the layer stays fully transparent,
        and compositing transparency leaves the canvas as it is)."""
        box = lay.getbbox(alpha_only=False)
        if box is None:
            return
        if blur > 0:
            q = 4  # the quarter-resolution grid
            # box blur passes reach 3 × (radius + 1) small px (radius ≤ sigma + 1); the bilinear reduction
            # and the bicubic enlargement reach 1 and 2 more
            reach = 3 * (math.ceil(blur / q) + 2) + 4
            x0, y0 = max(0, (box[0] // q - reach) * q), max(0, (box[1] // q - reach) * q)
            x1 = min(self.size, (-(-box[2] // q) + reach) * q)
            y1 = min(self.size, (-(-box[3] // q) + reach) * q)
            if self.size % q:  # a canvas off the grid: the whole layer
                x0, y0, x1, y1 = 0, 0, self.size, self.size
            part = lay.crop((x0, y0, x1, y1))
            small = part.resize(((x1 - x0) // q, (y1 - y0) // q), Image.BILINEAR)
            small = small.filter(ImageFilter.GaussianBlur(blur / q))
            part = small.resize((x1 - x0, y1 - y0), Image.BICUBIC)
            box = (x0, y0)
        else:
            part = lay.crop(box)
        self.img.alpha_composite(part, dest=box[:2])

    def soft_circle(self, cx: float, cy: float, r: float, colour: np.ndarray, alpha: float,
                    blur: float) -> None:
        lay, d = self.layer()
        S = self.size
        d.ellipse([(cx - r) * S, (cy - r) * S, (cx + r) * S, (cy + r) * S], fill=_rgba(colour, alpha))
        self.add(lay, blur * S)


def _blob(cx: float, cy: float, r: float, rng: np.random.Generator, S: int,
          points: int = 96) -> list[tuple[float, float]]:
    """A smooth organic closed outline: a circle whose radius wobbles with a few low harmonics."""
    theta = np.linspace(0, 2 * np.pi, points, endpoint=False)
    radius = np.ones_like(theta)
    for k in range(2, 6):
        radius += rng.uniform(0.02, 0.12) / (k - 1) * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
    x = (cx + r * radius * np.cos(theta)) * S
    y = (cy + r * radius * np.sin(theta)) * S
    return list(zip(x.tolist(), y.tolist()))


def _draw_ambient(cv: _Canvas, acc: list[np.ndarray], rng: np.random.Generator, busy: float) -> None:
    """Soft glowing orbs over a haze, with one small sharp sun for a focal point."""
    for _ in range(3 + int(busy * 3)):
        cv.soft_circle(rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.85), rng.uniform(0.12, 0.32),
                       _jitter(acc[rng.integers(len(acc))], rng), rng.uniform(0.45, 0.75), rng.uniform(0.03, 0.06))
    lay, d = cv.layer()
    S = cv.size
    y = rng.uniform(0.62, 0.78) * S
    d.line([(0, y), (S, y)], fill=_rgba(acc[1], 0.35), width=max(1, S // 256))
    r, cx, cy = rng.uniform(0.05, 0.09), rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.5)
    d.ellipse([(cx - r) * S, (cy - r) * S, (cx + r) * S, (cy + r) * S], fill=_rgba(acc[1], 0.85))
    cv.add(lay)


def _draw_techno(cv: _Canvas, acc: list[np.ndarray], rng: np.random.Generator, busy: float) -> None:
    """Hard-edged machine patterns: a step-sequencer grid, parallel stripes or a square tunnel."""
    S = cv.size
    lay, d = cv.layer()
    variant = rng.integers(3)
    if variant == 0:  # sequencer grid
        cols, rows = 8, 8
        m, gap = 0.12, 0.012
        cell = (1 - 2 * m) / cols
        lit = rng.random((rows, cols)) < 0.25 + 0.35 * busy
        for r in range(rows):
            for c in range(cols):
                x0, y0 = (m + c * cell + gap) * S, (m + r * cell + gap) * S
                x1, y1 = (m + (c + 1) * cell - gap) * S, (m + (r + 1) * cell - gap) * S
                if lit[r, c]:
                    d.rounded_rectangle([x0, y0, x1, y1], radius=S * 0.008,
                                        fill=_rgba(acc[(r + c) % 3 if rng.random() < 0.3 else 0], 0.9))
                else:
                    d.rounded_rectangle([x0, y0, x1, y1], radius=S * 0.008,
                                        outline=_rgba(acc[2], 0.35), width=max(1, S // 256))
    elif variant == 1:  # stripes, horizontal or diagonal
        n = 10 + int(busy * 14)
        diagonal = rng.random() < 0.5
        for i in range(n):
            t = (i + 0.5) / n
            w = S * rng.uniform(0.004, 0.022)
            col = _rgba(acc[i % 3], rng.uniform(0.55, 0.95))
            if diagonal:
                o = (t * 2 - 0.5) * S
                d.line([(o - S, S), (o, 0)], fill=col, width=int(w) + 1)
            else:
                y = (0.15 + 0.7 * t) * S
                x0 = rng.uniform(0.05, 0.3) * S
                d.line([(x0, y), (S - rng.uniform(0.05, 0.3) * S, y)], fill=col, width=int(w) + 1)
    else:  # tunnel of concentric squares
        n = 7 + int(busy * 6)
        cx, cy = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
        for i in range(n):
            h = 0.45 * (1 - i / n)
            d.rectangle([(cx - h) * S, (cy - h) * S, (cx + h) * S, (cy + h) * S],
                        outline=_rgba(acc[i % 3], 0.85), width=max(2, int(S * 0.012)))
    cv.add(lay)
    cv.soft_circle(rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), 0.3, acc[1], 0.18, 0.12)


def _draw_jazz(cv: _Canvas, acc: list[np.ndarray], rng: np.random.Generator, busy: float) -> None:
    """Bold offset colour blocks and a half disc, with generous negative space (mid-century sleeves)."""
    S = cv.size
    lay, d = cv.layer()
    for i in range(2 + int(busy * 3)):
        w, h = rng.uniform(0.12, 0.5), rng.uniform(0.06, 0.4)
        x, y = rng.uniform(0.05, 0.95 - w), rng.uniform(0.05, 0.8 - h)
        d.rectangle([x * S, y * S, (x + w) * S, (y + h) * S], fill=_rgba(_jitter(acc[i % 3], rng), 0.92))
    r, cx, cy = rng.uniform(0.15, 0.28), rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.65)
    start = float(rng.choice([0, 90, 180, 270]))
    d.pieslice([(cx - r) * S, (cy - r) * S, (cx + r) * S, (cy + r) * S], start, start + 180,
               fill=_rgba(acc[rng.integers(3)], 0.95))
    for _ in range(3):
        y = rng.uniform(0.1, 0.85) * S
        d.line([(0.08 * S, y), (rng.uniform(0.3, 0.9) * S, y)], fill=_rgba(acc[2], 0.8),
               width=max(1, S // 200))
    cv.add(lay)


def _draw_folk(cv: _Canvas, acc: list[np.ndarray], rng: np.random.Generator, busy: float) -> None:
    """Layered organic blobs like cut paper, each with a soft drop shadow."""
    S = cv.size
    for i in range(3 + int(busy * 4)):
        r = rng.uniform(0.12, 0.34) * (1 - 0.4 * i / 7)
        outline = _blob(rng.uniform(0.2, 0.8), rng.uniform(0.25, 0.8), r, rng, S)
        shadow, d = cv.layer()
        d.polygon([(x + 0.01 * S, y + 0.014 * S) for x, y in outline], fill=(0, 0, 0, 70))
        cv.add(shadow, blur=0.025)
        lay, d = cv.layer()
        d.polygon(outline, fill=_rgba(_jitter(acc[i % 3], rng, 0.06), rng.uniform(0.85, 0.97)))
        cv.add(lay)


def _draw_hiphop(cv: _Canvas, acc: list[np.ndarray], rng: np.random.Generator, busy: float) -> None:
    """A bold diagonal band, a record with grooves and a halftone dot field."""
    S = cv.size
    lay, d = cv.layer()
    o = rng.uniform(0.3, 0.7) * S
    w = rng.uniform(0.12, 0.22) * S
    d.polygon([(o - w - S * 0.4, S), (o + w - S * 0.4, S), (o + w + S * 0.4, 0), (o - w + S * 0.4, 0)],
              fill=_rgba(acc[0], 0.9))
    # halftone: dots shrink away from a corner
    cx, cy = rng.choice([0.0, 1.0]), rng.choice([0.0, 1.0])
    step = S / (22 + int(busy * 10))
    for gy in np.arange(step / 2, S, step):
        for gx in np.arange(step / 2, S, step):
            dist = np.hypot(gx / S - cx, gy / S - cy)
            rad = step * 0.45 * max(0.0, 1 - dist / 0.75)
            if rad > 0.6:
                d.ellipse([gx - rad, gy - rad, gx + rad, gy + rad], fill=_rgba(acc[2], 0.75))
    cv.add(lay)
    lay, d = cv.layer()
    if rng.random() < 0.5:  # a record, grooves and label
        r, cx, cy = rng.uniform(0.22, 0.34), rng.uniform(0.3, 0.75), rng.uniform(0.3, 0.5)
        d.ellipse([(cx - r) * S, (cy - r) * S, (cx + r) * S, (cy + r) * S], fill=(16, 16, 18, 240))
        for k in range(6, 30, 3):
            rr = r * k / 30
            d.ellipse([(cx - rr) * S, (cy - rr) * S, (cx + rr) * S, (cy + rr) * S], outline=(60, 60, 66, 200),
                      width=max(1, S // 400))
        rl = r * 0.32
        d.ellipse([(cx - rl) * S, (cy - rl) * S, (cx + rl) * S, (cy + rl) * S], fill=_rgba(acc[1], 1.0))
        d.ellipse([(cx - 0.012) * S, (cy - 0.012) * S, (cx + 0.012) * S, (cy + 0.012) * S],
                  fill=(16, 16, 18, 255))
    else:  # a retro sun cut by horizontal slits that widen towards the bottom
        r, cx, cy = rng.uniform(0.22, 0.3), rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.45)
        d.ellipse([(cx - r) * S, (cy - r) * S, (cx + r) * S, (cy + r) * S], fill=_rgba(acc[1], 1.0))
        for k in range(6):
            y = (cy + r * (0.1 + 0.16 * k)) * S
            d.rectangle([0, y, S, y + S * 0.004 * (k + 1)], fill=(0, 0, 0, 0))
    cv.add(lay)


def _draw_classical(cv: _Canvas, acc: list[np.ndarray], rng: np.random.Generator, busy: float) -> None:
    """Symmetric, fine-lined: a double frame and concentric arcs around a centred ornament."""
    S = cv.size
    lay, d = cv.layer()
    line = max(1, S // 220)
    for inset in (0.06, 0.075):
        d.rectangle([inset * S, inset * S, (1 - inset) * S, (1 - inset) * S], outline=_rgba(acc[1], 0.8),
                    width=line)
    cx, cy = 0.5, 0.45
    n = 5 + int(busy * 6)
    for i in range(n):
        r = 0.08 + 0.3 * (i + 1) / n
        a0 = rng.uniform(0, 360)
        d.arc([(cx - r) * S, (cy - r) * S, (cx + r) * S, (cy + r) * S], a0, a0 + rng.uniform(120, 330),
              fill=_rgba(acc[i % 3], 0.8), width=line + (i % 2))
    r = 0.05
    d.polygon([(cx * S, (cy - r) * S), ((cx + r) * S, cy * S), (cx * S, (cy + r) * S), ((cx - r) * S, cy * S)],
              fill=_rgba(acc[1], 0.95))
    cv.add(lay)
    cv.soft_circle(cx, cy, 0.22, acc[0], 0.22, 0.08)


_DRAWERS = {"ambient": _draw_ambient, "techno": _draw_techno, "jazz": _draw_jazz, "folk": _draw_folk,
            "hip-hop": _draw_hiphop, "classical": _draw_classical}

# How each mood treats the finished picture: (brightness, saturation, contrast, softness blur, grain, vignette).
# Grain only where it carries the mood: noise is incompressible and would double the size of every PNG.
_MOOD_FINISH = {
    "calm": (1.02, 0.9, 0.92, 1.2, 0.0, 0.15),
    "happy": (1.07, 1.12, 1.02, 0.0, 0.0, 0.1),
    "melancholic": (0.95, 0.68, 0.9, 0.6, 5.0, 0.3),
    "energetic": (1.03, 1.18, 1.15, 0.0, 0.0, 0.2),
    "dark": (0.78, 0.9, 1.08, 0.0, 0.0, 0.55),
}
_MOOD_BUSY = {"calm": 0.15, "happy": 0.6, "melancholic": 0.3, "energetic": 1.0, "dark": 0.5}


def render_cover(title: str, artist: str, genre: str, mood: str, palette: str, size: int,
                 rng: np.random.Generator) -> Image.Image:
    """A square RGB cover: palette sets the colours, genre the shapes, mood the finish; title set small."""
    if genre not in _DRAWERS or palette not in PALETTES or mood not in _MOOD_FINISH:
        raise ValueError(f"no cover style for ({genre!r}, {mood!r}, {palette!r}); known genres "
                         f"{sorted(_DRAWERS)}, moods {sorted(_MOOD_FINISH)}, palettes {sorted(PALETTES)}")
    pal = PALETTES[palette]
    bg0, bg1 = (_rgb(c) for c in pal["bg"])
    acc = [_rgb(c) for c in pal["accents"]]
    order = rng.permutation(3)
    acc = [acc[i] for i in order]
    S = size * 2  # draw at twice the size and downsample: anti-aliased edges for free
    base = _gradient(S, bg0, bg1, rng.uniform(-0.5, 0.5))
    g = _glow(S, rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.5), 0.45)[..., None]
    base *= 1 - 0.25 * g  # in place: base · (1 − g/4) + accent · g/4, the same values with fewer arrays
    base += acc[1][None, None] * 0.25 * g
    cv = _Canvas(base)
    _DRAWERS[genre](cv, acc, rng, _MOOD_BUSY[mood])
    img = cv.img.convert("RGB").resize((size, size), Image.LANCZOS)

    bright, sat, contrast, soft, grain, vignette = _MOOD_FINISH[mood]
    if soft > 0:
        img = img.filter(ImageFilter.GaussianBlur(soft * size / 256))
    img = ImageEnhance.Color(img).enhance(sat)
    img = ImageEnhance.Contrast(img).enhance(contrast)
    img = ImageEnhance.Brightness(img).enhance(bright)
    arr = np.asarray(img, dtype=np.float32)
    arr *= (1 - vignette * (1 - _glow(size, 0.5, 0.5, 0.85)))[..., None]
    if grain > 0:
        arr += rng.normal(0.0, grain, size=(size, size, 1)).astype(np.float32)  # film grain, monochrome
    img = Image.fromarray(np.uint8(np.clip(np.round(arr), 0, 255)), "RGB")
    _set_title(img, title, artist, rng)
    return img


def _set_title(img: Image.Image, title: str, artist: str, rng: np.random.Generator) -> None:
    """Title and artist, small, bottom-left, in ink that contrasts with what lies beneath."""
    size = img.size[0]
    m = int(size * 0.06)
    f_title = ImageFont.load_default(size=max(9, round(size * 0.052)))
    f_artist = ImageFont.load_default(size=max(8, round(size * 0.038)))
    region = np.asarray(img.crop((0, int(size * 0.78), int(size * 0.7), size)), dtype=np.float32)
    luminance = float((region @ np.array([0.2126, 0.7152, 0.0722], np.float32)).mean())
    ink, shadow = ((24, 24, 28), (255, 255, 255, 70)) if luminance > 150 else ((248, 246, 240), (0, 0, 0, 110))
    # a gentle scrim under the type keeps it legible over any artwork
    scrim = np.clip((np.arange(size, dtype=np.float32) / size - 0.7) / 0.3, 0, 1) ** 1.5 * 0.45
    base = np.asarray(img, dtype=np.float32)
    towards = 255.0 if luminance > 150 else 0.0
    base = base + (towards - base) * scrim[:, None, None]
    over = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(over)
    y_artist = size - m - f_artist.size
    y_title = y_artist - f_title.size - max(2, size // 100)
    for (x, y), text, font, alpha in (((m, y_title), title, f_title, 255), ((m, y_artist), artist.upper(),
                                                                             f_artist, 190)):
        d.text((x + 1, y + 1), text, font=font, fill=shadow)
        d.text((x, y), text, font=font, fill=(*ink, alpha))
    under = Image.fromarray(np.uint8(np.clip(np.round(base), 0, 255)), "RGB").convert("RGBA")
    img.paste(Image.alpha_composite(under, over).convert("RGB"))


# ------------------------------------------------------------------------------------------------
# Audio
# ------------------------------------------------------------------------------------------------
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
# Chord progressions as scale degrees (0 = tonic); the classic loops of each mode.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 0), (5, 3, 0, 4), (0, 5, 3, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 4)),
}
TARGET_DBFS = -14.0
_TABLE_N = 4096


def _midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69) / 12)


def _degree(scale: tuple[int, ...], d: int) -> int:
    """Semitones above the tonic of scale degree `d` (may exceed one octave)."""
    return 12 * (d // 7) + scale[d % 7]


def _table(amps: dict[float, float]) -> np.ndarray:
    """One period of a waveform with harmonic k at amplitude amps[k]: a wavetable oscillator's table."""
    ph = np.arange(_TABLE_N) / _TABLE_N * 2 * np.pi
    y = sum(a * np.sin(k * ph) for k, a in amps.items())
    return (y / np.abs(y).max()).astype(np.float32)


_TABLES = {
    "bright": _table({k: 1 / k ** 1.25 for k in range(1, 11)}),
    "warm": _table({1: 1.0, 2: 0.35, 3: 0.15, 4: 0.05}),
    "saw": _table({k: 1 / k for k in range(1, 13)}),
    "soft": _table({1: 1.0, 2: 0.2, 3: 0.08}),
    "string": _table({k: (1 / k) * (1.4 if k in (3, 4, 5) else 1.0) for k in range(1, 11)}),
    "bass": _table({1: 1.0, 2: 0.5, 3: 0.2, 4: 0.08}),
}


def _osc(table: str, freq: float | np.ndarray, n: int, sr: int, phase: float = 0.0) -> np.ndarray:
    """Wavetable oscillator: `freq` is a constant or a per-sample array (for vibrato)."""
    if np.isscalar(freq):
        cycles = phase + np.arange(n, dtype=np.float64) * (freq / sr)
    else:
        cycles = phase + np.cumsum(freq, dtype=np.float64) / sr
    idx = (cycles * _TABLE_N).astype(np.int64) & (_TABLE_N - 1)
    return _TABLES[table][idx]


def _env(n: int, sr: int, attack: float, tau: float | None, release: float, hold: int | None = None) -> np.ndarray:
    """Attack ramp, exponential decay with time constant `tau` (None: sustain), release at `hold` samples."""
    t = np.arange(n, dtype=np.float32) / sr
    e = np.minimum(1.0, t / max(attack, 1e-4))
    if tau is not None:
        e *= np.exp(-t / tau)
    if hold is not None and hold < n:
        tail = np.arange(n - hold, dtype=np.float32) / sr
        e[hold:] *= np.exp(-tail / max(release / 4.6, 1e-4))  # -40 dB after `release` seconds
    return e


KS_BLOCKS_FROM = 64  # periods from which the block recursion beats lfilter's O(n · period) (measured)


def _plucked_string(x: np.ndarray, period: int, g: float = 0.4985) -> np.ndarray:
    """(n,) float64 y[n] = x[n] + g·y[n-N-1] + g·y[n-N] (N = `period`), bit for bit what lfilter gives.

    lfilter runs the recursion as an IIR filter of order N + 1, so its cost grows with the period; for long
    periods the recursion is evaluated a period at a time (each block needs only earlier blocks), with the
    products and sums in the order of lfilter's transposed direct form, so the samples are identical.
    """
    if period < KS_BLOCKS_FROM:
        a = np.zeros(period + 2)
        a[0], a[period], a[period + 1] = 1.0, -g, -g
        return lfilter([1.0], a, x)
    n = x.size
    y = np.zeros(period + 1 + n, np.float64)  # period + 1 leading zeros: the filter's zero initial state
    y[period + 1:] = x
    out = y[period + 1:]
    for s in range(0, n, period):
        e = min(s + period, n)
        out[s:e] += g * y[s:e] + g * y[s + 1:e + 1]  # y[n-N-1] and y[n-N] lie in earlier blocks
    return out


def _note(instrument: str, midi: float, dur: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One note of `instrument`, `dur` seconds held, with its natural ring-out."""
    f = _midi_hz(midi)
    hold = int(dur * sr)
    if instrument == "piano":
        n = int(min(dur + 0.4, 2.2) * sr)
        y = (_osc("bright", f, n, sr) * _env(n, sr, 0.004, 0.22, 0.12, hold)
             + 0.8 * _osc("warm", f, n, sr) * _env(n, sr, 0.004, 1.1, 0.12, hold))
    elif instrument == "bells":
        n = int(1.6 * sr)
        t = np.arange(n, dtype=np.float32) / sr
        y = np.zeros(n, np.float32)
        for ratio, amp, tau in ((1.0, 1.0, 0.9), (2.76, 0.45, 0.35), (5.4, 0.22, 0.15), (8.93, 0.1, 0.08)):
            if f * ratio < sr / 2.2:
                y += amp * np.sin(2 * np.pi * f * ratio * t) * np.exp(-t / tau)
        y *= np.minimum(1.0, t / 0.002)
    elif instrument == "guitar":
        # Karplus-Strong plucked string as one IIR filter: y[n] = x[n] + g/2 (y[n-N] + y[n-N-1])
        n = int(min(dur + 0.6, 2.2) * sr)
        period = max(2, int(round(sr / f - 0.5)))
        burst = rng.uniform(-1, 1, period).astype(np.float32)
        burst = np.convolve(burst, np.array([0.1, 0.2, 0.4, 0.2, 0.1]), mode="same")  # a softer pick
        x = np.zeros(n, np.float32)
        x[:period] = burst
        y = _plucked_string(x, period).astype(np.float32)
        y *= _env(n, sr, 0.001, None, 0.15, hold)
    elif instrument == "synth":
        n = int(min(dur + 0.15, 2.0) * sr)
        det = 2 ** (7 / 1200)
        bright = _env(n, sr, 0.005, 0.18, 0.08, hold)
        body = _env(n, sr, 0.005, 0.9, 0.08, hold)
        y = (0.5 * (_osc("saw", f * det, n, sr) + _osc("saw", f / det, n, sr, 0.3)) * bright
             + _osc("soft", f, n, sr) * body)
    elif instrument == "strings":
        n = int(min(dur + 0.3, 3.0) * sr)
        t = np.arange(n, dtype=np.float32) / sr
        vib = f * (1 + 0.004 * np.sin(2 * np.pi * 5.3 * t) * np.minimum(1, t / 0.3))
        y = 0.5 * (_osc("string", vib * 1.002, n, sr) + _osc("string", vib / 1.002, n, sr, 0.5))
        y *= _env(n, sr, 0.12, None, 0.25, hold)
    elif instrument == "bass":
        n = int(min(dur + 0.2, 2.0) * sr)
        y = _osc("bass", f, n, sr) * _env(n, sr, 0.004, 0.5, 0.08, hold)
    elif instrument == "pad":
        n = int((dur + 0.8) * sr)
        t = np.arange(n, dtype=np.float32) / sr
        y = sum(_osc("soft", f * 2 ** (c / 1200), n, sr, p) for c, p in ((-9, 0.0), (0, 0.33), (8, 0.66))) / 3
        y *= (1 + 0.15 * np.sin(2 * np.pi * 0.4 * t)) * _env(n, sr, min(0.6, dur / 2), None, 0.8, hold)
    else:
        raise ValueError(f"no synthesiser for instrument {instrument!r}")
    y = np.asarray(y, np.float32)
    k = min(y.size, int(0.006 * sr))
    y[-k:] *= np.linspace(1.0, 0.0, k, dtype=np.float32)  # a note never ends on a click
    return y


def _drum(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One drum hit: kick, snare, hat (closed hi-hat) or ride."""
    if kind == "kick":
        n = int(0.35 * sr)
        t = np.arange(n, dtype=np.float32) / sr
        freq = 46 + 95 * np.exp(-t / 0.035)
        y = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.13)
        y[: int(0.002 * sr)] += rng.uniform(-0.3, 0.3, int(0.002 * sr))  # beater click
        return y.astype(np.float32)
    noise = rng.uniform(-1, 1, int(0.4 * sr)).astype(np.float32)
    hp = np.diff(noise, prepend=0.0)  # crude high-pass: cymbals live up top
    t = np.arange(noise.size, dtype=np.float32) / sr
    if kind == "hat":
        return (hp * np.exp(-t / 0.018) * 0.5)[: int(0.1 * sr)]
    if kind == "ride":
        ring = sum(np.sin(2 * np.pi * fr * t) for fr in (3150.0, 4470.0, 5920.0)) / 3
        return ((0.4 * hp + 0.25 * ring) * np.exp(-t / 0.25) * 0.45).astype(np.float32)
    if kind == "snare":
        body = np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.04)
        return ((0.6 * noise * np.exp(-t / 0.07) + 0.5 * body) * 0.8).astype(np.float32)[: int(0.3 * sr)]
    raise ValueError(f"no drum sound {kind!r}")


def _add(buf: np.ndarray, sig: np.ndarray, at: float, sr: int, gain: float = 1.0) -> None:
    """Mix `sig` into `buf` starting at `at` seconds, cut at the buffer's end."""
    i = int(round(at * sr))
    if i >= buf.size:
        return
    j = min(buf.size, i + sig.size)
    buf[i:j] += gain * sig[: j - i]


def _reverb(y: np.ndarray, sr: int, seconds: float, wet: float, rng: np.random.Generator) -> np.ndarray:
    """A small room: convolution with decaying, darkened noise (no external impulse responses needed)."""
    n = int(seconds * sr)
    t = np.arange(n, dtype=np.float32) / sr
    ir = rng.standard_normal(n).astype(np.float32) * np.exp(-t * 6.9 / seconds)
    ir = lfilter([0.25], [1.0, -0.75], ir).astype(np.float32)  # one-pole low-pass: warmer tail
    ir[: int(0.012 * sr)] = 0.0  # pre-delay keeps the attack clear
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-9
    tail = fftconvolve(y, ir)[: y.size].astype(np.float32)
    return (1 - wet) * y + wet * tail


# Per genre: (lead subdivisions scale, accompaniment, drum pattern, reverb seconds, reverb wet)
_GENRE_SOUND = {
    "ambient": (0.5, "pad", None, 2.6, 0.45),
    "techno": (1.0, "offbass", "four", 0.8, 0.12),
    "jazz": (1.0, "comp", "swing", 1.2, 0.2),
    "folk": (1.0, "strum", "shaker", 1.0, 0.18),
    "hip-hop": (1.0, "keys", "boombap", 0.9, 0.12),
    "classical": (1.0, "strings", None, 2.0, 0.32),
}
_MOOD_SUBDIV = {"calm": 1, "melancholic": 1, "happy": 2, "dark": 2, "energetic": 4}


def synth_clip(genre: str, mood: str, instrument: str, bpm: float, key_root: int, mode: str,
               energy: float, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A mono float32 clip: chords, a lead line on `instrument` and genre drums at `bpm`, about -14 dBFS."""
    if genre not in _GENRE_SOUND:
        raise ValueError(f"no sound for genre {genre!r}; known: {sorted(_GENRE_SOUND)}")
    n = int(round(seconds * sr))
    beat = 60.0 / bpm
    scale = MAJOR if mode == "major" else MINOR
    prog = PROGRESSIONS[mode][rng.integers(len(PROGRESSIONS[mode]))]
    beats_per_chord = 4 if bpm >= 100 else 2
    n_beats = int(np.ceil(seconds / beat)) + 1
    sub_scale, accomp, drums, rv_seconds, rv_wet = _GENRE_SOUND[genre]

    lead = np.zeros(n, np.float32)
    back = np.zeros(n, np.float32)
    low = np.zeros(n, np.float32)
    kit = np.zeros(n, np.float32)

    def chord(b: int, sevenths: bool = False) -> list[int]:
        deg = prog[(b // beats_per_chord) % len(prog)]
        tones = (0, 2, 4, 6) if sevenths else (0, 2, 4)
        return [key_root + _degree(scale, deg + k) for k in tones]

    # -- lead line: chord tones on a grid of beat subdivisions, accents on the beat so tempo is audible
    subdiv = max(1, int(_MOOD_SUBDIV[mood] * sub_scale)) if not (bpm > 128 and _MOOD_SUBDIV[mood] == 4) else 2
    octave = 0 if instrument == "bass" else 12
    pattern = rng.integers(3)
    step = beat / subdiv
    legato = {"strings": 1.0, "synth": 0.8, "bass": 0.9}.get(instrument, 1.6)
    prev = rng.integers(4)
    for s in range(n_beats * subdiv):
        b, on_beat = s // subdiv, s % subdiv == 0
        if not on_beat and rng.random() < 0.15:
            continue  # a rest now and then, never on the beat
        tones = chord(b) + [chord(b)[0] + 12]
        if pattern == 0:
            idx = s % len(tones)
        elif pattern == 1:
            cyc = s % (2 * len(tones) - 2)
            idx = cyc if cyc < len(tones) else 2 * len(tones) - 2 - cyc
        else:
            prev = int(np.clip(prev + rng.integers(-1, 2), 0, len(tones) - 1))
            idx = prev
        vel = 1.0 if (on_beat and b % 4 == 0) else 0.85 if on_beat else 0.55
        _add(lead, _note(instrument, tones[idx] + octave, step * legato, sr, rng), s * step, sr, vel)

    # -- accompaniment
    bass_inst = "bass" if instrument != "bass" else "piano"
    for seg in range(0, n_beats, beats_per_chord):
        t0, notes = seg * beat, chord(seg)
        seg_len = beats_per_chord * beat
        if accomp == "pad":
            for m in notes:
                _add(back, _note("pad", m, seg_len, sr, rng), t0, sr, 0.5)
        elif accomp == "strings":
            for m in notes:
                _add(back, _note("strings", m - 12 * (m == notes[0]), seg_len, sr, rng), t0, sr, 0.45)
        elif accomp == "keys":
            for m in chord(seg, sevenths=True):
                _add(back, _note("piano", m, seg_len * 0.9, sr, rng), t0, sr, 0.3)
            _add(low, _note(bass_inst, notes[0] - 12, seg_len * 0.7, sr, rng), t0, sr, 0.8)
    for b in range(n_beats):
        t0, notes = b * beat, chord(b)
        if accomp == "offbass":
            _add(low, _note(bass_inst, notes[0] - 12, beat * 0.35, sr, rng), t0 + beat / 2, sr, 0.8)
        elif accomp == "comp":
            if b % 2 == 1:  # comping on 2 and 4
                for m in chord(b, sevenths=True):
                    _add(back, _note("piano", m, beat * 0.5, sr, rng), t0, sr, 0.28)
            walk = notes[b % 3] - 12  # walking bass through the chord tones
            _add(low, _note(bass_inst, walk, beat * 0.9, sr, rng), t0, sr, 0.7)
        elif accomp == "strum":
            if b % 2 == 0 or energy > 0.6:
                for k, m in enumerate(notes + [notes[0] + 12]):
                    _add(back, _note("guitar", m, beat, sr, rng), t0 + 0.012 * k, sr, 0.3)

    # -- drums: one sample per kind per clip, placed on the grid
    if drums is not None:
        hits = {k: _drum(k, sr, rng) for k in ("kick", "snare", "hat", "ride")}
        level = 0.5 + 0.5 * energy
        for b in range(n_beats):
            t0 = b * beat
            if drums == "four":
                _add(kit, hits["kick"], t0, sr, 1.0 * level)
                _add(kit, hits["hat"], t0 + beat / 2, sr, 0.6 * level)
                if b % 2 == 1 and energy > 0.5:
                    _add(kit, hits["snare"], t0, sr, 0.45 * level)
            elif drums == "boombap":
                if b % 4 in (0, 2):
                    _add(kit, hits["kick"], t0, sr, 1.0 * level)
                if b % 4 == 1:
                    _add(kit, hits["kick"], t0 + beat * 0.58, sr, 0.7 * level)
                if b % 2 == 1:
                    _add(kit, hits["snare"], t0, sr, 0.8 * level)
                _add(kit, hits["hat"], t0, sr, 0.45 * level)
                _add(kit, hits["hat"], t0 + beat * 0.58, sr, 0.3 * level)  # swung off-beat
            elif drums == "swing":
                _add(kit, hits["ride"], t0, sr, 0.5 * level)
                if b % 2 == 1:
                    _add(kit, hits["ride"], t0 + beat * 0.66, sr, 0.3 * level)
                if b % 4 == 0:
                    _add(kit, hits["kick"], t0, sr, 0.35 * level)
            elif drums == "shaker":
                if energy > 0.35:
                    _add(kit, hits["hat"], t0, sr, 0.25 * level)
                    _add(kit, hits["hat"], t0 + beat / 2, sr, 0.15 * level)

    y = lead + 0.8 * back + 0.75 * low + 0.8 * kit
    y = _reverb(y, sr, rv_seconds, rv_wet, rng)
    y -= y.mean()
    fade_in, fade_out = int(0.015 * sr), int(min(0.5, seconds / 6) * sr)
    y[:fade_in] *= np.linspace(0, 1, fade_in, dtype=np.float32)
    y[-fade_out:] *= np.linspace(1, 0, fade_out, dtype=np.float32) ** 2
    return normalise_loudness(y)


def normalise_loudness(y: np.ndarray, target_dbfs: float = TARGET_DBFS, ceiling: float = 0.95) -> np.ndarray:
    """Scale to `target_dbfs` RMS; a soft limiter keeps peaks under `ceiling` so nothing clips."""
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    if rms < 1e-9:
        return y.astype(np.float32)
    y = y * (10 ** (target_dbfs / 20) / rms)
    if np.abs(y).max() > ceiling:
        y = ceiling * np.tanh(y / ceiling)  # ~linear at the RMS level, rounds off only the peaks
    return y.astype(np.float32)
