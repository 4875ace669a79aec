"""Every baseline by name: the collaborative and content models the fusion model is compared with (and whose
collaborative members it adds). It knows nothing of the fusion model (core.models.registry adds it)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

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


def build_baseline(name: str, **overrides: Any) -> Recommender:
    """A fresh, unfitted baseline by name; `overrides` replace fields of its config dataclass."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}")
    try:
        return BASELINES[name](**overrides)
    except TypeError as e:  # dataclasses.replace / the config reject an unknown field
        raise ValueError(f"model {name!r} does not accept the setting(s) {sorted(overrides)}: {e}") from e


def baseline_fields(name: str) -> list[str]:
    """The override names `build_baseline(name, ...)` accepts."""
    return [f.name for f in dataclasses.fields(build_baseline(name).config)]  # type: ignore[attr-defined]
