"""Training and evaluating the fusion model, ALS and ItemKNN (the sparse replacement for EASE) on a large
synthetic interaction set, sparse all the way.

    nice -n 5 python -m benchmarks.scale_train [--users 1000000 --items 200000 --interactions 20000000]
        [--models fusion,als,itemknn,ease] [--cache benchmarks/results/scale_train_data]
        [--engine local,ray --workers 1,2]   # fusion rows: trained here, and on Ray Train with 1 and 2 workers
        [--engine former,local]              # the large-catalog epoch as it was (one thread) and as it is

Data: users each like one of `--clusters` item clusters; 70% of a user's interactions fall in that cluster
and 30% on globally popular items (Zipf); item content = three clustered 32-d fields (text, image, audio),
5% of items missing each. Split per user at random 8:1:1. The fusion model's early stopping reads validation
Recall@20 on a sample of `--valid-users` users; ALS and ItemKNN use their default settings (not tuned here).
The test evaluation (full ranking over all items, the user's training items masked, validation items kept
as candidates: the protocol's default "train" mask) runs on one sample of `--test-users` users, the same for
every model. EASE runs only when its dense item–item matrix is allowed (core.models.ease.MAX_ITEMS); above
that a row says why it is skipped. Per model: fit time, the time of each epoch / ALS sweep, evaluation time,
recall@20 / ndcg@20, resident memory after the model and the process-wide peak (ru_maxrss, never reset, so
a row's peak covers everything run before it). One table is printed; a JSON copy goes to `--json`.
"""
from __future__ import annotations

