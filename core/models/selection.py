"""Choose a model's settings on the validation split from a small grid (registry GRIDS), never on test."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.data.interactions import InteractionData
from core.models.base import ProgressCallback, Recommender
from core.models.early_stopping import validation_recall

SELECT_K = 20  # the grid point with the best validation Recall@SELECT_K is kept
Log = Callable[[str], None]


@dataclass
class Selection:
    """The fitted model of the chosen grid point, and what the search tried."""

    model: Recommender
    chosen: dict[str, Any]  # the grid point kept (empty when there was no grid)
    grid: list[dict[str, Any]] = field(default_factory=list)  # every point tried, in order
    valid: list[float] = field(default_factory=list)  # validation Recall@SELECT_K per point
    seconds: list[float] = field(default_factory=list)  # fit seconds per point
    overrides: dict[str, Any] = field(default_factory=dict)  # settings fixed by the caller (win over the grid)

    def record(self) -> dict[str, Any]:
        """The `selection` block of a run record (JSON-safe)."""
        return {"metric": f"valid recall@{SELECT_K}", "chosen": self.chosen, "grid": self.grid,
                "valid": [None if not np.isfinite(v) else round(float(v), 6) for v in self.valid],
                "fit_seconds": [round(s, 2) for s in self.seconds], "overrides": self.overrides}


def grid_for(name: str, overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The registry grid of `name` with the caller's overrides removed from every point (deduplicated)."""
    from core.models.baselines import GRIDS

    fixed = set(overrides or {})
    points: list[dict[str, Any]] = []
    for point in GRIDS.get(name, []):
        kept = {k: v for k, v in point.items() if k not in fixed}
        if kept and kept not in points:
            points.append(kept)
    return points


def select_on_validation(name: str, data: InteractionData, overrides: dict[str, Any] | None = None,
                         build: Callable[..., Recommender] | None = None, use_grid: bool = True,
                         progress: ProgressCallback | None = None, log: Log | None = None) -> Selection:
    """Fit `name` at every point of its grid (overrides fixed) and keep the best on validation Recall@20.

    Without a grid, without validation data or with `use_grid=False` the model is fitted once.
    `build(**settings)` makes the model (default core.models.registry.build_model(name, **settings)).
    """
    from core.models.registry import build_model

    overrides = dict(overrides or {})
    make = build or (lambda **kw: build_model(name, **kw))
    points = grid_for(name, overrides) if use_grid and data.valid.nnz > 0 else []
    if len(points) <= 1:
        t0 = time.perf_counter()
        model = make(**{**(points[0] if points else {}), **overrides}).fit(data, progress=progress)
        return Selection(model, points[0] if points else {}, points, [], [time.perf_counter() - t0], overrides)
    best: tuple[float, int, Recommender] | None = None
    values, seconds = [], []
    for n, point in enumerate(points):
        t0 = time.perf_counter()
        model = make(**{**point, **overrides}).fit(data, progress=progress)
        value = validation_recall(lambda rows, m=model: m.score(rows), data, SELECT_K)
        seconds.append(time.perf_counter() - t0)
        values.append(value)
        if log is not None:
            log(f"{name}: grid {n + 1}/{len(points)} {point} valid recall@{SELECT_K} {value:.4f} "
                f"({seconds[-1]:.1f} s)")
        if best is None or (np.isfinite(value) and value > best[0]):
            best = (value if np.isfinite(value) else -np.inf, n, model)
        del model
    assert best is not None
    return Selection(best[2], points[best[1]], points, values, seconds, overrides)
