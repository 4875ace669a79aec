"""The fusion recommender: per-modality projection heads, a fusion strategy, items and users in one space.

Reading order: FusionConfig (every knob) → ModalityHead → FusionNet (the torch module: project → fuse →
item and user vectors → optional LightGCN propagation → dot-product scores) → FusionRecommender (the
Recommender surface the services call, plus save/load). Training lives in core.models.train.

A model sees media only through an EmbeddingSet aligned with the training items. A modality's input is
the concatenation of its fields (e.g. image = [image CNN features, image descriptor]); an item without
any field of a modality has that modality masked, and a masked modality contributes nothing on any path.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from core.store.atomic import atomic_path, write_text_atomic
from core.encoders.embeddings import EmbeddingSet
from core.errors import DamagedFileError, MissingModalityError, ModelError, QueryError
from core.models import graph
from core.models.base import InteractionData, ProgressCallback
from core.models.collaborative import FILE as COLLABORATIVE_FILE
from core.models.collaborative import (CollaborativeTerm, applies, fit_members, is_finite_weights, parse_members,
                                      weigh_members)

STRATEGIES = ("concat", "weighted", "gated", "adversarial")
USER_MODES = ("id", "aggregate", "both")
LOSSES = ("bpr", "bce", "softmax", "full-softmax")
MODALITY_ORDER = ("text", "image", "audio")
FORMAT_VERSION = 1  # of config.json; bump when the saved layout changes
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
DAMAGED_FIX = ("activate another saved model (`python -m core models activate ID`, or `python -m core restore`) "
               "or train a new one")
log = logging.getLogger(__name__)
_CACHE_SIZE = 64  # forward passes kept per (modality mask, weights) combination
LOCAL_ROWS_SHARE = 8  # score items under a new mask row by row when they are under 1/8 of the catalog


@dataclass
class FusionConfig:
    """Everything that defines a fusion model and its training; saved beside the weights."""

    strategy: str = "gated"  # "concat" | "weighted" | "gated" | "adversarial"
    dim: int = 64  # size of every projected modality, item vector and user vector
    hidden: int = 256  # hidden width of the projection heads, the gate and the concat MLP (0 = linear heads)
    dropout: float = 0.1  # dropout inside the projection heads while training
    use_item_id: bool = True  # add a learned id embedding to items seen in training (0 for cold items)
    user_mode: str = "both"  # "id" | "aggregate" (mean of the user's items + linear) | "both" (their sum)
    graph_layers: int = 0  # LightGCN propagation steps over the training user–item graph (0 = off)
    item_bias: bool = True  # a learned score offset per item
    loss: str = "bpr"  # "bpr" (pairwise) | "bce" (pointwise) | "softmax" (sampled softmax over the negatives)
    #                    | "full-softmax" (softmax over every item; `negatives` unused)
    negatives: int = 1  # sampled unseen items per training pair
    optimizer: str = "adam"  # "adam" | "rmsprop"
    lr: float = 1e-3  # learning rate
    l2: float = 0.0  # weight decay on every parameter
    emb_reg: float = 1e-4  # L2 on the batch's layer-0 user and item vectors (the LightGCN convention)
    l1: float = 0.0  # L1 on the projection heads' first layer: few input features in use
    align_weight: float = 0.1  # InfoNCE between the projected modalities of the same item (0 = off)
    align_temperature: float = 0.2  # temperature of that InfoNCE
    adv_weight: float = 0.1  # modality discriminator through gradient reversal ("adversarial" only)
    dislike_weight: float = 0.5  # share of the disliked items' mean subtracted from a query vector
    epochs: int = 100  # upper bound; early stopping usually ends sooner
    batch_size: int = 2048  # training pairs per optimiser step
    patience: int = 10  # epochs without a better validation metric before stopping
    valid_metric: str = "recall@20"  # "recall@K" | "ndcg@K" on the validation split, training items masked
    seed: int = 0  # seeds torch and numpy (weights, dropout, negative sampling)
    collaborative: str = "ease+als+itemknn"  # known listeners' scores add these models fitted on the training
    #                                  interactions, weighted on validation (core.models.collaborative; "none" = off)
    collaborative_settings: dict = field(default_factory=dict)  # member -> its tuned settings (the catalog's,
    #                                  core.tuning.baseline_store); a member without them is searched when fitted

    def __post_init__(self) -> None:
        checks = {"strategy": (self.strategy, STRATEGIES), "user_mode": (self.user_mode, USER_MODES),
                  "loss": (self.loss, LOSSES), "optimizer": (self.optimizer, ("adam", "rmsprop"))}
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"FusionConfig.{name}={value!r}; choose one of {list(allowed)}")
        if self.dim < 1 or self.negatives < 1 or self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("FusionConfig dim, negatives, epochs, batch_size and patience must be ≥ 1 "
                             f"(got {self.dim}, {self.negatives}, {self.epochs}, {self.batch_size}, "
                             f"{self.patience})")
        if self.graph_layers < 0 or self.hidden < 0:
            raise ValueError(f"FusionConfig graph_layers and hidden must be ≥ 0 (got {self.graph_layers}, "
                             f"{self.hidden})")
        metric_k(self.valid_metric)  # raises on a malformed name
        parse_members(self.collaborative)  # raises on an unknown member
        from core.limits import check_setting

        for f in fields(self):  # the declared ranges (core.limits): no setting may cost unbounded memory
            if str(f.type) in ("int", "float"):
                check_setting(f.name, getattr(self, f.name), f"FusionConfig.{f.name}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "FusionConfig":
        """A config from saved values; keys this version does not know are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelError(f"the saved fusion config has settings this version does not know: {unknown}; "
                             "retrain the model with this version of Prism")
        return cls(**values)


