"""Embedding sets: the representations of a fixed subset of the test images under one encoder, cached on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...config import ExperimentConfig, to_dict
from ...data import load_data
from ...lab.run_store import RunStore
from ...methods.evaluation import embed
from .cache import CACHE_DIRNAME, CACHE_VERSION, content_key, file_lock, load_npz, save_npz
from .sources import RANDOM_INIT, encoder_from_source, reference_config, run_with_encoder

# Every source embeds the same test images in the same order (for a given data config),
# so points of two encoders can be compared one to one.
SUBSET_SEED = 0
_ARRAYS = ("features", "labels", "indices", "classes")


@dataclass
class EmbeddingSet:
    """Representations of a subset of ``splits.test``; row i is test image ``indices[i]``."""

    source: str  # run id or RANDOM_INIT
    features: np.ndarray  # float32 (N, D)
    labels: np.ndarray  # int64 (N,), -1 where the data set has no label
    indices: np.ndarray  # int64 (N,): positions in splits.test
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def cache_key(store: RunStore, source: str, reference_run: str | None,
              max_points: int) -> tuple[str, ExperimentConfig]:
    """A set's content key (the source and its weights, the data and preprocessing, the subset size) and config."""
    if source == RANDOM_INIT:
        cfg = reference_config(store, reference_run)
        weights: Any = {"seed": cfg.seed, "torch": torch.__version__.split("+")[0]}
    else:
        run, cfg = run_with_encoder(store, source)
        stat = run.encoder_path.stat()
        weights = {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size}
    payload = {
        "version": CACHE_VERSION,
        "source": source,
        "weights": weights,
        "model": to_dict(cfg.model),
        "data": to_dict(cfg.data),
        "image_size": cfg.augment.image_size,
        "max_points": max_points,
        "subset_seed": SUBSET_SEED,
    }
    return content_key(payload), cfg


def _cache_path(store: RunStore, key: str) -> Path:
    return store.root / CACHE_DIRNAME / f"embeddings-{key}.npz"


def embedding_cache_path(store: RunStore, source: str, *, reference_run: str | None = None,
                         max_points: int = 10_000) -> Path:
    """Where :func:`compute_embeddings` keeps (or would keep) this set."""
    key, _ = cache_key(store, source, reference_run, max_points)
    return _cache_path(store, key)


def _subset_indices(n: int, max_points: int) -> np.ndarray:
    """The first ``max_points`` of a fixed permutation: classes mixed, the same for every source."""
    order = np.random.default_rng(SUBSET_SEED).permutation(n)
    return order[:max_points].astype(np.int64)


def compute_embeddings(store: RunStore, source: str, *, reference_run: str | None = None,
                       max_points: int = 10_000, device: torch.device | str = "cpu") -> EmbeddingSet:
    """Representations of up to ``max_points`` test images of the source's data set.

    The images are the first ``max_points`` of a fixed seeded permutation of ``splits.test``
    (so a smaller set is a prefix of a larger one, and every source sees the same images).
    Cached in ``store.root/_cache/embeddings-<sha1>.npz``, keyed by the source, its
    ``encoder.pt``'s mtime and size, model and data config, image size and ``max_points``;
    later calls, in this process or another, load that file.
    """
    if max_points < 1:
        raise ValueError(f"max_points = {max_points} must be at least 1.")
    key, cfg = cache_key(store, source, reference_run, max_points)
    path = _cache_path(store, key)
    with file_lock(path.name):
        cached = load_npz(path, _ARRAYS)
        if cached is not None:
            return EmbeddingSet(source=source, features=cached["features"].astype(np.float32, copy=False),
                                labels=cached["labels"].astype(np.int64, copy=False),
                                indices=cached["indices"].astype(np.int64, copy=False),
                                classes=[str(c) for c in cached["classes"]])
        encoder, cfg = encoder_from_source(store, source, reference_run)
        splits = load_data(cfg.data)
        indices = _subset_indices(len(splits.test), max_points)
        index = torch.from_numpy(indices)
        features = embed(encoder.to(device), splits.test.images[index], cfg.augment.image_size,
                         splits.mean, splits.std, cfg.eval.batch_size, device)
        result = EmbeddingSet(source=source, features=features.numpy().astype(np.float32, copy=False),
                              labels=splits.test.labels[index].numpy().astype(np.int64),
                              indices=indices, classes=list(splits.classes))
        save_npz(path, features=result.features, labels=result.labels, indices=result.indices,
                 classes=np.asarray(result.classes, dtype=str))
        return result
