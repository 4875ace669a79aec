"""Free-text requests with a known answer: does the top result carry what the sentence asks for?

On a catalog whose items carry attribute labels (the demo: genre, mood, instrument, theme), every
combination some item carries becomes one request sentence naming all of it (core.catalog.demo_text.
request_sentence). A request is answered in full at rank 1 when the top item carries every attribute named;
the mean share of attributes the top item carries, and each attribute's hit rate, are reported beside it.
Only combinations that exist are asked for, so every request has at least one right answer.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def item_attributes(catalog: Any, names: Sequence[str]) -> list[tuple[Any, ...]]:
    """Each item's values of the metadata `names` (None where an item lacks one)."""
    return [tuple(item.metadata.get(n) for n in names) for item in catalog.items]


def requests(attributes: Sequence[tuple[Any, ...]], phrase: Callable[..., str], seed: int = 0,
             limit: int | None = None) -> list[tuple[str, tuple[Any, ...]]]:
    """(sentence, wanted attributes) for every combination some item carries (none with a missing value),
    in sorted order, phrased with a generator seeded by `seed`; the first `limit` of a seeded shuffle when given."""
    combos = sorted({a for a in attributes if all(v is not None for v in a)})
    rng = np.random.default_rng(seed)
    if limit is not None and limit < len(combos):
        combos = [combos[i] for i in sorted(rng.permutation(len(combos))[:limit])]
    return [(phrase(rng, *combo), combo) for combo in combos]


def score_answers(top_rows: Sequence[int], wanted: Sequence[tuple[Any, ...]],
                  attributes: Sequence[tuple[Any, ...]], names: Sequence[str]) -> dict[str, float]:
    """Over requests: full@1 (the top item carries every wanted attribute), attributes@1 (mean share it
    carries) and `<name>@1` per attribute."""
    if len(top_rows) != len(wanted):
        raise ValueError(f"{len(top_rows)} answers for {len(wanted)} requests")
    if not wanted:
        raise ValueError("no requests to score")
    hits = np.array([[attributes[r][j] == w[j] for j in range(len(names))] for r, w in zip(top_rows, wanted)],
                    dtype=float)
    out = {"full@1": float(hits.all(axis=1).mean()), "attributes@1": float(hits.mean())}
    out.update({f"{n}@1": float(hits[:, j].mean()) for j, n in enumerate(names)})
    return out
