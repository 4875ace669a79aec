"""Train and evaluate several models under one protocol, once per model seed, with settings chosen on
validation; shared by `python -m core evaluate` and `python -m benchmarks.quality`.

For each model: its declared space (core.tuning.baselines) is searched on the validation split with the
first seed, or the catalog's stored tuned settings are reused (core.tuning.baseline_store, searched and
stored when none exist), the chosen point is kept for the other seeds, and each seed's fit is evaluated on the test split
under the masking rule (one stored run per seed). Models without a seed (popularity, ItemKNN, EASE) are
deterministic and run once. The summary holds each metric's mean and spread over seeds, the validation
Recall@20 beside the test figures, and each user's values averaged over seeds for paired comparisons.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.evaluation.protocol import DEFAULT_MASK, evaluate, run_evaluation
from core.evaluation.seeds import aggregate_metrics, mean_over_seeds
from core.data.interactions import InteractionData
from core.models.base import ProgressCallback, Recommender
from core.models.selection import SELECT_K, Selection, select_on_validation

VALID_METRIC = f"recall@{SELECT_K}"  # the validation figure printed beside the test figures
Log = Callable[[str], None]
EpochProgress = Callable[[str], ProgressCallback | None]  # model label -> an epoch callback


@dataclass
class PlannedModel:
    """One model to run: how to build it fresh, what is fixed, and whether a seed changes it."""

    name: str  # report name, e.g. "fusion-gated", "als"
    kind: str  # "fusion" | "single-modality" | "baseline"
    build: Callable[..., Recommender]  # build(**settings) -> a fresh, unfitted model
    registry: str | None = None  # registry name, for its validation grid (None: no grid)
    settings: dict[str, Any] = field(default_factory=dict)  # fixed overrides (win over the grid)
    seeded: bool = True  # the config has a `seed` field (else the model is deterministic: one run)
    fitted: Recommender | None = None  # a saved model evaluated as it is (no fit, no grid, no seeds)
    note: str = ""  # where the base configuration came from, recorded in the run


@dataclass
class ModelOutcome:
    """Everything one model produced over its seeds."""

    name: str
    kind: str
    seeds: list[int]
    per_seed: list[dict[str, Any]]  # per seed: seed, metrics, ci, valid, fit_time_s, eval_time_s, run_id
    summary: dict[str, dict[str, Any]]  # metric -> mean/std/min/max/n over seeds (test and valid_…)
    per_user: dict[str, list]  # per-user values averaged over seeds ({"users": ids, metric: values})
    selection: dict[str, Any]  # the grid, the validation figure of each point, the chosen point
    records: list[dict[str, Any]] = field(default_factory=list)  # the stored run records, one per seed


def fusion_base_config(store: Any, catalog: Any, embeddings: Any, data: InteractionData,
                       progress: Any = None, budget_minutes: float | None = None) -> tuple[Any, str]:
    """THE base configuration of the fusion models that `evaluate` and `benchmarks.quality` train, and a
    note saying where it came from (recorded in every run): the catalog's configuration tuned on its
    validation split, or a short tune within `budget_minutes` (default core.tuning.SHORT_TUNE_MINUTES)
    when none is stored (core.tuning)."""
    from core.tuning import SHORT_TUNE_MINUTES, resolve_fusion_config

    return resolve_fusion_config(store, catalog, embeddings, data, progress=progress,
                                 budget_minutes=budget_minutes or SHORT_TUNE_MINUTES)


def registry_plan(names: list[str], base: Any, settings: dict[str, dict[str, Any]] | None = None,
                  note: str = "") -> list[PlannedModel]:
    """PlannedModels for registry names: fusion-… over `base` with its strategy, baselines from the registry;
    `settings` as core.models.settings parses them."""
    from core.models.baselines import GRIDS
    from core.models.registry import FUSION, build_model
    from core.models.settings import settings_for
    from core.tuning.baselines import SPACES

    plan = []
    for name in names:
        own = settings_for(settings or {}, name)
        if name in FUSION:
            from core.models.fusion.recommender import FusionRecommender
            from core.tuning.baselines import member_search

            config = dataclasses.replace(base, strategy=name.removeprefix("fusion-"))
            plan.append(PlannedModel(name, "fusion", lambda c=config, **kw: FusionRecommender(
                dataclasses.replace(c, **kw), member_search=member_search), settings=own, note=note))
        else:
            kind = "single-modality" if name.endswith("-only") else "baseline"
            plan.append(PlannedModel(name, kind, lambda n=name, **kw: build_model(n, **kw),
                                     registry=name if name in GRIDS or name in SPACES else None,
                                     settings=own))
    return plan


def _seed_field(model: Recommender) -> bool:
    """Whether the model's config dataclass has a `seed` field."""
    config = getattr(model, "config", None)
    return config is not None and dataclasses.is_dataclass(config) and \
        any(f.name == "seed" for f in dataclasses.fields(config))


