"""The interactions a model trains and is evaluated on: integer-indexed sparse user × item matrices."""
from __future__ import annotations

from dataclasses import dataclass

import scipy.sparse as sp

from core.encoders.embeddings import EmbeddingSet


@dataclass
class InteractionData:
    """Integer-indexed interactions for training and evaluation.

    Users and items are rows/columns of sparse binary (U, I) matrices; `item_ids[j]` is the catalog id of
    column j and `embeddings` is aligned with it (embeddings.item_ids == item_ids).
    """

    user_ids: list[str]
    item_ids: list[str]
    train: sp.csr_matrix  # (U, I) binary
    valid: sp.csr_matrix  # (U, I) binary
    test: sp.csr_matrix  # (U, I) binary
    embeddings: EmbeddingSet | None = None
    split_name: str = ""  # e.g. "x_label", "random-8:1:1", "leave-one-out", "temporal"
    seed: int = 0

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)
