"""Embedding sets: the representations of a fixed subset of the test images under one encoder, cached on disk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...config import ExperimentConfig, to_dict
from ...data import DataSplits, load_data
from ...data.disk_images import DiskImages
from ...lab.run_store import RunStore
from ...methods.evaluation import embed
from .cache import (
    CACHE_DIRNAME,
    CACHE_VERSION,
    content_key,
    file_lock,
    load_npz,
    pack_strings,
    save_npz,
    unpack_strings,
)
from .sources import RANDOM_INIT, encoder_from_source, reference_config, run_with_encoder

# Every source embeds the same test images in the same order (for a given data config),
# so points of two encoders can be compared one to one.
SUBSET_SEED = 0
_ARRAYS = ("features", "labels", "indices", "classes")
# What a set can cover: the test images (scored, the default), or the whole collection, i.e. every
# image the data set holds, test first, then train, validation and the extra unlabelled images.
SCOPES = ("test", "all")
PARTS = ("test", "train", "val", "unlabeled")  # a row's part is its position in this tuple
EMBED_CHUNK = 2048  # images gathered and embedded between two progress reports
ProgressFn = Callable[[int, int], None]  # (rows embedded so far, rows in all)


@dataclass
class EmbeddingSet:
    """Representations of a subset of ``splits.test``; row i is test image ``indices[i]``."""

    source: str  # run id or RANDOM_INIT
    features: np.ndarray  # float32 (N, D)
    labels: np.ndarray  # int64 (N,), -1 where the data set has no label
    indices: np.ndarray  # int64 (N,): positions in splits.test (in the row's part of the data, see ``parts``)
    classes: list[str] = field(default_factory=list)
    parts: np.ndarray | None = None  # int8 (N,): index into PARTS per row; None: every row is a test image
    # object (N,) of str: each row's file path inside its folder (image folders, uploads); None: built-in data
    # sets, and sets cached before file names were kept
    file_names: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def part_codes(self) -> np.ndarray:
        """Each row's part as an index into :data:`PARTS` (0, the test split, when the set has no ``parts``)."""
        return np.zeros(len(self), dtype=np.int8) if self.parts is None else np.asarray(self.parts, dtype=np.int8)

    def names(self) -> np.ndarray:
        """Each row's image name: what the explorer's name filter searches and its exports carry.

        The file's path inside its folder (e.g. "cat/IMG_0042.jpg") when the set knows it, else
        "<part> #<index>" (e.g. "test #17").
        """
        if self.file_names is not None:
            return self.file_names
        return part_index_names(self.part_codes(), self.indices)


def part_index_names(parts: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """"<part> #<index>" per row (object array of str), from each row's PARTS code and index in that part."""
    part_names = np.asarray(PARTS, dtype=object)[np.asarray(parts, dtype=np.int64)]
    return np.array([f"{p} #{i}" for p, i in zip(part_names.tolist(), np.asarray(indices).tolist(), strict=True)],
                    dtype=object)


def row_file_names(splits: DataSplits, parts: np.ndarray, indices: np.ndarray) -> np.ndarray | None:
    """Each row's file path inside its folder, for images that stay on disk (image folders, uploads); None when
    no row's part knows its file names (built-in data sets). A row whose part does not know them keeps
    "<part> #<index>"."""
    parts = np.asarray(parts, dtype=np.int8)
    indices = np.asarray(indices, dtype=np.int64)
    known = [images.file_names() if isinstance(images, DiskImages) else None for images in part_images(splits)]
    if not any(known[int(code)] is not None for code in np.unique(parts)):
        return None
    names = part_index_names(parts, indices)
    for code in np.unique(parts):
        if known[int(code)] is not None:
            where = np.flatnonzero(parts == code)
            names[where] = known[int(code)][indices[where]]
    return names


def part_images(splits: DataSplits) -> tuple[torch.Tensor, ...]:
    """The image tensors of :data:`PARTS`, in that order."""
    return splits.test.images, splits.train.images, splits.val.images, splits.unlabeled.images


def part_labels(splits: DataSplits) -> tuple[torch.Tensor, ...]:
    return splits.test.labels, splits.train.labels, splits.val.labels, splits.unlabeled.labels


def gather_images(splits: DataSplits, parts: np.ndarray, indices: np.ndarray) -> torch.Tensor:
    """The uint8 images of rows given as (part, index) pairs, in the rows' order."""
    images = part_images(splits)
    parts = np.asarray(parts, dtype=np.int8)
    indices = np.asarray(indices, dtype=np.int64)
    first = images[int(parts[0])] if len(parts) else splits.test.images
    out = torch.empty((len(indices), *first.shape[1:]), dtype=torch.uint8)
    for code in np.unique(parts):
        where = np.flatnonzero(parts == code)
        out[torch.from_numpy(where)] = images[int(code)][torch.from_numpy(indices[where])]
    return out


def cache_key(store: RunStore, source: str, reference_run: str | None,
              max_points: int, scope: str = "test") -> tuple[str, ExperimentConfig]:
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
    if scope != "test":  # test sets keep the keys they had before scopes existed
        payload["scope"] = scope
    return content_key(payload), cfg


def _cache_path(store: RunStore, key: str) -> Path:
    return store.root / CACHE_DIRNAME / f"embeddings-{key}.npz"


def embedding_cache_path(store: RunStore, source: str, *, reference_run: str | None = None,
                         max_points: int = 10_000, scope: str = "test") -> Path:
    """Where :func:`compute_embeddings` keeps (or would keep) this set."""
    key, _ = cache_key(store, source, reference_run, max_points, scope)
    return _cache_path(store, key)


def collection_size(splits: DataSplits, scope: str = "test") -> int:
    """How many images a set of ``scope`` can hold at most."""
    _check_scope(scope)
    return len(splits.test) if scope == "test" else sum(len(t) for t in part_images(splits))


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r} is not one of {', '.join(SCOPES)}.")


