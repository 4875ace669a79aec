"""Numeric search ranges that a search may extend: a best point within EDGE_SHARE of an edge (in log space
for a log range) grows the range beyond that edge, up to a bound the setting itself has. Used by every
search: each baseline's (core.tuning.baselines) and the fusion model's (core.tuning.study).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

EDGE_SHARE = 0.05  # a best point this close to an edge (share of the range, log space for log ranges) extends it
GROWTH = (2.0, 10.0)  # a log range grows beyond its edge by its own half-span in ratio, within these factors


@dataclass(frozen=True)
class Range:
    """A numeric setting searched between `low` and `high` (the initial range; a search may extend it)."""

    low: float
    high: float
    log: bool = True  # log-uniform (settings that span decades)
    integer: bool = False
    floor: float | None = None  # the smallest value the setting can take: extension never passes it
    ceiling: str | None = None  # "items": at most the catalog's items − 1; "share": at most 1 (a fraction);
    #                             None: extends without end
    when: tuple[str, tuple] | None = None  # (choice, values): counts only when that choice takes one of them

    def __post_init__(self) -> None:
        if not self.high > self.low or (self.log and self.low <= 0):
            raise ValueError(f"range [{self.low}, {self.high}] is empty or (log) not positive")
        if self.ceiling not in (None, "items", "share") or (self.ceiling == "share" and self.high > 1):
            raise ValueError(f"ceiling={self.ceiling!r} with high {self.high}; use None, 'items' or 'share' "
                             "(high ≤ 1)")


def near_edge(value: float, r: Range, low: float, high: float) -> str | None:
    """"low" / "high" when `value` lies within EDGE_SHARE of that edge of [low, high], else None."""
    if r.log:
        lo, hi, x = math.log(low), math.log(high), math.log(max(value, low))
    else:
        lo, hi, x = low, high, value
    share = (x - lo) / (hi - lo) if hi > lo else 0.5
    if share >= 1 - EDGE_SHARE:
        return "high"
    if share <= EDGE_SHARE:
        return "low"
    return None


def extend(r: Range, low: float, high: float, side: str, n_items: int | None = None) -> tuple[float, float] | None:
    """[low, high] grown beyond `side` (None when that side is at a bound the setting itself has)."""
    if r.log:
        factor = min(max(math.sqrt(high / low), GROWTH[0]), GROWTH[1])
        new_low, new_high = (low / factor, high) if side == "low" else (low, high * factor)
    else:
        step = max((high - low) / 2, 1.0 if r.integer else 0.0)
        new_low, new_high = (low - step, high) if side == "low" else (low, high + step)
    if r.floor is not None:
        new_low = max(new_low, r.floor)
    if r.ceiling == "items" and n_items is not None:
        new_high = min(new_high, max(n_items - 1, 1))
    if r.ceiling == "share":
        new_high = min(new_high, 1.0)
    if r.integer:
        new_low, new_high = math.floor(new_low), math.ceil(new_high)
    if (new_low, new_high) == (low, high):
        return None
    return new_low, new_high
