"""A fusion model saved before the fusion code became a package (core/models/fusion.py, with its collaborative term)
still loads, scores exactly as it did when it was saved, and saves back to the same files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.models.fusion.config import FusionConfig
from core.models.fusion.recommender import FusionRecommender
from tests.models.test_fusion import make_data

# saved by the single-module code: FusionConfig(strategy="weighted", collaborative="ease+als+itemknn", **FAST)
# fitted on make_data(); scores.npy holds its scores of every listener, computed before it was saved
SAVED = Path(__file__).parent / "saved" / "fusion-weighted-v1"


def test_a_model_saved_by_the_single_module_code_loads_and_scores_as_saved(tmp_path):
    data, _ = make_data()
    header = json.loads((SAVED / "config.json").read_text())
    model = FusionRecommender.load(SAVED, data.embeddings)
    assert model.config == FusionConfig.from_dict(header["config"])
    assert model.best_epoch == header["best_epoch"] and model.history == header["history"]
    assert model.collaborative is not None and model.collaborative.weights == header["collaborative"]["weights"]
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(model.score(users), np.load(SAVED / "scores.npy"))
    model.save(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == header
    for name in ("model.safetensors", "collaborative.safetensors"):
        assert (tmp_path / name).read_bytes() == (SAVED / name).read_bytes()
