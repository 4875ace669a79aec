"""2-D maps of item vectors (PCA, UMAP, t-SNE), and a cache of them beside the model they were made from, so
a map is computed once per model."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from core.store.atomic import atomic_path
from core.errors import StoreError

log = logging.getLogger(__name__)
METHODS = ("PCA", "UMAP", "t-SNE")


def project_2d(x: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """(n, 2) coordinates of the rows of `x` by PCA, UMAP (cosine, umap-learn) or t-SNE."""
    x = np.asarray(x, dtype=np.float32)
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(METHODS)}")
    if method == "UMAP" and len(x) > 3:
        import umap

        neighbours = int(min(15, len(x) - 1))
        return umap.UMAP(n_components=2, n_neighbors=neighbours, min_dist=0.1, metric="cosine",
                         random_state=seed, n_jobs=1).fit_transform(x).astype(np.float32)
    if method == "t-SNE" and len(x) > 5:
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(x)


def cached_projection(folder: Path | None, name: str, x: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """project_2d, read from (or written to) `folder`/maps/<name>-<method>-<hash of x>.npy when a folder is
    given, so the same vectors are projected once."""
    if folder is None:
        return project_2d(x, method, seed)
    digest = hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{name}-{method}")
    path = Path(folder) / "maps" / f"{safe}-{seed}-{digest}.npy"
    if path.is_file():
        try:
            xy = np.load(path, allow_pickle=False)
            if xy.shape == (len(x), 2):
                return xy
        except (OSError, ValueError):
            log.warning("map cache %s is unreadable; computing it again", path)
    xy = project_2d(x, method, seed)
    try:
        with atomic_path(path, "map cache") as tmp:  # never a half-written .npy
            np.save(tmp, xy)
    except (OSError, StoreError) as e:  # a read-only or full store still gets its map, only not cached
        log.warning("could not cache the map in %s: %s", path, e)
    return xy


def has_cached_projection(folder: Path | None, name: str, method: str, seed: int = 0) -> bool:
    """Whether `folder`/maps holds a `method` map of `name` (for any vectors): a page may then open on it
    without waiting for a slow projection such as UMAP."""
    if folder is None:
        return False
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{name}-{method}")
    return any((Path(folder) / "maps").glob(f"{safe}-{seed}-*.npy"))


def map_inputs(catalog, embeddings, model, space: str) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, vectors) a map of `space` draws: "joint" = the model's item vectors, else the raw fields of
    that modality over the items that have it, in catalog order."""
    ids = catalog.item_ids
    if space == "joint":
        return np.asarray(ids), np.asarray(model.item_vectors(), dtype=np.float32)
    fields = embeddings.fields_of(space)
    x = np.concatenate([embeddings.matrices[f] for f in fields], axis=1)
    keep = embeddings.modality_mask(space)
    # the embedding set may order items differently from the catalog
    order = [embeddings.item_ids.index(i) for i in ids] if embeddings.item_ids != ids else None
    if order is not None:
        x, keep = x[order], keep[order]
    return np.asarray(ids)[keep], x[keep]


def item_map(folder: Path | None, catalog, embeddings, model, space: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, (n, 2) coordinates) of the map of `space` by `method`, cached in `folder`/maps."""
    ids, x = map_inputs(catalog, embeddings, model, space)
    return ids, cached_projection(folder, space, x, method)