def metric_k(name: str) -> tuple[str, int]:
    """("recall" | "ndcg", K) from a metric name such as "recall@20"."""
    kind, _, k = name.partition("@")
    if kind not in ("recall", "ndcg") or not k.isdigit() or int(k) < 1:
        raise ValueError(f"valid_metric={name!r}; write it as 'recall@K' or 'ndcg@K' with K ≥ 1")
    return kind, int(k)


# Hand-chosen configurations, each labelled by the catalog whose validation split it was chosen on. They
# are the starting points of every search (core.tuning.space), not looked up by a catalog's name: a
# catalog's configuration comes from core.tuning.resolve_fusion_config.
PRESETS: dict[str, FusionConfig] = {
    # Last.fm-2K (text + audio, 1,858 users, 1,425 artists, x_label split): LightGCN propagation over
    # content + id items, sampled softmax. Test Recall@20 .4349, NDCG@20 .3036 without the collaborative
    # term (MMRec protocol: training items masked; mean of 3 seeds), a fit in 70–90 s on 2 cores.
    "lfm2k": FusionConfig(strategy="gated", dim=128, hidden=0, dropout=0.1, use_item_id=True, user_mode="id",
                          graph_layers=2, item_bias=False, loss="softmax", negatives=64, lr=0.01,
                          emb_reg=1e-4, align_weight=0.1, epochs=200, batch_size=8192, patience=15),
    # the generated demo catalog (three modalities, 600 tracks, ~24 training listens per listener): content
    # only, linear heads and strong L2 on user vectors and weights, since a listener's taste over a few
    # attributes has to be read from a handful of listens; a small alignment weight keeps uploads landing
    # near their items without blurring which modality a score comes from. Validation Recall@20 .306 against
    # .275 for an id + MLP head with light regularisation (the regularisation is what moved it); about 20 s.
    "demo": FusionConfig(strategy="gated", dim=64, hidden=0, dropout=0.2, use_item_id=False,
                         user_mode="id", graph_layers=0, loss="softmax", negatives=64, lr=0.01,
                         l2=1e-4, emb_reg=0.05, align_weight=0.02, epochs=300, batch_size=2048, patience=30),
}


