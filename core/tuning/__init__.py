"""Selection on validation for every catalog: the search space, one trial, the study, the stored result.

`resolve_fusion_config` is the one rule for which fusion configuration a catalog gets: its stored tuned
configuration, else the result of a short search within a stated budget (stored for next time).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads only when a configuration is resolved, not when the CLI starts
    from core.data.interactions import InteractionData
    from core.models.fusion.config import FusionConfig

Progress = Callable[[int, int, str], None]
SHORT_TUNE_MINUTES = 3.0  # what `train`, the Train page and `evaluate` spend when a catalog has no tuned config
SHORT_TUNE_TRIALS = 20  # a short tune also stops after this many trials (small catalogs finish early)


def describe(tuned: Any) -> str:
    """One line naming where a tuned configuration came from."""
    m = tuned.metric
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(tuned.created_at)) if tuned.created_at else "?"
    final = m.get("finalists") or {}
    chosen = (f"; chosen among its {len(final['finalists'])} best by the final model's mean over seeds "
              f"{final['seeds']} ({float(final['chosen_mean']):.4f})" if final.get("finalists") else "")
    return (f"tuned on validation: {m.get('name')} {float(m.get('value', float('nan'))):.4f} after "
            f"{m.get('trials', len(tuned.history))} trials{chosen} ({when})")


def resolve_fusion_config(store: Any, catalog: Any, embeddings: Any, data: InteractionData, *,
                          budget_minutes: float = SHORT_TUNE_MINUTES,
                          progress: Progress | None = None, persist: bool = True,
                          not_stored_why: str = "") -> tuple[FusionConfig, str]:
    """The catalog's tuned configuration, or (when none is stored for this data) the result of a short
    tune within `budget_minutes`, stored unless `persist` is False (a browser session that may not change
    what others see, core.store.sharing, says why in `not_stored_why`); the string says which."""
    from core.tuning.store import data_fingerprint, load_tuned, save_tuned
    from core.tuning.study import TuneConfig, tune

    name = getattr(catalog, "name", str(catalog))
    fingerprint = data_fingerprint(data)
    tuned = load_tuned(store, name, data_hash=fingerprint)
    if tuned is not None:
        return with_member_settings(store, name, tuned.config, data), describe(tuned)
    if data.valid.nnz == 0:  # nothing to select on: say so rather than pretend
        return starting_config(data, "content"), ("untuned starting point (content only): the split has no "
                                                  "validation interactions to tune on")
    result = tune(data, TuneConfig(trials=SHORT_TUNE_TRIALS, budget_minutes=budget_minutes), progress=progress)
    if persist:
        save_tuned(store, name, result.config, result.valid_metric(), result.history, data_hash=fingerprint)
    outcome = "stored one" if persist else f"chose one (not stored: {not_stored_why or 'not asked to store it'})"
    return with_member_settings(store, name, result.config, data), (
        f"no tuned configuration existed; a short tune {outcome}: {result.n_trials} trials in "
        f"{result.seconds / 60:.1f} min (budget {budget_minutes:g} min; validation {result.metric} "
        f"{result.value:.4f}; `python -m core tune --catalog {name}` searches longer)")


def with_member_settings(store: Any, catalog_name: str, config: FusionConfig, data: InteractionData) -> FusionConfig:
    """`config` with the catalog's tuned settings of its collaborative members (core.tuning.baseline_store) for
    this data, where stored; members without them are searched when the model is fitted (the fitting caller
    passes core.tuning.baselines.member_search to FusionRecommender)."""
    from dataclasses import replace

    from core.errors import StoreError
    from core.models.collaborative import parse_members
    from core.tuning.baseline_store import load_baseline
    from core.tuning.store import data_fingerprint

    fingerprint = data_fingerprint(data)
    settings = dict(config.collaborative_settings)
    for member in parse_members(config.collaborative):
        try:
            tuned = load_baseline(store, catalog_name, member, data_hash=fingerprint)
        except StoreError:  # unreadable: the member is searched when the model is fitted, as if none were stored
            tuned = None
        if tuned is not None:
            settings[member] = tuned.settings
    return replace(config, collaborative_settings=settings) if settings != config.collaborative_settings else config


def starting_config(data: InteractionData, name: str = "content") -> FusionConfig:
    """A starting point of the search (core.tuning.space.STARTING_POINTS) as a full config for `data`."""
    from core.tuning import objective, space

    if name not in space.STARTING_POINTS:
        raise ValueError(f"starting point {name!r} is not one of {sorted(space.STARTING_POINTS)}")
    return space.apply(objective.base_config(data), space.params_of(space.STARTING_POINTS[name]))


def quick_fusion_config(store: Any, catalog: Any, data: InteractionData) -> tuple[FusionConfig, str]:
    """What a first model trains without waiting for a search: the stored tuned configuration, else the
    fast "content" starting point; the string says which."""
    from core.tuning.store import data_fingerprint, load_tuned

    name = getattr(catalog, "name", str(catalog))
    tuned = load_tuned(store, name, data_hash=data_fingerprint(data))
    if tuned is not None:
        return with_member_settings(store, name, tuned.config, data), describe(tuned)
    return starting_config(data, "content"), (
        "untuned starting point (content only, linear heads): no tuned configuration is stored for this "
        f"catalog yet; the Train page or `python -m core tune --catalog {name}` runs the search")
