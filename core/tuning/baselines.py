"""The declared search space of every baseline with settings, and the one search that runs them all.

A space is a set of numeric ranges (log-uniform where a setting spans decades) and choices. `search` runs
them in core.tuning.study's study (seeded multivariate TPE; for the models that train in epochs, successive
halving on the per-epoch validation figure, so a poor point stops after a couple of epochs), the study the fusion model's search runs in, within a time
budget and a trial cap: a model that fits in a fraction of a second gets many trials. When the best point
lies within EDGE_SHARE of a range's edge (in log space for a log range), that range is extended beyond the
edge and the search goes on in a new study that starts from the best points so far; every extension is
recorded. No range has a fixed top: a range stops only at a bound the setting itself has (a count is at
least 1, a neighbourhood holds at most the catalog's other items, a share lies in [0, 1] and is searched over
all of it). A setting may count only under some values of a choice (BM25's K1 and B only under the BM25
weighting): every trial draws it, so the space stays fixed for the multivariate sampler, but a trial where it
does not count neither passes it to the model nor records it, and it never moves a range.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.tuning.ranges import EDGE_SHARE, GROWTH, Range, extend, near_edge  # noqa: F401 (this module's surface)

METRIC = "recall@20"  # the validation figure every baseline is selected on (as the grids before it)
MAX_ROUNDS = 8  # searches of one model: the first and at most MAX_ROUNDS - 1 extensions
CHECK_EVERY = 25  # trials between two checks of the best point against the edges
MIN_GAIN = 1e-4  # a best that improves by less does not count as better (the patience rule)
# a fusion model's collaborative member without the catalog's tuned settings gets a short search (member_search)
MEMBER_SEARCH_SECONDS = 20.0
MEMBER_SEARCH_TRIALS = 10

Report = Callable[[int, float], bool]  # (epoch, validation figure) -> True when the trial should stop
Objective = Callable[[dict[str, Any], "Report | None"], float]  # (params, report) -> validation figure
Log = Callable[[str], None]


@dataclass(frozen=True)
class Choice:
    """A categorical setting."""

    options: tuple


@dataclass(frozen=True)
class BaselineSpace:
    """One model's declared space and how long its search runs by default."""

    params: dict[str, Range | Choice]
    budget_seconds: float  # default time budget of a search (trials stop starting after it)
    max_trials: int = 200  # and at most this many trials
    epochs: bool = False  # the model trains in epochs: a trial reports each epoch and may be pruned
    trial_settings: dict[str, Any] = field(default_factory=dict)  # fixed in trials only (an epoch cap)
    # trials in a row without a better best (by MIN_GAIN) end a search before its budget: at 40 the demo's
    # ALS, ItemKNN, BPR-MF and LightGCN stopped below their 200-trial references; at 80 they reach them. With
    # epochs (a pruner), only the trials that ran to the end count
    patience: int = 80
    pruner: str = "median"  # core.tuning.study's pruner for the trials of an epoch model ("halving": successive
    #                         halving, so a poor point costs `first_rung` epochs and many points fit a budget)
    first_rung: int = 3  # epochs before a trial may be pruned (successive halving: its first rung)

    def __post_init__(self) -> None:
        for key, spec in self.params.items():
            when = getattr(spec, "when", None)
            choice = self.params.get(when[0]) if when else None
            if when and not (isinstance(choice, Choice) and set(when[1]) <= set(choice.options)):
                raise ValueError(f"{key} counts when {when[0]} is one of {list(when[1])}, which is not a choice of "
                                 "this space with those options")


