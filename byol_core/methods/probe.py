"""Linear-probe heads: several weight decays trained side by side, the best kept on validation.

BYOL's linear evaluation (Grill et al. 2020, appendix C.1) picks the probe's regularisation on a
held-out validation split. A probe is a linear layer on frozen, precomputed features, so training
one head per weight decay in the same pass over the same batches costs almost nothing more, and
each head learns exactly as it would alone (they share no parameter; Adam scales per element).
:class:`LinearProbeHooks` runs them in the training loop for ``train_supervised`` in its linear mode.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ExperimentConfig
from ..data import DataSplits
from .evaluation import embed
from .loop import LoopHooks, StepPlan
from .networks import Classifier
from .optim import build_optimizer, descend

# Spans "none" to strong: with 600 labels and 256 features the best on validation is ~3e-2, with
# 54,000 labels it is 1e-4 or less (Fashion-MNIST, benchmarks/accuracy_vs_minutes.py).
PROBE_WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1)


class HeadBank(nn.Module):
    """``len(weight_decays)`` linear classifiers over the same features, each with its own L2 penalty."""

    def __init__(self, in_dim: int, num_classes: int, weight_decays: tuple[float, ...]) -> None:
        super().__init__()
        if not weight_decays:
            raise ValueError("HeadBank needs at least one weight decay.")
        k = len(weight_decays)
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default initialisation, per head
        self.weight = nn.Parameter(torch.empty(k, num_classes, in_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(k, num_classes).uniform_(-bound, bound))
        self.register_buffer("weight_decays", torch.tensor(weight_decays, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every head: (heads, batch, classes)."""
        return torch.einsum("bd,kcd->kbc", x, self.weight) + self.bias[:, None, :]

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each head's cross-entropy plus (wd / 2)·‖W‖². Descend their sum: a head's gradient is its own."""
        logits = self(x)
        ce = F.cross_entropy(logits.flatten(0, 1), y.repeat(len(logits)), reduction="none").view(len(logits), -1)
        penalty = 0.5 * self.weight_decays * self.weight.square().sum((1, 2))
        return ce.mean(1) + penalty

    @torch.no_grad()
    def accuracies(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Accuracy of each head on (x, y)."""
        return (self(x).argmax(2) == y).float().mean(1)

    def head(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One head's (weight, bias), as an ``nn.Linear`` holds them."""
        return self.weight[index], self.bias[index]


class LinearProbeHooks(LoopHooks):
    """Linear heads on features of the frozen encoder, computed once; reports at epoch ends only.

    With a validation split and ``supervised.linear_tune_weight_decay``, one head per weight decay in
    :data:`PROBE_WEIGHT_DECAYS` trains side by side and the best on validation is kept; otherwise one
    head with ``linear_optim.weight_decay``. Either way weight decay is an L2 penalty in the loss.
    """

    optim_section = "supervised.linear_optim"

    def __init__(self, name: str, cfg: ExperimentConfig, splits: DataSplits, classifier: Classifier,
                 device: torch.device) -> None:
        self.name = name  # the mode it runs as (the ``stage`` of its events)
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


__all__ = ["PROBE_WEIGHT_DECAYS", "HeadBank", "LinearProbeHooks"]
