"""Safe loading of images and audio from paths or bytes. Every failure is an UnsupportedMediaError
that names the file and says what to fix.

Images are decoded only by the formats the studio supports, recognised by content (a file's extension is
not trusted: an EPS file named .png never reaches Ghostscript). Audio is measured from its header before
any decoding, refused over the duration limit, and only the central window that the encoders use is
decoded; clips from 50 ms up are padded rather than refused.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import UnsupportedMediaError
from core.limits import limits

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")  # PIL decoders allowed, chosen by content
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
MAX_IMAGE_PIXELS = 40_000_000  # default of $PRISM_MAX_IMAGE_PIXELS (see core.limits)
AUDIO_SAMPLE_RATE = 22_050
MIN_AUDIO_SECONDS = 0.05  # shorter clips are refused; clips from here up are padded
PAD_AUDIO_SECONDS = 0.5  # shorter clips are centred in silence to this length
AUDIO_WINDOW_SECONDS = 30.0  # the central window decoded (encoders use a central window within it)
SILENCE_RMS = 1e-4  # root mean square below which a clip is digital silence
MAX_AUDIO_RATE = 192_000  # Hz: studio masters reach 192 kHz; a higher rate in a header is refused before decoding
MAX_AUDIO_CHANNELS = 8  # 7.1 surround; more channels in a header are refused before decoding
DECODE_BLOCK = 1 << 16  # frames decoded at once, each block downmixed to mono before the next is read
# so one clip costs at most MAX_AUDIO_RATE × MAX_AUDIO_CHANNELS × AUDIO_WINDOW_SECONDS decoded samples (46 M), and
# its memory is the mono window plus one block of channels, whatever the file's header claims

MediaSource = str | Path | bytes


def _label(source: MediaSource, name: str | None) -> str:
    return name or (str(source) if not isinstance(source, bytes) else "uploaded file")


def _suffix(source: MediaSource, name: str | None) -> str:
    return Path(name or (source if not isinstance(source, bytes) else "")).suffix.lower()


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(b"<svg") or (text.startswith((b"<?xml", b"<!doctype svg")) and b"<svg" in text)


def load_image(source: MediaSource, name: str | None = None) -> Image.Image:
    """An RGB PIL image; refuses unreadable, truncated, unsupported and oversized (decompression bomb) files."""
    label = _label(source, name)
    suffix = _suffix(source, name)
    max_pixels = limits().max_image_pixels
    if suffix == ".svg":
        raise UnsupportedMediaError(f"{label}: SVG is a vector format the studio does not draw; convert it to PNG "
                                    "first (e.g. `rsvg-convert -w 512 cover.svg -o cover.png`)")
    if suffix and suffix not in IMAGE_SUFFIXES:
        raise UnsupportedMediaError(
            f"{label}: '{suffix}' is not a supported image type; use one of {sorted(IMAGE_SUFFIXES)}")
    try:
        fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    except OSError as e:
        raise UnsupportedMediaError(f"{label}: cannot open the image file ({e.strerror})") from e
    with fp:
        head = fp.read(512)
        fp.seek(0)
        if _looks_like_svg(head):
            raise UnsupportedMediaError(f"{label}: is an SVG drawing, which the studio does not draw; convert it "
                                        "to PNG first (e.g. `rsvg-convert -w 512 cover.svg -o cover.png`)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fp, formats=IMAGE_FORMATS)
                w, h = img.size
                if w * h > max_pixels:
                    raise UnsupportedMediaError(
                        f"{label}: {w}×{h} pixels is too large (limit {max_pixels:,} pixels, "
                        "$PRISM_MAX_IMAGE_PIXELS; it may be a decompression bomb); resize it and upload again")
                img.load()
                if img.mode == "P" and "transparency" in img.info:
                    img = img.convert("RGBA")  # PIL warns when a palette with transparency goes straight to RGB
                return img.convert("RGB")
        except UnsupportedMediaError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise UnsupportedMediaError(
                f"{label}: too large, refused as a possible decompression bomb (limit {max_pixels:,} pixels, "
                "$PRISM_MAX_IMAGE_PIXELS); resize it and upload again") from e
        except Image.UnidentifiedImageError as e:
            raise UnsupportedMediaError(
                f"{label}: not a PNG, JPEG, WebP, BMP or GIF image by its content (whatever its name says); "
                "it may be corrupt, or another format: convert it to PNG or JPEG") from e
        except Exception as e:  # PIL raises many types for corrupt data
            raise UnsupportedMediaError(
                f"{label}: not a readable image ({type(e).__name__}: {e}); it may be corrupt or truncated, "
                f"or not an image at all; use PNG, JPEG or WebP") from e


def load_audio(source: MediaSource, name: str | None = None, sr: int = AUDIO_SAMPLE_RATE,
               min_seconds: float = MIN_AUDIO_SECONDS, *,
               window_seconds: float | None = AUDIO_WINDOW_SECONDS) -> np.ndarray:
    """A mono float32 waveform at `sr`: the central `window_seconds` of the clip (None: all of it).

    The duration comes from the header first (over $PRISM_MAX_AUDIO_SECONDS is refused before decoding);
    clips of `min_seconds` (50 ms) and more are padded to half a second; silent and damaged clips are refused.
    """
    import soundfile as sf

    label = _label(source, name)
    suffix = _suffix(source, name)
    if suffix and suffix not in AUDIO_SUFFIXES:
        raise UnsupportedMediaError(
            f"{label}: '{suffix}' is not a supported audio type; use one of {sorted(AUDIO_SUFFIXES)}")
    max_seconds = limits().max_audio_seconds
    try:
        f = sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    except Exception as e:
        raise UnsupportedMediaError(
            f"{label}: not a readable audio file ({type(e).__name__}); use WAV, FLAC, OGG or MP3") from e
    with f:
        native_sr = int(f.samplerate)
        if native_sr <= 0:
            raise UnsupportedMediaError(f"{label}: the header gives no sample rate; re-export the clip")
        if native_sr > MAX_AUDIO_RATE or not 1 <= f.channels <= MAX_AUDIO_CHANNELS:
            raise UnsupportedMediaError(
                f"{label}: the header gives {native_sr:,} Hz × {f.channels} channel(s), over the studio's "
                f"{MAX_AUDIO_RATE:,} Hz × {MAX_AUDIO_CHANNELS} channels (decoding it would cost too much); "
                "re-export it at 44.1 or 48 kHz, mono or stereo")
        frames = int(f.frames) if 0 < f.frames < 2 ** 62 else -1
        try:
            if frames < 0:  # length unknown from the header: count by reading in blocks, memory bounded
                frames = _count_frames(f, int(max_seconds * native_sr), label, max_seconds)
                f.seek(0)
            if frames / native_sr > max_seconds:
                raise UnsupportedMediaError(
                    f"{label}: the clip is {frames / native_sr / 60:,.1f} min long, over the "
                    f"{max_seconds / 60:,.1f} min limit ($PRISM_MAX_AUDIO_SECONDS); cut it shorter")
            want = frames if window_seconds is None else min(frames, int(round(window_seconds * native_sr)))
            start = (frames - want) // 2
            if start:
                f.seek(start)
            y = np.empty(want, np.float32)
            got = 0
            for block in f.blocks(blocksize=DECODE_BLOCK, frames=want, dtype="float32", always_2d=True):
                y[got:got + len(block)] = block.mean(axis=1)  # downmixed block by block: memory stays bounded
                got += len(block)
            y = y[:got]
        except UnsupportedMediaError:
            raise
        except Exception as e:
            raise UnsupportedMediaError(
                f"{label}: the audio data cannot be decoded ({type(e).__name__}: {e}); the file may be "
                "truncated or damaged, re-export it") from e
    if not np.isfinite(y).all():
        raise UnsupportedMediaError(f"{label}: the clip holds NaN or infinite samples (a damaged or "
                                    "mis-encoded file); re-export it as 16- or 24-bit audio")
    seconds = y.size / native_sr
    if seconds < min_seconds:
        raise UnsupportedMediaError(f"{label}: the clip is {seconds * 1000:.0f} ms long; at least "
                                    f"{min_seconds * 1000:.0f} ms of audio is needed")
    if float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) < SILENCE_RMS:
        raise UnsupportedMediaError(f"{label}: the clip is silent (digital silence); upload a clip with audible sound")
    if native_sr != sr:
        import librosa

        y = librosa.resample(y, orig_sr=native_sr, target_sr=sr)
    return pad_short_clip(y, sr)


def pad_short_clip(y: np.ndarray, sr: int) -> np.ndarray:
    """A mono float32 waveform of at least PAD_AUDIO_SECONDS: a short real sound (a hammer, a click) is
    centred in silence, not refused. Every path into the encoders (files, bytes, arrays) pads the same way."""
    y = np.asarray(y, dtype=np.float32)
    pad_to = int(round(PAD_AUDIO_SECONDS * sr))
    if y.size >= pad_to:
        return y
    out = np.zeros(pad_to, np.float32)
    lead = (pad_to - y.size) // 2
    out[lead:lead + y.size] = y
    return out


def _count_frames(f, limit: int, label: str, max_seconds: float) -> int:
    """Frames of an open SoundFile read block by block; refused as soon as they pass `limit`."""
    total = 0
    for block in f.blocks(blocksize=1 << 16, dtype="float32"):
        total += len(block)
        if total > limit:
            raise UnsupportedMediaError(f"{label}: the clip is longer than the {max_seconds / 60:,.1f} min limit "
                                        "($PRISM_MAX_AUDIO_SECONDS); cut it shorter")
    return total
