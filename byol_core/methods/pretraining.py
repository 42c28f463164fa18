"""What every self-supervised method shares: the runtime, the data set on the device, the kNN check.

BYOL (:mod:`.byol`) and SimCLR (:mod:`.simclr`) train on ``splits.pretrain_images()`` without labels;
:class:`PretrainingHooks` scores their encoder with weighted kNN on the validation split at epoch
ends (the labelled training images vote: :func:`~byol_core.methods.evaluation.knn_vote`) and
checkpoints every ``runtime.checkpoint_every_epochs``. :func:`prepare_runtime` and
:func:`images_on_device` serve supervised training too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import distributed
from ..config import ExperimentConfig
from ..data import DataSplits, ImageSet
from ..data.disk_images import is_disk_backed
from ..device import resolve_device, use_bf16
from .evaluation import embed, knn_vote
from .loop import LoopHooks


def prepare_runtime(cfg: ExperimentConfig) -> tuple[torch.device, bool]:
    """Device and bf16 flag for a config; sets torch's CPU threads if asked."""
    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)
    device = distributed.local_device(resolve_device(cfg.runtime.device))
    return device, use_bf16(cfg.runtime.precision, device)


def images_on_device(images: torch.Tensor, device: torch.device, max_share: float = 0.4) -> torch.Tensor:
    """The uint8 data set where batches are indexed without DataLoader workers.

    On the GPU when it takes at most ``max_share`` of the free memory (uint8 is 4x smaller than
    float; STL10's 105k images at 96 px are 2.9 GB), else in pinned host memory so each batch
    copies to the GPU asynchronously. CPU and MPS keep host tensors.
    """
    # A cached folder under torchrun stays on disk: each rank reads only its own rows of every batch.
    if device.type != "cuda" or (is_disk_backed(images) and distributed.current().active):
        return images
    free, _total = torch.cuda.mem_get_info(device)
    if images.numel() * images.element_size() <= max_share * free:
        try:
            return images.to(device, non_blocking=True)
        except torch.OutOfMemoryError:
            pass
    return images.pin_memory()


def knn_predictions(encoder: nn.Module, splits: DataSplits, cfg: ExperimentConfig, device: torch.device,
                    queries: ImageSet | None = None) -> torch.Tensor:
    """Weighted-kNN class of each image of ``queries`` (default: the test set), with the labelled
    training images as the memory bank; a CPU ``long`` tensor, one row per query image."""
    queries = splits.test if queries is None else queries
    features = embed(encoder, queries.images, cfg.augment.image_size, splits.mean, splits.std, cfg.eval.batch_size,
                     device)
    return knn_vote(encoder, splits, cfg, features, device)


def knn_accuracy_of(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of predictions equal to their label: the one rule every kNN accuracy here is computed by,
    so a score stored in the results and the mean of the saved per-image correctness agree exactly."""
    return (predictions == labels).float().mean().item()


def knn_eval(encoder: nn.Module, splits: DataSplits, cfg: ExperimentConfig, device: torch.device,
             queries: ImageSet | None = None) -> float:
    """Weighted-kNN accuracy of an encoder on ``queries`` (default: the test set), with the labelled
    training images as the memory bank."""
    queries = splits.test if queries is None else queries
    return knn_accuracy_of(knn_predictions(encoder, splits, cfg, device, queries), queries.labels)


class PretrainingHooks(LoopHooks):
    """What every self-supervised method shares: a kNN check on the validation split and epoch checkpoints.

    Subclasses set ``cfg`` and ``splits`` and say which module is the encoder.
    """

    cfg: ExperimentConfig
    splits: DataSplits

    def encoder(self) -> nn.Module:
        raise NotImplementedError

    def evaluation_due(self, step: int, epoch: int) -> bool:
        # The curve shown while training scores the validation split: the test set is for the final number.
        every = self.cfg.byol.knn_every_epochs
        return bool(every and (epoch % every == 0 or step == self.plan.total_steps)
                    and self.splits.labelled_train.labels.numel() and len(self.splits.val))

    def evaluate(self) -> dict[str, Any]:
        return {"val_knn_accuracy": knn_eval(self.encoder(), self.splits, self.cfg, self.device,
                                             queries=self.splits.val)}

    def checkpoint_due(self, step: int, epoch: int) -> bool:
        return epoch % self.cfg.runtime.checkpoint_every_epochs == 0 or step == self.plan.total_steps


__all__ = ["PretrainingHooks", "images_on_device", "knn_accuracy_of", "knn_eval", "knn_predictions",
           "prepare_runtime"]
