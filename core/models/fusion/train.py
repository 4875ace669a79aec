"""Training of the fusion model: sampled negatives, BPR, BCE or sampled softmax, alignment and adversarial terms,
early stopping.

Each optimiser step runs one forward pass over the whole catalog (heads, fusion, user aggregates, graph
propagation), then scores the batch's pairs from it: on a catalog of thousands of items this is cheaper
than per-pair projection, and it keeps the graph and the aggregates exact. Above LOCAL_STEP_ITEMS items
(without propagation) a step scores only its batch's items and users, and Adam runs fused in one pass.
The same loop runs alone or as one of several replicas (Replica: Ray Train workers, core.scale.ray_train).
"""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from core.data.metrics import bounded_batch, metric_k, ndcg_at_k, recall_at_k, topk_indices
from core.data.interactions import InteractionData
from core.models.base import EpochReport, ProgressCallback
from core.models.fusion.config import FusionConfig
from core.models.fusion.allocation import reuse_large_allocations
from core.models.fusion.dropout import DRAWN, drawn_ahead
from core.models.fusion.network import Forward, FusionNet, GradientReversal

log = logging.getLogger(__name__)

# The tensors are small (thousands of rows): a second thread gains little, and on shared cores its
# spin-waiting made steps 10x slower in measurements, so training runs on one thread and restores the
# caller's setting afterwards.
TRAIN_THREADS = 1
# The large-catalog path's steps hold tens of thousands of rows (the batch's items through the towers, a
# million-row id gradient): there every thread torch has pays off (with the two changes below, one epoch at
# 1M users × 200k items took 198 s against 339 s before, idle 2 cores: benchmarks.scale_train --engine
# former,local). 0: torch's own count (the cores; on a Ray Train worker, the CPUs Ray gave it).
LARGE_TRAIN_THREADS = 0
KEEP_USER_GRADIENT = True  # the large-catalog path keeps the user table's gradient between steps (_fit)
REUSE_LARGE_ALLOCATIONS = True  # the large-catalog path reuses big blocks between steps (fusion.allocation)
EVAL_BATCH = 2048  # users scored at once during validation (fewer on large catalogs: see bounded_batch)
# Above this many items a step scores only the batch's items (when no graph propagation needs them all):
# a whole-catalog forward pass per step would cost a second per step at 200,000 items.
LOCAL_STEP_ITEMS = 20_000
ALIGN_MAX_ITEMS = 2048  # batch-local steps: items the alignment loss compares (an (n, n) matrix per modality pair)
DENSE_MEMBERSHIP_MAX = 1 << 25  # users × items up to which sampled negatives are checked in a bool table (32 MB)
STEP_LOG_SECONDS = 60.0  # a long epoch logs its progress (INFO, logger core.models.fusion.train) this often
GATHER_RATIO = 32  # score negatives by a full (B, I) matmul when I ≤ this × negatives (3x faster, measured)
# Large-catalog path: the id embeddings' rows step with dense Adam in one fused kernel (0.19 s against 0.63 s of
# CPU a step for 1M × 64 user rows, measured), the former optimiser's arithmetic. True: sparse gradients and lazy
# Adam instead (only the batch's rows move; cheaper still, and a sparse all-reduce across Ray Train workers), but
# a row then stops where dense Adam's momentum would carry it on: at 1M users × 200k items one epoch reached test
# recall@20 .0249 against .0462 with dense Adam (benchmarks.scale_train, same seed; .0470 for the former code).
LAZY_ID_ROWS = False
# The whole-catalog step of one process draws its heads' dropout masks on a second thread, ahead of the steps
# (fusion.dropout; the same weights bit for bit): the demo's first model fitted in 21.9 s against 25.8 s, one run
# each in one process on 2 cores.
DRAW_DROPOUT_AHEAD = True


