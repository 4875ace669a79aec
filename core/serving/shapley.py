"""Exact Shapley values over modalities from the score of every coalition (shared by the recommend service
and the explain service's check)."""
from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np


def shapley_from_coalitions(values: dict[frozenset[str], np.ndarray], modalities: Sequence[str]
                            ) -> dict[str, np.ndarray]:
    """Exact Shapley values per modality from v(S) for every subset S (each an array over items).

    φ_m = Σ_{S ⊆ M∖{m}} |S|! (M − |S| − 1)! / M! · (v(S ∪ {m}) − v(S)).
    """
    n = len(modalities)
    out = {}
    for m in modalities:
        others = [o for o in modalities if o != m]
        phi = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                phi = phi + weight * (values[s | {m}] - values[s])
        out[m] = np.asarray(phi, dtype=np.float64)
    return out


def coalition_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every subset of `modalities`, by size then in the given order (∅ first, all of them last)."""
    return [subset for size in range(len(modalities) + 1) for subset in itertools.combinations(modalities, size)]


@functools.lru_cache(maxsize=16)
def shapley_matrix(modalities: tuple[str, ...]) -> np.ndarray:
    """(M, 2^M) the Shapley values as a linear map of v(S) over coalition_subsets(modalities):
    φ = C @ v, the same sum as shapley_from_coalitions in one product."""
    subsets = coalition_subsets(modalities)
    position = {frozenset(s): j for j, s in enumerate(subsets)}
    n = len(modalities)
    out = np.zeros((n, len(subsets)))
    for i, m in enumerate(modalities):
        for s in subsets:
            if m in s:
                continue
            weight = math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
            out[i, position[frozenset(s) | {m}]] += weight
            out[i, position[frozenset(s)]] -= weight
    return out
