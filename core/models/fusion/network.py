"""FusionNet, the torch module of the fusion model: projection heads → fusion → items and users → optional
LightGCN propagation → dot-product scores."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core.models import graph
from core.models.fusion.config import FusionConfig
from core.models.fusion.dropout import HeadDropout


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
            self.net = nn.Sequential(HeadDropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(),
                                     HeadDropout(dropout), nn.Linear(hidden, dim))
        else:
            self.net = nn.Sequential(HeadDropout(dropout), nn.Linear(in_dim, dim))

    def dropout_shapes(self, n: int) -> list[tuple[int, int]]:
        """The shapes of the dropout masks a pass of `n` rows draws, in order."""
        return [(n, layer.in_features) for layer in self.net if isinstance(layer, nn.Linear)]

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