def _subset_indices(n: int, max_points: int) -> np.ndarray:
    """The first ``max_points`` of a fixed permutation: classes mixed, the same for every source."""
    order = np.random.default_rng(SUBSET_SEED).permutation(n)
    return order[:max_points].astype(np.int64)


def _rows(splits: DataSplits, scope: str, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(parts, indices) of the first ``max_points`` of a fixed seeded permutation of the scope's images."""
    if scope == "test":
        indices = _subset_indices(len(splits.test), max_points)
        return np.zeros(len(indices), dtype=np.int8), indices
    sizes = [len(t) for t in part_images(splits)]
    flat = _subset_indices(sum(sizes), max_points)
    starts = np.cumsum([0, *sizes[:-1]])
    parts = (np.searchsorted(starts, flat, side="right") - 1).astype(np.int8)
    return parts, flat - starts[parts]


def _embed_rows(encoder: torch.nn.Module, splits: DataSplits, cfg: ExperimentConfig, parts: np.ndarray,
                indices: np.ndarray, device: torch.device | str, progress: ProgressFn | None) -> np.ndarray:
    """Features of the rows, chunk by chunk (only a chunk of images is gathered at a time), reporting progress."""
    chunks = []
    for start in range(0, len(indices), EMBED_CHUNK):
        stop = min(start + EMBED_CHUNK, len(indices))
        batch = gather_images(splits, parts[start:stop], indices[start:stop])
        chunks.append(embed(encoder, batch, cfg.augment.image_size, splits.mean, splits.std, cfg.eval.batch_size,
                            device).numpy().astype(np.float32, copy=False))
        if progress is not None:
            progress(stop, len(indices))
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


def compute_embeddings(store: RunStore, source: str, *, reference_run: str | None = None,
                       max_points: int = 10_000, device: torch.device | str = "cpu", scope: str = "test",
                       progress: ProgressFn | None = None) -> EmbeddingSet:
    """Representations of up to ``max_points`` images of the source's data set.

    ``scope`` "test": the first ``max_points`` of a fixed seeded permutation of ``splits.test`` (so a
    smaller set is a prefix of a larger one, and every source sees the same images); "all": the same
    over the whole collection (test, train, validation and unlabelled images; ``parts`` says which).
    Cached in ``store.root/_cache/embeddings-<sha1>.npz``, keyed by the source, its ``encoder.pt``'s
    mtime and size, model and data config, image size, ``max_points`` and the scope; later calls, in
    this process or another, load that file. ``progress(done, total)`` is called after each chunk embedded.
    """
    if max_points < 1:
        raise ValueError(f"max_points = {max_points} must be at least 1.")
    _check_scope(scope)
    key, cfg = cache_key(store, source, reference_run, max_points, scope)
    path = _cache_path(store, key)
    with file_lock(path.name):
        cached = load_npz(path, _ARRAYS)
        if cached is not None:
            parts = load_npz(path, ("parts",)) if scope != "test" else None
            # Sets cached before file names were kept have none: their names stay "<part> #<index>".
            packed = load_npz(path, ("file_names",))
            labels = cached["labels"].astype(np.int64, copy=False)
            return EmbeddingSet(source=source, features=cached["features"].astype(np.float32, copy=False),
                                labels=labels, indices=cached["indices"].astype(np.int64, copy=False),
                                classes=[str(c) for c in cached["classes"]],
                                parts=None if parts is None else parts["parts"].astype(np.int8, copy=False),
                                file_names=None if packed is None else unpack_strings(packed["file_names"],
                                                                                    len(labels)))
        encoder, cfg = encoder_from_source(store, source, reference_run)
        splits = load_data(cfg.data)
        parts, indices = _rows(splits, scope, max_points)
        features = _embed_rows(encoder.to(device), splits, cfg, parts, indices, device, progress)
        labels = np.empty(len(indices), dtype=np.int64)
        for code, part in enumerate(part_labels(splits)):
            where = parts == code
            labels[where] = part[torch.from_numpy(indices[where])].numpy()
        file_names = row_file_names(splits, parts, indices)
        result = EmbeddingSet(source=source, features=features, labels=labels, indices=indices,
                              classes=list(splits.classes), parts=parts if scope != "test" else None,
                              file_names=file_names)
        extra: dict[str, np.ndarray] = {"parts": parts} if scope != "test" else {}
        if file_names is not None:
            extra["file_names"] = pack_strings(file_names)
        save_npz(path, features=result.features, labels=result.labels, indices=result.indices,
                 classes=np.asarray(result.classes, dtype=str), **extra)
        return result
