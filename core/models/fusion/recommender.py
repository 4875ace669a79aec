"""FusionRecommender: the fusion network behind the Recommender surface (fit, score), with its collaborative
term for known listeners; what it answers about new queries is in core.models.fusion.queries."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from core.data.interactions import InteractionData
from core.encoders.embeddings import EmbeddingSet
from core.errors import MissingModalityError, ModelError, QueryError
from core.models.base import ProgressCallback
from core.models.collaborative import (CollaborativeTerm, MemberSearch, applies, check_member_settings, fit_members,
                                      parse_members, weigh_members)
from core.models.fusion.config import FusionConfig, content_layout
from core.models.fusion.network import Forward, FusionNet
from core.models.fusion.persistence import load_model, save_model
from core.models.fusion.queries import FusionQueries
from core.models.fusion.train import fit_fusion

log = logging.getLogger(__name__)
_CACHE_SIZE = 64  # forward passes kept per (modality mask, weights) combination


class FusionRecommender(FusionQueries):
    """The fusion model behind the Recommender protocol, plus what the recommend and explain services use
    (the query side is FusionQueries, core.models.fusion.queries)."""

    kind = "fusion"

    def __init__(self, config: FusionConfig | None = None, member_search: MemberSearch | None = None,
                 **overrides: Any) -> None:
        self.config = replace(config or FusionConfig(), **overrides)
        # how a collaborative member without tuned settings (config.collaborative_settings) gets them when the
        # model is fitted, e.g. core.tuning.baselines.member_search; None: every member needs tuned settings
        self.member_search = member_search
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
        fit_term = applies(data, members, log.info)
        if fit_term:
            check_member_settings(members, self.config.collaborative_settings, self.member_search)
        # the collaborative members depend on the interactions alone: they are fitted on a second thread
        # while the network trains (on one torch thread), and weighted once it is trained
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="collaborative") as pool:
            pending = (pool.submit(fit_members, data, members, self.config.seed, log.info,
                                   self.config.collaborative_settings, self.member_search)
                       if fit_term else None)
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

    def user_vector(self, user: int) -> np.ndarray:
        """(dim,) a known user's vector (row `user` of the training data)."""
        f = self._forward()
        row = self._check_rows([user], self.net.n_users, "user")
        return f.users[row[0]].numpy().copy()

    # -- persistence -------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """`model.safetensors` (weights + training graph) and `config.json` (config, ids, fields, history)."""
        save_model(self, folder)

    @classmethod
    def load(cls, folder: Path, embeddings: EmbeddingSet) -> "FusionRecommender":
        """A saved model over `embeddings`, which must hold the same items, fields and encoders it was
        trained with. Reads JSON and safetensors only (no pickle)."""
        return load_model(cls, folder, embeddings)

    # -- internals -----------------------------------------------------------------------------------
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
