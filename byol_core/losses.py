"""Pure loss and collapse-monitor functions for BYOL (Grill et al. 2020, eq. 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def regression_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Normalised MSE between predictions and targets, ``2 - 2 cos(p, z)``, averaged over the batch.

    BYOL, eq. 2: ``||p/|p| - z/|z|||^2 = 2 - 2 <p, z> / (|p| |z|)``. The target is
    detached here so no gradient can reach the target network by mistake.
    """
    p = F.normalize(prediction.float(), dim=-1)
    z = F.normalize(target.detach().float(), dim=-1)
    return (2.0 - 2.0 * (p * z).sum(dim=-1)).mean()


def symmetric_byol_loss(pred_1: torch.Tensor, pred_2: torch.Tensor,
                        target_1: torch.Tensor, target_2: torch.Tensor) -> torch.Tensor:
    """BYOL's symmetrised loss: view 1's prediction regresses view 2's target and vice versa.

    Returned as the mean of the two terms (the paper sums them), so the value stays
    in ``[0, 4]`` and ``1 - loss / 2`` is the mean cosine similarity.
    """
    return 0.5 * (regression_loss(pred_1, target_2) + regression_loss(pred_2, target_1))


def collapse_std(embeddings: torch.Tensor) -> torch.Tensor:
    """Mean per-dimension std of L2-normalised embeddings (solo-learn's collapse metric).

    About ``1/sqrt(d)`` for embeddings spread over the sphere, 0 when every
    input maps to the same point (complete collapse).
    """
    z = F.normalize(embeddings.detach().float(), dim=-1)
    return z.std(dim=0).mean()

