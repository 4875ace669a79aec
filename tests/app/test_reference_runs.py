"""The demo's first start stores an evaluation of the active model against popularity, ItemKNN and BPR-MF in
the background, after Home is drawn, so the Evaluate page has plots on its first visit."""
from __future__ import annotations

import shutil
import time

from tests.app.conftest import APP, TIMEOUT, goto


def test_first_start_evaluates_the_demo_in_background(app_env, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from core.store.database import Store
    from core.workspace.prepare import REFERENCE_BASELINES, missing_reference_runs
    from ui import loaders

    root = tmp_path / "copy"  # a copy of the small demo, so the shared one keeps its two runs
    shutil.copytree(app_env["PRISM_DATA_DIR"], root)
    monkeypatch.setenv("PRISM_DATA_DIR", str(root))
    monkeypatch.delenv("PRISM_NO_BACKGROUND_EVAL")
    store = Store(root)
    catalog = store.load_catalog("demo")
    model_id = store.active_model("demo")["id"]
    # the prebuilt demo has runs of the model (saved without its id) and popularity only
    assert missing_reference_runs(store, catalog, model_id) == [model_id, "itemknn", "bprmf"]

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()  # Home renders; the evaluation starts after it
    assert not at.exception, [e.value for e in at.exception]
    key = (str(root), "demo")
    assert loaders._REFERENCE_JOBS[key]["state"] in ("running", "done")
    deadline = time.monotonic() + 300
    while loaders._REFERENCE_JOBS[key]["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert loaders._REFERENCE_JOBS[key]["state"] == "done", loaders._REFERENCE_JOBS[key]
    assert missing_reference_runs(store, catalog, model_id) == []
    runs = store.list_runs("demo")
    assert set(REFERENCE_BASELINES) <= set(runs["name"])
    goto(at, "evaluate")  # the Results tab has the runs to plot
    assert at.get("plotly_chart")
    assert "No evaluation runs are stored" not in " ".join(i.value for i in at.info)