def run_model(planned: PlannedModel, data: InteractionData, catalog: Any, embeddings: Any, *,
              seeds: list[int], mask: str = DEFAULT_MASK, ks: tuple[int, ...] = (10, 20),
              n_bootstrap: int = 1000, bootstrap_seed: int = 0, use_grid: bool = True, store: Any = None,
              log: Log | None = None, epoch_progress: EpochProgress | None = None,
              tuning_store: Any = None) -> ModelOutcome:
    """Select on validation, fit per seed, evaluate on test under `mask`, store each run; see the module doc.

    Tuned baseline settings are read from (and a new search's stored in) `tuning_store`, default `store`."""
    from core.tuning.baselines import SPACES

    say = log or (lambda _msg: None)
    tuning_store = store if tuning_store is None else tuning_store
    seeds = list(seeds) or [0]
    probe = planned.fitted or planned.build(**planned.settings)
    seeded = planned.fitted is None and planned.seeded and _seed_field(probe)
    run_seeds = seeds if seeded else seeds[:1]
    selection: Selection | None = None
    chosen: dict[str, Any] = {}  # the settings selected on validation with the first seed
    searched = use_grid and planned.registry in SPACES and planned.fitted is None and data.valid.nnz > 0
    selection_record: dict[str, Any] = {}
    per_seed: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for n, s in enumerate(run_seeds):
        seed_setting = {"seed": s} if seeded else {}
        label = planned.name + (f" seed {s}" if seeded and len(run_seeds) > 1 else "")
        progress = epoch_progress(label) if epoch_progress else None
        t0 = time.perf_counter()
        if planned.fitted is not None:
            model, fit_s = planned.fitted, None
        elif n == 0 and searched:
            from core.tuning.baseline_store import resolve_baseline

            settings, record, note = resolve_baseline(
                tuning_store, getattr(catalog, "name", str(catalog)), planned.registry, data,
                fixed=planned.settings, build=planned.build, seed=s, log=say)
            chosen = {k: v for k, v in settings.items() if k not in planned.settings}
            selection_record = {**record, "chosen": chosen, "overrides": dict(planned.settings), "note": note}
            say(f"{planned.name}: {note}")
            t0 = time.perf_counter()
            model = planned.build(**{**chosen, **planned.settings, **seed_setting})
            model.fit(data, progress=progress)
            fit_s = time.perf_counter() - t0
        elif n == 0:
            fixed = {**planned.settings, **seed_setting}
            selection = select_on_validation(planned.registry or planned.name, data, fixed, build=planned.build,
                                             use_grid=use_grid and planned.registry is not None,
                                             progress=progress, log=say)
            model = selection.model
            chosen, selection_record = dict(selection.chosen), selection.record()
            chosen_at = selection.grid.index(selection.chosen) if selection.chosen in selection.grid else 0
            fit_s = selection.seconds[chosen_at] if selection.seconds else time.perf_counter() - t0
        else:
            model = planned.build(**{**chosen, **planned.settings, **seed_setting})
            model.fit(data, progress=progress)
            fit_s = time.perf_counter() - t0
        record = run_evaluation(model, data, catalog, embeddings, ks=ks, n_bootstrap=n_bootstrap,
                                seed=bootstrap_seed, mask=mask)
        valid = evaluate(model, data, ks=(SELECT_K,), target="valid", n_bootstrap=0, seed=bootstrap_seed)
        record["name"] = planned.name
        record["model"]["kind"] = planned.kind
        record["protocol"]["model_seed"] = s if seeded else None
        record["fit_time_s"] = fit_s
        record["valid"] = {VALID_METRIC: valid.metrics.get(VALID_METRIC)}
        if selection_record:
            record["selection"] = selection_record
        if planned.note:
            record["model"]["base_config"] = planned.note
        run_id = store.save_run(record) if store is not None else None
        records.append(record)
        per_seed.append({"seed": s if seeded else None, "metrics": record["metrics"], "ci": record["ci"],
                         "valid": record["valid"], "fit_time_s": fit_s, "eval_time_s": record["wall_time_s"],
                         "best_epoch": record["model"]["config"].get("best_epoch"), "run_id": run_id})
        test = record["metrics"]
        shown = "  ".join(f"{m} {test[m]:.4f}" for k in ks for m in (f"recall@{k}", f"ndcg@{k}") if m in test)
        fit_text = f"fit {fit_s:.1f} s" if fit_s is not None else "saved model"
        say(f"{label}: test {shown}  |  valid {VALID_METRIC} {record['valid'][VALID_METRIC] or float('nan'):.4f}"
            f"  ({fit_text})" + (f"  [{run_id}]" if run_id else ""))
    names = sorted({k for p in per_seed for k in p["metrics"]})
    summary = aggregate_metrics([p["metrics"] for p in per_seed], names)
    summary[f"valid_{VALID_METRIC}"] = aggregate_metrics([p["valid"] for p in per_seed], [VALID_METRIC])[VALID_METRIC]
    summary["fit_time_s"] = aggregate_metrics([{"t": p["fit_time_s"]} for p in per_seed], ["t"]).get("t", {})
    per_user = mean_over_seeds([r["per_user"] for r in records if r.get("per_user")])
    return ModelOutcome(planned.name, planned.kind, [p["seed"] for p in per_seed], per_seed, summary, per_user,
                        selection_record, records)


