"""Limits and safety settings for imports and uploads, read from the environment (defaults in the README).

Every limit protects the server from a small file that would cost it a lot (a zip bomb, a ten-hour clip,
a gigapixel image); every message that enforces one names the limit and the variable that sets it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import PrismError


class SettingError(PrismError):
    """An environment setting holds a value that cannot be used."""


def _number(var: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise SettingError(f"${var}={raw!r} is not a number; unset it or give e.g. {default:g}") from e
    if value < minimum:
        raise SettingError(f"${var}={raw!r} must be at least {minimum:g}")
    return value


def _flag(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")


def _roots(var: str) -> tuple[Path, ...]:
    raw = os.environ.get(var, "").strip()
    return tuple(Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip())


@dataclass(frozen=True)
class Limits:
    """What one import or upload may cost; `Limits.from_env()` reads the PRISM_* variables."""

    max_upload_mb: float = 50.0  # PRISM_MAX_UPLOAD_MB: one uploaded file (keep ≤ server.maxUploadSize)
    max_unpacked_mb: float = 512.0  # PRISM_MAX_UNPACKED_MB: a zip's total unpacked size (checked before unpacking)
    max_zip_entries: int = 20_000  # PRISM_MAX_ZIP_ENTRIES: entries in one zip (10,000 items with a cover and a clip)
    max_zip_ratio: float = 100.0  # PRISM_MAX_ZIP_RATIO: unpacked ÷ packed size, per entry and in total (media
    #                               barely compress; a CSV compresses about 5-10×)
    max_image_pixels: int = 40_000_000  # PRISM_MAX_IMAGE_PIXELS: width × height of one image
    max_audio_seconds: float = 1800.0  # PRISM_MAX_AUDIO_SECONDS: duration of one clip (from its header)
    import_roots: tuple[Path, ...] = field(default=())  # PRISM_IMPORT_ROOTS: folders the app may import from
    allow_browser_overwrite: bool = False  # PRISM_ALLOW_BROWSER_OVERWRITE: the app may replace catalogs

    @classmethod
    def from_env(cls) -> Limits:
        """The limits set by the environment, defaults for the rest."""
        d = cls()
        return cls(
            max_upload_mb=_number("PRISM_MAX_UPLOAD_MB", d.max_upload_mb, 0.001),
            max_unpacked_mb=_number("PRISM_MAX_UNPACKED_MB", d.max_unpacked_mb, 0.001),
            max_zip_entries=int(_number("PRISM_MAX_ZIP_ENTRIES", d.max_zip_entries, 1)),
            max_zip_ratio=_number("PRISM_MAX_ZIP_RATIO", d.max_zip_ratio, 1),
            max_image_pixels=int(_number("PRISM_MAX_IMAGE_PIXELS", d.max_image_pixels, 1)),
            max_audio_seconds=_number("PRISM_MAX_AUDIO_SECONDS", d.max_audio_seconds, 0.05),
            import_roots=_roots("PRISM_IMPORT_ROOTS"),
            allow_browser_overwrite=_flag("PRISM_ALLOW_BROWSER_OVERWRITE"),
        )

    @property
    def max_unpacked_bytes(self) -> int:
        return int(self.max_unpacked_mb * 2 ** 20)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2 ** 20)


def limits() -> Limits:
    """The current limits (read afresh, so a changed environment applies to the next import)."""
    return Limits.from_env()


def check_import_root(path: Path | str, roots: tuple[Path, ...]) -> Path:
    """`path` resolved, if it lies under one of `roots` (the folders the operator lets the app import from).

    The studio calls this for folder paths typed in the browser; the CLI imports any path its user gives.
    """
    from core.errors import CatalogError

    if not roots:
        raise CatalogError("importing a folder that is on the server is off in this studio; upload a .zip "
                           "instead (an operator can allow folders with PRISM_IMPORT_ROOTS)")
    resolved = Path(path).expanduser().resolve()
    if not any(resolved == r or resolved.is_relative_to(r) for r in roots):
        raise CatalogError("that folder is outside the folders this studio may import from; give a folder "
                           "under one of the allowed import roots, or upload a .zip")
    return resolved
