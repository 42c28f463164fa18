"""BYOL (methods/byol.py): the online/target pair, the update step (loss, optimiser step, EMA) and pretraining."""

import copy
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from byol_core.config import ModelConfig, with_overrides
from byol_core.methods.byol import BYOL, byol_step, pretrain_byol
from byol_core.methods.ema import update_momentum
from byol_core.methods.losses import symmetric_byol_loss
from byol_core.methods.networks import Encoder
from tests.helpers import assert_same_weights

SMALL = {"projector_hidden": 32, "projector_out": 16, "predictor_hidden": 32}


def tiny_byol(**kw) -> BYOL:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="small-cnn", width=4, **SMALL, **kw)
    return BYOL.from_config(cfg, image_size=16)


def loss_of(out, batch: int) -> torch.Tensor:
    """The loss byol_step takes from the forward's parts: view 1's rows first, then view 2's."""
    p, z = out.predictions, out.targets
    return symmetric_byol_loss(p[:batch], p[batch:], z[:batch], z[batch:])


def test_target_is_a_separate_copy_with_no_shared_storage():
    model = tiny_byol()
    online = model.online_encoder.state_dict(keep_vars=True)
    target = model.target_encoder.state_dict(keep_vars=True)
    assert online.keys() == target.keys()
    for key in online:
        assert online[key] is not target[key]
        if online[key].numel():
            assert online[key].data_ptr() != target[key].data_ptr(), key
        torch.testing.assert_close(online[key], target[key])  # starts equal
    online_ids = {id(p) for p in model.online_parameters()}
    assert not online_ids & {id(p) for p in model.target_parameters()}
    assert all(not p.requires_grad for p in model.target_parameters())


def test_target_changes_only_through_ema_and_follows_the_formula():
    model = tiny_byol()
    opt = torch.optim.SGD(model.online_parameters(), lr=0.5)
    x1, x2 = torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16)
    target_before = [p.detach().clone() for p in model.target_parameters()]
    out = model(x1, x2)
    opt.zero_grad()
    loss_of(out, 8).backward()
    assert all(p.grad is None for p in model.target_parameters())
    opt.step()
    # The optimiser moved the online weights but not the target.
    for before, p in zip(target_before, model.target_parameters()):
        torch.testing.assert_close(p, before)
    online_now = [p.detach().clone() for p in [*model.online_encoder.parameters(),
                                                *model.online_projector.parameters()]]
    assert any(not torch.equal(a, b) for a, b in zip(online_now, target_before))
    tau = 0.95
    update_momentum(model.online_encoder, model.target_encoder, tau)  # what byol_step applies
    update_momentum(model.online_projector, model.target_projector, tau)
    for before, online, after in zip(target_before, online_now, model.target_parameters()):
        torch.testing.assert_close(after, tau * before + (1 - tau) * online)


def test_loss_gradient_reaches_predictor_and_encoder():
    model = tiny_byol()
    out = model(torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16))
    loss = loss_of(out, 4)
    assert 0.0 <= loss.item() <= 4.0
    loss.backward()
    assert all(p.grad is not None for p in model.online_parameters())
    assert out.projections.shape == (8, 16) and not out.projections.requires_grad
    assert out.predictions.shape == out.targets.shape == (8, 16) and not out.targets.requires_grad


def test_hidden_layer_wrapper_works_for_any_module_and_copies_do_not_share_hooks():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
            self.out = nn.Linear(6, 2)

        def forward(self, x):
            return self.out(self.body(x).flatten(1))

    torch.manual_seed(0)
    model = BYOL(Net(), image_size=12, hidden_layer="body", **SMALL)
    assert model.feature_dim == 6
    x = torch.randn(3, 3, 12, 12)
    online = model.online_encoder(x)
    with torch.no_grad():
        for p in model.target_encoder.parameters():
            p.add_(1.0)  # make the two networks differ
    target = model.target_encoder(x)
    assert online.shape == target.shape == (3, 6)
    assert not torch.allclose(online, target)
    assert not model.online_encoder.model.body._forward_hooks
    with pytest.raises(ValueError, match="is not a module of Net"):
        Encoder(Net(), "nope")


