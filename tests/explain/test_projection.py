"""2-D maps: UMAP keeps separated clusters apart, and a map is cached beside its model and read back."""
from __future__ import annotations

import numpy as np
import pytest

from core.explain.projection import cached_projection, project_2d


def _clusters(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 16)) * 4
    labels = np.repeat(np.arange(3), n)
    return (centres[labels] + rng.standard_normal((3 * n, 16))).astype(np.float32), labels


@pytest.mark.slow  # umap-learn compiles its numba kernels on first use (tens of seconds)
def test_umap_separates_clusters():
    x, labels = _clusters()
    xy = project_2d(x, "UMAP")
    assert xy.shape == (len(x), 2)
    centres = np.stack([xy[labels == c].mean(axis=0) for c in range(3)])
    spread = max(np.linalg.norm(xy[labels == c] - centres[c], axis=1).mean() for c in range(3))
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a + 1, 3)]
    assert min(gaps) > 2 * spread


def test_map_is_cached_per_vectors(tmp_path, monkeypatch):
    x, _ = _clusters(10)
    first = cached_projection(tmp_path, "joint", x, "PCA")
    files = list((tmp_path / "maps").glob("*.npy"))
    assert len(files) == 1
    import core.explain.projection

    def refuse(*args, **kwargs):
        raise AssertionError("the cached map should have been read")

    monkeypatch.setattr(core.explain.projection, "project_2d", refuse)
    np.testing.assert_array_equal(cached_projection(tmp_path, "joint", x, "PCA"), first)
    with pytest.raises(AssertionError):  # other vectors (a retrained model) are projected anew
        cached_projection(tmp_path, "joint", x + 1, "PCA")
    with pytest.raises(ValueError, match="unknown projection"):
        project_2d(x, "MDS")


def test_has_cached_projection_sees_a_map_once_it_is_computed(tmp_path):
    from core.explain.projection import cached_projection, has_cached_projection

    x = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    assert not has_cached_projection(tmp_path, "joint", "PCA") and not has_cached_projection(None, "joint", "PCA")
    cached_projection(tmp_path, "joint", x, "PCA")
    assert has_cached_projection(tmp_path, "joint", "PCA")
    assert not has_cached_projection(tmp_path, "joint", "UMAP") and not has_cached_projection(tmp_path, "text", "PCA")
