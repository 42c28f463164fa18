"""Load image data sets into memory as uint8 tensors.

Every source ends up as ``(N, C, H, W)`` uint8 images plus int64 labels (-1 where
unlabelled), split into train/test, a stratified validation split held out of train, a
stratified labelled subset of what remains of train and, for STL10, extra unlabelled images. Augmentation and normalisation happen later on
the device, so nothing here converts to float except the mean/std statistics.

Results are cached in-process (a few entries): callers get tensors that share
storage with the cache and must treat them as read-only (use ``.clone()`` or
``ImageSet.subset`` before modifying anything).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .config import DATASETS, DataConfig

__all__ = [
    "DataError",
    "DataSplits",
    "ImageSet",
    "available_datasets",
    "clear_cache",
    "load_data",
]

_CACHE_SIZE = 4
MIN_CHANNEL_STD = 1e-3

Progress = Callable[[str, float], None]


class DataError(RuntimeError):
    """A data set could not be loaded; the message says what is wrong and what to do."""


# --------------------------------------------------------------------------- containers
@dataclass(frozen=True)
class ImageSet:
    """Images and labels held in memory.

    ``images`` is uint8 ``(N, C, H, W)`` with C in {1, 3}; ``labels`` is int64 ``(N,)``
    with -1 for unlabelled images. Treat both as read-only: they may be shared with
    the loader's cache.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"ImageSet.images must be uint8 (N, C, H, W) with C 1 or 3, "
                             f"got {images.dtype} {tuple(images.shape)}.")
        if labels.dtype != torch.int64 or labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"ImageSet.labels must be int64 (N,) with N = {len(images)}, "
                             f"got {labels.dtype} {tuple(labels.shape)}.")
        # Downstream code slices batches and moves them to the device; contiguous keeps that cheap.
        object.__setattr__(self, "images", images.contiguous())
        object.__setattr__(self, "labels", labels.contiguous())

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor | Sequence[int]) -> ImageSet:
        """A new ImageSet holding copies of the selected images (an index tensor, list or mask)."""
        if not isinstance(index, torch.Tensor):
            index = torch.as_tensor(list(index), dtype=torch.long)
        return ImageSet(self.images[index], self.labels[index])


@dataclass(frozen=True)
class DataSplits:
    """A loaded data set: train/val/test splits, the labelled subset and statistics.

    ``val`` is held out of ``train`` (neither pretraining nor the labelled subset sees it): choices
    made while training score it, the test set only gives the final numbers.
    """

    name: str
    classes: list[str]
    train: ImageSet
    val: ImageSet
    test: ImageSet
    unlabeled: ImageSet
    labelled_train: ImageSet
    mean: tuple[float, ...]
    std: tuple[float, ...]
    skipped_files: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def pretrain_images(self) -> torch.Tensor:
        """Train plus extra unlabelled images: what BYOL pretrains on (read-only; may be shared)."""
        if len(self.unlabeled) == 0:
            return self.train.images
        return torch.cat([self.train.images, self.unlabeled.images])


@dataclass(frozen=True)
class Source:
    """Decoded images before splitting; ``test`` is None when the source has no test split."""

    classes: list[str]
    train: ImageSet
    test: ImageSet | None
    unlabeled: ImageSet | None = None
    skipped_files: tuple[str, ...] = ()


