"""Training stages: BYOL pretraining, supervised training (scratch, finetune) and the linear probe.

Each stage is a :class:`~byol_core.methods.loop.LoopHooks` (its model, update step, evaluation and checkpoint
policy) run by the one loop in :mod:`byol_core.methods.loop`, which reports metric events to callbacks,
can be stopped from another thread and checkpoints enough state to resume with the same step count.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..augment.views import BYOLAugment, build_supervised_augment
from ..config import ExperimentConfig
from ..data import DataSplits, ImageSet
from ..device import autocast, resolve_device, use_bf16
from .evaluation import embed, knn_accuracy, predict_accuracy
from .lars import LARS
from .loop import Callback, LoopHooks, StepPlan, TrainingError, TrainResult, run_loop
from .losses import collapse_std
from .networks import BYOL, Classifier, Encoder, build_encoder
from .optim import build_optimizer, descend
from .probe import PROBE_WEIGHT_DECAYS, HeadBank
from .schedules import cosine_tau

MAX_EVALS = 25  # test-set evaluations per supervised run, at most (plus the final one)


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
    if device.type != "cuda":
        return images
    free, _total = torch.cuda.mem_get_info(device)
    if images.numel() * images.element_size() <= max_share * free:
        try:
            return images.to(device, non_blocking=True)
        except torch.OutOfMemoryError:
            pass
    return images.pin_memory()


def knn_eval(encoder: Encoder, splits: DataSplits, cfg: ExperimentConfig, device: torch.device,
             queries: ImageSet | None = None) -> float:
    """Weighted-kNN accuracy of an encoder on ``queries`` (default: the test set), with the labelled
    training images as the memory bank."""
    train, queries = splits.labelled_train, splits.test if queries is None else queries
    size = cfg.augment.image_size
    train_feats = embed(encoder, train.images, size, splits.mean, splits.std, cfg.eval.batch_size, device)
    query_feats = embed(encoder, queries.images, size, splits.mean, splits.std, cfg.eval.batch_size, device)
    return knn_accuracy(train_feats, train.labels, query_feats, queries.labels,
                        k=cfg.eval.knn_k, temperature=cfg.eval.knn_temperature,
                        num_classes=splits.num_classes)


def byol_step(model: BYOL, augment: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, *,
              lr: float, tau: float, bf16: bool, channels_last: bool,
              forward: Callable[..., Any] | None = None, keep: slice | None = None) -> Any:
    """One BYOL update from a uint8 batch on the training device: augment, forward, backward, EMA.

    ``keep``: the rows this process trains on after augmenting the whole batch (a rank's shard), so
    a sample's views do not depend on how many processes share the batch. Never reads a value back
    to the host, so consecutive steps queue on the GPU without stalls.
    """
    with torch.no_grad():
        view_1, view_2 = augment(images)
    if keep is not None:
        view_1, view_2 = view_1[keep], view_2[keep]
    if channels_last:
        view_1 = view_1.contiguous(memory_format=torch.channels_last)
        view_2 = view_2.contiguous(memory_format=torch.channels_last)
    with autocast(images.device, bf16):
        out = (forward or model)(view_1, view_2)
    descend(optimizer, out.loss, lr)
    model.update_target(tau)
    return out




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


class _BYOLHooks(PretrainingHooks):
    """BYOL on ``splits.pretrain_images()``; labels are looked at only by the kNN check."""

    name, loss_name = "byol", "BYOL"

    def __init__(self, cfg: ExperimentConfig, splits: DataSplits, device: torch.device, bf16: bool) -> None:
        self.cfg, self.splits, self.bf16 = cfg, splits, bf16
        self.images = images_on_device(splits.pretrain_images(), device)
        world = distributed.current()
        plan = StepPlan.for_data(len(self.images), cfg.byol.optim, world.size)
        self.keep = distributed.shard(plan.batch, world)
        model = BYOL.from_config(cfg.model, cfg.augment.image_size).to(device)
        self.synced_batchnorm = distributed.sync_batchnorm(model, device, cfg.runtime.sync_batchnorm_backbone)
        if cfg.runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.augment = BYOLAugment(cfg.augment, splits.mean, splits.std).to(device)
        optimizer = build_optimizer(model.online_parameters(), cfg.byol.optim, device)
        # DDP averages the online gradients over the ranks, so every rank takes the same step and then
        # the same EMA update of its target; the checkpoint holds the unwrapped model.
        parallel = distributed.data_parallel(model, device)
        self.forward = torch.compile(parallel) if cfg.runtime.compile else parallel
        super().__init__(model, optimizer, plan, cfg.byol.optim, device, self.images.device)
        self.tau, self.collapse_reference = cfg.byol.tau_base, 0.0

    def step(self, step: int, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        self.lr = self.learning_rate(step)
        self.tau = cosine_tau(step, self.plan.total_steps, self.cfg.byol.tau_base)
        out = byol_step(self.model, self.augment, self.optimizer, self.images[idx].to(self.device, non_blocking=True),
                        lr=self.lr, tau=self.tau, bf16=self.bf16, channels_last=self.cfg.runtime.channels_last,
                        forward=self.forward, keep=self.keep)
        self.collapse_reference = 1.0 / math.sqrt(out.projections.shape[1])
        return {"loss": out.loss, "collapse_std": collapse_std(out.projections)}

    def step_fields(self, metrics: dict[str, float]) -> dict[str, Any]:
        return {"lr": self.lr, "tau": self.tau, **metrics, "collapse_reference": self.collapse_reference}

    def encoder(self) -> nn.Module:
        return self.model.online_encoder

class _SupervisedHooks(LoopHooks):
    """A classifier trained end to end on the labelled training images, with a light augmentation."""

    loss_name, optim_section = "supervised", "supervised.optim"

    def __init__(self, cfg: ExperimentConfig, splits: DataSplits, mode: str, model: Classifier,
                 device: torch.device, bf16: bool) -> None:
        self.name, self.cfg, self.splits, self.bf16 = mode, cfg, splits, bf16
        train = splits.labelled_train
        self.images = images_on_device(train.images, device)
        self.labels = train.labels.to(device)
        plan = StepPlan.for_data(len(self.images), cfg.supervised.optim)
        self.augment = build_supervised_augment(cfg.augment.image_size, cfg.supervised.crop_scale_min,
                                                cfg.supervised.flip_p, splits.mean, splits.std,
                                                backend=cfg.augment.backend).to(device)
        optimizer = build_optimizer(list(model.parameters()), cfg.supervised.optim, device)
        super().__init__(model, optimizer, plan, cfg.supervised.optim, device, self.images.device)
        # With few labels an epoch is a step or two: test (and checkpoint) at most ~MAX_EVALS times.
        self.eval_every = max(1, math.ceil(plan.total_steps / plan.steps_per_epoch / MAX_EVALS))

    def step(self, step: int, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            x = self.augment(self.images[idx].to(self.device, non_blocking=True))
        if self.cfg.runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self.lr = self.learning_rate(step)
        with autocast(self.device, self.bf16):
            loss = F.cross_entropy(self.model(x).float(), self.labels[idx])
        descend(self.optimizer, loss, self.lr)
        return {"loss": loss}

    def checkpoint_due(self, step: int, epoch: int) -> bool:
        return epoch % self.eval_every == 0 or step == self.plan.total_steps

    def evaluation_due(self, step: int, epoch: int) -> bool:
        return self.checkpoint_due(step, epoch) and len(self.splits.val) > 0

    def evaluate(self) -> dict[str, Any]:
        """Accuracy on the validation split: what the curve shows while training (test is scored once, at the end)."""
        val, cfg = self.splits.val, self.cfg
        return {"val_accuracy": predict_accuracy(self.model, val.images, val.labels, cfg.augment.image_size,
                                                 self.splits.mean, self.splits.std, cfg.eval.batch_size, self.device)}


class _LinearProbeHooks(LoopHooks):
    """Linear heads on features of the frozen encoder, computed once; reports at epoch ends only.

    With a validation split and ``supervised.linear_tune_weight_decay``, one head per weight decay in
    :data:`PROBE_WEIGHT_DECAYS` trains side by side and the best on validation is kept; otherwise one
    head with ``linear_optim.weight_decay``. Either way weight decay is an L2 penalty in the loss.
    """

    name, optim_section = "linear", "supervised.linear_optim"

    def __init__(self, cfg: ExperimentConfig, splits: DataSplits, classifier: Classifier,
                 device: torch.device) -> None:
        size, bs = cfg.augment.image_size, cfg.eval.batch_size
        classifier.eval()
        train = splits.labelled_train
        x_train = embed(classifier.encoder, train.images, size, splits.mean, splits.std, bs, device).to(device)
        x_val = embed(classifier.encoder, splits.val.images, size, splits.mean, splits.std, bs, device).to(device)
        # Standardise with training statistics: makes one learning rate work across backbones.
        self.mu = x_train.mean(0, keepdim=True)
        self.sigma = x_train.std(0, keepdim=True).clamp_min(1e-6)
        self.x_train, self.x_val = (x_train - self.mu) / self.sigma, (x_val - self.mu) / self.sigma
        self.y_train, self.y_val = train.labels.to(device), splits.val.labels.to(device)
        self.classifier = classifier
        optim_cfg = cfg.supervised.linear_optim
        tune = cfg.supervised.linear_tune_weight_decay and len(self.y_val) > 0
        self.weight_decays = PROBE_WEIGHT_DECAYS if tune else (optim_cfg.weight_decay,)
        self.best = 0  # the head kept: the best on validation at the latest evaluation
        heads = HeadBank(x_train.shape[1], splits.num_classes, self.weight_decays).to(device)
        plan = StepPlan.for_data(len(x_train), optim_cfg)
        optimizer = build_optimizer(list(heads.parameters()), replace(optim_cfg, weight_decay=0.0), device)
        super().__init__(heads, optimizer, plan, optim_cfg, device, device)

    def step(self, step: int, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        self.losses = self.model.losses(self.x_train[idx], self.y_train[idx])
        descend(self.optimizer, self.losses.sum(), self.learning_rate(step))
        return {}

    def evaluation_due(self, step: int, epoch: int) -> bool:
        return True  # the loss is reported once per epoch; the validation score when there is a split

    def evaluate(self) -> dict[str, Any]:
        event: dict[str, Any] = {}
        if len(self.y_val):
            accuracies = self.model.accuracies(self.x_val, self.y_val)
            self.best = int(accuracies.argmax())
            event["val_accuracy"] = accuracies[self.best].item()
            event["weight_decay"] = self.weight_decays[self.best]
        event["loss"] = self.losses[self.best].item()  # the kept head's
        return event

    def result_model(self) -> nn.Module:
        """The classifier, its head taking the kept layer with the standardisation folded in (raw features)."""
        weight, bias = self.model.head(self.best)
        with torch.no_grad():
            w = weight / self.sigma
            self.classifier.head.weight.copy_(w)
            self.classifier.head.bias.copy_(bias - (w * self.mu).sum(1))
        return self.classifier


def pretrain_byol(cfg: ExperimentConfig, splits: DataSplits, *, callbacks: Sequence[Callback] = (),
                  stop_event: threading.Event | None = None,
                  checkpoint: dict[str, Any] | None = None,
                  save_checkpoint: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """BYOL pretraining on ``splits.pretrain_images()``; labels are never looked at except by the kNN check.

    ``checkpoint`` (from a previous ``save_checkpoint`` call) resumes at its step.
    """
    device, bf16 = prepare_runtime(cfg)
    torch.manual_seed(cfg.seed)
    stage = _BYOLHooks(cfg, splits, device, bf16)
    if distributed.current().active and not stage.synced_batchnorm:
        for callback in callbacks:
            callback({"kind": "note", "message": "BatchNorm normalises over each process's own shard: torch's "
                                                 "SyncBatchNorm runs on GPUs only"})
    return run_loop(stage, seed=cfg.seed, log_every=cfg.runtime.log_every, callbacks=callbacks,
                    stop_event=stop_event, checkpoint=checkpoint, save_checkpoint=save_checkpoint)


def train_supervised(cfg: ExperimentConfig, splits: DataSplits, mode: str, *,
                     encoder_state: dict[str, torch.Tensor] | None = None,
                     callbacks: Sequence[Callback] = (), stop_event: threading.Event | None = None,
                     checkpoint: dict[str, Any] | None = None,
                     save_checkpoint: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Supervised training on the labelled training images, scored on the validation split while it
    trains and on the test set once at the end.

    ``mode``: ``scratch`` (random init), ``finetune`` (start from ``encoder_state``, train all
    weights) or ``linear`` (frozen encoder from ``encoder_state`` or random, train a linear head
    on precomputed features; seconds long, so it neither resumes nor checkpoints).
    """
    if distributed.current().active:
        raise TrainingError("supervised training does not run under torchrun; start it with plain "
                            "`python -m byol_core`.")
    if mode not in ("scratch", "finetune", "linear"):
        raise ValueError(f"mode = {mode!r}; use 'scratch', 'finetune' or 'linear'.")
    if mode == "finetune" and encoder_state is None:
        raise ValueError("fine-tuning needs a BYOL encoder: pass the run to start from.")
    if mode == "scratch" and encoder_state is not None:
        raise ValueError("mode 'scratch' starts from random weights, yet an encoder was passed; "
                         "use mode 'finetune' to start from it.")
    if splits.num_classes < 2 or len(splits.labelled_train) == 0:
        raise TrainingError(f"data set {splits.name!r} has no labelled training images; supervised "
                            "training needs class labels (for a folder, use one subfolder per class).")
    device, bf16 = prepare_runtime(cfg)
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg.model)
    if encoder_state is not None:
        encoder.model.load_state_dict(encoder_state)
    encoder = encoder.to(device)
    model = Classifier(encoder, encoder.feature_dim(cfg.augment.image_size), splits.num_classes).to(device)
    if cfg.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if mode == "linear":
        checkpoint = save_checkpoint = None
        stage: LoopHooks = _LinearProbeHooks(cfg, splits, model, device)
    else:
        stage = _SupervisedHooks(cfg, splits, mode, model, device, bf16)
    result = run_loop(stage, seed=cfg.seed, log_every=cfg.runtime.log_every, callbacks=callbacks,
                      stop_event=stop_event, checkpoint=checkpoint, save_checkpoint=save_checkpoint)
    # The test set is scored once, by the final model: nothing during training looked at it.
    test = splits.test
    logits = embed(result.model, test.images, cfg.augment.image_size, splits.mean, splits.std, cfg.eval.batch_size,
                   device)
    result.test_predictions = logits.argmax(1)
    result.test_accuracy = (result.test_predictions == test.labels).float().mean().item()
    return result


__all__ = ["LARS", "MAX_EVALS", "Callback", "TrainResult", "TrainingError", "build_optimizer", "byol_step",
           "images_on_device", "knn_eval", "prepare_runtime", "pretrain_byol", "train_supervised"]
