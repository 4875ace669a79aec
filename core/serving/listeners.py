"""The listeners a model was trained on: their ids and rows, and the training interactions behind them."""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from core.catalog.model import Catalog
from core.encoders.embeddings import EmbeddingSet
from core.errors import QueryError


class Listeners:
    """The model's known listeners and training pairs, found in its training data, its saved weights or a
    rebuilt split (looked up on first need)."""

    def __init__(self, catalog: Catalog, embeddings: EmbeddingSet, model: Any, data: Any = None) -> None:
        self.catalog = catalog
        self.embeddings = embeddings
        self.model = model
        self.n_items = len(catalog.items)
        self._data = data  # InteractionData the model was trained on; looked up on first need
        self._train: sp.csr_matrix | None = None
        self._user_rows: dict[str, int] | None = None

    @property
    def user_ids(self) -> list[str]:
        """The listeners the model was trained on, in its row order."""
        ids = getattr(self.model, "user_ids", None)
        if ids or getattr(getattr(self.model, "net", None), "n_users", None) == 0:  # 0: a content-only model
            return list(ids or [])
        return list(self.data.user_ids)

    @property
    def data(self) -> Any:
        """The InteractionData the model was trained on; rebuilt (auto split, seed 0, as the workspace
        trains) when neither the caller nor the model holds it."""
        if self._data is None:
            self._data = getattr(self.model, "data", None)
        if self._data is None:
            from core.data.splits import build_interaction_data

            self._data = build_interaction_data(self.catalog, self.embeddings, split="auto", seed=0)
        return self._data

    def train_matrix(self) -> sp.csr_matrix:
        """(U, I) the model's training pairs: from its training data, else from the pairs a saved fusion
        model keeps with its weights, else from the rebuilt split."""
        if self._train is None:
            data = self._data if self._data is not None else getattr(self.model, "data", None)
            net = getattr(self.model, "net", None)
            if data is not None:
                self._train = sp.csr_matrix(data.train)
            elif net is not None and hasattr(net, "edge_users") and (len(net.edge_users) or net.n_users == 0):
                users, items = net.edge_users.numpy(), net.edge_items.numpy()
                self._train = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)),
                                            shape=(len(self.user_ids), self.n_items))
            else:
                self._train = sp.csr_matrix(self.data.train)
        return self._train

    def user_row(self, user_id: str) -> int:
        """The listener's row in the model; QueryError when the model knows no such listener."""
        if self._user_rows is None:
            self._user_rows = {u: i for i, u in enumerate(self.user_ids)}
        try:
            return self._user_rows[str(user_id)]
        except KeyError:
            raise QueryError(f"{user_id!r} is not a listener the model of catalog {self.catalog.name!r} was "
                             f"trained on ({len(self._user_rows)} listeners, e.g. {list(self._user_rows)[:3]}); "
                             "pick one from the list or leave the listener empty") from None

    def training_rows(self, user_row: int) -> np.ndarray:
        """Item rows the listener interacted with in training (never recommended back)."""
        train = self.train_matrix()
        return np.unique(train.indices[train.indptr[user_row]:train.indptr[user_row + 1]]).astype(np.int64)
