"""Pure loss and collapse-monitor functions: BYOL (Grill et al. 2020, eq. 2) and SimCLR's NT-Xent (Chen et al. 2020)."""

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


def nt_xent_loss(z_1: torch.Tensor, z_2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent: each of the 2N views must pick its partner among the other 2N - 1 by cosine / temperature.

    ``z_1[i]`` and ``z_2[i]`` are the projections of two views of image i. Every view is an anchor once
    (symmetric); its positive is the other view of the same image and its negatives the 2N - 2 views of
    the other images in the batch. Returns the cross-entropy averaged over the 2N anchors.
    """
    if z_1.shape != z_2.shape or z_1.ndim != 2:
        raise ValueError(f"nt_xent_loss needs two (N, D) batches of the same shape, got {tuple(z_1.shape)} "
                         f"and {tuple(z_2.shape)}.")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    n = z_1.shape[0]
    z = F.normalize(torch.cat([z_1, z_2]).float(), dim=-1)
    logits = z @ z.T / temperature
    # A view is not its own negative: mask the diagonal out of the softmax.
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, partner)
