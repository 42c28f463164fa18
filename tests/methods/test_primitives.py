import itertools
import math

import pytest
import torch
from torch import nn

from byol_core.methods.ema import update_momentum
from byol_core.methods.losses import collapse_std, regression_loss, symmetric_byol_loss
from byol_core.methods.schedules import cosine_tau, learning_rate


def test_regression_loss_is_two_minus_two_cosine():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    z = torch.tensor([[1.0, 0.0], [0.0, -1.0], [0.0, 5.0]])
    # cosines 1, -1, 0 -> losses 0, 4, 2
    assert regression_loss(p, z).item() == pytest.approx(2.0)
    assert regression_loss(5 * p, 0.1 * z).item() == pytest.approx(2.0)  # scale-invariant


def test_regression_loss_never_sends_gradient_to_the_target():
    p = torch.randn(4, 8, requires_grad=True)
    z = torch.randn(4, 8, requires_grad=True)
    regression_loss(p, z).backward()
    assert p.grad is not None and z.grad is None


def test_symmetric_loss_pairs_each_prediction_with_the_other_views_target():
    a, b = torch.randn(6, 5), torch.randn(6, 5)
    assert symmetric_byol_loss(a, b, b, a).item() == pytest.approx(0.0, abs=1e-6)
    assert symmetric_byol_loss(a, b, a, b).item() > 0.5


def test_collapse_std_healthy_vs_collapsed():
    d = 256
    healthy = collapse_std(torch.randn(4096, d)).item()
    assert healthy == pytest.approx(1 / math.sqrt(d), rel=0.05)
    collapsed = collapse_std(torch.randn(1, d).repeat(512, 1) + 1e-4 * torch.randn(512, d)).item()
    assert collapsed < 0.01 * healthy


def test_cosine_tau_runs_from_base_to_one():
    assert cosine_tau(0, 100, 0.99) == pytest.approx(0.99)
    assert cosine_tau(50, 100, 0.99) == pytest.approx(0.995)
    assert cosine_tau(100, 100, 0.99) == pytest.approx(1.0)
    values = [cosine_tau(k, 100, 0.99) for k in range(101)]
    assert all(b >= a for a, b in itertools.pairwise(values))


def test_learning_rate_warmup_then_cosine():
    assert learning_rate(0, 100, 1.0, warmup_steps=10) == pytest.approx(0.1)
    assert learning_rate(9, 100, 1.0, warmup_steps=10) == pytest.approx(1.0)
    assert learning_rate(10, 100, 1.0, warmup_steps=10) == pytest.approx(1.0)
    assert learning_rate(100, 100, 1.0, warmup_steps=10) == pytest.approx(0.0, abs=1e-9)
    assert learning_rate(55, 100, 1.0, warmup_steps=10, schedule="constant") == 1.0


def test_update_momentum_follows_the_formula_exactly():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    target = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    online[1].running_mean.fill_(0.7)
    before = [p.detach().clone() for p in target.parameters()]
    tau = 0.9
    update_momentum(online, target, tau)
    for t_old, t_new, o in zip(before, target.parameters(), online.parameters()):
        torch.testing.assert_close(t_new, tau * t_old + (1 - tau) * o.detach())
    torch.testing.assert_close(target[1].running_mean, torch.full((3,), 0.7))
    update_momentum(online, target, 0.0)  # tau = 0 copies
    for t, o in zip(target.parameters(), online.parameters()):
        torch.testing.assert_close(t, o)
