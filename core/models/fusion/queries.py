"""What a fitted fusion model answers about queries that are not a known listener: uploads through the heads,
a new listener's vector, a query's scores under modality masks and weights, and the per-modality parts the
explanations use."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from core.errors import MissingModalityError, QueryError
from core.models.fusion.network import masked_softmax

LOCAL_ROWS_SHARE = 8  # score items under a new mask row by row when they are under 1/8 of the catalog


class FusionQueries:
    """The query side of FusionRecommender (its base class): every method reads the fitted network and its
    cached forward passes through the recommender's `_need_net`, `_forward`, `_check_rows` and `_item_index`."""

    config: Any
    fields: dict[str, list[str]]
    field_dims: dict[str, int]
    encoder_ids: dict[str, str]

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
