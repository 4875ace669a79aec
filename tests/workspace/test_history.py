"""Active models and tuned configurations keep their history and can be restored; the browser changes them only
where the operator allows, never on the demo."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli.main import main
from core.errors import DamagedFileError, StoreError
from core.workspace.history import catalog_history, restore
from core.models.fusion.config import FusionConfig
from core.store.sharing import SETTING, browser_may_change
from core.store.database import Store
from core.tuning.history import restore_tuned_file, tuned_history
from core.tuning.store import load_tuned, save_tuned, tuned_path
from tests.hostile.cases import trained_store


def test_the_demo_never_changes_from_the_browser(monkeypatch) -> None:
    monkeypatch.delenv(SETTING, raising=False)
    assert not browser_may_change("shop").allowed and SETTING in browser_may_change("shop").reason
    monkeypatch.setenv(SETTING, "1")
    assert browser_may_change("shop").allowed
    for name in ("demo", "DEMO", " Demo "):
        verdict = browser_may_change(name)
        assert not verdict.allowed and "command line" in verdict.reason


def _save(store: Store, value: float, dim: int) -> None:
    save_tuned(store, "shop", FusionConfig(dim=dim), {"name": "ndcg@20", "value": value, "split": "valid"},
               [{"trial": k} for k in range(int(value * 100))])


def test_a_worse_search_does_not_lose_the_better_tuned_configuration(store: Store) -> None:
    _save(store, 0.3732, dim=128)  # a 37-trial search
    _save(store, 0.3155, dim=16)  # then a 2-trial one replaces it
    history = tuned_history(tuned_path(store, "shop"))
    assert [e.current for e in history] == [True, False]
    assert history[0].metric["value"] == 0.3155 and history[1].metric["value"] == 0.3732
    assert history[1].trials == 37
    restored = restore_tuned_file(tuned_path(store, "shop"), "previous")
    assert restored.metric["value"] == 0.3732
    assert load_tuned(store, "shop").config.dim == 128
    # the replaced one is kept too: restoring it back is possible
    values = sorted(e.metric["value"] for e in tuned_history(tuned_path(store, "shop")) if not e.current)
    assert values == [0.3155, 0.3732]


def test_restoring_a_damaged_or_unknown_tuned_entry_is_refused(store: Store) -> None:
    path = tuned_path(store, "shop")
    with pytest.raises(StoreError, match="no earlier tuned configuration"):
        restore_tuned_file(path, "previous")
    _save(store, 0.30, dim=32)
    _save(store, 0.20, dim=16)
    (old,) = [e for e in tuned_history(path) if not e.current]
    (path.parent / "history" / "shop" / f"{old.id}.json").write_text("{broken")
    with pytest.raises(DamagedFileError, match="damaged"):
        restore_tuned_file(path, old.id)
    with pytest.raises(StoreError, match="no earlier tuned configuration 'nope'"):
        restore_tuned_file(path, "nope")
    assert json.loads(path.read_text())["config"]["dim"] == 16  # unchanged


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Store:
    return trained_store(tmp_path_factory.mktemp("history") / "store")


def test_activations_are_kept_and_the_previous_model_restored(shop: Store, capsys) -> None:
    first = shop.active_model("shop")["id"]
    second = shop.list_models("shop")["id"].tolist()[0]
    assert second == first  # one model so far; record a second one, inactive (a browser candidate)
    model_dir = Path(shop.active_model("shop")["path"])
    shop.record_model("shop-candidate", "shop", "fusion-gated", {"dim": 8}, model_dir, active=False)
    assert shop.active_model("shop")["id"] == first  # stored without activation changes nothing
    shop.set_active_model("shop", "shop-candidate")
    assert shop.active_model("shop")["id"] == "shop-candidate"
    history = shop.activation_history("shop")
    assert history["model_id"].tolist() == ["shop-candidate", first]
    assert history["source"].tolist() == ["activated", "trained"]
    assert restore(shop, "shop", model="previous") == [f"active model of 'shop' is now {first}"]
    assert shop.active_model("shop")["id"] == first
    assert catalog_history(shop, "shop")["activations"][0]["source"] == "restored"
    assert main(["--data-dir", str(shop.root), "history", "--catalog", "shop"]) == 0
    out = capsys.readouterr().out
    assert "restored" in out and "shop-candidate" in out and "active now" in out
    assert main(["--data-dir", str(shop.root), "restore", "--catalog", "shop", "--model", "shop-candidate"]) == 0
    assert shop.active_model("shop")["id"] == "shop-candidate"
    assert main(["--data-dir", str(shop.root), "restore", "--catalog", "shop", "--model", "nope"]) == 2
    assert "no saved model with id 'nope'" in capsys.readouterr().err
    assert main(["--data-dir", str(shop.root), "restore", "--catalog", "shop"]) == 2  # nothing named

