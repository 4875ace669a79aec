"""Starting (or joining) a Ray session, with one message when Ray is missing or unreachable."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.errors import EngineError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'ray[data,tune]'"
REPO_ROOT = Path(__file__).resolve().parents[2]
# what a cluster's workers are not sent of the project folder (the store, results, the git history)
UPLOAD_EXCLUDES = [".prism/", ".git/", "benchmarks/results/", "test-artifacts/", "**/__pycache__/"]


def runtime_env(address: str | None) -> dict[str, Any]:
    """How workers import Prism: locally through PYTHONPATH; on a cluster the project folder is sent along
    (the store stays here: workers read media by path, so a cluster needs the media on a shared path)."""
    if address is None:
        return {"env_vars": {"PYTHONPATH": str(REPO_ROOT)}}
    return {"working_dir": str(REPO_ROOT), "excludes": UPLOAD_EXCLUDES}


def require_ray() -> Any:
    """The ray module; EngineError naming the install command when it is missing."""
    try:
        import ray
    except ImportError as e:
        raise EngineError(f"the Ray engine needs Ray: `{INSTALL_HINT}`, or use --engine local") from e
    return ray


def connect(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Join the running Ray session, or start one: local (address None), an existing cluster ("auto") or a
    Ray Client address ("ray://HOST:PORT"). Returns the ray module."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.WARNING, "runtime_env": runtime_env(address)}
    if address is None:
        kwargs["num_cpus"] = num_cpus
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise EngineError(f"cannot reach a Ray cluster at {address!r} ({type(e).__name__}: {e}); start one with "
                          "`ray start --head`, give its address (auto or ray://HOST:10001), or leave --address "
                          "out to run Ray on this machine") from e
    try:
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False  # Prism draws its own (items/s, ETA)
    except ImportError:
        pass
    return ray


def cluster_workers(ray: Any) -> int:
    """How many alive nodes the session has (1 when run locally)."""
    return max(1, sum(1 for n in ray.nodes() if n.get("Alive")))


def cluster_gpus(ray: Any) -> float:
    """GPUs the session has in all (0 on a CPU-only machine)."""
    return float(ray.cluster_resources().get("GPU", 0.0))
