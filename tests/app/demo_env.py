"""A small demo workspace (catalog, embeddings, model, two runs) in a folder, for the app and browser tests."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

SMALL_DEMO_ENV = {
    "PRISM_DEMO_TRACKS": "60",  # small enough to encode and train in seconds
    "PRISM_DEMO_LISTENERS": "40",
    "PRISM_NO_WARMUP": "1",
    "PRISM_NO_BACKGROUND_EVAL": "1",  # the demo's first-start evaluation runs only where a test asks for it
    "PRISM_EXPLAIN_FEATURE_EVALS": "200",  # small SHAP budgets: the tests check the drawing, not the values
    "PRISM_EXPLAIN_TOKEN_EVALS": "30",  # tests load the encoders when they need them, not in a background thread
    "OMP_WAIT_POLICY": "PASSIVE",  # as app.py sets it: busy-waiting OpenMP threads crawl on a shared CPU
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
TEST_EPOCHS = 8  # the demo preset's epoch cap for test models (early stopping may end sooner)


def small_demo_env(root: Path) -> dict[str, str]:
    """Environment variables that point the app at `root` and size the demo small."""
    return {**SMALL_DEMO_ENV, "PRISM_DATA_DIR": str(root)}


def build_small_demo(root: Path, with_runs: bool = True) -> dict[str, str]:
    """Build the small demo under `root` as the app would on first start, plus stored evaluation runs.

    Returns the environment the app must run with to find it.
    """
    env = small_demo_env(root)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from core.catalog.demo import DemoConfig
        from core.workspace.imports import ensure_demo_catalog
        from core.encoders.factory import EncoderConfig, build_encoders
        from core.models.fusion.config import PRESETS
        from core.store.database import Store
        from core.workspace.prepare import ensure_model, prepare_embeddings

        store = Store(root)
        catalog = ensure_demo_catalog(store, DemoConfig.from_env())
        encoders = build_encoders(EncoderConfig.from_env())
        embeddings = prepare_embeddings(store, catalog, encoders)
        config = dataclasses.replace(PRESETS["demo"], epochs=min(PRESETS["demo"].epochs, TEST_EPOCHS))
        model = ensure_model(store, catalog, embeddings, config=config)
        if with_runs and store.list_runs(catalog.name).empty:
            from core.evaluation.protocol import run_evaluation
            from core.data.splits import build_interaction_data
            from core.models.popularity import Popularity

            data = build_interaction_data(catalog, embeddings, split="auto", seed=0)
            for recommender in (model, Popularity().fit(data)):
                store.save_run(run_evaluation(recommender, data, catalog, embeddings, ks=(5, 10, 20),
                                              n_bootstrap=200))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return env


def model_ids(root: Path) -> set[str]:
    """Ids of every saved model in the store under `root`."""
    from core.store.database import Store

    return set(Store(root).list_models()["id"])


def remove_models_made_since(root: Path, before: set[str]) -> list[str]:
    """Delete the saved models (rows and files) that are not in `before` and not active anywhere: the candidates
    a test trained. Returns their ids, sorted; an active new model stays (its catalog's own test removes it)."""
    from core.store.database import Store

    store = Store(root)
    models = store.list_models()
    made = sorted(m for m, active in zip(models["id"], models["active"]) if m not in before and not active)
    for model_id in made:
        store.delete_model(model_id)
    return made
