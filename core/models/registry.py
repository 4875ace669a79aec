"""Every recommender by name (the baselines of core.models.baselines and the fusion strategies): build one with
overrides, and list the ones an embedding set allows."""
from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from typing import Any

from core.encoders.embeddings import EmbeddingSet
from core.models.base import Recommender
from core.models.baselines import BASELINES

FUSION_STRATEGIES = ("concat", "weighted", "gated", "adversarial")


def _fusion_builder(strategy: str) -> Callable[..., Recommender]:
    """A builder that imports the fusion model only when called, so the registry loads without it."""

    def build(base: Any = None, member_search: Any = None, **overrides: Any) -> Recommender:
        from core.models.fusion.config import FusionConfig
        from core.models.fusion.recommender import FusionRecommender

        return FusionRecommender(dataclasses.replace(base or FusionConfig(), **{**overrides, "strategy": strategy}),
                                 member_search=member_search)

    return build


FUSION: dict[str, Callable[..., Recommender]] = {f"fusion-{s}": _fusion_builder(s) for s in FUSION_STRATEGIES}
MODELS: dict[str, Callable[..., Recommender]] = {**BASELINES, **FUSION}

# what each name needs from the embedding set: a modality, any content at all, or two modalities
_NEEDS_MODALITY = {"text-only": "text", "image-only": "image", "audio-only": "audio"}
_NEEDS_CONTENT = {"vbpr", *FUSION}
_NEEDS_TWO_MODALITIES = {"late-fusion"}


def build_model(name: str, base: Any = None, **overrides: Any) -> Recommender:
    """A fresh, unfitted model by registry name; `overrides` replace fields of its config dataclass.

    `base` (a FusionConfig, e.g. the catalog's tuned one from core.tuning.resolve_fusion_config) starts a
    fusion model from it instead of the FusionConfig defaults, with the name's strategy; baselines ignore it.
    A fusion model also takes `member_search` (core.models.collaborative.MemberSearch): how its collaborative
    members without tuned settings get them.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if name in FUSION:
        overrides = {**overrides, "base": base}
    try:
        return MODELS[name](**overrides)
    except TypeError as e:  # dataclasses.replace / the config reject an unknown field
        raise ValueError(f"model {name!r} does not accept the setting(s) {sorted(overrides)}: {e}") from e


def fusion_available() -> bool:
    """Whether core.models.fusion can be imported in this installation."""
    return importlib.util.find_spec("core.models.fusion") is not None


def list_models(embeddings: EmbeddingSet | None) -> list[str]:
    """The registry names that can be fitted with this embedding set (ids-only models always can)."""
    modalities = embeddings.modalities if embeddings is not None else []
    names = []
    for name in MODELS:
        if name in FUSION and not fusion_available():
            continue
        if name in _NEEDS_MODALITY and _NEEDS_MODALITY[name] not in modalities:
            continue
        if name in _NEEDS_CONTENT and not modalities:
            continue
        if name in _NEEDS_TWO_MODALITIES and len(modalities) < 2:
            continue
        names.append(name)
    return names


def config_fields(name: str) -> list[str]:
    """The override names `build_model(name, ...)` accepts (empty for fusion until it is importable)."""
    if name in FUSION:
        if not fusion_available():
            return []
        from core.models.fusion.config import FusionConfig

        return [f.name for f in dataclasses.fields(FusionConfig) if f.name != "strategy"]
    model = build_model(name)
    return [f.name for f in dataclasses.fields(model.config)]  # type: ignore[attr-defined]
