"""Shared fixtures. Tests are offline: no model hub is ever reached."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from core.store.paths import shared_data_dir  # noqa: E402
from core.store.database import Store  # noqa: E402


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty store in a temporary folder."""
    return Store(tmp_path / "store")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip with a message when it is absent."""
    root = shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent; set PRISM_SHARED_DATA to run this test")
    return root
