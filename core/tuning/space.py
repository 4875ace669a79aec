"""The declared search space of the fusion model: one define-by-run function, and the starting points.

Every parameter a trial draws is a field of FusionConfig, so a trial's params are exactly the overrides
of one configuration (what `suggest` returns, what the study stores, what `run_trial` trains). The
starting points are the hand-chosen configurations that used to be looked up by catalog name; here they
are only the first trials of every search, and the search keeps whichever validation prefers.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from core.models.fusion.config import PRESETS, STRATEGIES, FusionConfig
from core.tuning.ranges import Range

DIMS = (32, 64, 128, 256)  # sizes of every projected modality, item and user vector
HIDDEN = (0, 256)  # 0 = linear heads
NEGATIVES = (1, 4, 16, 64, 128)  # sampled unseen items per training pair
L2 = (0.0, 1e-6, 1e-5, 1e-4)  # weight decay; 0 belongs to the space, so it is a choice, not a log range
LR = (1e-3, 3e-2)  # log-uniform; the initial range: a search extends it (EXTENDABLE)
EMB_REG = (1e-6, 1e-1)  # log-uniform; the initial range: a search extends it (EXTENDABLE)
ALIGN = (0.0, 0.5)  # uniform: 0 switches the alignment term off
DROPOUT = (0.0, 0.5)
GRAPH_LAYERS = (0, 3)
LOSSES = ("bpr", "softmax", "full-softmax")  # pairwise, sampled softmax, softmax over every item
# The ranges with no bound of their own: a best point within core.tuning.ranges.EDGE_SHARE of an edge extends
# the range beyond it for the rest of the search (core.tuning.study). The others are bounded by what they are
# (dropout and the alignment weight are shares, sizes and counts are ladders of what fits a CPU).
EXTENDABLE = {"lr": Range(*LR), "emb_reg": Range(*EMB_REG)}
TUNED_FIELDS = ("strategy", "dim", "hidden", "dropout", "use_item_id", "graph_layers", "item_bias", "loss",
                "negatives", "lr", "l2", "emb_reg", "align_weight")

# the hand-chosen configurations are where every search starts (validation decides between them):
# "graph" propagates content + id items over the interaction graph, "content" is content only with linear
# heads and strong regularisation (fast to train; the workspace's first model before any search)
STARTING_POINTS: dict[str, FusionConfig] = {"graph": PRESETS["lfm2k"], "content": PRESETS["demo"]}


def initial_ranges() -> dict[str, tuple[float, float]]:
    """The extendable ranges as a search starts: name -> (low, high)."""
    return {k: (r.low, r.high) for k, r in EXTENDABLE.items()}


def suggest(trial: Any, ranges: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    """The FusionConfig overrides of one trial (optuna define-by-run); `ranges`: the extendable ranges as
    the search has them now (default: the initial ones)."""
    ranges = ranges or initial_ranges()
    return {
        "strategy": trial.suggest_categorical("strategy", list(STRATEGIES)),
        "dim": trial.suggest_categorical("dim", list(DIMS)),
        "hidden": trial.suggest_categorical("hidden", list(HIDDEN)),
        "dropout": trial.suggest_float("dropout", *DROPOUT),
        "use_item_id": trial.suggest_categorical("use_item_id", [True, False]),
        "graph_layers": trial.suggest_int("graph_layers", *GRAPH_LAYERS),
        "item_bias": trial.suggest_categorical("item_bias", [True, False]),
        "loss": trial.suggest_categorical("loss", list(LOSSES)),
        "negatives": trial.suggest_categorical("negatives", list(NEGATIVES)),
        "lr": trial.suggest_float("lr", *ranges["lr"], log=True),
        "l2": trial.suggest_categorical("l2", list(L2)),
        "emb_reg": trial.suggest_float("emb_reg", *ranges["emb_reg"], log=True),
        "align_weight": trial.suggest_float("align_weight", *ALIGN),
    }


def _nearest(value: float, choices: tuple) -> Any:
    return min(choices, key=lambda c: abs(float(c) - float(value)))


def params_of(config: FusionConfig) -> dict[str, Any]:
    """The search-space params closest to `config` (what study.enqueue_trial takes for a starting point)."""
    values = asdict(config)
    params = {k: values[k] for k in TUNED_FIELDS}
    params["dim"] = _nearest(config.dim, DIMS)
    params["hidden"] = _nearest(config.hidden, HIDDEN)
    params["negatives"] = _nearest(config.negatives, NEGATIVES)
    params["l2"] = _nearest(config.l2, L2)
    params["lr"] = min(max(config.lr, LR[0]), LR[1])
    params["emb_reg"] = min(max(config.emb_reg, EMB_REG[0]), EMB_REG[1])
    params["align_weight"] = min(max(config.align_weight, ALIGN[0]), ALIGN[1])
    params["dropout"] = min(max(config.dropout, DROPOUT[0]), DROPOUT[1])
    params["graph_layers"] = min(max(config.graph_layers, GRAPH_LAYERS[0]), GRAPH_LAYERS[1])
    if params["loss"] not in LOSSES:
        params["loss"] = "bpr"
    return params


def apply(base: FusionConfig, params: dict[str, Any]) -> FusionConfig:
    """`base` with a trial's params; unknown names are refused by FusionConfig."""
    unknown = sorted(set(params) - set(asdict(base)))
    if unknown:
        raise ValueError(f"trial params {unknown} are not FusionConfig fields")
    return replace(base, **params)
