"""Exponential moving average of the online network into the target network."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def update_momentum(online: nn.Module, target: nn.Module, tau: float) -> None:
    """``target <- tau * target + (1 - tau) * online`` for every parameter (BYOL, eq. 1).

    Done with fused ``torch._foreach`` ops: one kernel launch for all tensors
    instead of one per parameter. Buffers (BatchNorm running statistics) are
    copied, as the target uses batch statistics during training anyway.
    """
    online_params = [p.detach() for p in online.parameters()]
    target_params = [p for p in target.parameters()]
    if len(online_params) != len(target_params):
        raise ValueError("online and target networks have different parameter lists.")
    if target_params:
        # lerp(t, o, w) = t + w (o - t) = (1 - w) t + w o, with w = 1 - tau.
        torch._foreach_lerp_(target_params, online_params, 1.0 - tau)
    for t_buf, o_buf in zip(target.buffers(), online.buffers()):
        t_buf.copy_(o_buf)