def test_byol_step_descends_two_minus_two_cosine_symmetrised_then_moves_the_target_by_ema():
    model = tiny_byol()
    with torch.no_grad():  # a target that differs from the online network, as after a few steps
        for p in model.target_parameters():
            p.add_(0.05 * torch.randn_like(p))
    reference = copy.deepcopy(model)
    x1, x2 = torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16)
    lr, tau = 0.1, 0.9
    online_before = [p.detach().clone() for p in model.online_parameters()]
    target_before = [p.detach().clone() for p in model.target_parameters()]
    forwards = []

    def forward(a, b):  # stands for the DDP / torch.compile wrapper: it must be what runs the forward
        forwards.append(len(a))
        return model(a, b)

    loss, projections = byol_step(model, lambda _images: (x1, x2), torch.optim.SGD(model.online_parameters(), lr=lr),
                                  x1, lr=lr, tau=tau, bf16=False, channels_last=False, forward=forward)
    assert forwards == [8]
    assert projections.shape == (16, 16) and not projections.requires_grad

    # The loss by hand from the parts: view 1's prediction against view 2's target and back, 2 - 2 cos, averaged.
    parts = reference(x1, x2)
    p_1, p_2 = reference.predictor(reference.online_projector(reference.online_encoder(torch.cat([x1, x2])))).chunk(2)
    with torch.no_grad():
        z_1, z_2 = reference.target_projector(reference.target_encoder(torch.cat([x1, x2]))).chunk(2)
    torch.testing.assert_close(torch.cat([p_1, p_2]), parts.predictions)
    torch.testing.assert_close(torch.cat([z_1, z_2]), parts.targets)
    by_hand = 0.5 * ((2 - 2 * F.cosine_similarity(p_1, z_2)).mean() + (2 - 2 * F.cosine_similarity(p_2, z_1)).mean())
    torch.testing.assert_close(loss.detach(), by_hand.detach())
    by_hand.backward()

    # One SGD step on that loss: each online parameter moved by -lr times the hand-computed gradient...
    online = list(model.online_parameters())
    for before, p, ref in zip(online_before, online, reference.online_parameters()):
        torch.testing.assert_close(p.grad, ref.grad, atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(p.detach(), before - lr * ref.grad, atol=1e-6, rtol=1e-4)
    # ...the target got no gradient and moved only by the EMA towards the updated online network.
    assert all(p.grad is None for p in model.target_parameters())
    online_now = [*model.online_encoder.parameters(), *model.online_projector.parameters()]
    for before, o, after in zip(target_before, online_now, model.target_parameters()):
        torch.testing.assert_close(after, tau * before + (1 - tau) * o.detach())
    assert any(not torch.equal(after, before) for before, after in zip(target_before, model.target_parameters()))


# ---------------------------------------------------------------- pretraining through the loop (tiny preset)


def test_pretrain_emits_metrics_and_moves_the_target_by_ema(cfg, splits):
    events = []
    result = pretrain_byol(cfg, splits, callbacks=[events.append])
    assert result.finished and result.step == result.total_steps == 8  # 256 images / 64 x 2 epochs
    steps = [e for e in events if e["kind"] == "step"]
    assert steps and all(0.0 <= e["loss"] <= 4.0 for e in steps)
    assert {"lr", "tau", "img_per_s", "collapse_std", "collapse_reference"} <= steps[-1].keys()
    assert steps[-1]["tau"] > steps[0]["tau"] >= cfg.byol.tau_base
    assert [e["epoch"] for e in events if e["kind"] == "epoch"] == [1, 2]
    model = result.model
    online = [p.detach() for p in model.online_encoder.parameters()]
    target = [p.detach() for p in model.target_encoder.parameters()]
    # Both moved away from the shared initialisation, and they are no longer equal.
    assert any(not torch.equal(o, t) for o, t in zip(online, target))


def test_stop_then_resume_gives_the_same_weights_as_an_uninterrupted_run(cfg, splits):
    cfg = with_overrides(cfg, {"runtime.log_every": 1})
    full = pretrain_byol(cfg, splits)

    stop = threading.Event()
    saved = {}

    def stop_after_three(event):
        if event["kind"] == "step" and event["step"] == 3:
            stop.set()

    first = pretrain_byol(cfg, splits, callbacks=[stop_after_three], stop_event=stop,
                          save_checkpoint=lambda state: saved.update(state=state))
    assert first.stopped and first.step == 3 and saved["state"]["step"] == 3
    resumed_events = []
    second = pretrain_byol(cfg, splits, checkpoint=saved["state"], callbacks=[resumed_events.append])
    assert second.finished and second.step == full.step
    assert resumed_events[0]["kind"] == "start" and resumed_events[0]["step"] == 3
    assert_same_weights(full.model, second.model)
