"""Training the fusion model on Ray Train: the same training loop (core.models.fusion.train.fit_fusion) run by
`workers` Ray Train workers (TorchTrainer, DistributedDataParallel over gloo on CPU), each on the users
u with u mod workers == its rank, gradients averaged every step.

The driver builds and initialises the network as a local fit does, sends it with the data to the workers
(one copy in Ray's object store), and loads the best epoch's weights back from the run's last Ray checkpoint:
the result is a normal fusion model, saved and loaded without Ray. Every epoch, rank 0 reports its metrics
and a checkpoint (the weights, safetensors, and the history so far); the driver turns the reports into
progress callbacks and log lines. With one worker and the same seed the model equals local training.
A progress callback that returns True stops the run, as it stops a local fit: the workers are told at once and
stop after the epoch they are in (they do not wait for the driver's answer), then end the run as usual.

    with training_engine(RayTrainEngine(workers=2)):
        model = FusionRecommender(config).fit(data)
"""
from __future__ import annotations

import json
import logging
import queue as queue_module
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import EngineError
from core.data.interactions import InteractionData
from core.models.base import EpochReport, ProgressCallback
from core.scale.ray_session import connect

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"  # inside a Ray checkpoint: the network's state dict
HISTORY = "history.json"  # inside a Ray checkpoint: {"history": [...], "best_epoch": int, "final": bool}


@dataclass
class RayTrainEngine:
    """Runs fit_fusion on Ray Train workers (set with core.models.fusion.train.training_engine)."""

    workers: int = 1  # Ray Train workers (processes), one CPU each
    address: str | None = None  # None = Ray on this machine; "auto" or "ray://HOST:PORT" = a cluster
    storage_path: Path | None = None  # where Ray Train keeps checkpoints (None = a temporary folder)
    cpus_per_worker: float = 1.0
    lazy_id_rows: bool | None = None  # the workers' core.models.fusion.train.LAZY_ID_ROWS (None = the driver's value)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"RayTrainEngine.workers={self.workers}; give at least 1 worker")

    def __call__(self, net: Any, data: InteractionData, config: Any,
                 progress: ProgressCallback | None = None) -> tuple[list[dict], int]:
        """Train `net` in place on the workers; (history, best epoch) as fit_fusion returns them."""
        import core.models.fusion.train as train_module

        check_workers(data, self.workers)
        ray = connect(self.address)
        from ray.train import CheckpointConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
        from ray.util.queue import Queue

        # the mailboxes need no CPU (inside a Ray Tune trial that holds none they must ask for none): epoch
        # reports from rank 0, and the driver's request to stop
        reports, control = Queue(actor_options={"num_cpus": 0}), Queue(actor_options={"num_cpus": 0})
        with tempfile.TemporaryDirectory(prefix="prism-ray-train-") as scratch:
            storage = Path(self.storage_path) if self.storage_path else Path(scratch)
            trainer = TorchTrainer(
                train_worker,
                train_loop_config={"payload": ray.put((net, data, config)), "reports": reports, "control": control,
                                   "lazy_id_rows": train_module.LAZY_ID_ROWS if self.lazy_id_rows is None
                                   else self.lazy_id_rows},
                scaling_config=ScalingConfig(num_workers=self.workers, use_gpu=False,
                                             resources_per_worker={"CPU": self.cpus_per_worker}),
                run_config=RunConfig(name=f"fusion-{time.strftime('%Y%m%d-%H%M%S')}",
                                     storage_path=str(storage.resolve()),
                                     checkpoint_config=CheckpointConfig(num_to_keep=2)))
            result = _fit_with_progress(trainer, reports, config.epochs, progress, control)
            if getattr(result, "error", None) is not None:
                raise EngineError(f"Ray Train failed: {result.error}") from result.error
            if result.checkpoint is None:
                raise EngineError("Ray Train finished without a checkpoint; see the Ray logs")
            state, saved = read_checkpoint(result.checkpoint)
        net.load_state_dict(state)
        log.info("Ray Train: %d worker(s), %d epochs, best epoch %d", self.workers, len(saved["history"]),
                 saved["best_epoch"])
        return saved["history"], int(saved["best_epoch"])


def check_workers(data: InteractionData, workers: int) -> None:
    """EngineError when some of `workers` would get no training interactions (users go to worker u mod N)."""
    from core.models.fusion.train import Replica

    empty = np.flatnonzero(Replica(0, workers).pairs_each(data.train) == 0)
    if empty.size:
        raise EngineError(f"{workers} workers but the training interactions have users for only "
                          f"{workers - empty.size} of them (workers take users by user index mod "
                          f"{workers}); use fewer workers")


