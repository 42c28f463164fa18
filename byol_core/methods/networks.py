"""Backbones, the encoder wrapper, the MLP heads (BYOL's and SimCLR's) and the supervised classifier."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig


class SmallConvNet(nn.Module):
    """A 4-block convnet for 28-32 px images: fast enough to learn on a laptop CPU."""

    def __init__(self, width: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width, 8 * width]
        blocks = []
        for i in range(4):
            blocks += [
                nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
            if i < 3:
                blocks.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


_HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")


def build_backbone(cfg: ModelConfig) -> nn.Module:
    """A randomly initialised backbone whose output is its pooled feature vector.

    torchvision models lose their classification head (replaced by Identity) so
    the exported ``state_dict`` loads into a fresh torchvision model whose head
    is set to ``nn.Identity()``.
    """
    if cfg.backbone == "small-cnn":
        return SmallConvNet(width=cfg.width)
    import torchvision  # here, not at the top: importing it costs seconds (torch._dynamo) and a small-cnn needs none

    try:
        model = torchvision.models.get_model(cfg.backbone, weights=None)
    except (ValueError, KeyError) as exc:
        known = ", ".join(sorted(torchvision.models.list_models(module=torchvision.models))[:12])
        raise ValueError(f"model.backbone = {cfg.backbone!r} is not a torchvision model; "
                         f"try resnet18, resnet34, resnet50 or 'small-cnn' (known: {known}, ...).") from exc
    if cfg.hidden_layer is None:
        for attr in _HEAD_ATTRIBUTES:
            if hasattr(model, attr):
                setattr(model, attr, nn.Identity())
                break
    if cfg.small_stem and hasattr(model, "conv1") and hasattr(model, "maxpool"):
        # CIFAR-style stem: a 7x7 stride-2 conv and a max-pool would shrink 32 px to 8 px at once.
        out_ch = model.conv1.out_channels
        model.conv1 = nn.Conv2d(3, out_ch, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


class Encoder(nn.Module):
    """Returns a model's representation: its output, or a named hidden layer's output.

    The hidden layer is read with a forward hook registered for the duration of
    one call only, so copies of the model (the target network) never share a
    hook, and hence never share a captured tensor, with the original.
    """

    def __init__(self, model: nn.Module, hidden_layer: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.hidden_layer = hidden_layer
        if hidden_layer is not None:
            names = dict(model.named_modules())
            if hidden_layer not in names:
                sample = ", ".join(n for n in list(names)[1:13])
                raise ValueError(f"model.hidden_layer = {hidden_layer!r} is not a module of "
                                 f"{type(model).__name__}; its modules include: {sample}, ...")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hidden_layer is None:
            return torch.flatten(self.model(x), 1)
        captured: list[torch.Tensor] = []
        layer = self.model.get_submodule(self.hidden_layer)
        handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            self.model(x)
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"hidden layer {self.hidden_layer!r} was not called in the forward pass.")
        return torch.flatten(captured[-1], 1)

    @torch.no_grad()
    def feature_dim(self, image_size: int) -> int:
        """Width of the representation, found with one dummy forward pass in eval mode."""
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            out = self(torch.zeros(2, 3, image_size, image_size, device=device))
        finally:
            self.train(was_training)
        return out.shape[1]


def mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """BYOL's projector/predictor: Linear, BatchNorm, ReLU, Linear (paper, sec. 3.3)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )


class Classifier(nn.Module):
    """An encoder with a linear head, for supervised training and fine-tuning."""

    def __init__(self, encoder: Encoder, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def build_encoder(cfg: ModelConfig) -> Encoder:
    return Encoder(build_backbone(cfg), cfg.hidden_layer)


def encoder_state_dict(encoder: Encoder) -> dict[str, torch.Tensor]:
    """The backbone's own ``state_dict`` (no wrapper prefix): loads into a fresh torchvision model."""
    return {k: v.detach().cpu().clone() for k, v in encoder.model.state_dict().items()}