# -- the studio's New evaluation ----------------------------------------------------------------------
ModelBar = Callable[[float, str], None]  # (fraction done, text) of one model's bar
Say = Callable[[str, str, str], None]  # (event, model name, detail); events: tuned, saved, cold start saved, failed


def evaluate_in_studio(store: Any, catalog: Any, embeddings: Any, data: InteractionData, names: list[str], *,
                       active: str, active_model: Any, base: Any, ks: tuple[int, ...], seed: int, mask: str,
                       cold: bool, model_bar: Callable[[int, str], ModelBar], say: Say
                       ) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The Evaluate page's run: each of `names` fitted once on `data` (the one named `active` is
    `active_model`, evaluated as it was trained), evaluated on test under `mask` and stored; with `cold` also
    under the cold-start protocol. A baseline with a declared space uses the catalog's tuned settings (searched,
    and stored where the browser may change the catalog, when none are). Returns (stored run ids, per model
    what the verdict needs: kind, per-user test values, validation Recall@20). A model that fails is said
    and skipped. `model_bar(i, name)` starts the i-th model's bar."""
    from core.errors import PrismError
    from core.evaluation.cold_start import run_cold_start
    from core.models.registry import FUSION, build_model
    from core.store.sharing import browser_may_change
    from core.tuning.baseline_store import resolve_baseline
    from core.tuning.baselines import SPACES, member_search

    saved: list[str] = []
    judged: dict[str, dict[str, Any]] = {}  # name -> kind, validation Recall@20 and per-user test values
    for i, name in enumerate(names):
        bar = model_bar(i, name)
        try:
            if name == active:
                model = active_model  # trained already: evaluate as it is
            else:
                tuned: dict[str, Any] = {}
                if name in SPACES:  # the catalog's tuned settings, searched when none are stored
                    bar(0.0, f"{name}: its tuned settings (a search when none are stored)")
                    shared = browser_may_change(catalog.name)  # a search is stored only where allowed
                    tuned, _, note = resolve_baseline(store, catalog.name, name, data, seed=seed,
                                                      persist=shared.allowed, not_stored_why=shared.reason)
                    say("tuned", name, note)
                if name in FUSION:  # members without the catalog's tuned settings get a short search
                    tuned = {**tuned, "member_search": member_search}
                model = build_model(name, base=base, **tuned)

                def _epoch(report: Any, bar: ModelBar = bar, label: str = name) -> None:
                    bar(min(1.0, report.epoch / max(report.epochs, 1)),
                        f"{label}: epoch {report.epoch}/{report.epochs} · loss {report.loss:.4f}")

                model.fit(data, progress=_epoch)
            bar(1.0, f"{name}: ranking all items for every test user")
            record = run_evaluation(model, data, catalog, embeddings, ks=ks, seed=seed, mask=mask)
            if data.valid.nnz and record.get("per_user"):
                judged[name] = {"kind": "fusion" if name == active or name.startswith("fusion-")
                                else getattr(model, "kind", "baseline"), "per_user": record["per_user"],
                                "valid": evaluate(model, data, ks=(20,), target="valid",
                                                  n_bootstrap=0).metrics.get("recall@20")}
            run_id = store.save_run(record)
            saved.append(run_id)
            say("saved", name, run_id)
            if cold and name != active:
                bar(0.0, f"{name}: cold start — training on warm items")
                fresh = build_model(name, base=base, **({"member_search": member_search} if name in FUSION else {}))
                record = run_cold_start(fresh, data, catalog, embeddings, ks=ks, seed=seed, fit_progress=_epoch)
                saved.append(store.save_run(record))
                say("cold start saved", name, saved[-1])
        except (PrismError, ValueError) as e:
            say("failed", name, str(e))
    return saved, judged


