"""Sample queries an approximate index tunes its search width on, and recall against exact search."""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import numpy as np

from core.serving.index.exact import ExactIndex, VectorIndex


@dataclass
class SampleQueries:
    """Sample queries an index tunes its search width on, each with the rows its search excludes (as the
    caller sends them: e.g. a listener's training items, a query's liked items)."""

    vectors: np.ndarray  # (n, d) float32
    exclude: list[Collection[int]] | None = None  # per query; None = nothing excluded
    kind: str | None = None  # the `kind` the caller searches such queries with; None = the set's own name

    def __len__(self) -> int:
        return len(self.vectors)

    def items(self) -> Iterator[tuple[np.ndarray, Collection[int]]]:
        """(query, its excluded rows) pairs."""
        exclude = self.exclude if self.exclude is not None else [()] * len(self.vectors)
        return zip(self.vectors, exclude)


TuneQueries = dict[str, SampleQueries | np.ndarray]  # named sets of sample queries (arrays: nothing excluded)
ITEM_SAMPLE = "item vectors"  # the name of the fallback set: the index's own vectors plus noise


def named_queries(queries: TuneQueries | np.ndarray | None) -> dict[str, SampleQueries]:
    """`queries` as named non-empty sets (one unnamed array becomes the set "given")."""
    if queries is None:
        return {}
    if not isinstance(queries, dict):
        queries = {"given": queries}
    out = {}
    for name, q in queries.items():
        q = q if isinstance(q, SampleQueries) else SampleQueries(np.asarray(q, np.float32))
        if len(q):
            out[name] = SampleQueries(np.atleast_2d(np.asarray(q.vectors, np.float32)), q.exclude, q.kind)
    return out


def recall_per_set(search: Callable[..., tuple[np.ndarray, np.ndarray]], truth: dict[str, list[np.ndarray]],
                   queries: dict[str, SampleQueries], k: int) -> dict[str, float]:
    """Mean recall@k of `search` against the exact top-k rows `truth`, for each named set of queries."""
    return {name: float(np.mean([len(np.intersect1d(t, search(q, k, ex)[0])) / max(len(t), 1)
                                 for (q, ex), t in zip(queries[name].items(), truth[name])])) for name in queries}


def exact_truth(vectors: np.ndarray, queries: dict[str, SampleQueries], k: int) -> dict[str, list[np.ndarray]]:
    """The exact top-k rows of every sample query (its excluded rows left out), per named set."""
    exact = ExactIndex(vectors)
    return {name: [exact.search(q, k, ex)[0] for q, ex in qs.items()] for name, qs in queries.items()}


def example_queries(vectors: np.ndarray, given: np.ndarray | None, n: int, seed: int = 0,
                    noise: float = 1.0) -> np.ndarray:
    """(≤ n, d) queries to tune an index on: items plus Gaussian noise of `noise` × the item's norm (like
    an aggregate of liked items or an upload) and, when given, half from the caller's examples."""
    vectors = np.asarray(vectors, np.float32)
    if len(vectors) == 0:
        return np.empty((0, vectors.shape[1]), np.float32)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=min(n, len(vectors)), replace=False)
    scale = noise * np.linalg.norm(vectors[rows], axis=1, keepdims=True) / np.sqrt(vectors.shape[1])
    samples = vectors[rows] + rng.standard_normal((len(rows), vectors.shape[1])).astype(np.float32) * scale
    if given is not None and len(given):
        given = np.asarray(given, np.float32)
        samples = np.concatenate([samples[:n // 2], given[rng.permutation(len(given))[:n - n // 2]]])
    return samples


def measure_recall(index: VectorIndex, exact: VectorIndex, queries: np.ndarray, k: int) -> float:
    """Mean recall@k of `index` against `exact` over the rows of `queries` (overlap of the top-k sets)."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if len(queries) == 0 or k <= 0:
        raise ValueError("measure_recall needs at least one query and k >= 1")
    hits = 0
    total = 0
    for q in queries:
        truth, _ = exact.search(q, k)
        found, _ = index.search(q, k)
        hits += len(np.intersect1d(truth, found))
        total += len(truth)
    return hits / max(total, 1)
