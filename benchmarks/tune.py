"""Tuning benchmark: how many trials a search runs in its budget (locally or on Ray Tune), how long one fusion
fit of the chosen configuration takes, and what that configuration reaches on test (MMRec protocol), per seed.

    HF_HUB_OFFLINE=1 nice -n 5 python -m benchmarks.tune --catalog lfm2k --budget 10 --seeds 0,1,2 \\
        --out benchmarks/results/tune-lfm2k.json
    HF_HUB_OFFLINE=1 python -m benchmarks.tune --catalog demo --trials 10
    # the same search on Ray Tune (same space, seed, sampler and starting points; ASHA pruning), then the table
    HF_HUB_OFFLINE=1 nice -n 5 python -m benchmarks.tune --catalog lfm2k --trials 12 --jobs 2 --seed 0 --seeds 0 \\
        --engine ray --out benchmarks/results/tune-ray-0.json
    python -m benchmarks.tune --summarise benchmarks/results/tune-*.json

Protocol of the test figures: the catalog's auto split (Last.fm-2K: its own x_label split), full ranking over
all items, only the user's TRAINING items masked (the MMRec/RecBole convention: validation items stay
candidates), mean over users with test items; the `train+valid` columns mask validation items too. Every
choice (the search, early stopping) is made on the validation split; test is read once per seed, after.
Tuning and fitting run on one torch thread per trial, as training does. CPU time of a search is that of this
process and every process it started (Ray's workers and daemons included), so it is comparable between
engines on a shared machine where wall time is not; with --address the cluster's CPU time is not counted.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

KS = (10, 20)


def test_figures(model: Any, data: Any) -> dict[str, float]:
    """Recall@K and NDCG@K on test under both masking rules."""
    import numpy as np

    from core.data.metrics import item_self_information
    from core.evaluation.protocol import evaluate_ranking

    truth = data.test.tocsr()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    out = {}
    for rule, mask in (("train", data.train.tocsr()), ("train+valid", (data.train + data.valid).tocsr())):
        r = evaluate_ranking(lambda rows: model.score(rows), users, truth[users], mask[users],
                             item_self_information(data.train), KS, n_bootstrap=0)
        out.update({f"{m} [{rule}]": float(r.metrics[m]) for k in KS for m in (f"recall@{k}", f"ndcg@{k}")})
    return out


def process_cpu() -> dict[tuple[int, int], tuple[int, float]]:
    """(pid, start tick) -> (parent pid, user + system CPU seconds) of every process, read from /proc."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        out[(int(entry.name), int(fields[19]))] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


