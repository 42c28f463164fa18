"""LARS (methods/lars.py): weight matrices step by their trust ratio, biases and BatchNorm take plain SGD."""

import torch
from torch import nn
from torch.testing import assert_close

from byol_core.methods.lars import LARS

LR, MOMENTUM, WEIGHT_DECAY, ETA = 0.5, 0.9, 0.1, 0.001


def _step(opt: LARS, grads: dict[nn.Parameter, torch.Tensor]) -> None:
    for p, g in grads.items():
        p.grad = g.clone()
    opt.step()


def test_a_matrix_steps_by_its_trust_ratio_and_a_bias_gets_the_plain_update_by_hand():
    torch.manual_seed(0)
    w, b = nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(4))  # b: a bias (BatchNorm's are 1-d too)
    gw, gb = torch.randn(4, 3), torch.randn(4)
    opt = LARS([w, b], lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, trust_coefficient=ETA)
    w0, b0 = w.detach().clone(), b.detach().clone()
    _step(opt, {w: gw, b: gb})
    # The matrix: weight decay joins the gradient, which is then rescaled to ETA * |w| / |g| of itself.
    g = gw + WEIGHT_DECAY * w0
    first = ETA * w0.norm() / g.norm() * g
    assert_close(w.detach(), w0 - LR * first)
    assert_close((w.detach() - w0).norm(), LR * ETA * w0.norm())  # its step is lr * eta of its norm, whatever |g|
    # The bias: excluded from decay and adaptation, so a plain SGD step on its raw gradient.
    assert_close(b.detach(), b0 - LR * gb)

    # Second step: the momentum buffer carries the first (already scaled) update.
    w1, b1 = w.detach().clone(), b.detach().clone()
    _step(opt, {w: gw, b: gb})
    g = gw + WEIGHT_DECAY * w1
    assert_close(w.detach(), w1 - LR * (MOMENTUM * first + ETA * w1.norm() / g.norm() * g))
    assert_close(b.detach(), b1 - LR * (MOMENTUM * gb + gb))


def test_a_zero_matrix_takes_the_unscaled_step_and_parameters_without_gradient_stay():
    zero, frozen = nn.Parameter(torch.zeros(2, 2)), nn.Parameter(torch.ones(3, 3))
    g = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    opt = LARS([zero, frozen], lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, trust_coefficient=ETA)
    _step(opt, {zero: g})
    assert_close(zero.detach(), -LR * g)  # |w| = 0: the trust ratio falls back to 1 instead of freezing the layer
    assert torch.equal(frozen.detach(), torch.ones(3, 3)) and frozen not in opt.state