def sample_pairs(train: sp.csr_matrix, rng: np.random.Generator, negatives: int,
                 max_tries: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch: every training (user, item) pair once, shuffled, with `negatives` unseen items each.

    Returns users (P,), positives (P,) and negatives (P, negatives).
    """
    train = sp.csr_matrix(train)
    n_items = train.shape[1]
    users = np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(train.indptr))
    pos = train.indices.astype(np.int64)
    pairs = users * n_items + pos
    if train.shape[0] * n_items <= DENSE_MEMBERSHIP_MAX:  # a boolean table: one lookup per probe
        table = np.zeros(train.shape[0] * n_items, bool)
        table[pairs] = True

        def seen(probe: np.ndarray) -> np.ndarray:
            return table[probe]
    else:  # sorted keys and a binary search: memory in the interactions, not users × items
        # a canonical CSR (rows in order, columns sorted, no duplicates) lists its keys already sorted and
        # unique: the same array as np.unique(pairs) without its hash pass (6 of the 7 s of sampling 1.5M
        # pairs, profiled)
        canonical = train if train.has_canonical_format else train.copy()
        canonical.sum_duplicates()
        keys = np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(canonical.indptr)) * n_items \
            + canonical.indices.astype(np.int64)

        def seen(probe: np.ndarray) -> np.ndarray:
            # probes searched in sorted order: numpy's binary search then walks the keys forwards, many
            # times faster on millions of probes than random lookups
            order = np.argsort(probe)
            found = np.empty(probe.size, bool)
            ordered = probe[order]
            found[order] = keys[np.minimum(np.searchsorted(keys, ordered), keys.size - 1)] == ordered
            return found
    order = rng.permutation(users.size)
    users, pos = users[order], pos[order]
    neg = rng.integers(0, n_items, size=(users.size, negatives))
    # rejection sampling, vectorised: redraw only the negatives that hit one of the user's items
    flat_users = np.repeat(users, negatives)  # (P·n,) aligned with neg.ravel()
    flat = neg.reshape(-1)  # a view: writes land in neg
    todo = np.arange(flat.size)
    for _ in range(max_tries):
        todo = todo[seen(flat_users[todo] * n_items + flat[todo])]
        if todo.size == 0:
            break
        flat[todo] = rng.integers(0, n_items, size=todo.size)
    return users, pos, neg


def ranking_loss(pos: torch.Tensor, neg: torch.Tensor, kind: str) -> torch.Tensor:
    """BPR: -log σ(s⁺ - s⁻); BCE: positives labelled 1 and negatives 0; softmax: cross-entropy of the
    positive among itself and its negatives. pos (B,), neg (B, n)."""
    if kind == "bpr":
        return -F.logsigmoid(pos[:, None] - neg).mean()
    if kind == "softmax":
        logits = torch.cat([pos[:, None], neg], dim=1)  # (B, 1 + n): the positive is class 0
        return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))
    return (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
            + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg)))


def negative_scores(users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """(B, n) <user_b, item_{negatives[b, k]}> for users (B, D), items (I, D), negatives (B, n)."""
    if items.shape[0] <= GATHER_RATIO * negatives.shape[1]:
        # many negatives on a small catalog: one (B, I) matmul beats gathering (B, n, D) item rows
        return torch.gather(users @ items.T, 1, negatives)
    return (users[:, None, :] * items[negatives]).sum(-1)


def alignment_loss(x: torch.Tensor, present: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between every pair of modalities over items that have both. x (n, M, D)."""
    total, pairs = x.new_zeros(()), 0
    n_modalities = x.shape[1]
    for a in range(n_modalities):
        for b in range(a + 1, n_modalities):
            both = present[:, a] & present[:, b]
            if int(both.sum()) < 2:
                continue
            za = F.normalize(x[both, a], dim=-1)  # (n, D)
            zb = F.normalize(x[both, b], dim=-1)
            logits = za @ zb.T / temperature  # (n, n): the diagonal pairs are the same item
            target = torch.arange(len(za))
            total = total + 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
            pairs += 1
    return total / max(pairs, 1)


def adversarial_loss(net: FusionNet, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the modality discriminator on gradient-reversed projections: the discriminator
    learns to tell modalities apart while the heads learn to make them indistinguishable."""
    item, modality = present.nonzero(as_tuple=True)
    if item.numel() == 0:
        return x.new_zeros(())
    logits = net.discriminator(GradientReversal.apply(x[item, modality]))  # (n, M)
    return F.cross_entropy(logits, modality)


def validation_metric(net: FusionNet, data: InteractionData, metric: str) -> float:
    """Mean Recall@K or NDCG@K on data.valid over users with validation items; full ranking, training
    items masked."""
    kind, k = metric_k(metric)
    per_user = recall_at_k if kind == "recall" else ndcg_at_k
    users = np.flatnonzero(np.diff(data.valid.indptr) > 0)
    if users.size == 0:
        return float("nan")
    with torch.no_grad():
        f = net()
        bias = net.biases()
        values = []
        step = bounded_batch(EVAL_BATCH, data.n_items)
        for start in range(0, users.size, step):
            batch = users[start:start + step]
            scores = (f.users[torch.as_tensor(batch)] @ f.items.T + bias).numpy()  # (B, I)
            top = topk_indices(scores, k, data.train[batch])
            values.append(per_user(top, data.valid[batch]))
    return float(np.nanmean(np.concatenate(values)))


def _penalties(net: FusionNet, config: FusionConfig, f: Forward, users: torch.Tensor, pos: torch.Tensor,
               neg: torch.Tensor) -> torch.Tensor:
    """Embedding L2 on the batch, L1 on the heads, alignment and adversarial terms."""
    total = f.users0.new_zeros(())
    if config.emb_reg > 0:
        # Σ over the batch's rows of squared norms, as counts × norms: gathering (B, n, D) negative rows
        # made the backward pass several times slower
        n_items = f.items0.shape[0]
        item_counts = torch.bincount(pos, minlength=n_items) + torch.bincount(neg.reshape(-1),
                                                                              minlength=n_items) / neg.shape[1]
        user_counts = torch.bincount(users, minlength=f.users0.shape[0])
        reg = (user_counts * f.users0.pow(2).sum(1)).sum() + (item_counts * f.items0.pow(2).sum(1)).sum()
        total = total + config.emb_reg * reg / users.numel()
    if config.l1 > 0:
        total = total + config.l1 * sum(h.first_layer.weight.abs().sum() for h in net.heads.values())
    n_items = f.items0.shape[0]
    items = ((torch.bincount(pos, minlength=n_items) + torch.bincount(neg.reshape(-1), minlength=n_items)) > 0
             ).nonzero().squeeze(1)  # the batch's items, sorted (bincount is much faster than unique here)
    if config.align_weight > 0 and len(net.modalities) > 1:
        total = total + config.align_weight * alignment_loss(f.projected[items], f.present[items],
                                                             config.align_temperature)
    if config.strategy == "adversarial" and config.adv_weight > 0:
        total = total + config.adv_weight * adversarial_loss(net, f.projected[items], f.present[items])
    return total


def uses_local_steps(net: FusionNet) -> bool:
    """Whether training steps score only their batch's items and users (large catalog, no propagation)."""
    return (net.n_items > LOCAL_STEP_ITEMS and net.config.graph_layers == 0
            and net.config.user_mode == "id")


class _RowsIntoKeptGrad(torch.autograd.Function):
    """weight[rows], whose backward adds the rows' gradient into weight.grad in place (created once, kept
    between steps) instead of building a zero gradient of the whole table each step."""

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.weight = weight
        return weight.detach()[rows]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None]:
        (rows,) = ctx.saved_tensors
        weight = ctx.weight
        if weight.grad is None:
            weight.grad = torch.zeros_like(weight)
        weight.grad.index_add_(0, rows, grad)
        return None, None  # nothing for autograd to accumulate: it is in weight.grad already


# Set while a single-process large-catalog fit keeps the user table's gradient between steps (_fit)
KEEP_USER_GRAD: ContextVar[bool] = ContextVar("fusion_keep_user_grad", default=False)


def _user_rows(net: FusionNet, users: torch.Tensor) -> torch.Tensor:
    """The batch's user id rows (B, D): through the kept gradient when KEEP_USER_GRAD is set."""
    if KEEP_USER_GRAD.get():
        return _RowsIntoKeptGrad.apply(net.user_id.weight, users)
    return net.user_id(users)


def _local_step_loss(net: FusionNet, config: FusionConfig, users: torch.Tensor, pos: torch.Tensor,
                     neg: torch.Tensor) -> torch.Tensor:
    """The loss of one step computed over the batch's own items and users only.

    Without propagation and with id users, an item's vector depends on its own content and a user's on
    its own row, so this equals the whole-catalog step's loss (same terms, same regularisers) at the cost
    of the batch instead of the catalog."""
    items, inverse = torch.unique(torch.cat([pos, neg.reshape(-1)]), return_inverse=True)
    pos_l, neg_l = inverse[:pos.numel()], inverse[pos.numel():].reshape(neg.shape)  # rows into `items`
    present = net.present[items]  # (n, M)
    x = net.project({m: v[items] for m, v in net.inputs.items()}, len(items))  # (n, M, D)
    fused, _ = net.fuse(x, present)
    items0 = net.item_layer0(fused, items)  # (n, D)
    users0 = _user_rows(net, users)  # (B, D)
    bias = net.biases()[items]
    s_pos = (users0 * items0[pos_l]).sum(-1) + bias[pos_l]  # (B,)
    s_neg = (users0[:, None, :] * items0[neg_l]).sum(-1) + bias[neg_l]  # (B, n)
    loss = ranking_loss(s_pos, s_neg, config.loss)
    if config.emb_reg > 0:  # as _penalties: Σ over the batch's rows of squared layer-0 norms
        counts = torch.bincount(pos_l, minlength=len(items)) + torch.bincount(neg_l.reshape(-1),
                                                                              minlength=len(items)) / neg.shape[1]
        reg = users0.pow(2).sum() + (counts * items0.pow(2).sum(1)).sum()
        loss = loss + config.emb_reg * reg / users.numel()
    if config.l1 > 0:
        loss = loss + config.l1 * sum(h.first_layer.weight.abs().sum() for h in net.heads.values())
    projected = x * present[..., None]
    if config.align_weight > 0 and len(net.modalities) > 1:
        # InfoNCE is quadratic in its items: a large batch aligns a random subset of them
        pick = torch.randperm(len(items))[:ALIGN_MAX_ITEMS] if len(items) > ALIGN_MAX_ITEMS else slice(None)
        loss = loss + config.align_weight * alignment_loss(projected[pick], present[pick], config.align_temperature)
    if config.strategy == "adversarial" and config.adv_weight > 0:
        loss = loss + config.adv_weight * adversarial_loss(net, projected, present)
    return loss


def id_tables(net: FusionNet) -> list[torch.nn.Embedding]:
    """The user and item id embeddings (those the model has): a batch touches a few of their rows."""
    return [t for t in (getattr(net, "user_id", None), getattr(net, "item_id", None)) if t is not None]


@contextmanager
def sparse_id_gradients(net: FusionNet, on: bool) -> Iterator[None]:
    """Within the block (when `on`), the id embeddings give sparse gradients: only the batch's rows.

    The large-catalog path turns this on with LAZY_ID_ROWS: a dense gradient of a million user rows, and Adam's
    update of every row, cost much of a step. The weights and the saved model are unchanged by the flag."""
    tables = id_tables(net) if on else []
    before = [t.sparse for t in tables]
    for t in tables:
        t.sparse = True
    try:
        yield
    finally:
        for t, flag in zip(tables, before):
            t.sparse = flag


def make_optimisers(net: FusionNet, config: FusionConfig) -> list[torch.optim.Optimizer]:
    """The step's optimisers: one over every parameter (Adam fused into one pass on the large-catalog path),
    or, when the id embeddings give sparse gradients (sparse_id_gradients, LAZY_ID_ROWS), Adam over the dense
    ones and SparseAdam over the id rows a batch touches.

    SparseAdam updates only the touched rows' moments (lazy Adam): a row not in the batch does not move,
    where dense Adam would keep moving it with its momentum."""
    sparse = [t.weight for t in id_tables(net) if t.sparse and t.weight.requires_grad]
    dense = [p for p in net.parameters() if p.requires_grad and all(p is not q for q in sparse)]
    optimiser_class = torch.optim.Adam if config.optimizer == "adam" else torch.optim.RMSprop
    if not sparse and config.optimizer == "adam" and uses_local_steps(net):  # Adam's update in one fused pass
        return [torch.optim.Adam(dense, lr=config.lr, weight_decay=config.l2, fused=True)]
    if not sparse:
        return [optimiser_class(dense, lr=config.lr, weight_decay=config.l2)]
    if config.optimizer != "adam":
        raise ValueError(f"sparse id gradients need optimizer='adam' (got {config.optimizer!r})")
    return [optimiser_class(dense, lr=config.lr, weight_decay=config.l2), torch.optim.SparseAdam(sparse, lr=config.lr)]


def decay_sparse_rows(net: FusionNet, l2: float) -> None:
    """Weight decay (Adam's, added to the gradient) on the touched rows of sparse id gradients, which
    SparseAdam does not apply itself."""
    if l2 <= 0:
        return
    for t in id_tables(net):
        g = t.weight.grad
        if g is not None and g.is_sparse:
            g = g.coalesce()
            rows = g.indices()[0]
            t.weight.grad = torch.sparse_coo_tensor(g.indices(), g.values() + l2 * t.weight.detach()[rows],
                                                    g.shape, check_invariants=False, is_coalesced=True)


def step_loss(net: FusionNet, config: FusionConfig, u: torch.Tensor, i: torch.Tensor,
              j: torch.Tensor) -> torch.Tensor:
    """The loss of one optimiser step on users u (B,), positives i (B,) and negatives j (B, n)."""
    if uses_local_steps(net):
        return _local_step_loss(net, config, u, i, j)
    if config.loss == "full-softmax":
        f = net()  # (U, D), (I, D): the whole catalog, once per step
        bias = net.biases()
        logits = f.users[u] @ f.items.T + bias  # (B, I): the positive's class is its item
        j = torch.arange(f.items.shape[0])[None, :]  # (1, I) every item, for the penalties
        return F.cross_entropy(logits, i) + _penalties(net, config, f, u, i, j)
    f = net()  # (U, D), (I, D): the whole catalog, once per step
    bias = net.biases()
    s_pos = (f.users[u] * f.items[i]).sum(-1) + bias[i]  # (B,)
    s_neg = negative_scores(f.users[u], f.items, j) + bias[j]  # (B, n)
    return ranking_loss(s_pos, s_neg, config.loss) + _penalties(net, config, f, u, i, j)


class StepLoss(torch.nn.Module):
    """step_loss as a module over the network, so that DistributedDataParallel can wrap a step: its
    forward is one step's loss, and its backward averages the gradients over the replicas."""

    def __init__(self, net: FusionNet, config: FusionConfig) -> None:
        super().__init__()
        self.net = net
        self.config = config

    def forward(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        return step_loss(self.net, self.config, u, i, j)


def _same(module: torch.nn.Module) -> torch.nn.Module:
    return module


def _no_sum(values: np.ndarray) -> np.ndarray:
    return values


@dataclass
class Replica:
    """One of `world` processes training the same model together, each on its share of the users
    (core.scale.ray_train runs them as Ray Train workers). The default, rank 0 of 1, is training alone."""

    rank: int = 0
    world: int = 1
    wrap: Callable[[torch.nn.Module], torch.nn.Module] = _same  # the step module → e.g. DistributedDataParallel
    all_sum: Callable[[np.ndarray], np.ndarray] = _no_sum  # element-wise sum of an array over the replicas
    on_epoch: Callable[[dict, "FusionNet"], None] | None = None  # after each epoch: its history row, the net

    def shard(self, train: sp.csr_matrix) -> sp.csr_matrix:
        """This replica's users' rows of `train` (user u belongs to replica u mod world); the others empty."""
        if self.world == 1:
            return train
        train = sp.csr_matrix(train)
        lengths = np.diff(train.indptr)
        mine = np.arange(train.shape[0]) % self.world == self.rank
        take = np.repeat(mine, lengths)
        indptr = np.concatenate([[0], np.cumsum(lengths * mine)])
        return sp.csr_matrix((train.data[take], train.indices[take], indptr), shape=train.shape)

    def pairs_each(self, train: sp.csr_matrix) -> np.ndarray:
        """(world,) training pairs of every replica's shard."""
        per_user = np.diff(sp.csr_matrix(train).indptr)
        return np.bincount(np.arange(train.shape[0]) % self.world, weights=per_user,
                           minlength=self.world).astype(np.int64)


# Set by a training engine that runs fit_fusion elsewhere (core.scale.ray_train); None trains here.
TrainingEngine = Callable[["FusionNet", InteractionData, "FusionConfig", "ProgressCallback | None"],
                          tuple[list[dict], int]]
ENGINE: ContextVar[TrainingEngine | None] = ContextVar("fusion_training_engine", default=None)


@contextmanager
def training_engine(engine: TrainingEngine | None) -> Iterator[None]:
    """fit_fusion calls within the block (FusionRecommender.fit's included) train through `engine`."""
    token = ENGINE.set(engine)
    try:
        yield
    finally:
        ENGINE.reset(token)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with at most `n` torch threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(n, before)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_fusion(net: FusionNet, data: InteractionData, config: FusionConfig,
               progress: ProgressCallback | None = None, show_bar: bool = False,
               replica: Replica | None = None) -> tuple[list[dict], int]:
    """Train `net` in place; restore the best validation epoch's weights.

    Returns the per-epoch history (epoch, loss, valid_metric, metric_name, seconds) and the best epoch
    (the last one when there is no validation data). A `progress` callback that returns True stops the
    training after that epoch (a tuning trial being pruned); the best epoch so far is kept. Within
    training_engine(engine), the engine runs it (e.g. on Ray Train workers, each calling this with its replica).
    """
    if data.train.nnz == 0:
        raise ValueError("the training matrix has no interactions; nothing to fit (check the split: "
                         "train = x_label 0 / the 'train' share)")
    engine = ENGINE.get()
    if engine is not None and replica is None:
        return engine(net, data, config, progress)
    large = uses_local_steps(net)
    lazy = LAZY_ID_ROWS and large and config.optimizer == "adam"  # sparse id rows, lazy Adam
    threads = (LARGE_TRAIN_THREADS or torch.get_num_threads()) if large else TRAIN_THREADS
    reuse = large and REUSE_LARGE_ALLOCATIONS
    with torch_threads(threads), sparse_id_gradients(net, lazy), reuse_large_allocations(reuse):
        return _fit(net, data, config, progress, show_bar, replica or Replica())


def _fit(net: FusionNet, data: InteractionData, config: FusionConfig, progress: ProgressCallback | None,
         show_bar: bool, replica: Replica) -> tuple[list[dict], int]:
    """The training loop of fit_fusion, alone or as one of several replicas (each with its users' pairs,
    the same number of steps, gradients averaged by the wrapped step; every replica validates the whole
    validation split with the same weights, so all stop at the same epoch)."""
    torch.manual_seed(config.seed + replica.rank)
    rng = np.random.default_rng(config.seed if replica.rank == 0 else [config.seed, replica.rank])
    optimisers = make_optimisers(net, config)
    step = replica.wrap(StepLoss(net, config))
    # a single-process fit on the large-catalog path keeps the user table's gradient between steps and zeroes
    # only the rows a step touched: writing a zero gradient of every user row each step took 15% of a step
    # (1M users). Under DistributedDataParallel (replica.wrap) autograd must see every gradient: not there.
    keep = (KEEP_USER_GRADIENT and uses_local_steps(net) and replica.wrap is _same
            and getattr(net, "user_id", None) is not None and not net.user_id.sparse)
    kept = [net.user_id.weight] if keep else []
    token = KEEP_USER_GRAD.set(keep)
    try:
        return _epochs(net, data, config, progress, show_bar, replica, rng, optimisers, step, kept)
    finally:
        KEEP_USER_GRAD.reset(token)
        for weight in kept:
            weight.grad = None


def _epochs(net: FusionNet, data: InteractionData, config: FusionConfig, progress: ProgressCallback | None,
            show_bar: bool, replica: Replica, rng: np.random.Generator, optimisers: list[torch.optim.Optimizer],
            step: torch.nn.Module, kept: list[torch.Tensor]) -> tuple[list[dict], int]:
    """_fit's epochs; `kept`: parameters whose gradient buffer is kept between steps (zeroed at the rows the
    step used, see _RowsIntoKeptGrad)."""
    train = replica.shard(data.train)
    batch_size = config.batch_size if replica.world == 1 else -(-config.batch_size // replica.world)
    pairs_each = replica.pairs_each(data.train) if replica.world > 1 else None
    ahead = (DRAW_DROPOUT_AHEAD and replica.world == 1 and 0 < config.dropout < 1 and not uses_local_steps(net))
    shapes = [s for m in net.modalities for s in net.heads[m].dropout_shapes(net.n_items)]
    with drawn_ahead(shapes, config.dropout) if ahead else nullcontext():
        return _epoch_loop(net, data, config, progress, show_bar, replica, rng, optimisers, step, kept, train,
                           batch_size, pairs_each)


def _epoch_loop(net: FusionNet, data: InteractionData, config: FusionConfig, progress: ProgressCallback | None,
                show_bar: bool, replica: Replica, rng: np.random.Generator, optimisers: list[torch.optim.Optimizer],
                step: torch.nn.Module, kept: list[torch.Tensor], train: sp.csr_matrix, batch_size: int,
                pairs_each: np.ndarray | None) -> tuple[list[dict], int]:
    """The epochs themselves: sample, step, validate, stop early."""
    has_valid = data.valid.nnz > 0
    history: list[dict] = []
    best_value, best_epoch, best_state, since_best = -np.inf, 0, None, 0
    bar = tqdm(range(1, config.epochs + 1), desc=f"fusion-{config.strategy}", disable=not show_bar)
    for epoch in bar:
        start = time.perf_counter()
        net.train()
        full = config.loss == "full-softmax"  # every item is a negative: no sampling needed
        users, pos, neg = sample_pairs(train, rng, 1 if full else config.negatives)
        if pairs_each is not None:  # every replica takes as many steps: the smaller shards wrap around
            again = np.arange(int(pairs_each.max())) % max(users.size, 1)
            users, pos, neg = users[again], pos[again], neg[again]
        users, pos, neg = (torch.as_tensor(a) for a in (users, pos, neg))
        drawn = DRAWN.get()
        if drawn is not None:  # this epoch's steps' dropout masks may be drawn ahead (fusion.dropout)
            drawn.allow(-(-users.numel() // batch_size))
        total, seen = 0.0, 0
        last_line = start
        for s in range(0, users.numel(), batch_size):
            u, i, j = users[s:s + batch_size], pos[s:s + batch_size], neg[s:s + batch_size]
            loss = step(u, i, j)
            buffers = [w.grad for w in kept]
            for optimiser in optimisers:
                optimiser.zero_grad()
            for w, g in zip(kept, buffers):
                w.grad = g
            loss.backward()
            if len(optimisers) > 1:
                decay_sparse_rows(net, config.l2)
            for optimiser in optimisers:
                optimiser.step()
            for w in kept:
                w.grad.index_fill_(0, u, 0.0)  # zero again where this step wrote
            total += loss.item() * u.numel()
            seen += u.numel()
            if time.perf_counter() - last_line >= STEP_LOG_SECONDS:  # plain lines: visible in a log file too
                last_line = time.perf_counter()
                log.info("fusion epoch %d: %d/%d pairs, loss %.4f, %.0f s", epoch, seen, users.numel(),
                         total / seen, last_line - start)
        net.eval()
        valid = validation_metric(net, data, config.valid_metric) if has_valid else None
        seconds = time.perf_counter() - start
        if replica.world > 1:  # the loss over every replica's pairs
            total, seen = replica.all_sum(np.array([total, seen], np.float64))
        loss_value = total / max(seen, 1)
        history.append({"epoch": epoch, "loss": loss_value, "valid_metric": valid,
                        "metric_name": config.valid_metric, "seconds": seconds})
        if replica.on_epoch is not None:
            replica.on_epoch(history[-1], net)
        bar.set_postfix(loss=f"{loss_value:.4f}", valid=f"{valid:.4f}" if valid is not None else "-")
        stop = False
        if progress is not None:
            stop = progress(EpochReport(epoch=epoch, epochs=config.epochs, loss=loss_value, valid_metric=valid,
                                        metric_name=config.valid_metric, seconds=seconds)) is True
        if not np.isfinite(loss_value):
            raise ValueError(f"training diverged at epoch {epoch} (loss {loss_value}); lower lr "
                             f"(now {config.lr}) or raise emb_reg/l2")
        if has_valid and valid is not None and np.isfinite(valid):
            if valid > best_value:
                best_value, best_epoch, since_best = valid, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                since_best += 1
                if since_best >= config.patience:
                    break
        if stop:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
        return history, best_epoch
    return history, len(history)


def describe_epochs(history: list[dict], best_epoch: int, epochs: int, patience: int) -> str:
    """One sentence saying how many of the `epochs` asked for ran, and why training stopped where it did."""
    ran = len(history)
    has_valid = any(h.get("valid_metric") is not None for h in history)
    if ran >= epochs:
        kept = f"; the weights of epoch {best_epoch} (best on validation) are kept" if has_valid else ""
        return f"{ran} of {epochs} epochs ran{kept}"
    if has_valid and ran - best_epoch >= patience:
        return (f"{ran} of {epochs} epochs ran: early stopping after {patience} epoch{'s' * (patience != 1)} "
                f"without a better validation metric; the weights of epoch {best_epoch} are kept")
    return f"{ran} of {epochs} epochs ran: stopped when asked"