class CpuMeter:
    """CPU seconds of this process and every process it starts while measuring, Ray's workers and daemons
    included: /proc is read every `every` seconds and each process counts with the last CPU time seen, so
    processes that end (and are reaped by someone else) still count, less their last `every` seconds."""

    def __init__(self, every: float = 0.5) -> None:
        import os
        import threading

        self.every = every
        self.me = os.getpid()
        self.seen: dict[tuple[int, int], float] = {}
        self.base: dict[tuple[int, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.available = Path("/proc/self/stat").exists()

    def _sample(self) -> None:
        table = process_cpu()
        family, grew = {self.me}, True
        while grew:
            more = {pid for (pid, _), (ppid, _) in table.items() if ppid in family} - family
            family |= more
            grew = bool(more)
        for key, (_, cpu) in table.items():
            if key[0] in family:
                self.seen[key] = max(cpu, self.seen.get(key, 0.0))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> CpuMeter:
        if self.available:
            self._sample()
            self.base = dict(self.seen)  # what ran before the measurement does not count
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.available:
            self._stop.set()
            self._thread.join()
            self._sample()

    @property
    def seconds(self) -> float:
        """CPU seconds used since the meter started (NaN without /proc)."""
        if not self.available:
            return float("nan")
        return sum(cpu - self.base.get(key, 0.0) for key, cpu in self.seen.items())


def search(engine: str, data: Any, config: Any, jobs: int, address: str | None, progress: Any) -> Any:
    """The search on `engine` ('local': Optuna in this process, `jobs` threads; 'ray': Ray Tune, `jobs`
    trials at once); returns core.tuning.study.TuneResult."""
    if engine == "ray":
        from core.scale.tune_ray import tune_study_on_ray

        return tune_study_on_ray(data, config, address=address, concurrent=jobs, progress=progress)
    from core.tuning.study import tune

    return tune(data, config, progress=progress)


def stored_search(store: Any, catalog_name: str, data: Any) -> Any:
    """The catalog's stored search (its tuned configuration and trial history) as a TuneResult, to choose
    among its best trials again; SystemExit when none is stored for this data."""
    from core.tuning.store import data_fingerprint, load_tuned
    from core.tuning.study import TuneResult, best_trial

    tuned = load_tuned(store, catalog_name, data_hash=data_fingerprint(data))
    best = best_trial(tuned.history) if tuned is not None else None
    if best is None:
        raise SystemExit(f"--reselect: no stored search with a completed trial for {catalog_name!r} on this data; "
                         f"run `python -m benchmarks.tune --catalog {catalog_name} --store-tuned` first")
    m = tuned.metric
    return TuneResult(config=tuned.config, params=dict(best["params"]), value=float(best["value"]),
                      metric=str(m.get("name", tuned.config.valid_metric)), history=tuned.history,
                      seconds=float(m.get("seconds", 0.0)), extensions=list(m.get("extensions", [])),
                      at_edge=list(m.get("at_edge", [])))


def run(catalog_name: str, trials: int | None, budget: float | None, seed: int, seeds: list[int],
        data_dir: Path | None, store_tuned: bool, jobs: int = 1, trial_epochs: int | None = None,
        engine: str = "local", address: str | None = None, finalists: int = 1,
        finalist_seeds: tuple[int, ...] = (0, 1, 2), reselect: bool = False) -> dict[str, Any]:
    """The search (or, with `reselect`, the catalog's stored one), then with `finalists` above 1 the final
    choice among its best trials (core.tuning.finalists), then one fit per seed of the chosen configuration;
    returns the benchmark JSON."""
    import os

    import torch

    from benchmarks.quality import load_catalog
    from core.data.splits import build_interaction_data
    from core.evaluation.suite import final_choice
    from core.models.fusion.recommender import FusionRecommender
    from core.store.database import Store
    from core.tuning.baselines import member_search
    from core.tuning.store import data_fingerprint, save_tuned
    from core.tuning.study import TuneConfig

    torch.set_num_threads(1)
    store = Store(data_dir)
    catalog, embeddings = load_catalog(catalog_name, store)
    data = build_interaction_data(catalog, embeddings, split="auto", seed=0)
    config = TuneConfig(trials=trials if trials is not None or budget is not None else 30, budget_minutes=budget,
                        seed=seed, n_jobs=jobs, **({"trial_epochs": trial_epochs} if trial_epochs else {}))
    t0, load0 = time.perf_counter(), os.getloadavg()

    def progress(done: int, total: int, message: str) -> None:
        print(f"  [{time.perf_counter() - t0:6.0f} s] {message}", flush=True)

    with CpuMeter() as meter:
        result = stored_search(store, catalog.name, data) if reselect else \
            search(engine, data, config, jobs, address, progress)
    search_cpu, load1 = meter.seconds, os.getloadavg()
    if engine == "ray" and not reselect:
        import ray

        ray.shutdown()  # the fits below run here; the workers' memory goes back
    minutes = result.seconds / 60
    chosen, metric_record, final = result.config, result.valid_metric(), None
    if finalists > 1:
        from core.tuning.finalists import NoFinalistFitted

        try:
            chosen, final = final_choice(store, catalog.name, data, result, finalists, finalist_seeds,
                                         lambda m: progress(0, 0, m))
            metric_record = {**metric_record, "value": final["chosen_search_value"], "finalists": final}
        except NoFinalistFitted as e:  # the search is not lost: its best goes on, as without --finalists
            progress(0, 0, f"{e}; the search's best is kept, as without --finalists")
    if store_tuned:
        save_tuned(store, catalog.name, chosen, metric_record, result.history, data_hash=data_fingerprint(data))
    fits = []
    for s in seeds:
        t = time.perf_counter()
        model = FusionRecommender(dataclasses.replace(chosen, seed=s), member_search=member_search).fit(data)
        seconds = time.perf_counter() - t
        best_valid = max(h["valid_metric"] for h in model.history if h["valid_metric"] is not None)
        fits.append({"seed": s, "fit_seconds": seconds, "epochs": len(model.history), "best_epoch": model.best_epoch,
                     f"valid {result.metric}": best_valid, **test_figures(model, data)})
        print(f"  seed {s}: fit {seconds:.0f} s, {fits[-1]}", flush=True)
    return {"catalog": catalog.name, "split": data.split_name, "users": data.n_users, "items": data.n_items,
            "search": {"engine": engine, "address": address, "trials": result.n_trials, "pruned": result.n_pruned,
                       "failed": sum(h["state"] == "failed" for h in result.history),
                       "epochs": sum(h["epochs"] or 0 for h in result.history), "minutes": minutes,
                       "cpu_minutes": search_cpu / 60,
                       "trial_cpu_minutes": sum(h.get("cpu_seconds") or 0.0 for h in result.history) / 60,
                       "load_average": [round(load0[0], 2), round(load1[0], 2)],
                       "trials_per_minute": result.n_trials / max(minutes, 1e-9), "metric": result.metric,
                       "best_valid": result.value, "best_params": result.params, "seed": seed,
                       "trial_epochs": config.trial_epochs, "jobs": jobs, "reselected": reselect},
            "finalists": final, "config": dataclasses.asdict(chosen), "fits": fits,
            "protocol": "test: full ranking; [train] masks training items only (MMRec), [train+valid] masks "
                        "validation items too; every choice on validation", "history": result.history}


def print_table(report: dict[str, Any]) -> None:
    """The search line and one row per seed, with the mean."""
    s = report["search"]
    print(f"\n{report['catalog']} ({report['users']:,} users × {report['items']:,} items, split {report['split']})")
    if s.get("reselected"):
        print(f"the stored search, not run again: {s['trials']} trials ({s['pruned']} pruned) in {s['minutes']:.1f} min "
              f"when it ran")
    else:
        print(f"search on {s.get('engine', 'local')}: {s['trials']} trials ({s['pruned']} pruned, {s.get('failed', 0)} "
              f"failed, {s.get('epochs', '?')} epochs) in {s['minutes']:.1f} min = {s['trials_per_minute']:.1f} "
              f"trials/min, {s.get('cpu_minutes', float('nan')):.1f} CPU min (trials "
              f"{s.get('trial_cpu_minutes', float('nan')):.1f}); load average {s.get('load_average')}")
    print(f"best validation {s['metric']} {s['best_valid']:.4f}: {config_text(s.get('best_params') or {})}")
    final = report.get("finalists")
    if final:
        from core.tuning.finalists import mean_text

        print(f"finalists ({final['metric']}, seeds {final['seeds']}):")
        for f in final["finalists"]:
            mark = "  <- chosen" if f["trial"] == final["chosen_trial"] else ""
            per_seed = " ".join(f"{v:.4f}" for v in f["per_seed"].values())
            print(f"  trial {f['trial']:>3}: search {f['search_value']:.4f} · final {per_seed} · mean {mean_text(f)}"
                  f"{mark}\n    {config_text(f['params'])}")
    cols = ["fit_seconds", f"valid {s['metric']}", "recall@20 [train]", "ndcg@20 [train]",
            "recall@20 [train+valid]", "ndcg@20 [train+valid]"]
    print("seed  " + "  ".join(f"{c:>24}" for c in cols))
    for f in report["fits"]:
        print(f"{f['seed']:>4}  " + "  ".join(f"{f[c]:>24.4f}" for c in cols))
    if report["fits"]:
        means = {c: sum(f[c] for f in report["fits"]) / len(report["fits"]) for c in cols}
        print("mean  " + "  ".join(f"{means[c]:>24.4f}" for c in cols))


def config_text(params: dict[str, Any]) -> str:
    """A trial's params on one line."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def summarise(paths: list[Path]) -> None:
    """One row per report (engine, seed): the search's cost and best validation metric, and the refit's; then
    per engine the mean and the spread over seeds."""
    reports = [json.loads(Path(p).read_text()) for p in paths]
    metric = reports[0]["search"]["metric"] if reports else "ndcg@20"
    def minutes(value: Any) -> str:
        return "–" if value is None else f"{value:.1f}"

    print(f"| engine | seed | trials (pruned) | epochs | CPU min, all processes | CPU min in trials | wall min | load "
          f"| search best valid {metric} | refit valid {metric} |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    by_engine: dict[str, list[tuple[float, float]]] = {}
    for r in sorted(reports, key=lambda r: (r["search"].get("engine", "local"), r["search"]["seed"])):
        s = r["search"]
        refit = [f[f"valid {s['metric']}"] for f in r["fits"] if f["seed"] == s["seed"]] or \
            [f[f"valid {s['metric']}"] for f in r["fits"]]
        refit_value = refit[0] if refit else float("nan")
        by_engine.setdefault(s.get("engine", "local"), []).append((s["best_valid"], refit_value))
        load = s.get("load_average") or ["?", "?"]
        print(f"| {s.get('engine', 'local')} | {s['seed']} | {s['trials']} ({s['pruned']}) | {s.get('epochs', '?')} "
              f"| {minutes(s.get('cpu_minutes'))} | {minutes(s.get('trial_cpu_minutes'))} | {s['minutes']:.1f} "
              f"| {load[0]}–{load[1]} "
              f"| {s['best_valid']:.4f} | {refit_value:.4f} |")
    for engine, values in by_engine.items():
        for i, what in enumerate(("search best", "refit")):
            v = [x[i] for x in values]
            mean = sum(v) / len(v)
            print(f"{engine}: {what} mean {mean:.4f}, range {min(v):.4f}–{max(v):.4f} over {len(v)} seed(s)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog", default="demo", help="'demo', 'lfm2k' (shared data) or a stored catalog")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--trials", type=int, help="number of trials (default 30)")
    stop.add_argument("--budget", type=float, metavar="MINUTES", help="search budget in minutes")
    p.add_argument("--seed", type=int, default=0, help="seed of the search")
    p.add_argument("--seeds", default="0", help="seeds of the final fits, e.g. 0,1,2 (empty: none)")
    p.add_argument("--jobs", type=int, default=1, help="trials at once (local: threads; ray: concurrent trials; "
                                                       "2 uses both cores)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: Optuna in this process; ray: the same search on Ray Tune (ASHA pruning)")
    p.add_argument("--address", default=None, help="with --engine ray: auto | ray://HOST:PORT (default: Ray on "
                                                   "this machine)")
    p.add_argument("--summarise", nargs="+", type=Path, metavar="JSON",
                   help="print the engine × seed table of earlier --out reports and stop")
    p.add_argument("--trial-epochs", type=int, help="epoch cap of one trial (default 20)")
    p.add_argument("--data-dir", type=Path, help="store folder")
    p.add_argument("--store-tuned", action="store_true", help="store the result as the catalog's tuned config")
    p.add_argument("--finalists", type=int, default=1, metavar="K",
                   help="fit the search's K best trials as final models (collaborative term included) with each "
                        "of --finalist-seeds and keep the best mean validation figure (default 1: the search's best)")
    p.add_argument("--finalist-seeds", default="0,1,2", help="seeds of each finalist's fits (default 0,1,2)")
    p.add_argument("--reselect", action="store_true",
                   help="no new search: choose among the catalog's stored search's trials (with --finalists)")
    p.add_argument("--out", type=Path, help="write the JSON here")
    args = p.parse_args(argv)
    if args.summarise:
        summarise(args.summarise)
        return 0
    if args.address is not None and args.engine != "ray":
        p.error("--address needs --engine ray")
    if args.jobs < 1:
        p.error(f"--jobs {args.jobs}: give at least 1")
    if args.finalists < 1:
        p.error(f"--finalists {args.finalists}: give at least 1")
    if args.reselect and (args.finalists < 2 or args.engine != "local" or args.trials or args.budget):
        p.error("--reselect chooses among a stored search's trials: give --finalists 2 or more, and no --trials, "
                "--budget or --engine ray")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    from core.tuning.finalists import finalist_options

    try:
        finalist_seeds = finalist_options(args.finalists, args.finalist_seeds)
    except ValueError as e:
        p.error(str(e))
    report = run(args.catalog, args.trials, args.budget, args.seed, seeds, args.data_dir, args.store_tuned,
                 args.jobs, args.trial_epochs, args.engine, args.address, args.finalists, finalist_seeds,
                 args.reselect)
    print_table(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
