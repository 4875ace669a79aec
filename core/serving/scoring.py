"""Scores of items for a query vector: the model's scores with some modalities masked or re-weighted, the
single-modality parts that make what-if weights one formula, the score of every coalition of modalities
(what the Shapley values are computed from), and the per-item offsets (learned bias, popularity prior)."""
from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import numpy as np

from core.encoders.embeddings import EmbeddingSet
from core.errors import MissingModalityError
from core.serving.settings import ServingSettings
from core.serving.shapley import coalition_subsets
from core.serving.threads import single_threaded

log = logging.getLogger(__name__)


class ItemScorer:
    """Scores a model's items for query vectors, with the checks that tell which shortcuts are exact.

    `prior`: (I,) the popularity prior in [0, 1] (core.serving.prior). Item scores are item_vectors @ q +
    bias when `linear` (checked when it is made); what-if scores follow the single-modality parts when
    `weights_linear`.
    """

    def __init__(self, model: Any, embeddings: EmbeddingSet, n_items: int, prior: np.ndarray,
                 settings: ServingSettings) -> None:
        self.model = model
        self.embeddings = embeddings
        self.settings = settings
        self.modalities: list[str] = list(model.modalities)
        self.n_items = n_items
        # (I, M) presence of each modality per item: a modality an item lacks gets weight 0
        self.present = np.stack([embeddings.modality_mask(m) if m in embeddings.modalities
                                 else np.zeros(self.n_items, bool) for m in self.modalities], axis=1)
        self.item_vectors = np.asarray(model.item_vectors(), dtype=np.float32)  # (I, dim)
        self.dim = self.item_vectors.shape[1]
        # v(q = 0) = the bias part of every item's score: scores are item_vectors @ q + bias
        self.bias = np.asarray(model.score_vector(np.zeros(self.dim, np.float32)), dtype=np.float32)
        self.prior = prior
        self.linear = self.check_linear()
        self._parts_cache: tuple[bytes, np.ndarray, np.ndarray] | None = None
        self._unit_items: np.ndarray | None = None  # unit-row item vectors, on first upload
        self.weights_linear = False
        self.weights_linear = self.check_weights_linear()

    @property
    def unit_item_vectors(self) -> np.ndarray:
        """(I, dim) the item vectors scaled to unit rows (float32), made on first need and kept."""
        if self._unit_items is None:
            norms = np.linalg.norm(self.item_vectors, axis=1, keepdims=True)
            self._unit_items = np.divide(self.item_vectors, norms, out=np.zeros_like(self.item_vectors),
                                         where=norms > 0)
        return self._unit_items

    def index_vectors(self) -> np.ndarray:
        """(I, dim + 2) what the index searches: item vectors, then the learned bias, then the prior; a query
        (q, a, w) scores q · v_i + a · bias_i + w · prior_i."""
        return np.hstack([self.item_vectors, self.bias[:, None],
                          self.prior[:, None].astype(np.float32)]).astype(np.float32)

    def check_linear(self) -> bool:
        """Whether model scores equal item_vectors @ q + bias (then an index can rank without the model)."""
        q = np.random.default_rng(0).standard_normal(self.dim).astype(np.float32)
        got = np.asarray(self.model.score_vector(q), dtype=np.float64)
        want = self.item_vectors.astype(np.float64) @ q + self.bias
        tolerance = self.settings.linearity_tolerance
        ok = bool(np.allclose(got, want, rtol=tolerance,
                              atol=tolerance * max(1.0, float(np.abs(want).max(initial=0)))))
        if not ok:
            log.warning("model scores are not item_vectors @ q + bias; every query is ranked by the model")
        return ok

    def modality_mask(self, keep: Collection[str]) -> dict[str, bool]:
        """The model's modality_mask keeping only the modalities in `keep` (True = present)."""
        return {m: m in keep for m in self.modalities}

    def scores(self, vector: np.ndarray, rows: np.ndarray | None = None, keep: Collection[str] | None = None,
               modality_weights: dict[str, float] | None = None) -> np.ndarray:
        """(len(rows),) model scores of items for a query vector, with only `keep` modalities present and
        optionally what-if modality weights."""
        if modality_weights is not None and self.weights_linear:
            return self.weighted_scores(vector, modality_weights, rows, keep)
        mask = None if keep is None else self.modality_mask(keep)
        items = None if rows is None else np.asarray(rows, dtype=np.int64)
        with single_threaded():
            return np.asarray(self.model.score_vector(vector, items=items, modality_mask=mask,
                                                      modality_weights=modality_weights), dtype=np.float64)

    def modality_parts(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(v(∅) (I,), parts (I, M)): the score with no modality, and what each modality alone adds to it."""
        key = np.asarray(vector, np.float32).tobytes()
        if self._parts_cache is None or self._parts_cache[0] != key:
            direct = getattr(self.model, "modality_part_scores", None)
            with single_threaded():
                got = direct(vector) if direct is not None else None
            if got is not None:  # one product over the projections the model keeps
                base, parts = got
            elif getattr(self.model, "subset_scores", None) is not None and self.n_items > self.settings.parts_chunk:
                # row blocks through subset_scores: no masked forward pass over the catalog is kept per mask
                chunks = [self.row_parts(vector, np.arange(s, min(s + self.settings.parts_chunk, self.n_items)))
                          for s in range(0, self.n_items, self.settings.parts_chunk)]
                base, parts = np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])
            else:
                base = self.scores(vector, keep=())
                parts = np.stack([self.scores(vector, keep=(m,)) - base for m in self.modalities], axis=1)
            self._parts_cache = (key, base, parts)
        return self._parts_cache[1], self._parts_cache[2]

    def row_parts(self, vector: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(v(∅) (n,), parts (n, M)) of modality_parts for `rows` alone: from one pass of the model's
        subset_scores over those rows when it has one, else one masked pass per modality."""
        direct = getattr(self.model, "modality_part_scores", None)
        if direct is not None:
            with single_threaded():
                got = direct(vector, rows)
            if got is not None:
                return got
        subsets = [()] + [(m,) for m in self.modalities]
        hook = getattr(self.model, "subset_scores", None)
        values = None
        if hook is not None and len(rows):
            with single_threaded():
                values = hook(vector, rows, subsets)
        if values is None:
            values = [self.scores(vector, rows, keep=subset) for subset in subsets]
        values = np.asarray(values, np.float64)  # (M + 1, n)
        return values[0], (values[1:] - values[0][None, :]).T

    def weighted_scores(self, vector: np.ndarray, modality_weights: dict[str, float],
                         rows: np.ndarray | None = None, keep: Collection[str] | None = None) -> np.ndarray:
        """Scores under what-if weights from the single-modality parts, without re-running the model.

        With linear fusion (weighted, gated, adversarial; no graph propagation) an item's content vector
        under weights w is Σ w_m p_m / Σ w_m over its present modalities, so its score is
        v(∅) + Σ w_m (v({m}) − v(∅)) / Σ w_m. Checked against the model when the service starts.
        """
        if rows is None:
            base, parts = self.modality_parts(vector)
        else:  # only these rows: one head pass, never a catalog-wide pass per modality
            rows = np.asarray(rows, dtype=np.int64)
            base, parts = self.row_parts(vector, rows)
        present = self.present if rows is None else self.present[rows]
        if keep is not None:
            present = present & np.array([m in keep for m in self.modalities])[None, :]
        w = np.array([max(float(modality_weights.get(m, 0.0)), 0.0) for m in self.modalities])
        w = present * w[None, :]  # (n, M)
        total = w.sum(axis=1)
        mixed = np.divide((w * parts).sum(axis=1), total, out=np.zeros_like(total), where=total > 0)
        return base + mixed

    def check_weights_linear(self) -> bool:
        """Whether what-if scores follow the single-modality parts (see weighted_scores)."""
        if not self.linear or not self.modalities:
            return False
        rng = np.random.default_rng(1)
        q = rng.standard_normal(self.dim).astype(np.float32)
        weights = {m: float(w) for m, w in zip(self.modalities, rng.uniform(0.1, 1.0, len(self.modalities)))}
        rows = None  # every item of a small catalog; a sample of a large one
        if self.n_items > self.settings.linearity_sample:
            rows = np.sort(rng.choice(self.n_items, size=self.settings.linearity_sample, replace=False))
        with single_threaded():
            want = np.asarray(self.model.score_vector(q, items=rows, modality_weights=weights), dtype=np.float64)
        self.weights_linear = True  # so that scores() takes the formula path for the comparison
        got = self.weighted_scores(q, weights, rows)
        self._parts_cache = None
        scale = max(1.0, float(np.abs(want).max(initial=0)))
        tolerance = self.settings.linearity_tolerance
        return bool(np.allclose(got, want, rtol=tolerance, atol=tolerance * scale))

    def coalition_scores(self, vector: np.ndarray, rows: np.ndarray,
                         modality_weights: dict[str, float] | None = None) -> dict[frozenset[str], np.ndarray]:
        """v(S) for every subset S of the model's modalities, over the items `rows`."""
        values = self.coalition_values(vector, rows, modality_weights)
        return {frozenset(s): v for s, v in zip(coalition_subsets(self.modalities), values)}

    def coalition_values(self, vector: np.ndarray, rows: np.ndarray,
                         modality_weights: dict[str, float] | None = None) -> np.ndarray:
        """(2^M, len(rows)) v(S) over the items `rows` for every subset S, in coalition_subsets order."""
        subsets = coalition_subsets(self.modalities)
        hook = getattr(self.model, "subset_scores", None)
        if modality_weights is None and hook is not None and len(rows):  # one head pass for every subset
            with single_threaded():
                values = hook(vector, np.asarray(rows, dtype=np.int64), subsets)
            if values is not None:
                return np.asarray(values, np.float64)
        return np.stack([np.asarray(self.scores(vector, rows, keep=subset, modality_weights=modality_weights),
                                    np.float64).reshape(len(rows)) for subset in subsets])

    def item_weights(self, rows: np.ndarray, modality_weights: dict[str, float] | None = None) -> np.ndarray:
        """(len(rows), M) modality weights: the gate's, or the what-if ones renormalised per item."""
        if modality_weights is None:
            return np.asarray(self.model.gate_weights(items=np.asarray(rows, dtype=np.int64)), dtype=np.float64)
        w = np.array([max(float(modality_weights.get(m, 0.0)), 0.0) for m in self.modalities])
        w = self.present[rows] * w[None, :]
        total = w.sum(axis=1, keepdims=True)
        return np.divide(w, total, out=np.zeros_like(w), where=total > 0)

    def shift(self, bias_coef: float, prior_coef: float, rows: np.ndarray | None = None) -> np.ndarray:
        """(n,) what turns model scores (q · v + bias) into q · v + a · bias + w · prior for `rows`."""
        bias = self.bias if rows is None else self.bias[rows]
        prior = self.prior if rows is None else self.prior[rows]
        return (bias_coef - 1.0) * bias.astype(np.float64) + prior_coef * prior

    def carries(self, modality_weights: dict[str, float], rows: np.ndarray | None = None) -> np.ndarray:
        """(n,) whether each item carries at least one modality of weight > 0."""
        on = np.array([float(modality_weights.get(m, 0.0)) > 0 for m in self.modalities])
        present = self.present if rows is None else self.present[rows]
        return (present & on[None, :]).any(axis=1)

    def score_item_variants(self, vector: np.ndarray, row: int, variants: dict[str, np.ndarray]) -> np.ndarray:
        """(n,) scores of item `row` for the query when some of its fields are replaced by the n rows of
        `variants[field]` (the other fields keep the item's stored rows)."""
        hook = getattr(self.model, "item_vectors_from_fields", None)
        if hook is None:
            raise MissingModalityError(f"{type(self.model).__name__} cannot score modified item features "
                                       "(it has no item_vectors_from_fields); feature attributions are off")
        n = len(next(iter(variants.values())))
        inputs = {f: np.asarray(variants[f], np.float32) if f in variants
                  else np.repeat(self.embeddings.matrices[f][row][None, :], n, axis=0)
                  for f in self.embeddings.fields}
        with single_threaded():
            vectors = np.asarray(hook(inputs, items=np.full(n, row, dtype=np.int64)), dtype=np.float64)
        return vectors @ np.asarray(vector, np.float64) + float(self.bias[row])
