"""A Ray Tune of 4 trials (Optuna search, ASHA pruning) over a stand-in space and objective that train real
fusion models on a tiny generated catalog; the best configuration is returned, stored and reloaded."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import scipy.sparse as sp

from core.embeddings import EmbeddingSet
from core.encoders.base import l2_normalise
from core.models.base import InteractionData
from core.models.fusion import FusionConfig

# The stand-ins follow the tuning interfaces (core.tuning.space.suggest, core.tuning.objective.run_trial).
BASE = FusionConfig(strategy="weighted", dim=8, hidden=0, use_item_id=False, user_mode="id", loss="bpr",
                    epochs=6, patience=6, batch_size=256, lr=0.01, align_weight=0.0, seed=0)


def standin_space(trial) -> dict:
    """Define-by-run: the learning rate and the dimension."""
    return {"lr": trial.suggest_float("lr", 1e-3, 5e-2, log=True), "dim": trial.suggest_categorical("dim", [4, 8])}


def standin_objective(params: dict, data: InteractionData, report=None) -> float:
    """Train one fusion model with `params` over BASE, reporting each epoch's validation metric."""
    from core.models.fusion import FusionRecommender

    def on_epoch(r) -> None:
        if report is not None and r.valid_metric is not None:
            report(r.epoch, r.valid_metric)

    model = FusionRecommender(replace(BASE, **params)).fit(data, progress=on_epoch)
    return max(h["valid_metric"] for h in model.history)


def tiny_data(n_items: int = 60, n_users: int = 40, seed: int = 0) -> InteractionData:
    """Items in 4 clusters with text and image fields; each user likes one cluster."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(4, size=n_items)
    matrices = {f: l2_normalise(rng.normal(size=(4, 12))[cluster] + 0.5 * rng.normal(size=(n_items, 12)))
                for f in ("text", "image")}
    item_ids = [f"i{j}" for j in range(n_items)]
    emb = EmbeddingSet(item_ids=item_ids, matrices=matrices, masks={f: np.ones(n_items, bool) for f in matrices},
                       modality_of={"text": "text", "image": "image"}, encoder_ids={"text": "t", "image": "i"})
    rows, cols = [], []
    for u in range(n_users):
        liked = rng.choice(np.flatnonzero(cluster == u % 4), size=8, replace=False)
        rows += [u] * 8
        cols += liked.tolist()
    rows, cols = np.array(rows), np.array(cols)
    part = np.tile(np.array([0, 0, 0, 0, 0, 0, 1, 2]), n_users)

    def m(k: int) -> sp.csr_matrix:
        sel = part == k
        return sp.csr_matrix((np.ones(sel.sum(), np.float32), (rows[sel], cols[sel])), shape=(n_users, n_items))

    return InteractionData(user_ids=[f"u{u}" for u in range(n_users)], item_ids=item_ids, train=m(0), valid=m(1),
                           test=m(2), embeddings=emb, split_name="fixed", seed=seed)


@pytest.mark.slow  # four trial processes each import torch: about a minute on two idle cores
def test_ray_tune_of_four_trials_returns_and_stores_the_best(ray_session, tmp_path):
    from core.scale.tune_ray import RayTuneConfig, fusion_config_of, tune_on_ray

    steps = []
    config = RayTuneConfig(trials=4, max_epochs=BASE.epochs, grace_period=2, seed=0, storage_path=tmp_path / "ray")
    result = tune_on_ray(tiny_data(), config, space=standin_space, objective=standin_objective,
                         progress=lambda done, total, msg: steps.append((done, total)))
    assert len(result.history) == 4 and all(h["status"] != "error" for h in result.history)
    assert all(1 <= h["epochs"] <= BASE.epochs for h in result.history)
    assert result.best_metric == max(h["valid_metric"] for h in result.history)
    assert 0 < result.best_metric <= 1 and set(result.best_params) == {"lr", "dim"}
    assert steps[-1] == (4, 4)
    # the best trial's configuration, stored and reloaded, trains to the metric the trial reported
    best = fusion_config_of(result, BASE)
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps({"config": asdict(best), "valid_metric": result.best_metric,
                                "history": result.history}, default=str))
    reloaded = FusionConfig.from_dict(json.loads(path.read_text())["config"])
    assert reloaded == best and reloaded.lr == result.best_params["lr"]
    again = standin_objective({"lr": reloaded.lr, "dim": reloaded.dim}, tiny_data())
    assert math.isclose(again, result.best_metric, rel_tol=1e-6)  # seeded: the trial is reproducible


@pytest.mark.slow  # Ray trial processes each import torch
def test_cli_tune_on_ray_stores_the_best_configuration(ray_session, tmp_path, capsys):
    """`python -m core tune --engine ray` runs the project's own space and objective on Ray Tune and stores the
    best trial as the catalog's tuned configuration, which `train` then uses."""
    from core.cli import main
    from core.store import Store
    from core.tuning import space
    from core.tuning.store import load_tuned
    from tests.catalog.test_mmrec import make_mmrec

    data_dir = tmp_path / "store"
    assert main(["--data-dir", str(data_dir), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    capsys.readouterr()
    code = main(["--data-dir", str(data_dir), "tune", "--catalog", "tiny", "--engine", "ray", "--trials", "4",
                 "--trial-epochs", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "best: validation ndcg@20" in out and "(4 trials" in out
    tuned = load_tuned(Store(data_dir), "tiny")
    assert tuned is not None and len(tuned.history) == 4
    best = max((h for h in tuned.history if h["value"] is not None), key=lambda h: h["value"])
    assert tuned.metric["value"] == pytest.approx(best["value"])
    # the stored configuration is the best trial's: every searched setting it drew is the one stored
    assert best["params"] and all(getattr(tuned.config, k) == v for k, v in best["params"].items()
                                  if k in space.TUNED_FIELDS)
    assert main(["--data-dir", str(data_dir), "train", "--catalog", "tiny", "--set", "epochs=2"]) == 0
    assert "configuration: tuned on validation" in capsys.readouterr().out