# one space per baseline with settings; popularity and the content-only models have none
SPACES: dict[str, BaselineSpace] = {
    "ease": BaselineSpace({"reg": Range(1.0, 1e5, floor=1e-6)}, budget_seconds=20),
    "als": BaselineSpace({"factors": Range(16, 512, integer=True, floor=1),
                          "regularization": Range(1e-3, 1e3, floor=1e-9),
                          "alpha": Range(0.1, 100.0, floor=1e-6),
                          "iterations": Range(5, 40, integer=True, floor=1)},
                         budget_seconds=150, max_trials=200),
    # the number of passes is chosen by early stopping (a validation check every 50): a trial reports each
    # check and a poor point stops after two of them, so the budget goes to the points that need 1,000+ passes.
    # Its search is budget-bound on Last.fm-2K: 150 s reached .3327 valid Recall@20, 450 s .3383, its 200-trial
    # reference .3407 (the 200-trial cap ends it sooner on small catalogs: the demo's took 136 s)
    "implicit-bpr": BaselineSpace({"factors": Range(16, 512, integer=True, floor=1),
                                   "learning_rate": Range(1e-4, 1e-1, floor=1e-9),
                                   "regularization": Range(1e-5, 1.0, floor=1e-12)},
                                  budget_seconds=450, epochs=True, pruner="halving", first_rung=2,
                                  trial_settings={"threads": 1}),  # one thread: faster here, and reproducible
    "itemknn": BaselineSpace({"k": Range(5, 1000, integer=True, floor=1, ceiling="items"),
                              "similarity": Choice(("cosine", "jaccard", "conditional", "dot")),
                              "shrink": Range(0.0, 100.0, log=False, floor=0.0,  # scales "dot" uniformly: no effect
                                              when=("similarity", ("cosine", "jaccard", "conditional"))),
                              "weighting": Choice(("none", "tfidf", "bm25")),
                              "bm25_k1": Range(0.1, 100.0, floor=0.0, when=("weighting", ("bm25",))),
                              "bm25_b": Range(0.0, 1.0, log=False, floor=0.0, ceiling="share",
                                              when=("weighting", ("bm25",)))},
                             # six settings: room to settle (Last.fm-2K: 129 trials)
                             budget_seconds=60, max_trials=240),
    "lightgcn": BaselineSpace({"layers": Range(1, 4, log=False, integer=True, floor=0),
                               "dim": Range(32, 256, integer=True, floor=1),
                               "reg": Range(1e-6, 1e-1, floor=1e-12),
                               "lr": Range(1e-4, 3e-2, floor=1e-7)},
                              budget_seconds=150, max_trials=200, epochs=True, pruner="halving", first_rung=2,
                              trial_settings={"epochs": 60, "patience": 5}),
    "bprmf": BaselineSpace({"dim": Range(32, 256, integer=True, floor=1),
                            "reg": Range(1e-6, 1e-1, floor=1e-12),
                            "lr": Range(1e-4, 3e-2, floor=1e-7)},
                           budget_seconds=75, max_trials=200, epochs=True, pruner="halving", first_rung=2,
                           trial_settings={"epochs": 60, "patience": 5}),
    "vbpr": BaselineSpace({"dim": Range(32, 256, integer=True, floor=1),
                           "content_dim": Range(16, 256, integer=True, floor=1),
                           "reg": Range(1e-7, 1e-2, floor=1e-12),
                           "lr": Range(1e-4, 3e-2, floor=1e-7)},
                          budget_seconds=90, max_trials=200, epochs=True, pruner="halving", first_rung=2,
                          trial_settings={"epochs": 60, "patience": 5}),
}


@dataclass
class SearchResult:
    """What one model's search found, and how."""

    params: dict[str, Any]  # the best trial's settings
    value: float  # its validation figure
    metric: str
    ranges: dict[str, list]  # the final range of each numeric setting, [low, high]
    extensions: list[dict[str, Any]]  # {"round", "param", "from", "to", "best"} per extension
    at_edge: list[str]  # settings whose best value still lies at an edge the budget did not let it pass
    history: list[dict[str, Any]]  # per trial: round, params, value, state, seconds
    seconds: float = 0.0
    final: dict[str, Any] | None = None  # the final choice among the best trials (refit_finalists), when made

    @property
    def n_trials(self) -> int:
        return len(self.history)

    def record(self) -> dict[str, Any]:
        """The JSON-safe summary stored beside the settings and in run records."""
        return {"metric": f"valid {self.metric}", "value": round(self.value, 6), "chosen": self.params,
                "trials": self.n_trials, "pruned": sum(h["state"] == "pruned" for h in self.history),
                "rounds": 1 + len(self.extensions_rounds()), "ranges": self.ranges,
                "extensions": self.extensions, "at_edge": self.at_edge, "seconds": round(self.seconds, 1),
                **({"finalists": self.final} if self.final else {})}

    def extensions_rounds(self) -> list[int]:
        return sorted({e["round"] for e in self.extensions})


