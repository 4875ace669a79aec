"""Every recommender by name: build one with overrides, and list the ones an embedding set allows."""
from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from typing import Any

from core.encoders.embeddings import EmbeddingSet
from core.models.als import ALS
from core.models.base import Recommender
from core.models.bprmf import BPRMF
from core.models.content import ContentModel
from core.models.ease import EASE
from core.models.implicit_bpr import ImplicitBPR
from core.models.itemknn import ItemKNN
from core.models.late_fusion import LateFusion
from core.models.lightgcn import LightGCN
from core.models.popularity import Popularity
from core.models.vbpr import VBPR

FUSION_STRATEGIES = ("concat", "weighted", "gated", "adversarial")

BASELINES: dict[str, Callable[..., Recommender]] = {
    "popularity": Popularity,
    "itemknn": ItemKNN,
    "bprmf": BPRMF,
    "vbpr": VBPR,
    "text-only": lambda **kw: ContentModel("text", **kw),
    "image-only": lambda **kw: ContentModel("image", **kw),
    "audio-only": lambda **kw: ContentModel("audio", **kw),
    "late-fusion": LateFusion,
    "ease": EASE,
    "als": ALS,
    "implicit-bpr": ImplicitBPR,
    "lightgcn": LightGCN,
}

# Validation grids (core.models.selection.select_on_validation) of models without a declared search space:
# each point overrides the model's defaults and the best on validation Recall@20 is kept. Every baseline with
# settings has a space in core.tuning.baselines instead (searched, with ranges that extend past their edges).
GRIDS: dict[str, list[dict[str, Any]]] = {}


def _fusion_builder(strategy: str) -> Callable[..., Recommender]:
    """A builder that imports the fusion model only when called, so the registry loads without it."""

    def build(base: Any = None, **overrides: Any) -> Recommender:
        from core.models.fusion import FusionConfig, FusionRecommender

        return FusionRecommender(dataclasses.replace(base or FusionConfig(), **{**overrides, "strategy": strategy}))

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
        from core.models.fusion import FusionConfig

        return [f.name for f in dataclasses.fields(FusionConfig) if f.name != "strategy"]
    model = build_model(name)
    return [f.name for f in dataclasses.fields(model.config)]  # type: ignore[attr-defined]
