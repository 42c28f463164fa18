"""BYOL, Bootstrap Your Own Latent (Grill et al. 2020, arXiv:2006.07733): self-supervised learning without negatives.

Each image gives two augmented views. The online network (encoder, projector, predictor) learns to predict
the target network's projection of the other view; the loss is ``2 - 2 cos(p, z)``, symmetrised over the
views (eq. 2). The target (encoder, projector) gets no gradient: after each optimiser step it moves towards
the online network by an exponential moving average with decay τ (eq. 1), τ rising from ``byol.tau_base``
to 1 on a cosine. With no negative pairs, the predictor and the slow target are what keep it from collapsing;
the online encoder is what is kept. :func:`byol_step` is one update whole (loss, optimiser step, EMA), as in
DeepMind's ``_update_fn`` and solo-learn's ``methods/byol.py``.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import distributed
from ..augment.views import BYOLAugment
from ..config import ExperimentConfig, ModelConfig
from ..data import DataSplits
from ..device import autocast
from ..events import NOTE, Callback
from .ema import update_momentum
from .loop import StepPlan, TrainResult, run_loop
from .losses import collapse_std, symmetric_byol_loss
from .networks import Encoder, build_backbone, mlp
from .optim import build_optimizer, descend
from .pretraining import PretrainingHooks, images_on_device, prepare_runtime
from .schedules import cosine_tau


@dataclass
class BYOLOutput:
    """Both views through both networks, view 1's rows first: what the loss compares."""

    predictions: torch.Tensor  # online predictions q(g(f(v)))
    targets: torch.Tensor      # target projections g'(f'(v)), computed without gradient
    projections: torch.Tensor  # online projections, detached, for the collapse monitor


class BYOL(nn.Module):
    """Online encoder+projector+predictor and a *separate* target encoder+projector.

    The target is a deep copy made once at construction; its parameters never receive gradients
    and change only through the EMA in :func:`byol_step`.
    """

    def __init__(self, backbone: nn.Module, image_size: int, hidden_layer: str | None = None,
                 projector_hidden: int = 4096, projector_out: int = 256, predictor_hidden: int = 4096) -> None:
        super().__init__()
        target_backbone = copy.deepcopy(backbone)
        self.online_encoder = Encoder(backbone, hidden_layer)
        feat_dim = self.online_encoder.feature_dim(image_size)
        self.feature_dim = feat_dim
        self.online_projector = mlp(feat_dim, projector_hidden, projector_out)
        self.predictor = mlp(projector_out, predictor_hidden, projector_out)
        self.target_encoder = Encoder(target_backbone, hidden_layer)
        self.target_projector = copy.deepcopy(self.online_projector)
        self.target_encoder.load_state_dict(self.online_encoder.state_dict())
        for p in self.target_parameters():
            p.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg: ModelConfig, image_size: int) -> BYOL:
        return cls(build_backbone(cfg), image_size, cfg.hidden_layer,
                   cfg.projector_hidden, cfg.projector_out, cfg.predictor_hidden)

    def online_parameters(self) -> list[nn.Parameter]:
        """What the optimiser updates: online encoder, projector and predictor."""
        return [*self.online_encoder.parameters(), *self.online_projector.parameters(),
                *self.predictor.parameters()]

    def target_parameters(self) -> list[nn.Parameter]:
        return [*self.target_encoder.parameters(), *self.target_projector.parameters()]

    def forward(self, view_1: torch.Tensor, view_2: torch.Tensor) -> BYOLOutput:
        both = torch.cat([view_1, view_2])
        # Both views in one online pass: one larger batch is faster than two.
        projections = self.online_projector(self.online_encoder(both))
        predictions = self.predictor(projections)
        with torch.no_grad():
            targets = self.target_projector(self.target_encoder(both))
        return BYOLOutput(predictions=predictions, targets=targets, projections=projections.detach())


def byol_step(model: BYOL, augment: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
              optimizer: torch.optim.Optimizer, images: torch.Tensor, *, lr: float, tau: float, bf16: bool,
              channels_last: bool, forward: Callable[..., BYOLOutput] | None = None,
              keep: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One BYOL update from a uint8 batch on the training device: two views, the loss, a step, the EMA.

    ``forward``: what runs ``model``'s forward (its DistributedDataParallel or torch.compile wrapper),
    so DDP all-reduces the online gradients. ``keep``: the rows this process trains on after augmenting
    the whole batch (a rank's shard), so a sample's views do not depend on how many processes share the
    batch. Returns the loss and the online projections (detached) as device tensors: nothing is read
    back to the host, so consecutive steps queue on the GPU without stalls.
    """
    with torch.no_grad():
        view_1, view_2 = augment(images)
    if keep is not None:
        view_1, view_2 = view_1[keep], view_2[keep]
    if channels_last:
        view_1 = view_1.contiguous(memory_format=torch.channels_last)
        view_2 = view_2.contiguous(memory_format=torch.channels_last)
    batch = view_1.shape[0]
    with autocast(images.device, bf16):
        out = (forward or model)(view_1, view_2)
        p, z = out.predictions, out.targets
        # View 1's prediction regresses view 2's target and vice versa (eq. 2).
        loss = symmetric_byol_loss(p[:batch], p[batch:], z[:batch], z[batch:])
    descend(optimizer, loss, lr)
    # The target follows the online network: target <- tau * target + (1 - tau) * online (eq. 1).
    update_momentum(model.online_encoder, model.target_encoder, tau)
    update_momentum(model.online_projector, model.target_projector, tau)
    return loss, out.projections


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
        loss, projections = byol_step(self.model, self.augment, self.optimizer,
                                      self.images[idx].to(self.device, non_blocking=True), lr=self.lr, tau=self.tau,
                                      bf16=self.bf16, channels_last=self.cfg.runtime.channels_last,
                                      forward=self.forward, keep=self.keep)
        self.collapse_reference = 1.0 / math.sqrt(projections.shape[1])
        return {"loss": loss, "collapse_std": collapse_std(projections)}

    def step_fields(self, metrics: dict[str, float]) -> dict[str, Any]:
        return {"lr": self.lr, "tau": self.tau, **metrics, "collapse_reference": self.collapse_reference}

    def encoder(self) -> nn.Module:
        return self.model.online_encoder


def pretrain_byol(cfg: ExperimentConfig, splits: DataSplits, *, callbacks: Sequence[Callback] = (),
                  stop_event: threading.Event | None = None,
                  checkpoint: dict[str, Any] | None = None,
                  save_checkpoint: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """BYOL pretraining on ``splits.pretrain_images()``; labels are never looked at except by the kNN check.

    ``checkpoint`` (from a previous ``save_checkpoint`` call) resumes at its step.
    """
    device, bf16 = prepare_runtime(cfg)
    torch.manual_seed(cfg.seed)
    hooks = _BYOLHooks(cfg, splits, device, bf16)
    if distributed.current().active and not hooks.synced_batchnorm:
        for callback in callbacks:
            callback({"kind": NOTE, "message": "BatchNorm normalises over each process's own shard: torch's "
                                               "SyncBatchNorm runs on GPUs only"})
    return run_loop(hooks, seed=cfg.seed, log_every=cfg.runtime.log_every, callbacks=callbacks,
                    stop_event=stop_event, checkpoint=checkpoint, save_checkpoint=save_checkpoint)


__all__ = ["BYOL", "BYOLOutput", "byol_step", "pretrain_byol"]
