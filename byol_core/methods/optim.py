"""Optimisers from an :class:`OptimConfig`, and the one gradient step every training stage takes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..config import OptimConfig
from .lars import LARS


def build_optimizer(params: Sequence[nn.Parameter], cfg: OptimConfig, device: torch.device) -> torch.optim.Optimizer:
    fused = {"fused": True} if device.type == "cuda" else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.momentum > 0)
    if cfg.optimizer == "lars":
        return LARS(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"optim.optimizer = {cfg.optimizer!r} is not supported.")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor, lr: float) -> None:
    """One optimiser step on ``loss`` at learning rate ``lr`` (the schedule's value for this step)."""
    set_lr(optimizer, lr)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


__all__ = ["build_optimizer", "descend", "set_lr"]
