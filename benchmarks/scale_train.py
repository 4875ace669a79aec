"""Training and evaluating the fusion model on a large synthetic interaction set, sparse all the way.

    nice -n 5 python -m benchmarks.scale_train [--users 1000000 --items 200000 --interactions 20000000]

Data: users each like one of `--clusters` item clusters; 70% of a user's interactions fall in that cluster
and 30% on globally popular items (Zipf); item content = three clustered 32-d fields (text, image, audio),
5% of items missing each. Split per user at random 8:1:1. Early stopping reads validation Recall@20 on a
sample of `--valid-users` users; the test evaluation (full ranking over all items, train+valid items
masked) runs on a sample of `--test-users` users: both samples are stated in the output. Reports peak
memory (ru_maxrss), the time of each epoch and of the evaluation.
"""
from __future__ import annotations

import argparse
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
    from core.embeddings import EmbeddingSet
    from core.encoders.base import l2_normalise
    from core.models.base import InteractionData

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


def main(argv: list[str] | None = None) -> None:
    import dataclasses

    import torch

    from core.evaluation.protocol import evaluate
    from core.models.base import InteractionData
    from core.models.fusion import FusionConfig, FusionRecommender

    parser = argparse.ArgumentParser(description="fusion training at scale, sparse")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--interactions", type=int, default=20_000_000)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32_768)
    parser.add_argument("--valid-users", type=int, default=10_000)
    parser.add_argument("--test-users", type=int, default=10_000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    data, gen_s = synthetic(args.users, args.items, args.interactions, args.clusters)
    total = data.train.nnz + data.valid.nnz + data.test.nnz
    print(f"synthetic set: {data.n_users:,} users × {data.n_items:,} items, {total:,} interactions "
          f"(train {data.train.nnz:,}) in {gen_s:.0f} s; peak {peak_gib():.2f} GiB", flush=True)
    rng = np.random.default_rng(1)
    valid_users = rng.choice(np.flatnonzero(np.diff(data.valid.indptr) > 0), size=args.valid_users, replace=False)
    fit_data = dataclasses.replace(data, valid=keep_rows(data.valid, valid_users))
    config = FusionConfig(strategy="gated", dim=64, hidden=0, dropout=0.1, use_item_id=True, user_mode="id",
                          graph_layers=0, loss="bpr", negatives=1, lr=0.005, emb_reg=1e-4, align_weight=0.02,
                          epochs=args.epochs, patience=args.epochs, batch_size=args.batch_size, seed=0)

    def on_epoch(report) -> None:
        print(f"epoch {report.epoch}: loss {report.loss:.4f}, valid recall@20 {report.valid_metric:.4f} "
              f"({args.valid_users:,} sampled users), {report.seconds:.0f} s; peak {peak_gib():.2f} GiB", flush=True)

    t = time.perf_counter()
    model = FusionRecommender(config).fit(fit_data, progress=on_epoch)
    fit_s = time.perf_counter() - t
    test_users = rng.choice(np.flatnonzero(np.diff(data.test.indptr) > 0), size=args.test_users, replace=False)
    eval_data = InteractionData(user_ids=data.user_ids, item_ids=data.item_ids, train=data.train,
                                valid=data.valid, test=keep_rows(data.test, test_users), embeddings=data.embeddings,
                                split_name=data.split_name)
    t = time.perf_counter()
    result = evaluate(model, eval_data, ks=(10, 20), n_bootstrap=200)
    eval_s = time.perf_counter() - t
    epoch_s = [h["seconds"] for h in model.history]
    print(f"\n{'measure':<44} {'value':>14}")
    rows = [("users × items × interactions", f"{data.n_users:,} × {data.n_items:,} × {total:,}"),
            ("fit (incl. graph buffers, sampling), s", f"{fit_s:.0f}"),
            ("epoch time (train + validation), s", ", ".join(f"{s:.0f}" for s in epoch_s)),
            (f"evaluation on {result.users_evaluated:,} sampled test users, s", f"{eval_s:.0f}"),
            ("  recall@20 / ndcg@20 (sampled users)",
             f"{result.metrics['recall@20']:.4f} / {result.metrics['ndcg@20']:.4f}"),
            ("peak memory (ru_maxrss), GiB", f"{peak_gib():.2f}")]
    for name, value in rows:
        print(f"{name:<44} {value:>14}")


if __name__ == "__main__":
    main()
