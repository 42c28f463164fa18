"""2-D layouts of a feature set: PCA (instant, exact) and UMAP (seconds, seeded, optionally cached on disk)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from .cache import CACHE_VERSION, content_key, load_npz, save_npz

UMAP_MIN_POINTS = 5  # below this UMAP cannot run; pca_2d stands in


def pca_2d(features: np.ndarray) -> np.ndarray:
    """The first two principal components (N, 2) float32; deterministic (signs fixed by svd_flip)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {x.shape}.")
    n, d = x.shape
    out = np.zeros((n, 2), dtype=np.float32)
    if n < 2 or d == 0:
        return out
    from sklearn.decomposition import PCA

    k = min(2, n, d)
    # Both solvers are exact and have no random state; the covariance one is several times faster
    # for the usual tall sets (10k points x 512-2048 dims).
    solver = "covariance_eigh" if n > d else "full"
    out[:, :k] = PCA(n_components=k, svd_solver=solver).fit_transform(x)
    return out


def _features_digest(features: np.ndarray) -> str:
    x = np.ascontiguousarray(features, dtype=np.float32)
    h = hashlib.sha1(str(x.shape).encode())
    h.update(x.tobytes())
    return h.hexdigest()


def umap_model(n_points: int, *, n_neighbors: int, min_dist: float, seed: int, metric: str,
               **extra: Any) -> Any:
    """A 2-D ``umap.UMAP`` for ``n_points`` points; ``extra`` goes to its constructor."""
    import umap  # slow import (numba): only when needed

    # A random_state makes UMAP deterministic and single-threaded (which suits a shared machine);
    # n_jobs=1 says so up front instead of UMAP warning that it overrides n_jobs.
    return umap.UMAP(n_components=2, n_neighbors=max(2, min(n_neighbors, n_points - 1)), min_dist=min_dist,
                     metric=metric, random_state=seed, n_jobs=1, **extra)


def umap_2d(features: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
            metric: str = "cosine", cache_dir: Path | None = None) -> np.ndarray:
    """A UMAP layout (N, 2) float32 of ``features``, seeded, on cosine distance by default.

    With ``cache_dir`` the layout is kept in ``umap-<sha1>.npz`` keyed by the features' bytes
    and the parameters. Sets too small for UMAP (under 5 points) fall back to :func:`pca_2d`.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {x.shape}.")
    path = None
    if cache_dir is not None:
        params = {"n_neighbors": n_neighbors, "min_dist": min_dist, "seed": seed, "metric": metric,
                  "version": CACHE_VERSION}
        path = Path(cache_dir) / f"umap-{content_key([_features_digest(x), params])}.npz"
        cached = load_npz(path, ("layout",))
        if cached is not None:
            return cached["layout"].astype(np.float32, copy=False)
    if len(x) < UMAP_MIN_POINTS:
        layout = pca_2d(x)
    else:
        model = umap_model(len(x), n_neighbors=n_neighbors, min_dist=min_dist, seed=seed, metric=metric)
        layout = np.asarray(model.fit_transform(x), dtype=np.float32)
    if path is not None:
        save_npz(path, layout=layout)
    return layout
