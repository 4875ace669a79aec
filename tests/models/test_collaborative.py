"""The listening-history term: with item ids and graph propagation, what the ids give the score is the same
whichever modalities are present, so it is its own Shapley player and the values still sum to score − offset."""
from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch

from core.models.fusion.config import FusionConfig
from core.models.fusion.recommender import FusionRecommender
from core.tuning.baselines import member_search
from core.serving.service import shapley_from_coalitions
from tests.models.test_fusion import FAST, make_data


@pytest.fixture(scope="module")
def hybrid() -> tuple[FusionRecommender, FusionRecommender]:
    """A gated model with id embeddings and one propagation layer, and the same model with its ids zeroed."""
    data, _ = make_data()
    model = FusionRecommender(FusionConfig(strategy="gated", use_item_id=True, graph_layers=1, user_mode="id",
                                           **{**FAST, "epochs": 4}), member_search=member_search).fit(data)
    no_ids = copy.deepcopy(model)
    with torch.no_grad():
        no_ids.net.item_id.weight.zero_()
        no_ids.net.user_id.weight.zero_()
    no_ids._cache = {}
    return model, no_ids


def _v(model: FusionRecommender, q: np.ndarray, keep: set[str]) -> np.ndarray:
    return model.score_vector(q, modality_mask={m: m in keep for m in model.modalities}).astype(np.float64)


def test_history_is_additive_and_its_own_shapley_player(hybrid) -> None:
    model, no_ids = hybrid
    q = model.user_vector(3)  # a known listener's vector, held fixed while coalitions change
    mods = model.modalities
    bias = model.item_biases().astype(np.float64)
    history = _v(model, q, set()) - bias  # v(∅) − offset
    assert np.abs(history).max() > 1e-3  # the ids carry a real part of the score
    # additivity: removing the ids takes away the same amount under every coalition of modalities
    for size in range(len(mods) + 1):
        for subset in itertools.combinations(mods, size):
            gap = _v(model, q, set(subset)) - _v(no_ids, q, set(subset))
            assert gap == pytest.approx(history, abs=1e-4)
    # the game over modalities + history: history absent = the ids removed
    players = [*mods, "history"]
    values = {}
    for size in range(len(players) + 1):
        for subset in itertools.combinations(players, size):
            s = set(subset)
            source = model if "history" in s else no_ids
            values[frozenset(subset)] = _v(source, q, s - {"history"})
    phi = shapley_from_coalitions(values, players)
    phi_modalities = shapley_from_coalitions({frozenset(k - {"history"}): v for k, v in values.items()
                                              if "history" in k}, mods)
    assert phi["history"] == pytest.approx(history, abs=1e-4)  # its Shapley value is exactly the term
    for m in mods:
        assert phi[m] == pytest.approx(phi_modalities[m], abs=1e-4)  # the modalities' values do not change
    score = _v(model, q, set(mods))
    assert sum(phi[p] for p in players) == pytest.approx(score - bias, abs=1e-4)
