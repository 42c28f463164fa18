"""Splitting a decoded source: a test split where the source has none, a stratified validation split
held out of train, caps, the stratified labelled subset, and the per-channel statistics.

Each purpose draws from its own random stream (:func:`split_rng`), so e.g. changing a cap does not
move the test split. Caps keep each class's share (``stratified_caps``). The labelled subset is drawn
afresh for each training seed (``labelled_subset = "per seed"``: an interval over seeds then covers
which images were labelled) or once from ``split_seed`` (``"fixed"``). A disk-backed set is split without
reading it (its subsets are rows of the same cache), and its statistics come from a sample of its images.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..config import DataConfig
from .disk_images import DiskImages
from .types import DataSplits, ImageSet, Source

MIN_CHANNEL_STD = 1e-3
# Per-channel statistics of a disk-backed set come from this many of its images (all of a smaller set): their
# mean is within a fraction of a grey level of the mean of all, and reading them takes well under a second.
STATS_SAMPLE = 2_000

# One independent random stream per purpose, so e.g. changing a cap does not move the test split.
# Purpose 5 caps STL10's unlabelled images (data_sources).
TEST_SPLIT, TRAIN_CAP, TEST_CAP, LABEL_SUBSET, VAL_SPLIT, VAL_CAP, STATS = 1, 2, 3, 4, 6, 7, 8


def split_rng(cfg: DataConfig, purpose: int) -> np.random.Generator:
    if purpose == LABEL_SUBSET and cfg.labelled_subset == "per seed":
        return np.random.default_rng([cfg.split_seed, purpose, cfg.subset_seed])
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
    val = _cap(train.subset(torch.from_numpy(held)), cfg.max_test_images, split_rng(cfg, VAL_CAP),
               cfg.stratified_caps)
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


def stratified_counts(class_sizes: np.ndarray, cap: int) -> np.ndarray:
    """How many of each class a cap of ``cap`` keeps: its share of ``cap``, rounded by largest remainder.

    The counts sum to ``cap`` and each is within one image of ``cap * size / total``.
    """
    quota = cap * class_sizes / class_sizes.sum()
    counts = np.floor(quota).astype(np.int64)
    # The images the floors leave over go to the classes with the largest remainders (ties: the first).
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[: cap - counts.sum()]] += 1
    return counts


def _cap(images: ImageSet, cap: int | None, rng: np.random.Generator, stratified: bool) -> ImageSet:
    if cap is None or cap >= len(images):
        return images
    if not stratified:
        return images.subset(torch.from_numpy(np.sort(rng.choice(len(images), cap, replace=False))))
    labels = images.labels.numpy()  # unlabelled images (-1) count as a class of their own
    classes, sizes = np.unique(labels, return_counts=True)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:n]
            for c, n in zip(classes, stratified_counts(sizes, cap), strict=True)]
    return images.subset(torch.from_numpy(np.sort(np.concatenate(keep))))


def _channel_stats(images: torch.Tensor | DiskImages,
                   rng: np.random.Generator) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on the 0..1 scale, in chunks to bound memory; from a sample of
    :data:`STATS_SAMPLE` images of a disk-backed set (every image of one in memory, as always)."""
    if isinstance(images, DiskImages) and len(images) > STATS_SAMPLE:
        images = images.take(np.sort(rng.choice(len(images), STATS_SAMPLE, replace=False)))
    channels = images.shape[1]
    # Integer sums of the uint8 pixels are exact: the statistics do not depend on the order torch adds them in
    # (its thread count), so every process gets the same numbers to the last digit.
    total = torch.zeros(channels, dtype=torch.int64)
    total_sq = torch.zeros(channels, dtype=torch.int64)
    count = 0
    # A disk-backed set is read a chunk of at most 2 M values at a time, whatever its image size.
    rows = max(1, 2**21 // max(1, int(np.prod(images.shape[1:])))) if isinstance(images, DiskImages) else 4096
    for start in range(0, len(images), rows):
        x = images[start:start + rows].to(torch.int64).transpose(0, 1).reshape(channels, -1)
        total += x.sum(1)
        total_sq += x.square().sum(1)
        count += x.shape[1]
    if count == 0:
        return (0.0,) * channels, (1.0,) * channels
    scale = 255 * count
    mean = tuple(t / scale for t in total.tolist())
    # count·Σx² − (Σx)² in Python's exact integers; a constant channel (e.g. no blue anywhere) would divide by
    # zero when normalising.
    std = tuple(max(math.sqrt(max(count * q - t * t, 0)) / scale, MIN_CHANNEL_STD)
                for t, q in zip(total.tolist(), total_sq.tolist(), strict=True))
    return mean, std


def _empty_like(images: ImageSet) -> ImageSet:
    return ImageSet(images.images[:0].clone(), images.labels[:0].clone())


def make_splits(cfg: DataConfig, source: Source) -> DataSplits:
    train, test = source.train, source.test
    if test is None:
        tr, te = _split_indices(train.labels.numpy(), cfg.test_fraction, split_rng(cfg, TEST_SPLIT))
        train, test = train.subset(torch.from_numpy(tr)), train.subset(torch.from_numpy(te))
    # Validation comes out of train after the test split and before caps and the label subset:
    # the test split never moves with val_fraction, and no labelled image is a validation image.
    train, val = _hold_out(train, cfg)
    train = _cap(train, cfg.max_train_images, split_rng(cfg, TRAIN_CAP), cfg.stratified_caps)
    test = _cap(test, cfg.max_test_images, split_rng(cfg, TEST_CAP), cfg.stratified_caps)
    keep = _labelled_indices(train.labels.numpy(), cfg.label_fraction, split_rng(cfg, LABEL_SUBSET))
    # With every label kept (the default) share train's tensors instead of copying them.
    labelled = train if len(keep) == len(train) else train.subset(torch.from_numpy(keep))
    unlabeled = source.unlabeled if source.unlabeled is not None else _empty_like(train)
    mean, std = _channel_stats(train.images, split_rng(cfg, STATS))
    return DataSplits(name=cfg.name, classes=list(source.classes), train=train, val=val, test=test,
                      unlabeled=unlabeled, labelled_train=labelled, mean=mean, std=std,
                      skipped_files=list(source.skipped_files))
