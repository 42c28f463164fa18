"""Linear-probe heads: several weight decays trained side by side, the best kept on validation.

BYOL's linear evaluation (Grill et al. 2020, appendix C.1) picks the probe's regularisation on a
held-out validation split. A probe is a linear layer on frozen, precomputed features, so training
one head per weight decay in the same pass over the same batches costs almost nothing more, and
each head learns exactly as it would alone (they share no parameter; Adam scales per element).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

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


__all__ = ["PROBE_WEIGHT_DECAYS", "HeadBank"]
