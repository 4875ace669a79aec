"""Model settings from the command line: `--set NAME=VALUE` (repeatable) and `--config FILE` (JSON).

A bare NAME is a FusionConfig field and applies to every fusion model; `MODEL.NAME` (e.g. `als.factors`)
applies to that registry model only. A JSON file holds the same keys, or one object per model:
`{"dim": 128, "als": {"factors": 128}}`. Values are cast to the field's declared type, and a setting the
model does not have is refused by name.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

FUSION = "fusion"  # the key under which bare settings (fusion models) are collected
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _bool(value: str) -> bool:
    """true/yes/on/1 or false/no/off/0; anything else is refused (ValueError), not read as false."""
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{value!r} is not true or false")


_CASTS = {"int": int, "float": float, "str": str, "bool": _bool}


def setting_types(model: str) -> dict[str, str]:
    """{field: declared type} of a model's config ('fusion' for FusionConfig, else a registry name)."""
    from core.models.registry import MODELS, build_model

    if model == FUSION or model.startswith("fusion-"):
        from core.models.fusion.config import FusionConfig

        return {f.name: str(f.type) for f in dataclasses.fields(FusionConfig)}
    if model not in MODELS:
        raise ValueError(f"setting for unknown model {model!r}; prefix a setting with one of {sorted(MODELS)}, "
                         "or write it bare for the fusion models")
    config = getattr(build_model(model), "config", None)
    return {f.name: str(f.type) for f in dataclasses.fields(config)} if config is not None else {}


def cast_setting(model: str, name: str, value: Any, source: str) -> Any:
    """`value` as the declared type of `model`'s field `name`, inside its declared range (core.limits);
    `source` names the flag in messages."""
    from core.limits import check_setting

    types = setting_types(model)
    if name not in types:
        raise ValueError(f"{source}: {model} has no setting {name!r}; choose one of {sorted(types)}")
    kind = types[name]
    if kind not in _CASTS:
        raise ValueError(f"{source}: {model}.{name} ({kind}) cannot be set from the command line")
    if not isinstance(value, str):  # typed already (JSON): check it fits
        if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(check_setting(name, float(value), f"{source}: {name}"))
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return check_setting(name, value, f"{source}: {name}")
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "str" and isinstance(value, str):
            return value
        raise ValueError(f"{source}: {model}.{name} takes a {kind}, got {value!r}")
    if kind in ("int", "float"):
        number = check_setting(name, value, f"{source}: {name}")
        try:
            return _CASTS[kind](number)
        except ValueError:
            what = {"int": "a whole number", "float": "a number"}[kind]
            raise ValueError(f"{source}: {name} takes {what}") from None
    try:
        return _CASTS[kind](value)
    except ValueError:
        what = "true or false (also yes/no, on/off, 1/0)" if kind == "bool" else kind
        raise ValueError(f"{source}: {name} takes {what}") from None


def _split_key(key: str) -> tuple[str, str]:
    """('fusion', field) for a bare key, (model, field) for 'model.field'."""
    model, dot, name = key.strip().rpartition(".")
    return (model if dot else FUSION), name.strip().replace("-", "_")


def parse_set(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """{model: {field: typed value}} from NAME=VALUE / MODEL.NAME=VALUE strings."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {pair!r}: write NAME=VALUE (a fusion setting) or MODEL.NAME=VALUE")
        model, name = _split_key(key)
        out.setdefault(model, {})[name] = cast_setting(model, name, value, f"--set {pair!r}")
    return out


def _read_config_text(path: Path) -> str:
    """The settings file's text: a regular file of at most MAX_CONFIG_BYTES, read no further than that."""
    from core.limits import MAX_CONFIG_BYTES

    path = Path(path)
    if not path.exists():
        raise ValueError(f"--config {path}: no such file")
    if path.is_dir():
        raise ValueError(f"--config {path}: is a folder; give a JSON file, e.g. settings.json")
    if not path.is_file():
        raise ValueError(f"--config {path}: not a regular file (a device or a pipe); give a JSON file")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ValueError(f"--config {path}: cannot be read ({e.strerror})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"--config {path}: over {MAX_CONFIG_BYTES // 1024:,} KB; a settings file is a few lines")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"--config {path}: not UTF-8 text; write the settings as a JSON object") from None


def load_config_file(path: Path) -> dict[str, dict[str, Any]]:
    """{model: {field: value}} from a JSON object of settings (see the module docstring); the file's size and
    nesting are bounded (core.limits)."""
    from core.limits import MAX_CONFIG_DEPTH, nesting_depth

    text = _read_config_text(path)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--config {path}: not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"--config {path}: nested too deeply; settings go at most {MAX_CONFIG_DEPTH} levels "
                         "deep, e.g. {\"als\": {\"factors\": 128}}") from None
    if nesting_depth(raw) > MAX_CONFIG_DEPTH:
        raise ValueError(f"--config {path}: nested {nesting_depth(raw)} levels deep; settings go at most "
                         f"{MAX_CONFIG_DEPTH} levels deep, e.g. {{\"als\": {{\"factors\": 128}}}}")
    if not isinstance(raw, dict):
        raise ValueError(f"--config {path}: write one JSON object of settings, e.g. {{\"dim\": 128}}")
    out: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            for name, v in value.items():
                out.setdefault(key, {})[name] = cast_setting(key, name, v, f"--config {path}")
        else:
            model, name = _split_key(key)
            out.setdefault(model, {})[name] = cast_setting(model, name, value, f"--config {path}")
    return out


def merge_settings(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Later layers win field by field (e.g. the --config file, then --set)."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for model, values in layer.items():
            out.setdefault(model, {}).update(values)
    return out


def settings_for(settings: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """The overrides that apply to registry model `name` (bare fusion settings for every fusion model)."""
    own = dict(settings.get(name, {}))
    return {**settings.get(FUSION, {}), **own} if name.startswith("fusion") else own
