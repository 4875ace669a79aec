"""`python -m core warm`: prepares a catalog for its first visitor and leaves it on disk for the next start."""
from __future__ import annotations

import os

import numpy as np
import pytest

from core.cli.main import main
from core.store.database import Store


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    """The small demo of the app tests (60 tracks, a trained model) in its own store, with its environment."""
    from tests.app.demo_env import build_small_demo

    root = tmp_path_factory.mktemp("warm")
    env = build_small_demo(root, with_runs=False)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        yield root


def test_warm_prepares_the_query_the_maps_and_the_runs_and_keeps_them(small_demo, capsys) -> None:
    from core.explain.projection import item_map, map_inputs
    from core.workspace.warm import warm

    store = Store(small_demo)
    model_id = store.active_model("demo")["id"]
    assert main(["--data-dir", str(small_demo), "warm", "--maps", "PCA"]) == 0
    out = capsys.readouterr().out
    assert "catalog 'demo' is warm" in out and "first query" in out and "joint PCA" in out
    assert store.active_model("demo")["id"] == model_id, "the stored model is reused, not retrained"
    maps = sorted((store.model_dir(model_id) / "maps").glob("*.npy"))
    catalog = store.load_catalog("demo")
    from core.workspace.prepare import load_active_model, load_embeddings

    embeddings = load_embeddings(store, catalog)
    model = load_active_model(store, catalog, embeddings)
    spaces = ("joint", *embeddings.modalities)
    assert len(maps) == len(spaces)
    # what a restarted server reads is what was computed: the map of each space, byte for byte
    for space in spaces:
        ids, xy = item_map(store.model_dir(model_id), catalog, embeddings, model, space, "PCA")
        assert len(ids) == len(map_inputs(catalog, embeddings, model, space)[1]) and xy.shape == (len(ids), 2)
        assert any(np.array_equal(np.load(p), xy) for p in maps)
    assert len(store.list_runs("demo")) == 4, "the active model and three baselines were evaluated"
    again = warm(store, "demo", query="calm ambient piano", maps=("PCA",))
    assert len(sorted((store.model_dir(model_id) / "maps").glob("*.npy"))) == len(spaces)
    assert len(store.list_runs("demo")) == 4 and again.top_item is not None


@pytest.mark.parametrize("argv, message", [
    (["warm", "--maps", "PCA,bogus"], "not among PCA, UMAP, t-SNE"),
    (["warm", "--query", "  "], "--query is empty"),
    (["warm", "--catalog", "nope"], "nope"),
])
def test_warm_refuses_bad_options_by_name(tmp_path, capsys, argv, message) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    assert main(["--data-dir", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err