import argparse
from contextlib import contextmanager
import dataclasses
import gc
import json
import logging
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def synthetic(n_users: int, n_items: int, n_inter: int, clusters: int, seed: int = 0):
    """(InteractionData, seconds) of the synthetic set described in the module docstring."""
    from core.encoders.embeddings import EmbeddingSet
    from core.encoders.base import l2_normalise
    from core.data.interactions import InteractionData

    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    size = n_items // clusters
    cluster_of_item = np.minimum(np.arange(n_items) // size, clusters - 1)
    per_user = n_inter // n_users
    taste = rng.integers(clusters, size=n_users)
    users = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    local = rng.random(users.size) < 0.7
    items = np.empty(users.size, np.int64)
    items[local] = taste[users[local]] * size + rng.integers(size, size=int(local.sum()))
    popular = rng.zipf(1.2, size=int((~local).sum())) - 1
    items[~local] = rng.permutation(n_items)[popular % n_items]
    keys = np.unique(users * n_items + items)  # one interaction per (user, item)
    users, items = keys // n_items, keys % n_items
    del keys, local, popular
    part = rng.random(users.size)

    def matrix(sel: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((np.ones(int(sel.sum()), np.float32), (users[sel], items[sel])),
                             shape=(n_users, n_items))

    train, valid, test = matrix(part < 0.8), matrix((part >= 0.8) & (part < 0.9)), matrix(part >= 0.9)
    fields = {"text": "text", "image": "image", "audio": "audio"}
    matrices, masks = {}, {}
    for f in fields:
        centres = rng.standard_normal((clusters, 32)).astype(np.float32)
        masks[f] = rng.random(n_items) > 0.05
        x = centres[cluster_of_item] + rng.standard_normal((n_items, 32)).astype(np.float32)
        matrices[f] = l2_normalise(x * masks[f][:, None])
    ids = [f"i{j}" for j in range(n_items)]
    emb = EmbeddingSet(item_ids=ids, matrices=matrices, masks=masks, modality_of=fields,
                       encoder_ids={f: f"synthetic/{f}-32" for f in fields})
    data = InteractionData(user_ids=[f"u{u}" for u in range(n_users)], item_ids=ids, train=train, valid=valid,
                           test=test, embeddings=emb, split_name="random-8:1:1", seed=seed)
    return data, time.perf_counter() - t


def keep_rows(m: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """`m` with every row outside `rows` emptied (same shape)."""
    keep = np.zeros(m.shape[0], np.float32)
    keep[rows] = 1.0
    out = (sp.diags(keep) @ m).tocsr()
    out.eliminate_zeros()
    return out


def rss_gib() -> float:
    """The process's resident memory now (not the peak), GiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def cached_synthetic(args: argparse.Namespace):
    """synthetic(...) read from / written to `args.cache` (a folder) when given: generation takes minutes."""
    from core.encoders.embeddings import EmbeddingSet
    from core.data.interactions import InteractionData

    make = lambda: synthetic(args.users, args.items, args.interactions, args.clusters)  # noqa: E731
    if not args.cache:
        return make()
    folder = Path(args.cache) / f"u{args.users}-i{args.items}-n{args.interactions}-c{args.clusters}"
    if (folder / "done").exists():
        t = time.perf_counter()
        splits = {s: sp.load_npz(folder / f"{s}.npz").tocsr() for s in ("train", "valid", "test")}
        arrays = np.load(folder / "content.npz")
        fields = ("text", "image", "audio")
        ids = [f"i{j}" for j in range(args.items)]
        emb = EmbeddingSet(item_ids=ids, matrices={f: arrays[f] for f in fields},
                           masks={f: arrays[f"{f}_mask"] for f in fields}, modality_of={f: f for f in fields},
                           encoder_ids={f: f"synthetic/{f}-32" for f in fields})
        data = InteractionData(user_ids=[f"u{u}" for u in range(args.users)], item_ids=ids, embeddings=emb,
                               split_name="random-8:1:1", seed=0, **splits)
        return data, time.perf_counter() - t
    data, seconds = make()
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "valid", "test"):
        sp.save_npz(folder / f"{name}.npz", getattr(data, name), compressed=False)
    emb = data.embeddings
    np.savez(folder / "content.npz", **emb.matrices, **{f"{f}_mask": m for f, m in emb.masks.items()})
    (folder / "done").write_text("ok\n")
    return data, seconds


def ease_skip_reason(n_items: int) -> str | None:
    """Why EASE cannot run on `n_items` items (its dense item–item matrix), or None when it can."""
    from core.models.ease import MAX_ITEMS

    if n_items <= MAX_ITEMS:
        return None
    return (f"skipped: B is a dense {n_items:,}² matrix, {n_items**2 * 4 / 1e9:,.0f} GB float32 "
            f"(the fit's float64 Gram matrix and its inverse: {2 * n_items**2 * 8 / 1e9:,.0f} GB); "
            f"EASE is limited to {MAX_ITEMS:,} items, ItemKNN top-k replaces it")


def random_recall(eval_data, k: int) -> float:
    """Expected recall@k of a uniformly random ranking over the unmasked items, mean over the test users."""
    users = np.flatnonzero(np.diff(eval_data.test.indptr) > 0)
    n_test = np.diff(eval_data.test.indptr)[users].astype(np.float64)
    candidates = eval_data.n_items - np.diff(eval_data.train.indptr)[users].astype(np.float64)
    return float(np.mean(np.minimum(k, candidates) / candidates))  # recall = hits / |test items|


def run_model(name: str, args: argparse.Namespace, data, fit_data, eval_data, engine: tuple[str, int] = ("local", 1)
              ) -> dict:
    """Fit one model, evaluate it on the sampled test users and return its table row (plain data). The fusion
    model trains here (engine ("local", 1)) or on Ray Train with n workers (("ray", n))."""
    from contextlib import nullcontext

    from core.evaluation.protocol import evaluate
    from core.models.als import ALS
    from core.models.ease import EASE
    from core.models.fusion.config import FusionConfig
    from core.models.fusion.recommender import FusionRecommender
    from core.models.itemknn import ItemKNN

    row: dict = {"model": name if engine[0] == "local" else f"{name}-{engine[0]}" if engine[0] == "former"
                 else f"{name}-ray{engine[1]}"}
    if name == "ease":
        reason = ease_skip_reason(data.n_items)
        if reason:
            return {**row, "skipped": reason, "rss_gib": rss_gib(), "peak_gib": peak_gib()}
    if name == "fusion":
        config = FusionConfig(strategy="gated", dim=64, hidden=0, dropout=0.1, use_item_id=True, user_mode="id",
                              graph_layers=0, loss="bpr", negatives=1, lr=args.lr, emb_reg=1e-4, align_weight=0.02,
                              epochs=args.epochs, patience=args.epochs, batch_size=args.batch_size, seed=0,
                              collaborative="none")  # ALS and ItemKNN have rows of their own (and above
        #                               collaborative.MAX_ITEMS the fusion model skips that term anyway)

        def on_epoch(report) -> None:
            print(f"  fusion epoch {report.epoch}: loss {report.loss:.4f}, valid recall@20 "
                  f"{report.valid_metric:.4f} ({args.valid_users:,} sampled users), {report.seconds:.0f} s; "
                  f"peak {peak_gib():.2f} GiB", flush=True)

        model, fit_on, progress = FusionRecommender(config), fit_data, on_epoch
    elif name == "als":
        model, fit_on, progress = ALS(iterations=args.als_iterations, factors=64), data, None
    elif name == "itemknn":
        model, fit_on, progress = ItemKNN(k=args.knn_k), data, None
    elif name == "ease":
        model, fit_on, progress = EASE(), data, None
    else:
        raise SystemExit(f"unknown model {name!r}: choose among {', '.join(MODELS)}")
    on_ray = None
    if name == "fusion" and engine[0] in ("local", "former"):
        on_ray = local_fusion_threads(engine[0] == "former")
    if name == "fusion" and engine[0] == "ray":
        from core.models.fusion.train import training_engine
        from core.scale.ray_train import RayTrainEngine

        on_ray = training_engine(RayTrainEngine(workers=engine[1]))
    print(f"{row['model']}: fitting", flush=True)
    t = time.perf_counter()
    with on_ray or nullcontext():
        model.fit(fit_on, progress=progress)
    row["fit_s"] = time.perf_counter() - t
    if name == "fusion":
        row["epoch_s"] = [h["seconds"] for h in model.history]  # train + validation of each epoch
        row["per"] = "epoch (train + valid)"
        row["engine"], row["workers"] = engine
        # training pairs a second of epoch time (the epochs' training and validation, not start-up)
        row["pairs_per_s"] = fit_data.train.nnz * len(model.history) / max(sum(row["epoch_s"]), 1e-9)
        peaks = [h["worker_peak_gib"] for h in model.history if "worker_peak_gib" in h]
        row["worker_peak_gib"] = max(peaks) if peaks else None
    elif name == "als":
        row["epoch_s"] = list(model.iteration_seconds)
        row["per"] = "ALS sweep"
    elif name == "itemknn":
        row["blocks"] = model.blocks
        row["neighbours"] = int(model.similarity.nnz)
        row["per"] = f"{model.blocks} item blocks"
    row["rss_after_fit_gib"], row["peak_after_fit_gib"] = rss_gib(), peak_gib()
    print(f"{name}: fitted in {row['fit_s']:.0f} s; peak {peak_gib():.2f} GiB; evaluating", flush=True)

    def on_batch(done: int, total: int, message: str) -> None:
        if done == total or done % max(1, total // 10) == 0:
            print(f"  {name} evaluation: {message}", flush=True)

    t = time.perf_counter()
    result = evaluate(model, eval_data, ks=(10, 20), n_bootstrap=200, progress=on_batch)
    row["eval_s"] = time.perf_counter() - t
    row["eval_users"] = result.users_evaluated
    row["recall@20"], row["ndcg@20"] = result.metrics["recall@20"], result.metrics["ndcg@20"]
    row["rss_gib"], row["peak_gib"] = rss_gib(), peak_gib()
    del model, result
    gc.collect()
    return row


MODELS = ("fusion", "als", "itemknn", "ease")


@contextmanager
def local_fusion_threads(former: bool):
    """A local fusion fit with the machine's cores as torch's threads (the benchmark runs everything else on
    one); `former`: the large-catalog epoch as it was before it used every core: one thread, big blocks not reused, a
    whole-table user gradient each step."""
    import torch

    from core.encoders.pipeline import usable_cores
    from core.models.fusion import train

    saved = (torch.get_num_threads(), train.LARGE_TRAIN_THREADS, train.REUSE_LARGE_ALLOCATIONS,
             train.KEEP_USER_GRADIENT)
    torch.set_num_threads(usable_cores())
    if former:
        train.LARGE_TRAIN_THREADS, train.REUSE_LARGE_ALLOCATIONS, train.KEEP_USER_GRADIENT = 1, False, False
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        train.LARGE_TRAIN_THREADS, train.REUSE_LARGE_ALLOCATIONS, train.KEEP_USER_GRADIENT = saved[1:]


def fusion_engines(parser: argparse.ArgumentParser, engines: str, workers: str) -> list[tuple[str, int]]:
    """[(engine, workers)] from --engine local,former,ray and --workers 1,2: local and former once each, ray
    once per count."""
    names = [e.strip() for e in engines.split(",") if e.strip()]
    if not names or any(e not in ("local", "former", "ray") for e in names):
        parser.error(f"--engine {engines!r}: give local, former, ray (comma-separated)")
    try:
        counts = [int(w) for w in workers.split(",") if w.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        parser.error(f"--workers {workers!r}: give worker counts ≥ 1, comma-separated")
    return [(e, 1) for e in names if e in ("local", "former")] + [("ray", n) for e in names if e == "ray"
                                                                  for n in counts]


def format_row(r: dict) -> str:
    """One line of the printed table."""
    if "skipped" in r:
        return f"{r['model']:<12} {r['skipped']}"
    per = r.get("epoch_s")
    if per:
        mean = sum(per) / len(per)
        per_text = f"{mean:.1f} × {len(per)}" if len(per) > 1 else f"{mean:.0f}"
    else:
        per_text = r.get("per", "")
    rate = f"{r['pairs_per_s']:,.0f}" if r.get("pairs_per_s") else ""
    workers = f"{r['worker_peak_gib']:.2f}" if r.get("worker_peak_gib") else ""
    return (f"{r['model']:<12} {r['fit_s']:>8.0f} {per_text:>18} {rate:>10} {r['eval_s']:>8.0f} "
            f"{r['eval_users']:>8,} {r['recall@20']:>10.4f} {r['ndcg@20']:>8.4f} {r['rss_gib']:>8.2f} "
            f"{r['peak_gib']:>9.2f} {workers:>12}")


def main(argv: list[str] | None = None) -> list[dict]:
    import torch

    from core.data.interactions import InteractionData

    parser = argparse.ArgumentParser(description="fusion, ALS and ItemKNN training at scale, sparse")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--interactions", type=int, default=20_000_000)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--epochs", type=int, default=1, help="fusion epochs")
    parser.add_argument("--batch-size", type=int, default=32_768, help="fusion batch size")
    parser.add_argument("--lr", type=float, default=0.005, help="fusion learning rate")
    parser.add_argument("--engine", default="local", help="comma-separated fusion engines: local, former (local as "
                        "before: one thread, big blocks not reused, a whole-table user gradient each step), ray (a "
                        "row each; ray once per --workers count)")
    parser.add_argument("--workers", default="1", help="comma-separated Ray Train worker counts, e.g. 1,2")
    parser.add_argument("--lazy-adam", action="store_true", help="fusion: sparse id gradients and lazy Adam "
                        "(core.models.fusion.train.LAZY_ID_ROWS) instead of dense fused Adam")
    parser.add_argument("--als-iterations", type=int, default=15)
    parser.add_argument("--knn-k", type=int, default=50, help="ItemKNN neighbours kept per item")
    parser.add_argument("--valid-users", type=int, default=10_000)
    parser.add_argument("--test-users", type=int, default=10_000)
    parser.add_argument("--cache", default="", help="folder to keep the generated set in and reuse it from")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "scale_train.json"))
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}: choose among {', '.join(MODELS)}")
    engines = fusion_engines(parser, args.engine, args.workers)
    if args.lazy_adam:
        import core.models.fusion.train

        core.models.fusion.train.LAZY_ID_ROWS = True
    logging.basicConfig(level=logging.WARNING, format="  %(message)s")
    for name in ("core.models.als", "core.models.fusion.train"):  # ALS sweeps and fusion steps, as plain lines
        logging.getLogger(name).setLevel(logging.INFO)
    torch.set_num_threads(1)
    load_start = os.getloadavg()

    data, gen_s = cached_synthetic(args)
    total = data.train.nnz + data.valid.nnz + data.test.nnz
    print(f"synthetic set: {data.n_users:,} users × {data.n_items:,} items, {total:,} interactions "
          f"(train {data.train.nnz:,}) in {gen_s:.0f} s; peak {peak_gib():.2f} GiB", flush=True)
    rng = np.random.default_rng(1)
    with_valid = np.flatnonzero(np.diff(data.valid.indptr) > 0)
    valid_users = rng.choice(with_valid, size=min(args.valid_users, with_valid.size), replace=False)
    fit_data = dataclasses.replace(data, valid=keep_rows(data.valid, valid_users))
    with_test = np.flatnonzero(np.diff(data.test.indptr) > 0)
    test_users = rng.choice(with_test, size=min(args.test_users, with_test.size), replace=False)
    eval_data = InteractionData(user_ids=data.user_ids, item_ids=data.item_ids, train=data.train,
                                valid=data.valid, test=keep_rows(data.test, test_users), embeddings=data.embeddings,
                                split_name=data.split_name)
    rows = []
    runs = [(name, engine) for name in models for engine in (engines if name == "fusion" else [("local", 1)])]
    for name, engine in runs:  # each row printed when done, so a long run shows its results as it goes
        rows.append(run_model(name, args, data, fit_data, eval_data, engine))
        print(f"row: {format_row(rows[-1])}  (load average {os.getloadavg()[0]:.2f})", flush=True)
    chance = random_recall(eval_data, 20)
    load_end = os.getloadavg()

    print(f"\n{data.n_users:,} users × {data.n_items:,} items × {total:,} interactions (train {data.train.nnz:,}); "
          f"split random 8:1:1 per user; test on {test_users.size:,} sampled users, full ranking, train items "
          f"masked; generated in {gen_s:.0f} s")
    print(f"{'model':<12} {'fit s':>8} {'per epoch/sweep s':>18} {'pairs/s':>10} {'eval s':>8} {'users':>8} "
          f"{'recall@20':>10} {'ndcg@20':>8} {'rss GiB':>8} {'peak GiB':>9} {'workers GiB':>12}")
    for r in rows:
        print(format_row(r))
    print(f"random ranking: recall@20 {chance:.5f} (expected, same users)")
    print("pairs/s = training pairs × epochs ÷ the epochs' seconds (training and validation; Ray's start-up is in "
          "fit s only); workers GiB = the largest ru_maxrss of the Ray Train workers (separate processes).")
    print(f"peak GiB = ru_maxrss, the process-wide peak so far (it covers the generation and every model "
          f"before the row); rss GiB = resident memory after that model's evaluation. Load average "
          f"{load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end (shared machine).")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"args": vars(args), "n_users": data.n_users, "n_items": data.n_items, "interactions": int(total),
              "train": int(data.train.nnz), "generate_s": gen_s, "test_users": int(test_users.size),
              "protocol": {"split": "random-8:1:1 per user", "ranking": "full", "mask": "train",
                           "test_users": "random sample (seed 1) of users with test items, same for every model",
                           "peak": "ru_maxrss: process-wide peak, never reset"},
              "random_recall@20": chance, "loadavg_start": load_start, "loadavg_end": load_end, "rows": rows}
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"written {out}")
    return rows


if __name__ == "__main__":
    main()
