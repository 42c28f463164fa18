"""How well an embedding set separates its classes, and which points sit next to a given one (cosine)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...methods.evaluation import knn_predict

KNN_TEMPERATURE = 0.07  # as evaluation.knn_predict's default (Wu et al. 2018)
SILHOUETTE_MAX_POINTS = 2000
SILHOUETTE_SEED = 0  # the subsample of a large set is the same on every call
# Leave-one-out kNN costs N^2: above this many points it is scored on a seeded subsample (its own bank),
# 10k points as before the explorer took 100k.
SEPARATION_MAX_POINTS = 10_000
SHARE_MAX_QUERIES = 2_000  # neighbour_share of a bigger group looks at this many of its points (seeded)


def _as_matrix(features: np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {tuple(x.shape)}.")
    return x


def separation_scores(features: np.ndarray, labels: np.ndarray, k: int = 20,
                      temperature: float = KNN_TEMPERATURE,
                      max_points: int = SEPARATION_MAX_POINTS) -> dict[str, float]:
    """How well the classes separate: leave-one-out kNN accuracy and the cosine silhouette.

    Points labelled -1 are ignored. A score that cannot be computed (fewer than two labelled
    classes, or too few points) is NaN. The silhouette uses at most 2000 points (seeded subsample);
    the leave-one-out kNN at most ``max_points`` labelled points (a seeded subsample, among themselves).
    """
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if len(features) != len(labels):
        raise ValueError(f"features ({len(features)}) and labels ({len(labels)}) differ in length.")
    keep = labels >= 0
    features, labels = features[keep], labels[keep]
    scores = {"knn_accuracy": float("nan"), "silhouette": float("nan")}
    n_classes = len(np.unique(labels))
    if len(labels) < 2 or n_classes < 2:
        return scores
    if len(labels) > max_points:
        pick = np.sort(np.random.default_rng(SILHOUETTE_SEED).choice(len(labels), max_points, replace=False))
        features, labels = features[pick], labels[pick]
    x, y = _as_matrix(features), torch.as_tensor(labels)
    predicted = knn_predict(x, y, x, k, temperature, exclude_self=True)
    scores["knn_accuracy"] = int((predicted == y).sum()) / len(y)
    if len(labels) > SILHOUETTE_MAX_POINTS:
        pick = np.random.default_rng(SILHOUETTE_SEED).choice(len(labels), SILHOUETTE_MAX_POINTS, replace=False)
        features, labels = features[pick], labels[pick]
    if 2 <= len(np.unique(labels)) <= len(labels) - 1:
        from sklearn.metrics import silhouette_score

        scores["silhouette"] = float(silhouette_score(features, labels, metric="cosine"))
    return scores


def nearest_neighbours(features: np.ndarray, index: int, k: int = 8) -> np.ndarray:
    """Indices (int64) of the ``k`` points most cosine-similar to point ``index``, most similar first.

    The point itself is excluded; ties go to the lower index, so the answer is deterministic.
    """
    x = F.normalize(_as_matrix(features), dim=1)
    n = len(x)
    if not -n <= index < n:
        raise IndexError(f"index {index} is out of range for {n} points.")
    index %= n
    sims = (x @ x[index]).numpy().astype(np.float64)
    sims[index] = -np.inf
    order = np.argsort(-sims, kind="stable")
    return order[:max(0, min(k, n - 1))].astype(np.int64)


def neighbour_share(features: np.ndarray, rows: np.ndarray | list[int], k: int = 10,
                    chunk: int = 1024, max_queries: int = SHARE_MAX_QUERIES) -> tuple[float, float]:
    """How tightly a group of points sits together: (share, chance).

    ``share``: of each chosen point's ``k`` nearest neighbours among all points (cosine, itself
    excluded), the fraction that are chosen too, averaged over the chosen points. ``chance``: the
    share a group of the same size scattered at random would get, (m - 1) / (n - 1). Both are NaN
    for fewer than two chosen points. Rows repeated or out of range raise ValueError.
    """
    x = F.normalize(_as_matrix(features), dim=1)
    n = len(x)
    chosen = np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(chosen) and (chosen.min() < 0 or chosen.max() >= n):
        raise ValueError(f"rows must lie in 0..{n - 1}; got {chosen.min()}..{chosen.max()}.")
    if len(np.unique(chosen)) != len(chosen):
        raise ValueError("rows must not repeat.")
    m = len(chosen)
    if m < 2:
        return float("nan"), float("nan")
    k = min(k, n - 1)
    inside = torch.zeros(n, dtype=torch.bool)
    inside[torch.from_numpy(chosen)] = True
    queries = chosen if m <= max_queries else \
        np.sort(np.random.default_rng(SILHOUETTE_SEED).choice(chosen, max_queries, replace=False))
    hits = 0
    for start in range(0, len(queries), chunk):
        part = torch.from_numpy(queries[start:start + chunk])
        sims = x[part] @ x.T
        sims[torch.arange(len(part)), part] = -float("inf")  # a point is not its own neighbour
        hits += int(inside[sims.topk(k, dim=1).indices].sum())
    return hits / (len(queries) * k), (m - 1) / (n - 1)
