"""Load image data sets as uint8 images: built-in sets in memory, image folders from their disk cache.

Every source ends up as ``(N, C, H, W)`` uint8 images plus int64 labels (-1 where
unlabelled), split into train/test, a stratified validation split held out of train, a
stratified labelled subset of what remains of train and, for STL10, extra unlabelled images. Augmentation and normalisation happen later on
the device, so nothing here converts to float except the mean/std statistics. An image folder's images
stay in its cache on disk (:mod:`.image_cache`): its splits are rows of the cache, read a batch at a time.

Results are cached in-process (a few entries): callers get tensors that share
storage with the cache and must treat them as read-only (use ``.clone()`` or
``ImageSet.subset`` before modifying anything).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..config import DATASETS, DataConfig
from .builtin import load_source, source_key
from .splits import make_splits
from .types import DataError, DataSplits, ImageSet, Progress

__all__ = [
    "DataError",
    "DataSplits",
    "ImageSet",
    "available_datasets",
    "clear_cache",
    "load_data",
]

_CACHE_SIZE = 4
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
    key = source_key(cfg)
    splits_key = (key, cfg.test_fraction, cfg.val_fraction, cfg.label_fraction, cfg.max_train_images,
                  cfg.max_test_images, cfg.split_seed, cfg.labelled_subset, cfg.subset_seed, cfg.stratified_caps)
    splits = _SPLITS_CACHE.get(splits_key)
    if splits is None:
        source = _SOURCE_CACHE.get(key)
        if source is None:
            source = load_source(cfg, report)
            _SOURCE_CACHE.put(key, source)
        report("Splitting", 0.95)
        splits = make_splits(cfg, source)
        _SPLITS_CACHE.put(splits_key, splits)
    report(f"Loaded {cfg.name}: {len(splits.train)} train, {len(splits.val)} validation, "
           f"{len(splits.test)} test, {len(splits.unlabeled)} unlabelled images", 1.0)
    return splits.handed_out()