def counting(params: dict[str, Any], space_params: dict[str, Range | Choice]) -> dict[str, Any]:
    """`params` without the settings that do not count under its choices (a Range whose `when` choice was
    drawn with another value); a setting whose choice is not among `params` (fixed by the caller) counts."""
    def counts(spec: Range | Choice) -> bool:
        when = getattr(spec, "when", None)
        return when is None or when[0] not in params or params[when[0]] in when[1]

    return {k: v for k, v in params.items() if k not in space_params or counts(space_params[k])}


def _suggest(trial: Any, name: str, spec: Range | Choice, bounds: tuple[float, float] | None) -> Any:
    if isinstance(spec, Choice):
        return trial.suggest_categorical(name, list(spec.options))
    low, high = bounds  # type: ignore[misc]
    if spec.integer:
        return trial.suggest_int(name, int(low), int(high), log=spec.log and low >= 1)
    return trial.suggest_float(name, float(low), float(high), log=spec.log)


def search(space: BaselineSpace, objective: Objective, *, budget_seconds: float | None = None,
           max_trials: int | None = None, seed: int = 0, n_items: int | None = None,
           fixed: tuple[str, ...] = (), starts: list[dict[str, Any]] | None = None, metric: str = METRIC,
           log: Log | None = None) -> SearchResult:
    """Maximise `objective` over `space` (the settings in `fixed` are left out), extending a range whenever the
    best point sits at its edge; stops at `budget_seconds` or `max_trials` (the space's defaults when None)."""
    import optuna

    from core.tuning.study import TuneConfig, create_study

    say = log or (lambda _m: None)
    budget = float(space.budget_seconds if budget_seconds is None else budget_seconds)
    cap = int(space.max_trials if max_trials is None else max_trials)
    if budget <= 0 or cap < 1:
        raise ValueError(f"a search needs a positive budget and at least one trial (got {budget} s, {cap})")
    specs = {k: v for k, v in space.params.items() if k not in fixed}
    bounds: dict[str, tuple[float, float]] = {}
    for k, v in specs.items():
        if isinstance(v, Range):
            high = v.high
            if v.ceiling == "items" and n_items is not None:
                high = min(high, max(n_items - 1, v.low + 1))
            bounds[k] = (v.low, high)
    history: list[dict[str, Any]] = []
    extensions: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    round_no = 0
    since = [0]  # trials before the current round

    def new_study() -> Any:
        study = create_study(TuneConfig(trials=cap, seed=seed + round_no, startup_trials=3,
                                        warmup_epochs=space.first_rung, pruner=space.pruner))
        done = sorted((h for h in history if h["value"] is not None and h["state"] == "complete"),
                      key=lambda h: -h["value"])
        seeds_of_round = [h["params"] for h in done[:3]] if done else list(starts or [])
        for params in seeds_of_round:
            inside = {k: v for k, v in params.items() if k in specs and _fits(specs[k], bounds.get(k), v)}
            if inside:
                study.enqueue_trial(inside, skip_if_exists=True)
        return study

    def stale() -> bool:
        """Whether the last `space.patience` trials left the best where it was (the search has settled). Where a
        pruner stops poor points early (epoch models), only trials that ran to the end count: a pruned trial is
        a probe of a few epochs, and on the demo they used up implicit BPR's patience in half its budget."""
        counted = [h for h in history[since[0]:]  # a new round (an extended range) gets its own patience
                   if not space.epochs or h["state"] == "complete"]
        if len(counted) <= space.patience:
            return False
        first = counted[-space.patience]["number"]  # where the patience window starts
        best_before = max((h["value"] for h in history[:first]
                           if h["state"] == "complete" and h["value"] is not None), default=-math.inf)
        best_now = max((h["value"] for h in history if h["state"] == "complete" and h["value"] is not None),
                       default=-math.inf)
        return best_now < best_before + MIN_GAIN

    def settled(study_: Any, _trial: Any) -> None:
        if stale():
            study_.stop()

    def run(trial: Any) -> float:
        # every setting is drawn (a fixed space for the multivariate sampler); those that do not count under
        # the drawn choices are left out of the fit and the record
        params = counting({k: _suggest(trial, k, v, bounds.get(k)) for k, v in specs.items()}, specs)
        row = {"round": round_no, "number": len(history), "params": params, "value": None, "state": "failed",
               "seconds": 0.0, "epochs": 0}
        history.append(row)
        start = time.perf_counter()
        best_seen = -math.inf

        def report(epoch: int, value: float) -> bool:
            nonlocal best_seen
            best_seen = max(best_seen, value)
            row["epochs"] = epoch
            trial.report(float(value), epoch)
            over = time.perf_counter() - t0 > budget and _best(history) is not None  # the budget binds epoch models too
            if over or trial.should_prune():
                row.update(state="pruned", value=best_seen if math.isfinite(best_seen) else None,
                           **({"stopped": "time budget"} if over else {}))
                raise optuna.TrialPruned(f"{'stopped by the time budget' if over else 'pruned'} at epoch {epoch}")
            return False

        try:
            value = float(objective(params, report if space.epochs else None))
        except optuna.TrialPruned:
            row["seconds"] = time.perf_counter() - start
            raise
        except (ValueError, ArithmeticError) as e:  # a diverged fit or an impossible setting: the search goes on
            row.update(seconds=time.perf_counter() - start, error=str(e)[:200])
            raise ValueError(str(e)) from e
        row.update(value=value if math.isfinite(value) else None, state="complete",
                   seconds=time.perf_counter() - start)
        return value if math.isfinite(value) else -math.inf

    study = new_study()
    while True:
        left_s, left_n = budget - (time.perf_counter() - t0), cap - len(history)
        if left_s <= 0 or left_n <= 0:
            break
        # at most CHECK_EVERY trials (and half the time left) per pass: the edges are checked after each, so an
        # extension still has trials and time to search
        chunk = min(left_n, CHECK_EVERY)
        study.optimize(run, n_trials=chunk, timeout=max(left_s / 2 if left_n > 8 else left_s, 1e-3),
                       catch=(ValueError,), callbacks=[settled])
        best = _best(history)
        if best is None:
            continue
        moved = []
        for k, spec in specs.items():
            if not isinstance(spec, Range) or k not in best["params"]:  # a setting that did not count
                continue
            side = near_edge(float(best["params"][k]), spec, *bounds[k])
            grown = extend(spec, *bounds[k], side, n_items) if side else None
            if grown is not None:
                extensions.append({"round": round_no + 1, "param": k, "from": list(bounds[k]), "to": list(grown),
                                   "best": best["params"][k]})
                say(f"{k}: best {best['params'][k]:.4g} at the {side} edge of [{bounds[k][0]:.4g}, "
                    f"{bounds[k][1]:.4g}]; range extended to [{grown[0]:.4g}, {grown[1]:.4g}]")
                bounds[k] = grown
                moved.append(k)
        if moved and round_no + 1 < MAX_ROUNDS:
            round_no += 1
            study = new_study()
            since[0] = len(history)
        elif stale():
            break
    best = _best(history)
    if best is None:
        errors = [h.get("error") for h in history if h.get("error")]
        raise ValueError(f"no trial of the search finished with a validation {metric} ({len(history)} trials"
                         + (f"; the first error: {errors[0]}" if errors else "") + ")")
    return SearchResult(params=dict(best["params"]), value=float(best["value"]), metric=metric,
                        ranges={k: [v[0], v[1]] for k, v in bounds.items()}, extensions=extensions,
                        at_edge=at_edge_of(best["params"], specs, bounds, n_items), history=history,
                        seconds=time.perf_counter() - t0)


