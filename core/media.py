"""Safe loading of images and audio from paths or bytes. Every failure is an UnsupportedMediaError
that names the file and says what to fix."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import UnsupportedMediaError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused as possible decompression bombs
AUDIO_SAMPLE_RATE = 22_050
MIN_AUDIO_SECONDS = 0.5

MediaSource = str | Path | bytes


def _label(source: MediaSource, name: str | None) -> str:
    return name or (str(source) if not isinstance(source, bytes) else "uploaded file")


def load_image(source: MediaSource, name: str | None = None) -> Image.Image:
    """An RGB PIL image; refuses unreadable, truncated and oversized (decompression bomb) files."""
    label = _label(source, name)
    suffix = Path(name or (source if not isinstance(source, bytes) else "")).suffix.lower()
    if suffix and suffix not in IMAGE_SUFFIXES:
        raise UnsupportedMediaError(
            f"{label}: '{suffix}' is not a supported image type; use one of {sorted(IMAGE_SUFFIXES)}")
    try:
        fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    except OSError as e:
        raise UnsupportedMediaError(f"{label}: cannot open the image file ({e.strerror})") from e
    with fp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fp)
                w, h = img.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise UnsupportedMediaError(
                        f"{label}: {w}×{h} pixels is too large (limit {MAX_IMAGE_PIXELS:,} pixels; "
                        "it may be a decompression bomb); resize it and upload again")
                img.load()
                return img.convert("RGB")
        except UnsupportedMediaError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise UnsupportedMediaError(
                f"{label}: refused as a possible decompression bomb ({e}); resize it and upload again") from e
        except Exception as e:  # PIL raises many types for corrupt data
            raise UnsupportedMediaError(
                f"{label}: not a readable image ({type(e).__name__}: {e}); it may be corrupt or truncated, "
                f"or not an image at all; use PNG, JPEG or WebP") from e


def load_audio(source: MediaSource, name: str | None = None, sr: int = AUDIO_SAMPLE_RATE,
               min_seconds: float = MIN_AUDIO_SECONDS) -> np.ndarray:
    """A mono float32 waveform at `sr`; refuses unreadable, too-short and silent clips."""
    import librosa
    import soundfile as sf

    label = _label(source, name)
    suffix = Path(name or (source if not isinstance(source, bytes) else "")).suffix.lower()
    if suffix and suffix not in AUDIO_SUFFIXES:
        raise UnsupportedMediaError(
            f"{label}: '{suffix}' is not a supported audio type; use one of {sorted(AUDIO_SUFFIXES)}")
    try:
        if isinstance(source, bytes):
            try:
                y, native_sr = sf.read(io.BytesIO(source), dtype="float32", always_2d=True)
                y = y.mean(axis=1)
            except Exception:
                # mp3 and others soundfile cannot read: librosa's audioread fallback needs a real file
                import tempfile

                with tempfile.NamedTemporaryFile(suffix=suffix or ".bin") as tmp:
                    tmp.write(source)
                    tmp.flush()
                    y, native_sr = librosa.load(tmp.name, sr=None, mono=True)
        else:
            y, native_sr = librosa.load(str(source), sr=None, mono=True)
    except Exception as e:
        raise UnsupportedMediaError(
            f"{label}: not a readable audio file ({type(e).__name__}); use WAV, FLAC or OGG "
            "(MP3 where the system has a decoder)") from e
    y = np.asarray(y, dtype=np.float32)
    if native_sr != sr and y.size:
        y = librosa.resample(y, orig_sr=native_sr, target_sr=sr).astype(np.float32)
    if y.size < min_seconds * sr:
        raise UnsupportedMediaError(
            f"{label}: the clip is {y.size / sr:.2f} s long; at least {min_seconds} s of audio is needed")
    if not np.isfinite(y).all() or float(np.sqrt(np.mean(y ** 2))) < 1e-4:
        raise UnsupportedMediaError(f"{label}: the clip is silent; upload a clip with audible sound")
    return y
