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


# -- values set in the browser or on the command line ------------------------------------------------------
class OptionError(PrismError, ValueError):
    """A value set in the browser or on the command line lies outside its declared range (a ValueError too,
    so the callers that refuse bad settings before work starts catch it with the rest)."""


@dataclass(frozen=True)
class Bound:
    """The allowed range of one value a user sets; `why` says what the upper end protects."""

    low: float
    high: float
    integer: bool = True
    low_open: bool = False  # the value must be above `low`, not equal to it
    why: str = ""

    def describe(self) -> str:
        """'a whole number from 1 to 1,000' / 'a number above 0 and at most 10'."""
        kind = "a whole number" if self.integer else "a number"
        low, high = f"{self.low:,g}", f"{self.high:,g}"
        if self.low_open:
            return f"{kind} above {low} and at most {high}"
        return f"{kind} from {low} to {high}"

    def holds(self, value: float) -> bool:
        return (value > self.low if self.low_open else value >= self.low) and value <= self.high


# Every value a user may set, in one place; the CLI parsers, the pages' widgets and the core functions that
# would allocate from them all read these. The upper ends keep one request's memory and time bounded.
OPTION_BOUNDS: dict[str, Bound] = {
    "k": Bound(1, 500, why="every K keeps that many ranked items for every evaluated user"),
    "ks_count": Bound(1, 20, why="each K adds a column of metrics per user"),
    "seed": Bound(0, 2 ** 32 - 1, why="numpy seeds are unsigned 32-bit"),
    "model_seeds": Bound(1, 20, why="each seed trains every model once more"),
    "bootstrap": Bound(0, 100_000, why="each resample costs one pass over the users (0 = no intervals)"),
    "trials": Bound(1, 10_000),
    "budget_minutes": Bound(0, 24 * 60, integer=False, low_open=True),
    "jobs": Bound(1, 256),
    "workers": Bound(1, 256, why="each Ray Train worker is a process holding a copy of the model and the data"),
    "trial_epochs": Bound(1, 10_000),
    "encode_batch_size": Bound(1, 4096, why="one batch of media is decoded at once"),
    "demo_tracks": Bound(2, 200_000),
    "demo_listeners": Bound(1, 200_000),
    "explain": Bound(0, 50, why="each explained item costs a Shapley computation"),
    "report_k": Bound(1, 1000),
    "max_listeners": Bound(1, 1_000_000),
    "results_k": Bound(1, 1000),
    "prior_weight": Bound(0, 100, integer=False, why="the popularity prior's weight in a content query's score"),
}

# Model settings (--set, --config, the Train form) by field name, whichever model has the field.
SETTING_BOUNDS: dict[str, Bound] = {
    "dim": Bound(1, 4096, why="vectors of every user and item have this size"),
    "content_dim": Bound(1, 4096),
    "factors": Bound(1, 4096),
    "hidden": Bound(0, 8192),
    "epochs": Bound(1, 10_000),
    "iterations": Bound(1, 10_000),
    "patience": Bound(1, 10_000),
    "batch_size": Bound(1, 1_000_000),
    "negatives": Bound(1, 1000),
    "graph_layers": Bound(0, 10),
    "layers": Bound(0, 10),
    "k": Bound(1, 10_000),
    "threads": Bound(0, 256),
    "seed": OPTION_BOUNDS["seed"],
    "lr": Bound(0, 10, integer=False, low_open=True),
    "learning_rate": Bound(0, 10, integer=False, low_open=True),
    "dropout": Bound(0, 0.99, integer=False),
    "l1": Bound(0, 1e6, integer=False),
    "l2": Bound(0, 1e6, integer=False),
    "reg": Bound(0, 1e6, integer=False),
    "emb_reg": Bound(0, 1e6, integer=False),
    "regularization": Bound(0, 1e6, integer=False),
    "shrink": Bound(0, 1e6, integer=False),
    "alpha": Bound(0, 1e6, integer=False),
    "align_weight": Bound(0, 100, integer=False),
    "align_temperature": Bound(0, 100, integer=False, low_open=True),
    "adv_weight": Bound(0, 100, integer=False),
    "dislike_weight": Bound(0, 100, integer=False),
    "grid_step": Bound(0, 1, integer=False, low_open=True),
    "max_block_products": Bound(1, 1 << 30),
}

MAX_CONFIG_BYTES = 1 << 20  # a --config settings file (JSON)
MAX_CONFIG_DEPTH = 2  # {"als": {"factors": 128}} is as deep as settings go


