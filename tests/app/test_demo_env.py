"""The app tests' cleanup: the candidate models a test trains are deleted after it, the rest of the store kept."""
from __future__ import annotations

from pathlib import Path

from core.store.database import Store
from tests.app.demo_env import model_ids, remove_models_made_since


def _save(store: Store, model_id: str, catalog: str, active: bool) -> None:
    folder = store.model_dir(model_id)
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(model_id.encode())
    store.record_model(model_id, catalog, "fusion", {"dim": 8}, folder, active=active)


def test_only_the_new_inactive_models_are_removed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _save(store, "built", "demo", active=True)
    _save(store, "earlier-candidate", "demo", active=False)
    before = model_ids(tmp_path)
    assert before == {"built", "earlier-candidate"}
    _save(store, "candidate-a", "demo", active=False)
    _save(store, "candidate-b", "demo", active=False)
    _save(store, "activated", "shop", active=True)  # a new active model stays: its catalog's test removes it

    assert remove_models_made_since(tmp_path, before) == ["candidate-a", "candidate-b"]
    assert model_ids(tmp_path) == before | {"activated"}
    assert not store.model_dir("candidate-a").exists() and not store.model_dir("candidate-b").exists()
    assert (store.model_dir("earlier-candidate") / "model.safetensors").read_bytes() == b"earlier-candidate"
    assert store.active_model("demo")["id"] == "built"
    assert remove_models_made_since(tmp_path, before) == []  # nothing left to remove
