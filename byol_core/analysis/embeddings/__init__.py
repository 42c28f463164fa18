"""Embeddings of the test images for the dashboard's Embeddings page: compute, cache, project, score.

An encoder comes from a run (any run with an ``encoder.pt``) or is a random init of a
reference run's architecture (the baseline every learned encoder must beat): :mod:`.sources`.
Embeddings are cached on disk under ``<runs>/_cache/`` (:mod:`.cache`) so a page reload, or a
new process, does not embed again (:mod:`.sets`). 2-D views (:mod:`.projection`): PCA (instant)
and UMAP (seconds, plus a one-off numba compile of 30-60 s that :func:`warm_up_umap` moves into a
background thread at start-up, :mod:`.warmup`); :class:`KeyedFutures` runs projections in the
background. Class separation, nearest neighbours and how tightly a group sits: :mod:`.scores`. Each
row's kNN prediction from the labelled training images (the rule of a run's kNN accuracy): :mod:`.predictions`.

Nothing here imports streamlit; everything is safe to call from several threads.
"""

from .cache import CACHE_DIRNAME
from .futures import KeyedFutures
from .predictions import knn_predict_set, set_predictions
from .projection import UMAP_MIN_POINTS, pca_2d, umap_2d
from .scores import KNN_TEMPERATURE, nearest_neighbours, neighbour_share, separation_scores
from .sets import EmbeddingSet, compute_embeddings, embedding_cache_path
from .sources import DEFAULT_REFERENCE_PRESET, RANDOM_INIT, encoder_from_source, reference_config
from .warmup import umap_warm, umap_warm_up_error, warm_up_umap

__all__ = [
    "CACHE_DIRNAME",
    "DEFAULT_REFERENCE_PRESET",
    "KNN_TEMPERATURE",
    "RANDOM_INIT",
    "UMAP_MIN_POINTS",
    "EmbeddingSet",
    "KeyedFutures",
    "compute_embeddings",
    "embedding_cache_path",
    "encoder_from_source",
    "knn_predict_set",
    "nearest_neighbours",
    "neighbour_share",
    "pca_2d",
    "reference_config",
    "separation_scores",
    "set_predictions",
    "umap_2d",
    "umap_warm",
    "umap_warm_up_error",
    "warm_up_umap",
]
