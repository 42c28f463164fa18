import pytest
import torch
import torchvision
from torch import nn

from byol_core.config import ModelConfig
from byol_core.methods.networks import BYOL, Encoder, build_backbone, build_encoder, encoder_state_dict

SMALL = {"projector_hidden": 32, "projector_out": 16, "predictor_hidden": 32}


def tiny_byol(**kw) -> BYOL:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="small-cnn", width=4, **SMALL, **kw)
    return BYOL.from_config(cfg, image_size=16)


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
    out.loss.backward()
    assert all(p.grad is None for p in model.target_parameters())
    opt.step()
    # The optimiser moved the online weights but not the target.
    for before, p in zip(target_before, model.target_parameters()):
        torch.testing.assert_close(p, before)
    online_now = [p.detach().clone() for p in [*model.online_encoder.parameters(),
                                                *model.online_projector.parameters()]]
    assert any(not torch.equal(a, b) for a, b in zip(online_now, target_before))
    tau = 0.95
    model.update_target(tau)
    for before, online, after in zip(target_before, online_now, model.target_parameters()):
        torch.testing.assert_close(after, tau * before + (1 - tau) * online)


def test_loss_gradient_reaches_predictor_and_encoder():
    model = tiny_byol()
    out = model(torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16))
    assert 0.0 <= out.loss.item() <= 4.0
    out.loss.backward()
    assert all(p.grad is not None for p in model.online_parameters())
    assert out.projections.shape == (8, 16) and not out.projections.requires_grad


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


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_torchvision_backbones_export_a_loadable_state_dict(name):
    encoder = build_encoder(ModelConfig(backbone=name, small_stem=False))
    state = encoder_state_dict(encoder)
    fresh = getattr(torchvision.models, name)()
    fresh.fc = nn.Identity()
    fresh.load_state_dict(state)  # strict: every key matches
    x = torch.randn(2, 3, 64, 64)
    encoder.eval()
    fresh.eval()
    torch.testing.assert_close(fresh(x), encoder(x))


def test_small_stem_keeps_resolution_for_small_images():
    model = build_backbone(ModelConfig(backbone="resnet18", small_stem=True))
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert Encoder(model).feature_dim(32) == 512


def test_unknown_backbone_has_a_clear_error():
    with pytest.raises(ValueError, match="is not a torchvision model"):
        build_backbone(ModelConfig(backbone="resnet19"))
