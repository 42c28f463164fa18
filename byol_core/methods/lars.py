"""LARS: SGD with layer-wise trust ratios (You et al. 2017), the optimiser BYOL used for large batches."""

from __future__ import annotations

import torch


class LARS(torch.optim.Optimizer):
    """SGD with layer-wise trust ratios (You et al. 2017), as BYOL used for large batches.

    Biases and BatchNorm parameters (1-d tensors) skip weight decay and adaptation, as in the paper.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "trust_coefficient": trust_coefficient})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if p.ndim > 1:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    p_norm, g_norm = p.norm(), grad.norm()
                    ratio = torch.where((p_norm > 0) & (g_norm > 0),
                                        group["trust_coefficient"] * p_norm / g_norm, torch.ones_like(p_norm))
                    grad = grad * ratio
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = grad.clone()
                else:
                    buf.mul_(group["momentum"]).add_(grad)
                p.add_(buf, alpha=-group["lr"])


__all__ = ["LARS"]
