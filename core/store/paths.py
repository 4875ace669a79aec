"""Where Prism keeps its data. Never derived from the current working directory."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The data folder: $PRISM_DATA_DIR if set, else `.prism/` at the repository root."""
    root = Path(os.environ.get("PRISM_DATA_DIR") or REPO_ROOT / ".prism")
    root.mkdir(parents=True, exist_ok=True)
    return root


def shared_data_dir() -> Path:
    """The read-only real data folder beside the checkout ($PRISM_SHARED_DATA or ../shared/data)."""
    return Path(os.environ.get("PRISM_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")