# -- the final choice of a fusion search ----------------------------------------------------------------------
def final_fit_value(config: Any, data: InteractionData) -> float:
    """The validation figure (config.valid_metric; training items masked) of a FusionRecommender fitted with
    `config` as a final model is: full epochs, early stopping, its collaborative term (members without tuned
    settings get core.tuning.baselines.member_search's short search)."""
    from core.data.metrics import metric_k
    from core.models.fusion.recommender import FusionRecommender
    from core.tuning.baselines import member_search

    _, k = metric_k(config.valid_metric)
    model = FusionRecommender(config, member_search=member_search).fit(data)
    return float(evaluate(model, data, ks=(k,), target="valid", n_bootstrap=0).metrics[config.valid_metric])


def final_choice(store: Any, catalog_name: str, data: InteractionData, result: Any, finalists: int,
                 seeds: tuple[int, ...], log: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    """The configuration chosen among a search's (`result`, core.tuning.study.TuneResult) `finalists` best
    trials (core.tuning.finalists), each fitted as the final model with the catalog's tuned collaborative
    settings, and the record of the choice. The configuration keeps the search's own member settings: the
    catalog's are read from the store whenever the model is fitted."""
    from core.tuning import with_member_settings
    from core.tuning.finalists import choose_finalist
    from core.tuning.objective import base_config

    base = dataclasses.replace(base_config(data, result.metric, result.config.seed),
                               collaborative=result.config.collaborative)
    fitted = with_member_settings(store, catalog_name, base, data)
    config, record = choose_finalist(data, fitted, result.history, fit_value=final_fit_value, k=finalists,
                                     seeds=tuple(seeds), log=log)
    return dataclasses.replace(config, collaborative_settings=result.config.collaborative_settings), record
