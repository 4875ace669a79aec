"""The final choice among a search's best trials: each finalist fitted as the model it would become (the final
fit's epochs and early stopping, its collaborative term) with several seeds, and the highest mean validation
figure wins.

A search scores each trial once, with one seed, for at most objective.TRIAL_EPOCHS epochs, on the network
alone. Where its best trials lie within the seed spread of each other, which one comes first is chance: on
Last.fm-2K the 60-trial search's best two scored .2649 and .2644 NDCG@20, while one fit of one configuration
moves by about .002 from seed to seed. Fitting the few best as the final model with several seeds makes the choice
on the figure the model will have, and on validation only: test is never read here.

`choose_among` is the rule itself, for any search's history and any final fit; `choose_finalist` applies it to
the fusion model's configuration, core.tuning.baselines.refit_finalists to a baseline's settings (the same care
for the models it is compared with).
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from core.data.interactions import InteractionData
from core.models.fusion.config import FusionConfig

FINALISTS = 3  # the best trials fitted again
SEEDS = (0, 1, 2)  # the seeds each finalist is fitted with
Say = Callable[[str], None]
# (config, data) -> the validation figure (config.valid_metric) of a model fitted as the final model is, with
# its collaborative term: how one finalist fit is scored (the caller passes it in: core.evaluation.suite's)
FitValue = Callable[[FusionConfig, InteractionData], float]


class NoFinalistFitted(ValueError):
    """Every finalist's final fit failed: nothing could be chosen."""


@dataclass
class Finalist:
    """One of the best trials and its figures as a final model."""

    trial: int  # the trial's number in the search
    params: dict[str, Any]
    search_value: float  # what the search measured (one seed, the trial's epoch cap, no collaborative term)
    values: list[float] = field(default_factory=list)  # per seed in SEEDS order: the final model's figure
    error: str | None = None  # why a final fit failed (a diverged fit, an impossible setting): out of the choice

    @property
    def mean(self) -> float:
        if self.error is not None or not self.values:
            return float("-inf")
        return sum(self.values) / len(self.values)

    def record(self, seeds: tuple[int, ...]) -> dict[str, Any]:
        return {"trial": self.trial, "params": self.params, "search_value": round(self.search_value, 6),
                "per_seed": {str(s): round(v, 6) for s, v in zip(seeds, self.values)},
                **({"error": self.error, "mean": None} if self.error is not None else {"mean": round(self.mean, 6)})}


def mean_text(finalist: dict[str, Any]) -> str:
    """A recorded finalist's mean as printed: 4 decimals, or why its final fit failed."""
    return f"failed ({finalist['error']})" if finalist.get("error") else f"{finalist['mean']:.4f}"


def finalist_options(finalists: int, seeds_text: str) -> tuple[int, ...]:
    """The seeds of a `--finalists K --finalist-seeds 0,1,2` pair of options, checked: ValueError saying what to
    write when K is below 1, the seeds are not whole numbers, or there are none while K is above 1."""
    if finalists < 1:
        raise ValueError(f"--finalists {finalists}: give at least 1")
    try:
        seeds = tuple(int(v) for v in seeds_text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--finalist-seeds {seeds_text!r}: give whole numbers separated by commas, e.g. 0,1,2") \
            from None
    if finalists > 1 and not seeds:
        raise ValueError("--finalist-seeds: give at least one seed, e.g. 0,1,2")
    return seeds


def best_trials(history: list[dict[str, Any]], k: int) -> list[Finalist]:
    """The `k` completed trials with the highest search value, one per distinct set of params, best first."""
    if k < 1:
        raise ValueError(f"finalists={k}; give at least 1")
    done = sorted((h for h in history if h.get("state") == "complete" and h.get("value") is not None),
                  key=lambda h: (-float(h["value"]), int(h["number"])))
    out: list[Finalist] = []
    seen: set[str] = set()
    for h in done:
        key = json.dumps(h["params"], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        out.append(Finalist(trial=int(h["number"]), params=dict(h["params"]), search_value=float(h["value"])))
        if len(out) == k:
            break
    return out


def choose_finalist(data: InteractionData, base: FusionConfig, history: list[dict[str, Any]], *,
                    fit_value: FitValue, k: int = FINALISTS, seeds: tuple[int, ...] = SEEDS,
                    log: Say | None = None) -> tuple[FusionConfig, dict[str, Any]]:
    """The configuration (`base` with a finalist's params, core.tuning.space.apply) whose final model has the
    highest mean validation figure over `seeds`, among the `k` best trials of `history`; and the record of
    the choice (every finalist's figures). Ties keep the search's order."""
    from core.tuning import space

    params, record = choose_among(
        history, fit=lambda p, s: fit_value(replace(space.apply(base, p), seed=s), data), k=k, seeds=seeds,
        metric=base.valid_metric, described=f"valid {base.valid_metric}, final model (collaborative term included), "
                                             "mean over seeds", log=log)
    return replace(space.apply(base, params), seed=base.seed), record


def choose_among(history: list[dict[str, Any]], *, fit: Callable[[dict[str, Any], int], float], k: int = FINALISTS,
                 seeds: tuple[int, ...] = SEEDS, metric: str, described: str,
                 log: Say | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The params, among the `k` best trials of `history`, whose final model (`fit(params, seed)`: its
    validation `metric`) has the highest mean over `seeds`, and the record of the choice (every finalist's
    figures; `described` says what was measured). Ties keep the search's order."""
    if not seeds:
        raise ValueError("the finalists need at least one seed")
    say = log or (lambda _m: None)
    finalists = best_trials(history, k)
    if not finalists:
        raise ValueError("the search has no completed trial to choose from")
    t0 = time.perf_counter()
    for n, finalist in enumerate(finalists, 1):
        for s in seeds:
            try:
                value = float(fit(finalist.params, s))
                if not math.isfinite(value):
                    raise ArithmeticError(f"the validation {metric} is {value}")
            except (ValueError, ArithmeticError) as e:  # the other finalists are still fitted and compared
                finalist.error = f"seed {s}: {str(e)[:200]}"
                say(f"finalist {n}/{len(finalists)} (trial {finalist.trial}): the final fit failed "
                    f"({finalist.error}); left out of the choice")
                break
            finalist.values.append(value)
            say(f"finalist {n}/{len(finalists)} (trial {finalist.trial}, search {finalist.search_value:.4f}): "
                f"seed {s} valid {metric} {finalist.values[-1]:.4f} "
                f"({time.perf_counter() - t0:.0f} s)")
        if finalist.error is None:
            say(f"finalist {n}/{len(finalists)} (trial {finalist.trial}): mean valid {metric} "
                f"{finalist.mean:.4f} over seeds {list(seeds)}")
    fitted = [f for f in finalists if f.error is None]
    if not fitted:
        raise NoFinalistFitted(f"every finalist's final fit failed (first: trial {finalists[0].trial}, "
                               f"{finalists[0].error}); nothing was chosen")
    chosen = max(fitted, key=lambda f: f.mean)  # max keeps the first of equal means: the search's order
    record = {"metric": described, "seeds": list(seeds), "chosen_trial": chosen.trial,
              "chosen_mean": round(chosen.mean, 6), "chosen_search_value": round(chosen.search_value, 6),
              "finalists": [f.record(seeds) for f in finalists], "seconds": round(time.perf_counter() - t0, 1)}
    say(f"chosen: trial {chosen.trial} (mean valid {metric} {chosen.mean:.4f}; the search's best was "
        f"trial {finalists[0].trial})")
    return dict(chosen.params), record