def _fit_with_progress(trainer: Any, reports: Any, epochs: int, progress: ProgressCallback | None,
                       control: Any = None) -> Any:
    """trainer.fit() on a thread while the workers' epoch reports become progress callbacks and log lines; a
    callback that returns True asks the workers to stop (through `control`), and later reports are dropped."""
    outcome: dict[str, Any] = {}
    stopping = False

    def run() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as e:  # noqa: BLE001 (re-raised on the calling thread)
            outcome["error"] = e

    thread = threading.Thread(target=run, name="ray-train-fit", daemon=True)
    thread.start()

    def forward(row: dict) -> None:
        nonlocal stopping
        if stopping:  # the epoch the workers were in when asked to stop: not part of the run's progress
            return
        log.info("Ray Train epoch %d/%d: loss %.4f, %s %s, %.1f s", row["epoch"], epochs, row["loss"],
                 row["metric_name"], "-" if row["valid_metric"] is None else f"{row['valid_metric']:.4f}",
                 row["seconds"])
        if progress is not None:
            stop = progress(EpochReport(epoch=row["epoch"], epochs=epochs, loss=row["loss"],
                                        valid_metric=row["valid_metric"], metric_name=row["metric_name"],
                                        seconds=row["seconds"])) is True
            if stop and control is not None:
                stopping = True
                control.put("stop")
                log.info("Ray Train: stop asked after epoch %d; the workers end the epoch they are in", row["epoch"])

    while thread.is_alive():
        try:
            forward(reports.get(timeout=0.5))  # ray.util.queue.Empty is a queue.Empty
        except queue_module.Empty:
            continue
        except Exception as e:  # noqa: BLE001 (the queue actor gone: progress stops, training goes on)
            log.warning("Ray Train progress reports stopped (%s: %s)", type(e).__name__, e)
            thread.join()
    thread.join()
    while True:  # reports that arrived as the run ended
        try:
            forward(reports.get_nowait())
        except Exception:  # noqa: BLE001 (empty, or the queue gone)
            break
    if "error" in outcome:
        error = outcome["error"]
        raise EngineError(f"Ray Train failed ({type(error).__name__}: {error})") from error
    return outcome["result"]


def train_worker(loop_config: dict) -> None:
    """One Ray Train worker: fit_fusion as replica (rank, world), reporting every epoch to Ray Train."""
    import ray
    import ray.train

    import core.models.fusion.train as train_module
    from core.models.fusion.train import Replica, fit_fusion

    train_module.LAZY_ID_ROWS = bool(loop_config.get("lazy_id_rows", train_module.LAZY_ID_ROWS))
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    net, data, config = ray.get(loop_config["payload"]) if isinstance(loop_config["payload"], ray.ObjectRef) \
        else loop_config["payload"]
    reports, control = loop_config.get("reports"), loop_config.get("control")
    history: list[dict] = []

    def on_epoch(row: dict, trained: Any) -> None:
        # the largest resident-memory peak of any worker so far (ru_maxrss), beside the epoch's row
        history.append({**row, "worker_peak_gib": worker_peak_gib(world)})
        row = history[-1]
        best = max((h for h in history if h["valid_metric"] is not None), default=None,
                   key=lambda h: h["valid_metric"])
        _report(rank, trained.state_dict(), {"history": history, "best_epoch": best["epoch"] if best else
                                             row["epoch"], "final": False}, row)
        if rank == 0 and reports is not None:
            reports.put(dict(row))

    def stop_asked(_: Any) -> bool:
        # rank 0 reads the driver's request; the sum over the workers is a collective, so all stop together
        asked = float(rank == 0 and control is not None and not control.empty())
        return bool((gloo_sum(np.array([asked])) if world > 1 else np.array([asked]))[0] > 0)

    replica = Replica(rank=rank, world=world, wrap=ddp_wrap, all_sum=gloo_sum, on_epoch=on_epoch)
    history_out, best_epoch = fit_fusion(net, data, config, progress=stop_asked, replica=replica)
    # the weights fit_fusion kept (the best validation epoch), as the run's last checkpoint
    _report(rank, net.state_dict(), {"history": history, "best_epoch": best_epoch, "final": True},
            {"epoch": len(history_out), "final": True})


def worker_peak_gib(world: int) -> float:
    """The largest ru_maxrss (GiB) over the workers: a collective, every worker calls it."""
    import resource

    import torch

    peak = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20], dtype=torch.float64)
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    return float(peak[0])


def ddp_wrap(step: Any) -> Any:
    """The step module in DistributedDataParallel when the run has several workers (Ray Train's
    prepare_model; gloo on CPU). Buffers (the training graph) are equal on every worker: not broadcast."""
    from ray.train.torch import prepare_model

    return prepare_model(step, move_to_device=False,
                         parallel_strategy_kwargs={"find_unused_parameters": True, "broadcast_buffers": False})


def gloo_sum(values: np.ndarray) -> np.ndarray:
    """Element-wise sum of `values` over the workers."""
    import torch
    import torch.distributed as dist

    t = torch.as_tensor(values)
    dist.all_reduce(t)
    return t.numpy()


def _report(rank: int, state: dict, saved: dict, metrics: dict) -> None:
    """ray.train.report on every worker (Ray Train expects all to report); rank 0 attaches the checkpoint."""
    import ray.train
    from safetensors.torch import save_file

    metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool))}
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="prism-checkpoint-") as folder:
        save_file({k: v.detach().contiguous() for k, v in state.items()}, str(Path(folder) / WEIGHTS))
        (Path(folder) / HISTORY).write_text(json.dumps(saved, default=float))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def read_checkpoint(checkpoint: Any) -> tuple[dict, dict]:
    """(state dict, {"history", "best_epoch", "final"}) from a checkpoint written by train_worker."""
    from safetensors.torch import load_file

    with checkpoint.as_directory() as folder:
        state = load_file(str(Path(folder) / WEIGHTS))
        saved = json.loads((Path(folder) / HISTORY).read_text())
    return state, saved
