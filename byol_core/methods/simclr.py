"""SimCLR (Chen et al. 2020), the contrastive baseline BYOL is measured against.

The same backbone, projector and two augmented views as BYOL, but no predictor and no target
network: both views go through one network and NT-Xent (:func:`~byol_core.methods.losses.nt_xent_loss`)
pulls each view towards its partner and away from the other 2N - 2 views in the batch. It trains
with ``byol.optim`` (the same epochs, batch, learning rate and schedule as BYOL) so a comparison of
the two methods is one of methods, not of budgets; ``simclr.temperature`` is its only own setting.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..augment.views import BYOLAugment
from ..config import ExperimentConfig
from ..data import DataSplits
from ..device import autocast
from ..events import Callback
from .loop import StepPlan, TrainResult, run_loop
from .losses import collapse_std, nt_xent_loss
from .networks import Encoder, build_backbone, mlp
from .optim import build_optimizer, descend
from .pretraining import PretrainingHooks, images_on_device, prepare_runtime


@dataclass
class SimCLROutput:
    loss: torch.Tensor
    projections: torch.Tensor  # projections of both views, detached, for the collapse monitor


class SimCLR(nn.Module):
    """Encoder and projector (BYOL's online network without its predictor), trained with NT-Xent."""

    def __init__(self, backbone: nn.Module, image_size: int, hidden_layer: str | None = None,
                 projector_hidden: int = 4096, projector_out: int = 256, temperature: float = 0.1) -> None:
        super().__init__()
        self.encoder = Encoder(backbone, hidden_layer)
        self.feature_dim = self.encoder.feature_dim(image_size)
        self.projector = mlp(self.feature_dim, projector_hidden, projector_out)
        self.temperature = temperature

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> SimCLR:
        m = cfg.model
        return cls(build_backbone(m), cfg.augment.image_size, m.hidden_layer, m.projector_hidden, m.projector_out,
                   cfg.simclr.temperature)

    def forward(self, view_1: torch.Tensor, view_2: torch.Tensor) -> SimCLROutput:
        batch = view_1.shape[0]
        # Both views in one pass, as in BYOL: BatchNorm sees the same 2N images either way.
        projections = self.projector(self.encoder(torch.cat([view_1, view_2])))
        loss = nt_xent_loss(projections[:batch], projections[batch:], self.temperature)
        return SimCLROutput(loss=loss, projections=projections.detach())


def simclr_step(model: SimCLR, augment: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, *,
                lr: float, bf16: bool, channels_last: bool, forward: Callable[..., Any] | None = None) -> SimCLROutput:
    """One SimCLR update from a uint8 batch on the training device: two views, forward, backward."""
    with torch.no_grad():
        views = augment(images)
    if channels_last:
        views = tuple(v.contiguous(memory_format=torch.channels_last) for v in views)
    with autocast(images.device, bf16):
        out = (forward or model)(*views)
    descend(optimizer, out.loss, lr)
    return out


class SimCLRHooks(PretrainingHooks):
    """SimCLR on ``splits.pretrain_images()`` with ``byol.optim``; labels are looked at only by the kNN check."""

    name, loss_name = "simclr", "SimCLR"

    def __init__(self, cfg: ExperimentConfig, splits: DataSplits, device: torch.device, bf16: bool) -> None:
        self.cfg, self.splits, self.bf16 = cfg, splits, bf16
        self.images = images_on_device(splits.pretrain_images(), device)
        plan = StepPlan.for_data(len(self.images), cfg.byol.optim)
        model = SimCLR.from_config(cfg).to(device)
        if cfg.runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.augment = BYOLAugment(cfg.augment, splits.mean, splits.std).to(device)
        optimizer = build_optimizer(list(model.parameters()), cfg.byol.optim, device)
        self.forward = torch.compile(model) if cfg.runtime.compile else model
        super().__init__(model, optimizer, plan, cfg.byol.optim, device, self.images.device)
        self.collapse_reference = 0.0

    def step(self, step: int, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        self.lr = self.learning_rate(step)
        out = simclr_step(self.model, self.augment, self.optimizer,
                          self.images[idx].to(self.device, non_blocking=True), lr=self.lr, bf16=self.bf16,
                          channels_last=self.cfg.runtime.channels_last, forward=self.forward)
        self.collapse_reference = 1.0 / math.sqrt(out.projections.shape[1])
        return {"loss": out.loss, "collapse_std": collapse_std(out.projections)}

    def step_fields(self, metrics: dict[str, float]) -> dict[str, Any]:
        return {"lr": self.lr, **metrics, "collapse_reference": self.collapse_reference}

    def encoder(self) -> nn.Module:
        return self.model.encoder


def pretrain_simclr(cfg: ExperimentConfig, splits: DataSplits, *, callbacks: Sequence[Callback] = (),
                    stop_event: threading.Event | None = None, checkpoint: dict[str, Any] | None = None,
                    save_checkpoint: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """SimCLR pretraining on ``splits.pretrain_images()``; ``checkpoint`` resumes at its step."""
    device, bf16 = prepare_runtime(cfg)
    torch.manual_seed(cfg.seed)
    hooks = SimCLRHooks(cfg, splits, device, bf16)
    return run_loop(hooks, seed=cfg.seed, log_every=cfg.runtime.log_every, callbacks=callbacks,
                    stop_event=stop_event, checkpoint=checkpoint, save_checkpoint=save_checkpoint)


__all__ = ["SimCLR", "SimCLRHooks", "SimCLROutput", "pretrain_simclr", "simclr_step"]