# --------------------------------------------------------------------------- cache
class _LRU:
    """A small thread-safe LRU dict (the dashboard loads from several threads)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# Decoded sources are cached separately from splits so changing e.g. label_fraction
# in the dashboard does not decode the images again.
_SOURCE_CACHE = _LRU(_CACHE_SIZE)
_SPLITS_CACHE = _LRU(_CACHE_SIZE)


def clear_cache() -> None:
    """Forget every cached data set (e.g. after files on disk changed)."""
    _SOURCE_CACHE.clear()
    _SPLITS_CACHE.clear()


# --------------------------------------------------------------------------- public API
def available_datasets() -> list[str]:
    """Names accepted by ``DataConfig.name``."""
    return list(DATASETS)


def load_data(cfg: DataConfig, progress: Progress | None = None) -> DataSplits:
    """Load ``cfg.name`` into memory and split it as ``cfg`` asks.

    ``progress(message, fraction)`` is called at start, after each split is loaded
    and when done. Results are cached per process; the returned tensors are shared
    with the cache and must not be modified in place.
    """
    report = progress or (lambda message, fraction: None)
    report(f"Loading {cfg.name}", 0.0)
    from .data_sources import load_source, source_key  # the loaders build this module's containers

    source_key = source_key(cfg)
    splits_key = (source_key, cfg.test_fraction, cfg.val_fraction, cfg.label_fraction, cfg.max_train_images,
                  cfg.max_test_images, cfg.split_seed)
    splits = _SPLITS_CACHE.get(splits_key)
    if splits is None:
        source = _SOURCE_CACHE.get(source_key)
        if source is None:
            source = load_source(cfg, report)
            _SOURCE_CACHE.put(source_key, source)
        report("Splitting", 0.95)
        splits = _make_splits(cfg, source)
        _SPLITS_CACHE.put(splits_key, splits)
    report(f"Loaded {cfg.name}: {len(splits.train)} train, {len(splits.val)} validation, "
           f"{len(splits.test)} test, {len(splits.unlabeled)} unlabelled images", 1.0)
    # Fresh lists so a caller appending to them cannot change the cached copy.
    return dataclasses.replace(splits, classes=list(splits.classes),
                               skipped_files=list(splits.skipped_files))


# --------------------------------------------------------------------------- splitting
# One independent random stream per purpose, so e.g. changing a cap does not move the test split.
# Purpose 5 caps STL10's unlabelled images (data_sources).
TEST_SPLIT, TRAIN_CAP, TEST_CAP, LABEL_SUBSET, VAL_SPLIT, VAL_CAP = 1, 2, 3, 4, 6, 7


def split_rng(cfg: DataConfig, purpose: int) -> np.random.Generator:
    return np.random.default_rng([cfg.split_seed, purpose])


def _split_indices(labels: np.ndarray, fraction: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices; per class when labelled, keeping >= 1 train image per group."""
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    train, test = [], []
    for idx in groups:
        n = len(idx)
        n_test = round(fraction * n)
        # A group of two or more gets at least one test image; every group keeps one for training.
        n_test = min(max(n_test, 1 if n >= 2 else 0), n - 1)
        perm = rng.permutation(idx)
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _validation_indices(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Stratified held-out indices: round(fraction * n_c) of each labelled class, leaving it >= 1 image.

    Unlabelled images (-1) are never held out: validation is scored with labels. Small classes
    (round gives 0) give none, so a tiny set gets an empty validation split.
    """
    held = [np.zeros(0, dtype=np.int64)]
    if fraction > 0:
        for c in np.unique(labels[labels >= 0]):
            idx = np.flatnonzero(labels == c)
            held.append(rng.permutation(idx)[:min(round(fraction * len(idx)), len(idx) - 1)])
    return np.sort(np.concatenate(held))


def _hold_out(train: ImageSet, cfg: DataConfig) -> tuple[ImageSet, ImageSet]:
    """Train without the validation images, and the validation images (capped like the test set)."""
    held = _validation_indices(train.labels.numpy(), cfg.val_fraction, split_rng(cfg, VAL_SPLIT))
    if len(held) == 0:
        return train, _empty_like(train)  # no copy: train stays shared with the cache
    rest = np.setdiff1d(np.arange(len(train)), held)
    # The validation set is scored like the test set, so the same cap bounds what scoring it costs.
    val = _cap(train.subset(torch.from_numpy(held)), cfg.max_test_images, split_rng(cfg, VAL_CAP))
    return train.subset(torch.from_numpy(rest)), val


def _labelled_indices(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Stratified subset keeping round(fraction * n_c) (at least 1) of each class; skips -1."""
    keep = []
    for c in np.unique(labels[labels >= 0]):
        idx = np.flatnonzero(labels == c)
        n_keep = min(max(round(fraction * len(idx)), 1), len(idx))
        keep.append(rng.permutation(idx)[:n_keep])
    if not keep:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(keep))


def _cap(images: ImageSet, cap: int | None, rng: np.random.Generator) -> ImageSet:
    if cap is None or cap >= len(images):
        return images
    return images.subset(torch.from_numpy(np.sort(rng.choice(len(images), cap, replace=False))))


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on the 0..1 scale, in chunks to bound memory."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for chunk in torch.split(images, 4096):
        x = chunk.to(torch.float64).div_(255.0).transpose(0, 1).reshape(channels, -1)
        total += x.sum(1)
        total_sq += x.square().sum(1)
        count += x.shape[1]
    if count == 0:
        return (0.0,) * channels, (1.0,) * channels
    mean = total / count
    # A constant channel (e.g. no blue anywhere) would divide by zero when normalising.
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt().clamp_min(MIN_CHANNEL_STD)
    return tuple(mean.tolist()), tuple(std.tolist())


def _empty_like(images: ImageSet) -> ImageSet:
    return ImageSet(images.images[:0].clone(), images.labels[:0].clone())


def _make_splits(cfg: DataConfig, source: Source) -> DataSplits:
    train, test = source.train, source.test
    if test is None:
        tr, te = _split_indices(train.labels.numpy(), cfg.test_fraction, split_rng(cfg, TEST_SPLIT))
        train, test = train.subset(torch.from_numpy(tr)), train.subset(torch.from_numpy(te))
    # Validation comes out of train after the test split and before caps and the label subset:
    # the test split never moves with val_fraction, and no labelled image is a validation image.
    train, val = _hold_out(train, cfg)
    train = _cap(train, cfg.max_train_images, split_rng(cfg, TRAIN_CAP))
    test = _cap(test, cfg.max_test_images, split_rng(cfg, TEST_CAP))
    keep = _labelled_indices(train.labels.numpy(), cfg.label_fraction, split_rng(cfg, LABEL_SUBSET))
    # With every label kept (the default) share train's tensors instead of copying them.
    labelled = train if len(keep) == len(train) else train.subset(torch.from_numpy(keep))
    unlabeled = source.unlabeled if source.unlabeled is not None else _empty_like(train)
    mean, std = _channel_stats(train.images)
    return DataSplits(name=cfg.name, classes=list(source.classes), train=train, val=val, test=test,
                      unlabeled=unlabeled, labelled_train=labelled, mean=mean, std=std,
                      skipped_files=list(source.skipped_files))