def at_edge_of(params: dict[str, Any], specs: dict[str, Range | Choice], bounds: dict[str, Any],
               n_items: int | None) -> list[str]:
    """The settings of `params` that lie at an edge of their searched range (`bounds`) which the range could
    still pass (an edge that is the setting's own bound does not count)."""
    out = []
    for k, spec in specs.items():
        if not isinstance(spec, Range) or k not in params:
            continue
        side = near_edge(float(params[k]), spec, *bounds[k])
        if side and extend(spec, *bounds[k], side, n_items) is not None:
            out.append(k)
    return out


def _fits(spec: Range | Choice, bounds: tuple[float, float] | None, value: Any) -> bool:
    if isinstance(spec, Choice):
        return value in spec.options
    return bounds is not None and bounds[0] <= float(value) <= bounds[1]


def _best(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = [h for h in history if h["state"] == "complete" and h["value"] is not None]
    return max(done, key=lambda h: h["value"]) if done else None


def model_objective(name: str, data: Any, fixed: dict[str, Any] | None = None,
                    build: Callable[..., Any] | None = None, space: BaselineSpace | None = None) -> Objective:
    """The objective of registry model `name`: fit on data.train with a trial's settings (plus `fixed` and the
    space's trial settings), return validation Recall@20; epoch models report each epoch's figure."""
    from core.models.early_stopping import validation_recall
    from core.models.registry import build_model

    space = space or SPACES[name]
    make = build or (lambda **kw: build_model(name, **kw))
    fixed = dict(fixed or {})

    def objective(params: dict[str, Any], report: Report | None) -> float:
        model = make(**{**space.trial_settings, **params, **fixed})

        def progress(r: Any) -> None:
            if report is not None and r.valid_metric is not None and math.isfinite(r.valid_metric):
                report(r.epoch, float(r.valid_metric))

        model.fit(data, progress=progress)
        return validation_recall(lambda rows: model.score(rows), data, 20)

    return objective


def search_model(name: str, data: Any, *, fixed: dict[str, Any] | None = None,
                 build: Callable[..., Any] | None = None, budget_seconds: float | None = None,
                 max_trials: int | None = None, seed: int = 0, log: Log | None = None,
                 space: BaselineSpace | None = None, finalists: int = 1,
                 finalist_seeds: tuple[int, ...] = (0, 1, 2)) -> SearchResult:
    """Search registry model `name`'s space (or `space`, e.g. a longer reference search's) on `data`'s
    validation split (settings in `fixed` stay fixed); with `finalists` above 1, then the final choice among
    that many best trials (refit_finalists)."""
    space = space or SPACES.get(name)
    if space is None:
        raise ValueError(f"{name!r} has no declared search space; spaces exist for {sorted(SPACES)}")
    if data.valid.nnz == 0:
        raise ValueError("the validation split is empty: a search needs validation interactions (use a split "
                         "with a valid share, e.g. --split random)")
    fixed = dict(fixed or {})
    say = log or (lambda _m: None)
    result = search(space, model_objective(name, data, fixed, build, space), budget_seconds=budget_seconds,
                    max_trials=max_trials, seed=seed, n_items=data.n_items, fixed=tuple(fixed),
                    starts=[default_point(name)], log=lambda m: say(f"{name}: {m}"))
    edge = f"; still at an edge: {result.at_edge}" if result.at_edge else ""
    say(f"{name}: {result.n_trials} trials in {result.seconds:.0f} s, {len(result.extensions)} range "
        f"extension(s); best valid {METRIC} {result.value:.4f} at {_point(result.params)}{edge}")
    if finalists > 1:
        result = refit_finalists(name, data, result, k=finalists, seeds=finalist_seeds, fixed=fixed, build=build,
                                 space=space, log=say)
    return result


def fitted_as_in_trials(name: str, space: BaselineSpace | None = None) -> bool:
    """Whether a trial's figure is already the final model's: the model has no seed and its trials fit it with
    its final settings (EASE, ItemKNN), so fitting its best trials again would repeat the search's figures."""
    from dataclasses import fields

    from core.models.registry import build_model

    space = space or SPACES[name]
    return not space.trial_settings and "seed" not in {f.name for f in fields(build_model(name).config)}


def final_fit(name: str, data: Any, fixed: dict[str, Any] | None = None,
              build: Callable[..., Any] | None = None) -> Callable[[dict[str, Any], int], float]:
    """(params, seed) -> the validation Recall@20 of registry model `name` fitted as the final model is: its
    own epochs, early stopping and threads (none of the space's trial settings), with that seed."""
    from core.models.early_stopping import validation_recall
    from core.models.registry import build_model

    make = build or (lambda **kw: build_model(name, **kw))
    fixed = dict(fixed or {})

    def value(params: dict[str, Any], seed: int) -> float:
        model = make(**{**params, **fixed, "seed": seed})
        model.fit(data)
        return validation_recall(lambda rows: model.score(rows), data, 20)

    return value


def refit_finalists(name: str, data: Any, result: SearchResult, *, k: int, seeds: tuple[int, ...],
                    fixed: dict[str, Any] | None = None, build: Callable[..., Any] | None = None,
                    space: BaselineSpace | None = None, log: Log | None = None) -> SearchResult:
    """`result` with the final choice among its `k` best trials (core.tuning.finalists.choose_among), the care
    the fusion model's search gets with --finalists: each fitted as the final model (final_fit) with every seed
    in `seeds`, the highest mean validation Recall@20 chosen. A model whose trials already are its final fits
    (fitted_as_in_trials) keeps the search's best. Only validation is read."""
    from dataclasses import replace

    from core.tuning.finalists import NoFinalistFitted, choose_among

    say = log or (lambda _m: None)
    space = space or SPACES[name]
    if fitted_as_in_trials(name, space):
        say(f"{name}: no seed, and its trials are fitted as its final model is: the search's best is the final "
            "choice")
        return result
    try:
        params, record = choose_among(result.history, fit=final_fit(name, data, fixed, build), k=k,
                                      seeds=tuple(seeds), metric=METRIC,
                                      described=f"valid {METRIC}, final model, mean over seeds",
                                      log=lambda m: say(f"{name}: {m}"))
    except NoFinalistFitted as e:  # no finalist could be fitted: the search's best stands, as without the option
        say(f"{name}: {e}; the search's best is kept")
        return result
    specs = {key: spec for key, spec in space.params.items() if key in params}
    bounds = {key: tuple(r) for key, r in result.ranges.items()}
    return replace(result, params=params, value=record["chosen_search_value"], final=record,
                   at_edge=at_edge_of(params, specs, bounds, data.n_items))


def default_point(name: str) -> dict[str, Any]:
    """The model's default settings of its searched params: the first trial of every search (as the fusion
    model's search starts from its hand-chosen configurations), so a search never ends below the defaults."""
    from dataclasses import asdict

    from core.models.registry import build_model

    defaults = asdict(build_model(name).config)
    return {k: defaults[k] for k in SPACES[name].params if k in defaults}


def _point(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def member_search(name: str, data: Any, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A collaborative member's settings from a short search of its space (core.models.collaborative.MemberSearch):
    the best point on validation Recall@20, and how it was found."""
    result = search_model(name, data, budget_seconds=MEMBER_SEARCH_SECONDS, max_trials=MEMBER_SEARCH_TRIALS,
                          seed=seed)
    return dict(result.params), {"source": "short search", **result.record()}
