"""The fusion training loop on Ray Train: one worker equals local training; two workers keep every replica's
parameters equal after each step (gradients averaged), and the result is a normal model that loads without Ray."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import core.models.fusion.train as train
from core.models.fusion.config import FusionConfig
from core.models.fusion.recommender import FusionRecommender
from tests.models.test_large_data import small_data

pytestmark = pytest.mark.slow


def config(**overrides) -> FusionConfig:
    base = dict(strategy="gated", dim=8, hidden=16, dropout=0.1, user_mode="id", loss="softmax", negatives=4,
                epochs=3, patience=3, batch_size=64, lr=0.02, seed=3, collaborative="none", align_weight=0.1)
    return FusionConfig(**{**base, **overrides})


def test_one_ray_worker_trains_the_same_model_as_local_training(ray_session, tmp_path) -> None:
    from core.scale.ray_train import RayTrainEngine

    data = small_data(seed=5)
    local = FusionRecommender(config()).fit(data)
    seen = []
    with train.training_engine(RayTrainEngine(workers=1, storage_path=tmp_path / "ray")):
        remote = FusionRecommender(config()).fit(data, progress=seen.append)
    users = np.arange(data.n_users)
    np.testing.assert_allclose(remote.score(users), local.score(users), atol=1e-4, rtol=0)
    assert [h["loss"] for h in remote.history] == pytest.approx([h["loss"] for h in local.history], abs=1e-6)
    assert remote.best_epoch == local.best_epoch
    assert [r.epoch for r in seen] == [h["epoch"] for h in remote.history]  # progress reached the driver
    assert any((tmp_path / "ray").rglob("model.safetensors"))  # Ray checkpoints were written
    folder = tmp_path / "model"
    remote.save(folder)
    loaded = FusionRecommender.load(folder, data.embeddings)  # a normal Prism model: no Ray in loading
    np.testing.assert_allclose(loaded.score(users), remote.score(users), atol=1e-6, rtol=0)


def _replica_params_after_steps(loop_config: dict) -> None:
    """A Ray Train worker: a short fit as one replica, then rank 0 reports how far the replicas' parameters
    are from each other (all-gathered) and from where they started."""
    import ray.train
    import torch.distributed as dist

    from core.scale.ray_train import ddp_wrap, gloo_sum

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    net, data, cfg = loop_config["payload"]
    if loop_config["large_catalog_path"] != "no":  # batch-local steps; "lazy": sparse id gradients through DDP
        train.LOCAL_STEP_ITEMS = 10
        train.LAZY_ID_ROWS = loop_config["large_catalog_path"] == "lazy"
        assert train.uses_local_steps(net)
    start = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).clone()
    wrap = ddp_wrap if loop_config["synchronise"] else (lambda step: step)
    replica = train.Replica(rank=rank, world=world, wrap=wrap, all_sum=gloo_sum)
    train.fit_fusion(net, data, cfg, replica=replica)
    mine = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    every = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(every, mine)
    metrics = {"spread": float(max((e - every[0]).abs().max() for e in every)),
               "moved": float((every[0] - start).abs().max()), "world": world}
    with tempfile.TemporaryDirectory() as folder:  # Ray Train keeps the metrics reported with a checkpoint
        (Path(folder) / "metrics.json").write_text(json.dumps(metrics))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder) if rank == 0 else None)


@pytest.mark.parametrize("synchronise,large_catalog_path", [(True, "no"), (True, "dense"), (True, "lazy"),
                                                            (False, "no")])
def test_two_workers_keep_their_parameters_equal_after_each_step(ray_session, tmp_path, synchronise,
                                                                 large_catalog_path) -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    data = small_data(seed=6)
    model = FusionRecommender(config(epochs=1, patience=1))
    torch.manual_seed(3)
    model._build(data.embeddings, data.n_users, data.user_ids)
    coo = data.train.tocoo()
    model.net.attach_graph(coo.row, coo.col)
    loop = {"payload": (model.net, data, model.config), "synchronise": synchronise,
            "large_catalog_path": large_catalog_path}
    trainer = TorchTrainer(_replica_params_after_steps, train_loop_config=loop,
                           scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
                           run_config=RunConfig(storage_path=str(tmp_path), name=f"sync-{synchronise}"))
    metrics = trainer.fit().metrics
    assert metrics["world"] == 2 and metrics["moved"] > 1e-3  # the steps changed the weights
    if synchronise:  # DistributedDataParallel averaged the gradients: the replicas stayed equal
        assert metrics["spread"] < 1e-6
    else:  # the same start, the same steps, but each replica on its own users: they drift apart
        assert metrics["spread"] > 1e-3


def test_more_workers_than_users_with_interactions_is_refused() -> None:
    from core.errors import EngineError
    from core.scale.ray_train import RayTrainEngine

    data = small_data(seed=5)
    model = FusionRecommender(config())
    with pytest.raises(EngineError, match="fewer workers"):
        with train.training_engine(RayTrainEngine(workers=data.n_users + 1)):
            model.fit(data)


def test_train_command_with_the_ray_engine_saves_an_active_model(ray_session, tmp_path, capsys) -> None:
    from core.cli.main import main
    from core.store.database import Store
    from core.workspace.prepare import load_active_model
    from tests.catalog.test_mmrec import make_mmrec

    data_dir = tmp_path / "store"
    assert main(["--data-dir", str(data_dir), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    capsys.readouterr()
    code = main(["--data-dir", str(data_dir), "train", "--catalog", "tiny", "--set", "epochs=2",
                 "--set", "collaborative=none", "--budget", "0.05", "--engine", "ray", "--workers", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Ray Train: 2 worker(s)" in out and "active" in out
    store = Store(data_dir)
    models = store.list_models("tiny")
    assert len(models) == 1 and bool(models["active"].iloc[0])
    catalog = store.load_catalog("tiny")
    from core.workspace.prepare import prepare_embeddings

    model = load_active_model(store, catalog, prepare_embeddings(store, catalog))  # no Ray needed to load
    assert model is not None and len(model.history) == 2
    assert np.isfinite(model.score(np.arange(2))).all()


def test_a_progress_callback_that_returns_true_stops_the_workers(ray_session, tmp_path) -> None:
    """As in a local fit, True from the progress callback ends the run: both workers stop together (the epoch
    they are in is finished, not reported), and the run returns a model."""
    from core.scale.ray_train import RayTrainEngine

    data = small_data(seed=5)
    seen = []

    def stop_after_the_first(report) -> bool:
        seen.append(report.epoch)
        return True

    with train.training_engine(RayTrainEngine(workers=2, storage_path=tmp_path / "ray")):
        model = FusionRecommender(config(epochs=50, patience=50)).fit(data, progress=stop_after_the_first)
    assert seen == [1]
    assert 1 <= len(model.history) < 50
    assert np.isfinite(model.score(np.arange(data.n_users))).all()
