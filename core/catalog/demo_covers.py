"""Cover art for the demo catalog: a pure function of a track's attributes and a seeded generator, so the same
seed always yields byte-identical images (the clips are core.catalog.demo_audio)."""
from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

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
