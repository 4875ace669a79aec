"""Fixtures of the app tests: one small demo workspace per session, and a fresh AppTest per test."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.store.paths import REPO_ROOT
from tests.app.demo_env import build_small_demo, model_ids, remove_models_made_since

APP = str(REPO_ROOT / "app.py")
SAMPLES = REPO_ROOT / "assets" / "samples"
TIMEOUT = 120  # seconds per script run: the first run of a session loads the encoders


@pytest.fixture(scope="session")
def app_env(tmp_path_factory) -> Iterator[dict[str, str]]:
    """The small demo (60 tracks, 40 listeners, a trained model, two stored runs) and the env that finds it."""
    root = tmp_path_factory.mktemp("prism-app")
    env = build_small_demo(root)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        yield env


@pytest.fixture
def app(app_env):
    """A fresh AppTest of the whole app (its own session state), already run once on Home. The candidate models
    the test trains are removed after it, so the next test sees the session's demo as it was built."""
    from streamlit.testing.v1 import AppTest

    root = Path(app_env["PRISM_DATA_DIR"])
    before = model_ids(root)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    yield at
    remove_models_made_since(root, before)


def goto(at, page: str):
    """Switch the AppTest to `pages/<page>.py`, run it, and fail on any exception."""
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sample(name: str) -> bytes:
    """Bytes of a sample upload under assets/samples."""
    return (SAMPLES / name).read_bytes()


def texts(at) -> str:
    """Every markdown, caption, error, warning, info and success text on the page, joined."""
    parts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "subheader", "title"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def plotly_values(v) -> list:
    """A plotly JSON array as a list: plain lists, or typed arrays stored as {"dtype", "bdata"} (base64)."""
    import base64

    import numpy as np

    if isinstance(v, dict) and "bdata" in v:
        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return arr.reshape(v["shape"]).tolist() if "shape" in v else arr.tolist()
    return list(v)


def uploader(at, kind: str):
    """The Recommend page's uploader of `kind` ("image" or "audio"); its key carries a generation number."""
    return next(u for u in at.file_uploader if str(u.key).startswith(f"up_{kind}_"))
