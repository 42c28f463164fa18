"""Supervised training: a classifier from scratch, a fine-tuned encoder, or a linear probe on a frozen one.

The baselines BYOL is measured against and the probes that score its encoder. Each trains on the
labelled training images through the one loop (:mod:`.loop`), reads the validation split while it
trains and scores the test set once, at the end; the probe's hooks live beside its heads (:mod:`.probe`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .. import distributed
from ..augment.views import build_supervised_augment
from ..config import ExperimentConfig
from ..data import DataSplits
from ..device import autocast
from ..events import Callback
from .evaluation import embed, predict_accuracy
from .loop import LoopHooks, StepPlan, TrainingError, TrainResult, run_loop
from .networks import Classifier, build_encoder
from .optim import build_optimizer, descend
from .pretraining import images_on_device, prepare_runtime
from .probe import LinearProbeHooks

MAX_EVALS = 25  # validation evaluations (and checkpoints) per supervised run, at most
# train_supervised's modes, spelled once: the lab's supervised stages are named after them.
SCRATCH, FINETUNE, LINEAR = "scratch", "finetune", "linear"
MODES = (SCRATCH, FINETUNE, LINEAR)


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
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}; use {', '.join(map(repr, MODES))}.")
    if mode == FINETUNE and encoder_state is None:
        raise ValueError("fine-tuning needs a BYOL encoder: pass the run to start from.")
    if mode == SCRATCH and encoder_state is not None:
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
    if mode == LINEAR:
        checkpoint = save_checkpoint = None
        hooks: LoopHooks = LinearProbeHooks(mode, cfg, splits, model, device)
    else:
        hooks = _SupervisedHooks(cfg, splits, mode, model, device, bf16)
    result = run_loop(hooks, seed=cfg.seed, log_every=cfg.runtime.log_every, callbacks=callbacks,
                      stop_event=stop_event, checkpoint=checkpoint, save_checkpoint=save_checkpoint)
    # The test set is scored once, by the final model: nothing during training looked at it.
    test = splits.test
    logits = embed(result.model, test.images, cfg.augment.image_size, splits.mean, splits.std, cfg.eval.batch_size,
                   device)
    result.test_predictions = logits.argmax(1)
    result.test_accuracy = (result.test_predictions == test.labels).float().mean().item()
    return result


__all__ = ["FINETUNE", "LINEAR", "MAX_EVALS", "MODES", "SCRATCH", "train_supervised"]
