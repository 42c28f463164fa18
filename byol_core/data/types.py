"""The data containers every loader fills and every stage reads: uint8 images, in memory or on disk.

Every source ends up as ``(N, C, H, W)`` uint8 images plus int64 labels (-1 where unlabelled): a tensor,
or for image folders a :class:`~byol_core.data.disk_images.DiskImages` whose rows are read per batch from
the folder's cache. Augmentation and normalisation happen later on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .. import distributed
from .disk_images import DiskImages

Progress = Callable[[str, float], None]


class DataError(RuntimeError):
    """A data set could not be loaded; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class ImageSet:
    """Images and labels.

    ``images`` is uint8 ``(N, C, H, W)`` with C in {1, 3}: a tensor in memory, or a :class:`DiskImages`
    (indexing it reads just those rows); ``labels`` is int64 ``(N,)`` with -1 for unlabelled images, always in
    memory. Treat both as read-only: they may be shared with the loader's cache.
    """

    images: torch.Tensor | DiskImages
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
        """A new ImageSet of the selected images (an index tensor, list or mask): copies in memory, or the
        same rows on disk (nothing read) for a disk-backed set."""
        if not isinstance(index, torch.Tensor):
            index = torch.as_tensor(list(index), dtype=torch.long)
        if isinstance(self.images, DiskImages):
            return ImageSet(self.images.take(index), self.labels[index])
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

    def handed_out(self) -> DataSplits:
        """The same splits with lists of their own: a caller appending to them cannot change a cached copy."""
        return replace(self, classes=list(self.classes), skipped_files=list(self.skipped_files))

    def pretrain_images(self) -> torch.Tensor | DiskImages:
        """Train plus extra unlabelled images: what BYOL pretrains on (read-only; may be shared).

        On disk they stay on disk; under torchrun (only BYOL pretraining runs there) each rank then reads
        only its own shard of every global batch.
        """
        images, extra = self.train.images, self.unlabeled.images
        if isinstance(images, DiskImages):
            if len(extra):
                images = images.concat(extra) if isinstance(extra, DiskImages) else torch.cat([images, extra])
            return images.sharded() if isinstance(images, DiskImages) and distributed.current().active else images
        return images if len(extra) == 0 else torch.cat([images, extra])


@dataclass(frozen=True)
class Source:
    """Decoded images before splitting; ``test`` is None when the source has no test split."""

    classes: list[str]
    train: ImageSet
    test: ImageSet | None
    unlabeled: ImageSet | None = None
    skipped_files: tuple[str, ...] = ()


def as_image_set(images: np.ndarray | torch.Tensor, labels: Any) -> ImageSet:
    """An :class:`ImageSet` from ``(N, C, H, W)`` images and integer labels of any array type."""
    images = torch.as_tensor(np.ascontiguousarray(images) if isinstance(images, np.ndarray) else images)
    return ImageSet(images.to(torch.uint8), torch.as_tensor(np.asarray(labels), dtype=torch.int64))
