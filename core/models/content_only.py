"""The model of a catalog without interactions: recommend by content alone until listening data arrives.

Nothing can be learned without interactions, so nothing is: each modality's head is the linear projection onto
the top principal directions of its own raw field vectors (uncentred, so dot products approximate the raw
encoders' dot products), written into that modality's own block of the item vector. The modalities are fused
with equal weights over the ones an item has. An item's vector is therefore its content, block by block; a text
query meets items only through their text block, an image query only through their image block, and the
per-modality Shapley values of the recommend service are exact. It is a FusionRecommender (saved, loaded and
served like any other) with no users, no item ids, no biases and no collaborative term.
"""
from __future__ import annotations

import numpy as np
import torch

from core.encoders.embeddings import EmbeddingSet
from core.errors import CatalogError
from core.models.fusion.config import FusionConfig
from core.models.fusion.recommender import FusionRecommender

CONTENT_ONLY_NAME = "content-only"  # the model name stored for it (the store's models table, get_config)
BLOCK = 64  # at most this many principal directions per modality: a modality's share of the item vector
CONTENT_ONLY_SOURCE = ("content only: the catalog has no interactions, so nothing was trained; each modality is "
                       "its raw encoder vectors on their top principal directions, fused with equal weights")


def content_only_config(n_modalities: int, block: int = BLOCK) -> FusionConfig:
    """The fixed configuration: linear heads, equal weights, no ids, no biases, no users' terms."""
    return FusionConfig(strategy="weighted", dim=max(1, n_modalities) * block, hidden=0, dropout=0.0,
                        use_item_id=False, user_mode="aggregate", graph_layers=0, item_bias=False,
                        align_weight=0.0, epochs=1, collaborative="none")


def principal_directions(x: np.ndarray, k: int) -> np.ndarray:
    """(r, d) the top r ≤ k right singular vectors of x (n, d), uncentred; r is at most x's rank."""
    x = np.asarray(x, np.float64)
    if len(x) == 0:
        return np.zeros((0, x.shape[1]))
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    r = int(min(k, (s > s[0] * 1e-6).sum() if len(s) and s[0] > 0 else 0))
    return vt[:r]


def content_only_model(embeddings: EmbeddingSet, block: int = BLOCK) -> FusionRecommender:
    """A ready FusionRecommender over `embeddings` that ranks items by their content alone (no training)."""
    if not embeddings.fields:
        raise CatalogError("the catalog has no encoded text, image or audio; import media or features first")
    from core.models.fusion.config import content_layout

    n_modalities = len(content_layout(embeddings))
    model = FusionRecommender(content_only_config(n_modalities, block))
    model._build(embeddings, 0, [])
    net = model.net
    net.attach_graph(np.zeros(0, np.int64), np.zeros(0, np.int64))
    with torch.no_grad():
        for k, m in enumerate(net.modalities):
            x = net.inputs[m][net.present[:, k]].numpy()  # (n_m, d_m) the items that have m
            directions = principal_directions(x, block)  # (r, d_m)
            layer = net.heads[m].first_layer
            layer.weight.zero_()
            layer.bias.zero_()
            layer.weight[k * block:k * block + len(directions)] = torch.as_tensor(directions, dtype=torch.float32)
    model.name = CONTENT_ONLY_NAME
    model.history, model.best_epoch = [], 0
    model.collaborative = None
    model._ready()
    return model


def is_content_only(model_record: dict | None) -> bool:
    """Whether a stored model record (Store.active_model) is a content-only model."""
    return bool(model_record) and model_record.get("name") == CONTENT_ONLY_NAME
