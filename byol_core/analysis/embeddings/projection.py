"""2-D layouts of a feature set: PCA (instant, exact) and UMAP (seconds, seeded, optionally cached on disk)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .cache import CACHE_VERSION, content_key, load_npz, save_npz

UMAP_MIN_POINTS = 5  # below this UMAP cannot run; pca_2d stands in
# Above this many points UMAP is fitted on a seeded subsample and every other point is placed among its
# nearest fitted neighbours (:func:`place_by_neighbours`). On 2 busy cores UMAP's fit on 20k points took
# 128 s, and its ``transform`` of the other 80k of 100k more than 13 minutes: hence 10k fitted points and
# the neighbour placement (benchmarks/explorer_points.py --projection measures it).
UMAP_FIT_MAX = 10_000
PLACE_NEIGHBOURS = 10
PLACE_TEMPERATURE = 0.05  # cosine similarities differ by hundredths near a point: a sharp weighting


PCA_FIT_MAX = 20_000  # bigger sets: the axes come from a seeded subsample of this many rows, all rows projected


def pca_2d(features: np.ndarray, cache_dir: Path | None = None) -> np.ndarray:
    """The first two principal components (N, 2) float32; deterministic (signs fixed by svd_flip).

    Over :data:`PCA_FIT_MAX` rows the axes are fitted on a seeded subsample (they barely move; the fit
    on 100k x 512 took 20 s on 2 busy cores) and every row is projected. With ``cache_dir`` the layout
    is kept in ``pca-<sha1>.npz`` keyed by the features' bytes (the background embedding of a big set
    computes it there, so the page finds it ready).
    """
    if cache_dir is not None:
        path = Path(cache_dir) / f"pca-{content_key([_features_digest(features), PCA_FIT_MAX, CACHE_VERSION])}.npz"
        cached = load_npz(path, ("layout",))
        if cached is not None:
            return cached["layout"].astype(np.float32, copy=False)
        layout = pca_2d(features)
        save_npz(path, layout=layout)
        return layout
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
    if n <= PCA_FIT_MAX:
        out[:, :k] = PCA(n_components=k, svd_solver=solver).fit_transform(x)
        return out
    sample = np.sort(np.random.default_rng(0).choice(n, PCA_FIT_MAX, replace=False))
    pca = PCA(n_components=k, svd_solver=solver).fit(x[sample])
    out[:, :k] = pca.transform(x)
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


def place_by_neighbours(fitted_features: np.ndarray, fitted_layout: np.ndarray, features: np.ndarray, *,
                        k: int = PLACE_NEIGHBOURS, temperature: float = PLACE_TEMPERATURE,
                        chunk: int = 4096) -> np.ndarray:
    """2-D positions (N, 2) float32 of ``features``: each at the similarity-weighted mean of the layout positions
    of its ``k`` most cosine-similar fitted points (weights ``exp(sim / temperature)``).

    Where UMAP's own ``transform`` starts a new point before refining it; without the refinement it takes
    seconds for 100k points instead of many minutes on 2 cores (benchmarks/explorer_points.py).
    """
    bank = F.normalize(torch.from_numpy(np.ascontiguousarray(fitted_features, dtype=np.float32)), dim=1)
    anchors = torch.from_numpy(np.ascontiguousarray(fitted_layout, dtype=np.float32))
    queries = np.ascontiguousarray(features, dtype=np.float32)
    k = max(1, min(k, len(bank)))
    out = np.empty((len(queries), 2), dtype=np.float32)
    for start in range(0, len(queries), chunk):
        part = F.normalize(torch.from_numpy(queries[start:start + chunk]), dim=1)
        sims, nearest = (part @ bank.T).topk(k, dim=1)
        weights = torch.softmax(sims / temperature, dim=1)
        out[start:start + len(part)] = (weights[:, :, None] * anchors[nearest]).sum(dim=1).numpy()
    return out


def _fit_subsample_place_rest(x: np.ndarray, fit_max: int, *, n_neighbors: int, min_dist: float, seed: int,
                              metric: str) -> np.ndarray:
    """UMAP fitted on ``fit_max`` seeded points; the others placed among their nearest fitted neighbours."""
    fitted = np.sort(np.random.default_rng(seed).choice(len(x), fit_max, replace=False))
    rest = np.setdiff1d(np.arange(len(x)), fitted)
    model = umap_model(fit_max, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed, metric=metric)
    layout = np.empty((len(x), 2), dtype=np.float32)
    layout[fitted] = model.fit_transform(x[fitted])
    layout[rest] = place_by_neighbours(x[fitted], layout[fitted], x[rest])
    return layout


def umap_2d(features: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
            metric: str = "cosine", cache_dir: Path | None = None, fit_max: int = UMAP_FIT_MAX) -> np.ndarray:
    """A UMAP layout (N, 2) float32 of ``features``, seeded, on cosine distance by default.

    With ``cache_dir`` the layout is kept in ``umap-<sha1>.npz`` keyed by the features' bytes
    and the parameters. Sets too small for UMAP (under 5 points) fall back to :func:`pca_2d`.
    Sets over ``fit_max`` points: UMAP is fitted on a seeded subsample of ``fit_max`` and every
    other point is placed by :func:`place_by_neighbours` (among its nearest fitted neighbours).
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {x.shape}.")
    path = None
    if cache_dir is not None:
        params = {"n_neighbors": n_neighbors, "min_dist": min_dist, "seed": seed, "metric": metric,
                  "version": CACHE_VERSION}
        if len(x) > fit_max:  # only then does fit_max change the layout; smaller sets keep their old keys
            params["fit_max"] = fit_max
        path = Path(cache_dir) / f"umap-{content_key([_features_digest(x), params])}.npz"
        cached = load_npz(path, ("layout",))
        if cached is not None:
            return cached["layout"].astype(np.float32, copy=False)
    if len(x) < UMAP_MIN_POINTS:
        layout = pca_2d(x)
    elif len(x) > fit_max:
        layout = _fit_subsample_place_rest(x, fit_max, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed,
                                               metric=metric)
    else:
        model = umap_model(len(x), n_neighbors=n_neighbors, min_dist=min_dist, seed=seed, metric=metric)
        layout = np.asarray(model.fit_transform(x), dtype=np.float32)
    if path is not None:
        save_npz(path, layout=layout)
    return layout
