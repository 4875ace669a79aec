"""What a catalog's active model and tuned configuration were, and putting an earlier one back."""
from __future__ import annotations

from typing import Any

from core.errors import PrismError
from core.store.database import Store


def catalog_history(store: Store, catalog: str) -> dict[str, Any]:
    """The catalog's activations (newest first) and tuned configurations (current, then earlier ones)."""
    from core.tuning.history import tuned_history
    from core.tuning.store import tuned_path

    if not store.has_catalog(catalog):
        store.load_catalog(catalog)  # raises, listing the stored names
    return {"activations": store.activation_history(catalog).to_dict("records"),
            "tuned": tuned_history(tuned_path(store, catalog))}


def restore(store: Store, catalog: str, model: str | None = None, tuned: str | None = None) -> list[str]:
    """Put back an earlier active model and/or tuned configuration ("previous" or an id); one line per change."""
    from core.tuning.history import describe_entry, restore_tuned_file
    from core.tuning.store import tuned_path

    if model is None and tuned is None:
        raise PrismError("say what to restore: --model ID|previous and/or --tuned ID|previous "
                         f"(see `python -m core history --catalog {catalog}`)")
    if not store.has_catalog(catalog):
        store.load_catalog(catalog)
    done = []
    if model is not None:
        done.append(f"active model of {catalog!r} is now {store.restore_active_model(catalog, model)}")
    if tuned is not None:
        entry = restore_tuned_file(tuned_path(store, catalog), tuned)
        done.append(f"tuned configuration of {catalog!r} restored from {entry.id} ({describe_entry(entry)})")
    return done
