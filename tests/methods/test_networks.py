"""Backbones, the encoder wrapper and the exported state_dict (BYOL's own module: test_byol.py)."""

import pytest
import torch
import torchvision
from torch import nn

from byol_core.config import ModelConfig
from byol_core.methods.networks import Encoder, build_backbone, build_encoder, encoder_state_dict


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
