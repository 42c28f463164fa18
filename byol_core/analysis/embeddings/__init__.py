"""Embeddings of the test images for the dashboard's Embeddings page: compute, cache, project, score.

An encoder comes from a run (any run with an ``encoder.pt``) or is a random init of a
reference run's architecture (the baseline every learned encoder must beat): :mod:`.sources`.
Embeddings are cached on disk under ``<runs>/_cache/`` (:mod:`.cache`) so a page reload, or a
new process, does not embed again (:mod:`.sets`). 2-D views (:mod:`.projection`): PCA (instant)
and UMAP (seconds, plus a one-off numba compile of 30-60 s that :func:`warm_up_umap` moves into a
background thread at start-up, :mod:`.warmup`); :class:`KeyedFutures` runs projections in the
background. Class separation, nearest neighbours and how tightly a group sits: :mod:`.scores`. Each
row's kNN prediction from the labelled training images (the rule of a run's kNN accuracy): :mod:`.predictions`.
A set covers test images or the whole collection (``scope="all"``), embedded chunk by chunk with progress
(:class:`ProgressBoard`); UMAP on large sets is fitted on a subsample and places the rest by ``transform``.
Filters, saved selections, Parquet / TensorBoard-projector exports and "images like this one": :mod:`.explorer`.

Nothing here imports streamlit; everything is safe to call from several threads.
"""

from .cache import CACHE_DIRNAME
from .explorer import (
    CORRECTNESS,
    EXPORTS_DIRNAME,
    Filters,
    SavedSelection,
    cell_rows,
    check_selection_name,
    delete_selection,
    embed_upload,
    filter_mask,
    load_selections,
    row_table,
    save_selection,
    selection_csv,
    similar_to,
    write_parquet,
    write_projector_tsv,
)
from .futures import KeyedFutures, ProgressBoard
from .predictions import knn_predict_set, set_predictions
from .projection import UMAP_FIT_MAX, UMAP_MIN_POINTS, pca_2d, umap_2d
from .scores import KNN_TEMPERATURE, nearest_neighbours, neighbour_share, separation_scores
from .sets import PARTS, SCOPES, EmbeddingSet, collection_size, compute_embeddings, embedding_cache_path, gather_images
from .sources import DEFAULT_REFERENCE_PRESET, RANDOM_INIT, encoder_from_source, reference_config
from .warmup import umap_warm, umap_warm_up_error, warm_up_umap

__all__ = [
    "CACHE_DIRNAME",
    "CORRECTNESS",
    "DEFAULT_REFERENCE_PRESET",
    "EXPORTS_DIRNAME",
    "KNN_TEMPERATURE",
    "PARTS",
    "RANDOM_INIT",
    "SCOPES",
    "UMAP_FIT_MAX",
    "UMAP_MIN_POINTS",
    "EmbeddingSet",
    "Filters",
    "KeyedFutures",
    "ProgressBoard",
    "SavedSelection",
    "cell_rows",
    "check_selection_name",
    "collection_size",
    "compute_embeddings",
    "delete_selection",
    "embed_upload",
    "embedding_cache_path",
    "encoder_from_source",
    "filter_mask",
    "gather_images",
    "knn_predict_set",
    "load_selections",
    "nearest_neighbours",
    "neighbour_share",
    "pca_2d",
    "reference_config",
    "row_table",
    "save_selection",
    "selection_csv",
    "separation_scores",
    "set_predictions",
    "similar_to",
    "umap_2d",
    "umap_warm",
    "umap_warm_up_error",
    "warm_up_umap",
    "write_parquet",
    "write_projector_tsv",
]