def nesting_depth(value: object) -> int:
    """Nesting depth of parsed JSON or YAML (1 for a flat object or list, 0 for a scalar), walked without
    recursion, so a deeply nested file cannot exhaust the stack."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        node, level = todo.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, level + 1)
            todo += [(v, level + 1) for v in (node.values() if isinstance(node, dict) else node)]
    return deepest


def check_bounded(value: object, bound: Bound, option: str) -> int | float:
    """`value` (a number, or text holding one) as an int or float inside `bound`; OptionError naming `option`
    and the allowed range otherwise. Booleans, NaN and infinities are refused."""
    import math

    rule = f"{option} takes {bound.describe()}"
    if isinstance(value, bool) or value is None:
        raise OptionError(f"{rule}, not {value!r}")
    number: float
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            number = int(text) if bound.integer else float(text)
        except ValueError:
            if bound.integer:
                try:  # "1e3" is a whole number written as a float
                    as_float = float(text)
                except ValueError:
                    raise OptionError(f"{rule}, not {value!r}") from None
                if not math.isfinite(as_float) or as_float != int(as_float):
                    raise OptionError(f"{rule}, not {value!r}") from None
                number = int(as_float)
            else:
                raise OptionError(f"{rule}, not {value!r}") from None
    elif isinstance(value, (int, float)):
        number = value
    else:
        raise OptionError(f"{rule}, not {value!r}")
    if isinstance(number, float) and not math.isfinite(number):
        raise OptionError(f"{rule}, not {value!r}")
    if bound.integer:
        if isinstance(number, float) and number != int(number):
            raise OptionError(f"{rule}, not {value!r}")
        number = int(number)
    if not bound.holds(number):
        why = f" ({bound.why})" if bound.why and number > bound.high else ""
        raise OptionError(f"{rule}, not {value!r}{why}")
    return number


def check_option(key: str, value: object, option: str) -> int | float:
    """`value` checked against OPTION_BOUNDS[key]; `option` names it in the message ("--bootstrap",
    "K values")."""
    return check_bounded(value, OPTION_BOUNDS[key], option)


def check_setting(name: str, value: object, option: str) -> object:
    """A model setting checked against SETTING_BOUNDS when its name has a bound; other values unchanged."""
    bound = SETTING_BOUNDS.get(name)
    return value if bound is None else check_bounded(value, bound, option)


def parse_number_list(text: str, key: str, option: str, count_key: str, distinct: bool = True) -> tuple[int, ...]:
    """Comma-separated whole numbers ("5, 10, 20"), each inside OPTION_BOUNDS[key] and at most
    OPTION_BOUNDS[count_key] of them; sorted when `distinct` (duplicates refused otherwise)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    count = OPTION_BOUNDS[count_key]
    bound = OPTION_BOUNDS[key]
    example = "e.g. 10,20" if key == "k" else "e.g. 0,1,2"
    if not parts:
        raise OptionError(f"{option} is empty: give {bound.describe()} or several separated by commas, {example}")
    if len(parts) > count.high:
        raise OptionError(f"{option}: {len(parts)} values given, at most {count.high:,g} allowed")
    values = [int(check_bounded(p, bound, option)) for p in parts]
    if distinct:
        return tuple(sorted(set(values)))
    if len(set(values)) != len(values):
        raise OptionError(f"{option} {text!r} repeats a value; give distinct values, {example}")
    return tuple(values)


def option_type(key: str, option: str):
    """An argparse `type=` that checks OPTION_BOUNDS[key] while the command line is parsed, before any work."""
    import argparse

    def parse(text: str) -> int | float:
        try:
            return check_option(key, text, option)
        except OptionError as e:  # argparse prefixes "argument --name: "
            raise argparse.ArgumentTypeError(str(e).removeprefix(f"{option} ")) from None

    parse.__name__ = key
    return parse


def check_upload_size(name: str, n_bytes: int, limit_mb: float | None = None) -> None:
    """Refuse one uploaded file over the upload limit (PRISM_MAX_UPLOAD_MB, or `limit_mb` when lower) before
    its bytes are decoded: the message says it is too large, by how much, and what the limit is."""
    from core.errors import UnsupportedMediaError

    limit = limits().max_upload_mb if limit_mb is None else min(limit_mb, limits().max_upload_mb)
    if n_bytes > limit * 2 ** 20:
        raise UnsupportedMediaError(f"{name}: {n_bytes / 2 ** 20:,.1f} MB is too large; one upload may be at most "
                                    f"{limit:g} MB (PRISM_MAX_UPLOAD_MB). Use a smaller file")
