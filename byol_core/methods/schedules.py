"""Pure schedules: the target's EMA decay and the learning rate."""

from __future__ import annotations

import math


def cosine_tau(step: int, total_steps: int, tau_base: float = 0.99, tau_end: float = 1.0) -> float:
    """EMA decay at ``step``: ``1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2`` (BYOL, sec. 3.2).

    Rises from ``tau_base`` at step 0 to ``tau_end`` (1) at the last step, so the
    target moves less and less as training converges.
    """
    if total_steps <= 0:
        return tau_end
    progress = min(max(step / total_steps, 0.0), 1.0)
    return tau_end - (tau_end - tau_base) * (math.cos(math.pi * progress) + 1.0) / 2.0


def learning_rate(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0,
                  schedule: str = "cosine") -> float:
    """Linear warm-up to ``base_lr``, then cosine decay to 0 (or constant)."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(max((step - warmup_steps) / decay_steps, 0.0), 1.0)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