# -- the torch module -----------------------------------------------------------------------------------
class GradientReversal(torch.autograd.Function):
    """Identity forward; multiplies the gradient by -1 backward (Ganin & Lempitsky, 2015)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return -grad


class ModalityHead(nn.Module):
    """One modality's concatenated field vectors → a `dim` vector (an MLP, or linear when hidden = 0)."""

    def __init__(self, in_dim: int, hidden: int, dim: int, dropout: float) -> None:
        super().__init__()
        if hidden > 0:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(),
                                     nn.Dropout(dropout), nn.Linear(hidden, dim))
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, dim))

    @property
    def first_layer(self) -> nn.Linear:
        return self.net[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (n, in_dim) -> (n, dim)


def masked_softmax(logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Softmax over the present entries of each row; rows with none present are all zero (never NaN)."""
    lowest = torch.finfo(logits.dtype).min  # finite, so a row with nothing present cannot turn into NaN
    w = torch.softmax(logits.masked_fill(~present, lowest), dim=-1)  # masked entries underflow to 0
    return w * present  # rows without any present entry were uniform; zero them


def override_weights(weights: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """(n, M) the given (M,) non-negative weights renormalised over each row's present modalities."""
    w = weights.clamp_min(0)[None, :] * present  # (n, M)
    total = w.sum(dim=1, keepdim=True)
    return torch.where(total > 0, w / total.clamp_min(1e-12), torch.zeros_like(w))


@dataclass
class Forward:
    """One full forward pass over the catalog."""

    users: torch.Tensor  # (U, D) final user vectors
    items: torch.Tensor  # (I, D) final item vectors
    users0: torch.Tensor  # (U, D) before propagation
    items0: torch.Tensor  # (I, D) before propagation
    projected: torch.Tensor  # (I, M, D) projected modalities (zero where masked)
    weights: torch.Tensor  # (I, M) modality weights, summing to 1 over present modalities
    present: torch.Tensor  # (I, M) bool


class FusionNet(nn.Module):
    """Projection heads → fusion → items (content + popularity-gated id) and users (id and/or aggregate)
    → optional LightGCN propagation. score(u, i) = <user_u, item_i> + bias_i."""

    def __init__(self, config: FusionConfig, input_dims: dict[str, int], n_users: int, n_items: int) -> None:
        super().__init__()
        self.config = config
        self.modalities = list(input_dims)  # canonical order; M = len
        self.n_users, self.n_items = n_users, n_items
        M, D = len(self.modalities), config.dim
        H = max(config.hidden, D)
        self.heads = nn.ModuleDict({m: ModalityHead(d, config.hidden, D, config.dropout)
                                    for m, d in input_dims.items()})
        if config.strategy == "concat":
            self.concat_mlp = nn.Sequential(nn.Linear(M * D, H), nn.GELU(), nn.Linear(H, D))
        elif config.strategy == "weighted":
            self.modality_logits = nn.Parameter(torch.zeros(M))  # global weights = masked softmax of these
        else:  # gated, adversarial: a small MLP scores each projected modality of each item
            self.gate = nn.Sequential(nn.Linear(D, H // 4 or 1), nn.Tanh(), nn.Linear(H // 4 or 1, 1))
            self.gate_bias = nn.Parameter(torch.zeros(M))  # a per-modality prior on top of the gate
        if config.strategy == "adversarial":
            self.discriminator = nn.Sequential(nn.Linear(D, H // 4 or 1), nn.ReLU(), nn.Linear(H // 4 or 1, M))
        if config.use_item_id:
            self.item_id = nn.Embedding(n_items, D)
            nn.init.xavier_uniform_(self.item_id.weight)
            # id share of item i = sigmoid(a·log(1 + n_i) + b) for n_i training interactions, 0 when n_i = 0
            self.pop_scale = nn.Parameter(torch.tensor(1.0))
            self.pop_shift = nn.Parameter(torch.tensor(0.0))
        if config.user_mode in ("id", "both"):
            self.user_id = nn.Embedding(n_users, D)
            nn.init.xavier_uniform_(self.user_id.weight)
        if config.user_mode in ("aggregate", "both"):
            self.user_agg = nn.Linear(D, D)  # applied to the mean of the user's item vectors
            nn.init.eye_(self.user_agg.weight)
            nn.init.zeros_(self.user_agg.bias)
        if config.item_bias:
            self.item_bias = nn.Parameter(torch.zeros(n_items))
        # training graph (saved): the (user, item) pairs and each item's training count
        self.register_buffer("edge_users", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("edge_items", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("popularity", torch.zeros(n_items))
        # item content (not saved: it comes from the EmbeddingSet at load time)
        self.inputs: dict[str, torch.Tensor] = {}  # modality -> (I, D_m)
        self.present = torch.zeros(n_items, M, dtype=torch.bool)  # (I, M)
        self.adjacency: torch.Tensor | None = None  # (U+I, U+I) sparse, normalised
        self.user_mean: torch.Tensor | None = None  # (U, I) sparse, rows average the user's items
        self.self_coef = torch.ones(n_users + n_items)  # (U+I,) share of a node's own layer-0 vector

    # -- data attached outside the state dict ----------------------------------------------------
    def attach_content(self, inputs: dict[str, torch.Tensor], present: torch.Tensor) -> None:
        """Item inputs per modality (I, D_m), zero rows where masked, and the (I, M) presence mask."""
        self.inputs = {m: inputs[m] * present[:, k, None] for k, m in enumerate(self.modalities)}
        self.present = present.bool()

    def attach_graph(self, users: np.ndarray, items: np.ndarray) -> None:
        """The training pairs: popularity, the normalised graph and the users' item means."""
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        self.edge_users = torch.as_tensor(users)
        self.edge_items = torch.as_tensor(items)
        pairs = np.unique(users * self.n_items + items)
        self.popularity = torch.as_tensor(np.bincount(pairs % self.n_items, minlength=self.n_items),
                                          dtype=torch.float32)
        self.user_mean = graph.to_torch_sparse(graph.row_mean_matrix(users, items, self.n_users, self.n_items))
        if self.config.graph_layers > 0:
            adjacency = graph.bipartite_adjacency(users, items, self.n_users, self.n_items)
            self.adjacency = graph.to_torch_sparse(adjacency)
            self.self_coef = torch.as_tensor(graph.self_coefficients(adjacency, self.config.graph_layers))

    # -- the pieces ------------------------------------------------------------------------------
    def project(self, inputs: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        """(n, M, D) every modality through its head; modalities absent from `inputs` are zero."""
        parts = [self.heads[m](inputs[m]) if m in inputs else torch.zeros(n, self.config.dim)
                 for m in self.modalities]
        return torch.stack(parts, dim=1)

    def fuse(self, x: torch.Tensor, present: torch.Tensor,
             weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(fused (n, D), modality weights (n, M)) of projected modalities x (n, M, D).

        `weights` (M,) replaces the learned weights (renormalised over each item's present modalities).
        """
        x = x * present[..., None]  # a masked modality contributes nothing
        strategy = self.config.strategy
        if weights is not None:
            w = override_weights(weights, present)
        elif strategy == "concat":
            # no weights in the model: report each part's share of the projected norms
            norms = x.norm(dim=-1) * present  # (n, M)
            total = norms.sum(dim=1, keepdim=True)
            w = torch.where(total > 0, norms / total.clamp_min(1e-12), torch.zeros_like(norms))
        elif strategy == "weighted":
            w = masked_softmax(self.modality_logits.expand(x.shape[0], -1), present)  # (n, M)
        else:
            logits = self.gate(x).squeeze(-1) + self.gate_bias  # (n, M)
            w = masked_softmax(logits, present)
        if strategy == "concat":
            any_present = present.any(dim=1, keepdim=True)  # (n, 1)
            if weights is not None:  # scale parts so that equal weights reproduce the trained model
                scale = w * present.sum(dim=1, keepdim=True)  # (n, M)
                x = x * scale[..., None]
            fused = self.concat_mlp(x.flatten(1)) * any_present  # an item without content gets zero
        else:
            fused = (w[..., None] * x).sum(dim=1)  # (n, D)
        return fused, w

    def id_share(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """(n,) how much of its id embedding each item gets: 0 for items without training interactions."""
        pop = self.popularity if items is None else self.popularity[items]
        return torch.sigmoid(self.pop_scale * torch.log1p(pop) + self.pop_shift) * (pop > 0)

    def item_layer0(self, fused: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """(n, D) fused content plus the popularity-gated id embedding of `items` (all when None)."""
        if not self.config.use_item_id:
            return fused
        ids = self.item_id.weight if items is None else self.item_id(items)
        return fused + self.id_share(items)[:, None] * ids

    def aggregate(self, item_mean: torch.Tensor) -> torch.Tensor:
        """(n, D) user vectors from the mean of their items' vectors (the new-user path)."""
        return self.user_agg(item_mean) if self.config.user_mode != "id" else item_mean

    def forward(self, keep: torch.Tensor | None = None, weights: torch.Tensor | None = None) -> Forward:
        """The whole catalog: `keep` (M,) bool masks modalities for every item; `weights` (M,) overrides."""
        present = self.present if keep is None else self.present & keep[None, :]  # (I, M)
        x = self.project(self.inputs, self.n_items)  # (I, M, D)
        fused, w = self.fuse(x, present, weights)  # (I, D), (I, M)
        items0 = self.item_layer0(fused)  # (I, D)
        users0 = torch.zeros(self.n_users, self.config.dim)
        if self.config.user_mode in ("id", "both"):
            users0 = users0 + self.user_id.weight
        if self.config.user_mode in ("aggregate", "both"):
            users0 = users0 + self.user_agg(torch.sparse.mm(self.user_mean, items0))  # (U, D)
        users, items = users0, items0
        if self.config.graph_layers > 0:
            nodes = graph.propagate(self.adjacency, torch.cat([users0, items0]), self.config.graph_layers)
            users, items = nodes[:self.n_users], nodes[self.n_users:]
        return Forward(users=users, items=items, users0=users0, items0=items0,
                       projected=x * present[..., None], weights=w, present=present)

    def biases(self) -> torch.Tensor:
        """(I,) item score offsets (zeros when the model has none)."""
        return self.item_bias if self.config.item_bias else torch.zeros(self.n_items)


# -- the recommender surface -------------------------------------------------------------------------
def content_layout(emb: EmbeddingSet) -> dict[str, list[str]]:
    """modality -> its fields in the embedding set's order, modalities in canonical order."""
    return {m: emb.fields_of(m) for m in MODALITY_ORDER if emb.fields_of(m)}


class FusionRecommender:
    """The fusion model behind the Recommender protocol, plus what the recommend and explain services use."""

    kind = "fusion"

    def __init__(self, config: FusionConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or FusionConfig(), **overrides)
        self.name = f"fusion-{self.config.strategy}"
        self.net: FusionNet | None = None
        self.data: InteractionData | None = None  # the training data (None after load)
        self.history: list[dict] = []  # per epoch: loss, valid metric, seconds
        self.best_epoch = 0
        self.item_ids: list[str] = []
        self.user_ids: list[str] = []
        self.fields: dict[str, list[str]] = {}  # modality -> fields
        self.field_dims: dict[str, int] = {}
        self.encoder_ids: dict[str, str] = {}
        self._cache: dict[tuple, Forward] = {}
        self.collaborative: CollaborativeTerm | None = None  # known listeners' collaborative term, if any

    # -- Recommender protocol ------------------------------------------------------------------------
    def fit(self, data: InteractionData, progress: ProgressCallback | None = None) -> "FusionRecommender":
        """Train on data.train, early-stopping on data.valid; keeps the best epoch's weights."""
        from core.models.train import fit_fusion

        emb = data.embeddings
        if emb is None or not emb.modalities:
            raise MissingModalityError(f"{self.name} needs item content: InteractionData.embeddings is "
                                       f"{'None' if emb is None else 'empty'}; encode the catalog first")
        if list(emb.item_ids) != list(data.item_ids):
            raise ModelError("the embedding set is not aligned with InteractionData.item_ids; build both "
                             "from the same catalog (core.data.splits.build_interaction_data)")
        torch.manual_seed(self.config.seed)
        self._build(emb, data.n_users, list(data.user_ids))
        train = sp.coo_matrix(data.train)
        self.net.attach_graph(train.row, train.col)
        members = parse_members(self.config.collaborative)
        # the collaborative members depend on the interactions alone: they are fitted on a second thread
        # while the network trains (on one torch thread), and weighted once it is trained
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="collaborative") as pool:
            pending = (pool.submit(fit_members, data, members, self.config.seed, log.info,
                                       self.config.collaborative_settings)
                       if applies(data, members, log.info) else None)
            self.history, self.best_epoch = fit_fusion(self.net, data, self.config, progress)
            fits = pending.result() if pending is not None else None
        self.data = data
        self._ready()
        self.collaborative = (None if fits is None else
                              weigh_members(self._fusion_scores, data, fits, self.config.valid_metric, log=log.info))
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or I) float32 scores of known users: the fusion's, plus the collaborative
        term when the model has one."""
        scores = self._fusion_scores(users, items)
        if self.collaborative is not None:
            scores += self.collaborative.scores(self._check_rows(users, self.net.n_users, "user"), items)
        return scores

    def history_scores(self, user: int, items: np.ndarray | None = None) -> np.ndarray | None:
        """(len(items) or I,) the collaborative term of known listener `user` (None when the model has none):
        what the service adds to that listener's scores, inside the listening-history part."""
        if self.collaborative is None:
            return None
        row = self._check_rows([user], self._need_net().n_users, "user")
        return self.collaborative.scores(row, items)[0]

    def _fusion_scores(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items) or I) float32 <user_u, item_i> + bias_i of known users."""
        f = self._forward()
        users = self._check_rows(users, self.net.n_users, "user")
        items_t = self._item_index(items)
        u = f.users[users]  # (B, D)
        v = f.items if items_t is None else f.items[items_t]  # (n, D)
        b = self._bias if items_t is None else self._bias[items_t]
        return (u @ v.T + b).numpy().astype(np.float32)

    def get_config(self) -> dict[str, Any]:
        """The config plus what identifies the fitted model."""
        return {"name": self.name, "kind": self.kind, **asdict(self.config), "best_epoch": self.best_epoch,
                "modalities": self.modalities, "fields": self.fields,
                "collaborative_term": None if self.collaborative is None else self.collaborative.header()}

    # -- what the services use -----------------------------------------------------------------------
    @property
    def modalities(self) -> list[str]:
        """The modalities the model has heads for, in canonical order."""
        return list(self.fields)

    def item_vectors(self, items: np.ndarray | None = None, modality_mask: dict[str, bool] | None = None,
                     modality_weights: dict[str, float] | None = None) -> np.ndarray:
        """(n, dim) final item vectors; `modality_mask` (True = present) masks modalities for ALL items."""
        f = self._forward(modality_mask, modality_weights)
        items_t = self._item_index(items)
        return (f.items if items_t is None else f.items[items_t]).numpy().copy()

    def item_biases(self, items: np.ndarray | None = None) -> np.ndarray:
        """(n,) the items' score offsets (what an all-zero query scores)."""
        items_t = self._item_index(items)
        return (self._bias if items_t is None else self._bias[items_t]).numpy().copy()

    def gate_weights(self, items: np.ndarray | None = None,
                     modality_mask: dict[str, bool] | None = None) -> np.ndarray:
        """(n, M) per-item modality weights: ≥ 0, summing to 1 over the item's present modalities.

        gated/adversarial: the attention gate's weights; weighted: the global weights, masked per item;
        concat: each projected modality's share of the sum of their norms (a size, not a learned weight).
        """
        f = self._forward(modality_mask)
        items_t = self._item_index(items)
        return (f.weights if items_t is None else f.weights[items_t]).numpy().astype(np.float64)

    def project_content(self, field_inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """modality -> (n, dim): raw field vectors (e.g. an upload's encoder output) through the heads.

        A modality with several fields takes zeros for the fields not given.
        """
        net = self._need_net()
        unknown = sorted(set(field_inputs) - set(self.field_dims))
        if unknown:
            raise MissingModalityError(f"the model has no field(s) {unknown}; its fields are "
                                       f"{sorted(self.field_dims)}")
        out = {}
        for m, fs in self.fields.items():
            given = [f for f in fs if f in field_inputs]
            if not given:
                continue
            n = len(field_inputs[given[0]])
            parts = []
            for f in fs:
                x = np.asarray(field_inputs[f], np.float32) if f in field_inputs \
                    else np.zeros((n, self.field_dims[f]), np.float32)
                if x.ndim != 2 or x.shape != (n, self.field_dims[f]):
                    raise MissingModalityError(f"field {f!r} needs ({n}, {self.field_dims[f]}) vectors, got "
                                               f"{x.shape}; encode it with {self.encoder_ids.get(f)}")
                parts.append(x)
            with torch.no_grad():
                out[m] = net.heads[m](torch.as_tensor(np.concatenate(parts, axis=1))).numpy()
        return out

    def query_vector(self, liked: Sequence[int] = (), disliked: Sequence[int] = (),
                     content: dict[str, np.ndarray] | None = None, content_weight: float = 1.0) -> np.ndarray:
        """(dim,) a new user's vector without retraining: the user aggregate of the liked items' vectors
        and the uploads (each projected upload is fused as an item with that one modality, weighted by
        `content_weight`), minus `dislike_weight` × the disliked items' mean."""
        net = self._need_net()
        f = self._forward()
        liked = self._check_rows(liked, net.n_items, "liked item")
        disliked = self._check_rows(disliked, net.n_items, "disliked item")
        vectors, weights = [f.items[torch.as_tensor(liked)]], [torch.ones(len(liked))]
        for m, x in (content or {}).items():
            if m not in self.fields:
                raise MissingModalityError(f"the query has {m} content but the model has only "
                                           f"{self.modalities}")
            x = torch.as_tensor(np.asarray(x, np.float32)).reshape(-1, net.config.dim)  # (n, D)
            present = torch.zeros(len(x), len(self.fields), dtype=torch.bool)
            present[:, self.modalities.index(m)] = True
            projected = torch.zeros(len(x), len(self.fields), net.config.dim)
            projected[:, self.modalities.index(m)] = x
            with torch.no_grad():
                fused, _ = net.fuse(projected, present)
            vectors.append(fused)
            weights.append(torch.full((len(x),), float(content_weight)))
        v, w = torch.cat(vectors), torch.cat(weights)  # (n, D), (n,)
        if w.sum() <= 0 and len(disliked) == 0:
            raise QueryError("the query has no liked items, uploads or disliked items to build a vector from")
        mean = (w[:, None] * v).sum(0) / w.sum() if w.sum() > 0 else torch.zeros(net.config.dim)
        if len(disliked):
            mean = mean - net.config.dislike_weight * f.items[torch.as_tensor(disliked)].mean(0)
        with torch.no_grad():
            return net.aggregate(mean[None, :])[0].numpy().copy()

    def user_vector(self, user: int) -> np.ndarray:
        """(dim,) a known user's vector (row `user` of the training data)."""
        f = self._forward()
        row = self._check_rows([user], self.net.n_users, "user")
        return f.users[row[0]].numpy().copy()

    def score_vector(self, qvec: np.ndarray, items: np.ndarray | None = None,
                     modality_mask: dict[str, bool] | None = None,
                     modality_weights: dict[str, float] | None = None) -> np.ndarray:
        """(n,) scores of a query vector: item_vectors(items, mask, weights) @ qvec + bias."""
        items_t = self._item_index(items)
        q = torch.as_tensor(np.asarray(qvec, np.float32).reshape(-1))
        if q.numel() != self.config.dim:
            raise QueryError(f"the query vector has {q.numel()} values; this model needs {self.config.dim}")
        b = self._bias if items_t is None else self._bias[items_t]
        if items_t is not None and self._rows_are_local(items_t, modality_mask, modality_weights):
            return (self._item_rows(items_t, modality_mask, modality_weights) @ q + b).numpy().astype(np.float32)
        f = self._forward(modality_mask, modality_weights)
        v = f.items if items_t is None else f.items[items_t]
        return (v @ q + b).numpy().astype(np.float32)

    def subset_scores(self, qvec: np.ndarray, items: np.ndarray, subsets: Sequence[Sequence[str]]
                      ) -> np.ndarray | None:
        """(len(subsets), n) scores of `items` with only each subset's modalities present, from one head pass
        over those items; None with graph propagation (each subset then needs its own catalog pass)."""
        net = self._need_net()
        if net.config.graph_layers > 0:
            return None
        items_t = torch.as_tensor(self._check_rows(items, net.n_items, "item"))
        q = torch.as_tensor(np.asarray(qvec, np.float32).reshape(-1))
        if q.numel() != self.config.dim:
            raise QueryError(f"the query vector has {q.numel()} values; this model needs {self.config.dim}")
        bias = self._bias[items_t]
        n, n_subsets = len(items_t), len(subsets)
        with torch.no_grad():
            # the projections the cached forward pass holds (zero where absent, as fuse masks them anyway):
            # no head pass per query
            x = self._forward().projected[items_t]  # (n, M, D)
            keep = torch.tensor([[m in subset for m in self.modalities] for subset in subsets])  # (S, M)
            present = net.present[items_t][None, :, :] & keep[:, None, :]  # (S, n, M)
            if net.config.strategy != "concat":
                # fused content is Σ_m w_m x_m, w the masked softmax of per-modality logits that do not depend
                # on the subset: one gate pass over the n·M projections and a (n, M) product serve every
                # subset (the per-subset fuse below gives the same values, 8× the gate work at M = 3)
                if net.config.strategy == "weighted":
                    logits = net.modality_logits.expand(n, -1)  # (n, M)
                else:
                    logits = net.gate(x).squeeze(-1) + net.gate_bias  # (n, M)
                w = masked_softmax(logits.expand(n_subsets, n, -1), present)  # (S, n, M)
                content = (w * (x @ q)[None, :, :]).sum(dim=-1)  # (S, n)
                offset = bias
                if net.config.use_item_id:
                    offset = offset + net.id_share(items_t) * (net.item_id(items_t) @ q)
                return (content + offset[None, :]).numpy().astype(np.float64)
            # every subset in one fuse call: per-call overhead, not arithmetic, dominates k items
            fused, _ = net.fuse(x.repeat(n_subsets, 1, 1), present.reshape(n_subsets * n, -1))
            layer0 = net.item_layer0(fused, items_t.repeat(n_subsets))  # (S·n, D)
            out = (layer0 @ q).reshape(n_subsets, n) + bias[None, :]
        return out.numpy().astype(np.float64)

    def modality_part_scores(self, qvec: np.ndarray, items: np.ndarray | None = None
                             ) -> tuple[np.ndarray, np.ndarray] | None:
        """(v(∅) (n,), parts (n, M)) for `items` (all when None): the score with every modality masked (id
        part and bias), and what each present modality alone adds to it, p_m · q, read from the projections
        the cached forward pass holds (one product, no head pass). None where a modality alone is not its
        projection (concat fusion) or items depend on each other (graph propagation)."""
        net = self._need_net()
        if net.config.graph_layers > 0 or net.config.strategy == "concat":
            return None
        q = torch.as_tensor(np.asarray(qvec, np.float32).reshape(-1))
        if q.numel() != self.config.dim:
            raise QueryError(f"the query vector has {q.numel()} values; this model needs {self.config.dim}")
        f = self._forward()
        items_t = self._item_index(items)
        projected = f.projected if items_t is None else f.projected[items_t]  # (n, M, D), zero where absent
        n, n_modalities = projected.shape[0], projected.shape[1]
        with torch.no_grad():
            parts = (projected.reshape(n * n_modalities, -1) @ q).reshape(n, n_modalities)
            base = self._bias if items_t is None else self._bias[items_t]
            if net.config.use_item_id:
                ids = net.item_id.weight if items_t is None else net.item_id(items_t)
                base = base + net.id_share(items_t) * (ids @ q)
        return base.numpy().astype(np.float64), parts.numpy().astype(np.float64)

    def _rows_are_local(self, items: torch.Tensor, modality_mask: dict[str, bool] | None,
                        modality_weights: dict[str, float] | None) -> bool:
        """Whether a few items' vectors under a mask or weights are better computed for those rows alone.

        Without graph propagation an item's vector depends on its own content only, so scoring k items
        under a new mask costs k head passes instead of a forward pass over the whole catalog (on a
        catalog of a million items that pass, kept per mask, would cost seconds and a gigabyte each)."""
        net = self._need_net()
        if net.config.graph_layers > 0 or (modality_mask is None and modality_weights is None):
            return False
        keep = None if modality_mask is None else tuple(bool(modality_mask.get(m, True)) for m in self.modalities)
        weights = None if modality_weights is None else \
            tuple(max(float(modality_weights.get(m, 0.0)), 0.0) for m in self.modalities)
        return (keep, weights) not in self._cache and len(items) * LOCAL_ROWS_SHARE < net.n_items

    def _item_rows(self, items: torch.Tensor, modality_mask: dict[str, bool] | None,
                   modality_weights: dict[str, float] | None) -> torch.Tensor:
        """(n, D) final vectors of `items` alone under a modality mask and weight override (no propagation)."""
        net = self._need_net()
        present = net.present[items]
        if modality_mask is not None:
            present = present & torch.tensor([bool(modality_mask.get(m, True)) for m in self.modalities])[None, :]
        weights = None
        if modality_weights is not None:
            weights = torch.tensor([max(float(modality_weights.get(m, 0.0)), 0.0) for m in self.modalities])
            if float(weights.sum()) <= 0:
                raise QueryError(f"every modality weight is zero for {self.modalities}; give at least one "
                                 "a weight > 0")
        with torch.no_grad():
            x = net.project({m: v[items] for m, v in net.inputs.items()}, len(items))
            fused, _ = net.fuse(x, present, weights)
            return net.item_layer0(fused, items)

    def item_vectors_from_fields(self, field_inputs: dict[str, np.ndarray], items: np.ndarray) -> np.ndarray:
        """(n, dim) final vectors of items[k] with their content replaced by row k of `field_inputs`.

        Fields not given keep the item's stored rows; an all-zero row counts as a missing field. With
        graph propagation the change reaches the item through its own layer-0 share (the exact linear
        effect on the item itself; the small second-order effect through its listeners is left out).
        """
        net = self._need_net()
        f = self._forward()
        items_t = torch.as_tensor(self._check_rows(items, net.n_items, "item"))
        n = len(items_t)
        inputs, present = {}, torch.zeros(n, len(self.fields), dtype=torch.bool)
        for k, (m, fs) in enumerate(self.fields.items()):
            parts, has = [], torch.zeros(n, dtype=torch.bool)
            for fname in fs:
                if fname in field_inputs:
                    x = torch.as_tensor(np.asarray(field_inputs[fname], np.float32))
                    if x.shape != (n, self.field_dims[fname]):
                        raise MissingModalityError(f"field {fname!r} needs ({n}, {self.field_dims[fname]}) "
                                                   f"vectors, got {tuple(x.shape)}")
                    on = x.abs().sum(1) > 0
                else:
                    x = self._stored[fname][items_t]
                    on = self._stored_mask[fname][items_t]
                parts.append(x * on[:, None])
                has |= on
            inputs[m], present[:, k] = torch.cat(parts, dim=1), has
        with torch.no_grad():
            x = net.project(inputs, n)
            fused, _ = net.fuse(x, present)
            layer0 = net.item_layer0(fused, items_t)
        coef = net.self_coef[net.n_users + items_t][:, None]  # (n, 1)
        return (f.items[items_t] + coef * (layer0 - f.items0[items_t])).numpy()

    # -- persistence -------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """`model.safetensors` (weights + training graph) and `config.json` (config, ids, fields, history)."""
        from safetensors.torch import save_file

        net = self._need_net()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
        with atomic_path(folder / WEIGHTS_FILE, "model weights") as tmp:
            save_file(state, str(tmp))
        header = {"format": FORMAT_VERSION, "name": self.name, "config": asdict(self.config),
                  "item_ids": self.item_ids, "user_ids": self.user_ids, "fields": self.fields,
                  "field_dims": self.field_dims, "encoder_ids": self.encoder_ids, "history": self.history,
                  "best_epoch": self.best_epoch,
                  "collaborative": None if self.collaborative is None else self.collaborative.header()}
        if self.collaborative is not None:
            from safetensors.numpy import save_file as save_arrays

            with atomic_path(folder / COLLABORATIVE_FILE, "collaborative term") as tmp:
                save_arrays({k: np.ascontiguousarray(v) for k, v in self.collaborative.arrays().items()}, str(tmp))
        write_text_atomic(folder / CONFIG_FILE, json.dumps(header, indent=1), "model configuration")

    @classmethod
    def load(cls, folder: Path, embeddings: EmbeddingSet) -> "FusionRecommender":
        """A saved model over `embeddings`, which must hold the same items, fields and encoders it was
        trained with. Reads JSON and safetensors only (no pickle)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (folder / name).is_file():
                raise ModelError(f"{folder / name} is missing; a saved fusion model folder holds "
                                 f"{CONFIG_FILE} and {WEIGHTS_FILE} (train and save one first)")
        try:
            header = json.loads((folder / CONFIG_FILE).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"{folder / CONFIG_FILE} cannot be read as JSON: {e}") from e
        if header.get("format") != FORMAT_VERSION:
            raise ModelError(f"{folder / CONFIG_FILE} has format {header.get('format')!r}; this version "
                             f"reads format {FORMAT_VERSION}: retrain the model")
        try:
            model = cls(FusionConfig.from_dict(header["config"]))
        except (KeyError, TypeError, ValueError) as e:
            raise DamagedFileError(f"{folder / CONFIG_FILE} holds no usable fusion configuration ({e}); the "
                                   "folder is damaged: " + DAMAGED_FIX) from e
        model._check_embeddings(header, embeddings, folder)
        model._check_weight_shapes(folder, embeddings, len(header["user_ids"]))
        model.history, model.best_epoch = list(header.get("history", [])), int(header.get("best_epoch", 0))
        model._build(embeddings, len(header["user_ids"]), list(header["user_ids"]))
        try:
            state = load_file(str(folder / WEIGHTS_FILE))
            model.net.attach_graph(state["edge_users"].numpy(), state["edge_items"].numpy())
            model.net.load_state_dict(state, strict=True)
        except (KeyError, RuntimeError, OSError) as e:
            raise DamagedFileError(f"{folder / WEIGHTS_FILE} does not match {folder / CONFIG_FILE} "
                                   f"({type(e).__name__}: {e}); the folder is damaged: " + DAMAGED_FIX) from e
        model._ready()
        model.collaborative = cls._load_collaborative(header, folder, len(header["user_ids"]),
                                                      len(header["item_ids"]))
        return model

    @staticmethod
    def _load_collaborative(header: dict, folder: Path, n_users: int, n_items: int) -> CollaborativeTerm | None:
        """The saved collaborative term (None when the model has none); a damaged one is refused by name."""
        block = header.get("collaborative")
        if not block:
            return None
        from safetensors.numpy import load_file as load_arrays

        path = folder / COLLABORATIVE_FILE
        try:
            if not is_finite_weights(block["weights"]):
                raise ValueError(f"weights {block['weights']} are not finite numbers")
            term = CollaborativeTerm.from_saved(block, load_arrays(str(path)))
            if term.train.shape != (n_users, n_items):
                raise ValueError(f"its interactions are {term.train.shape}, the model has ({n_users}, {n_items})")
        except (KeyError, ValueError, TypeError, OSError) as e:
            raise ModelError(f"the collaborative term in {path} does not match {folder / CONFIG_FILE} "
                             f"({type(e).__name__}: {e}); the folder is damaged, retrain the model") from e
        return term

    def _check_weight_shapes(self, folder: Path, emb: EmbeddingSet, n_users: int) -> None:
        """Refuse, before anything is allocated, a weights file whose tensors do not have the shapes the
        saved configuration gives (a config edited to dim 10⁶ would otherwise allocate gigabytes first)."""
        from safetensors import safe_open

        layout = content_layout(emb)
        input_dims = {m: sum(int(emb.matrices[f].shape[1]) for f in fs) for m, fs in layout.items()}
        with torch.device("meta"):  # shapes only: no memory is allocated
            expected = {k: tuple(v.shape) for k, v in
                        FusionNet(self.config, input_dims, n_users, len(emb.item_ids)).state_dict().items()}
        path = folder / WEIGHTS_FILE
        try:
            with safe_open(str(path), framework="pt") as f:
                saved = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as e:  # safetensors raises its own error types for a damaged header
            raise DamagedFileError(f"{path} cannot be read ({type(e).__name__}: {e}); the folder is damaged: "
                                   + DAMAGED_FIX) from e
        graph = {"edge_users", "edge_items"}  # the training pairs: their length is data, not configuration
        wrong = [k for k in expected if k not in graph and saved.get(k) != expected[k]]
        wrong += [k for k in saved if k not in expected]
        if wrong:
            k = wrong[0]
            raise DamagedFileError(
                f"{folder / CONFIG_FILE} and {WEIGHTS_FILE} disagree: tensor {k!r} is {saved.get(k, 'absent')} "
                f"in the weights, the configuration (dim {self.config.dim}) gives {expected.get(k, 'none')}; "
                f"{len(wrong)} tensor(s) differ. The folder is damaged: " + DAMAGED_FIX)

    # -- internals -----------------------------------------------------------------------------------
    @staticmethod
    def _check_embeddings(header: dict, emb: EmbeddingSet, folder: Path) -> None:
        """Refuse an embedding set whose items, fields or encoders differ from the model's."""
        saved_ids = header["item_ids"]
        if list(emb.item_ids) != saved_ids:
            n_diff = sum(a != b for a, b in zip(emb.item_ids, saved_ids)) + abs(len(emb.item_ids) - len(saved_ids))
            raise ModelError(f"the model in {folder} was trained on {len(saved_ids)} items; this embedding set "
                             f"has {len(emb.item_ids)} and differs at {n_diff} position(s): retrain the model "
                             "on this catalog")
        for f, dim in header["field_dims"].items():
            if f not in emb.matrices:
                raise ModelError(f"the model in {folder} uses field {f!r}, absent from this embedding set "
                                 f"(fields: {emb.fields}); re-encode with {header['encoder_ids'].get(f)}")
            if emb.matrices[f].shape[1] != dim or emb.encoder_ids.get(f) != header["encoder_ids"].get(f):
                raise ModelError(f"field {f!r}: the model in {folder} was trained on "
                                 f"{header['encoder_ids'].get(f)} ({dim}-d), this embedding set has "
                                 f"{emb.encoder_ids.get(f)} ({emb.matrices[f].shape[1]}-d): retrain the model "
                                 "or load the matching embeddings")
        extra = sorted(set(emb.fields) - set(header["field_dims"]))
        if extra:
            raise ModelError(f"this embedding set has field(s) {extra} the model in {folder} was not trained "
                             "with; retrain the model on these embeddings")

    def _build(self, emb: EmbeddingSet, n_users: int, user_ids: list[str]) -> None:
        """The net for this embedding set with its content attached (weights freshly initialised)."""
        self.fields = content_layout(emb)
        self.field_dims = {f: int(emb.matrices[f].shape[1]) for fs in self.fields.values() for f in fs}
        self.encoder_ids = {f: emb.encoder_ids.get(f, "") for f in self.field_dims}
        self.item_ids, self.user_ids = list(emb.item_ids), user_ids
        self._stored = {f: torch.as_tensor(np.asarray(emb.matrices[f], np.float32)) for f in self.field_dims}
        self._stored_mask = {f: torch.as_tensor(np.asarray(emb.masks[f], bool)) for f in self.field_dims}
        inputs, present = {}, []
        for m, fs in self.fields.items():
            # a missing field of a present modality enters as zeros; its mask zeroes stale values
            inputs[m] = torch.cat([self._stored[f] * self._stored_mask[f][:, None] for f in fs], dim=1)
            present.append(torch.stack([self._stored_mask[f] for f in fs]).any(0))
        input_dims = {m: int(x.shape[1]) for m, x in inputs.items()}
        self.net = FusionNet(self.config, input_dims, n_users, len(emb.item_ids))
        self.net.attach_content(inputs, torch.stack(present, dim=1))
        self._cache = {}

    def _ready(self) -> None:
        """Switch to inference: eval mode, no gradients, caches cleared."""
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self._cache = {}
        self._bias = self.net.biases().detach()

    def _need_net(self) -> FusionNet:
        if self.net is None:
            raise ModelError(f"{self.name} is not fitted; call fit(data) or FusionRecommender.load(folder, "
                             "embeddings) first")
        return self.net

    def _forward(self, modality_mask: dict[str, bool] | None = None,
                 modality_weights: dict[str, float] | None = None) -> Forward:
        """The cached eval-mode forward pass for this mask and weight override."""
        net = self._need_net()
        keep = None if modality_mask is None else tuple(bool(modality_mask.get(m, True)) for m in self.modalities)
        weights = None
        if modality_weights is not None:
            weights = tuple(max(float(modality_weights.get(m, 0.0)), 0.0) for m in self.modalities)
            if sum(weights) <= 0:
                raise QueryError(f"every modality weight is zero for {self.modalities}; give at least one "
                                 "a weight > 0")
        key = (keep, weights)
        if key not in self._cache:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            with torch.no_grad():
                self._cache[key] = net(None if keep is None else torch.tensor(keep),
                                       None if weights is None else torch.tensor(weights))
        return self._cache[key]

    def _item_index(self, items: np.ndarray | None) -> torch.Tensor | None:
        if items is None:
            return None
        return torch.as_tensor(self._check_rows(items, self._need_net().n_items, "item"))

    @staticmethod
    def _check_rows(rows: Sequence[int] | np.ndarray, n: int, what: str) -> np.ndarray:
        """int64 row indices, refused by name when out of range."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        bad = rows[(rows < 0) | (rows >= n)]
        if bad.size:
            raise QueryError(f"{what} row(s) {bad[:5].tolist()} are out of range: the model has {n} {what}s "
                             f"(rows 0..{n - 1})")
        return rows
