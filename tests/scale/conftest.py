"""One small local Ray session for every Ray test (skipped with a message when Ray is not installed)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray session with 2 CPUs and no dashboard, shut down after the tests."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: `pip install 'ray[data,tune]'` to run the "
                                            "Ray engine tests")
    from core.scale.ray_session import connect

    connect(None, num_cpus=2)
    yield ray
    ray.shutdown()
