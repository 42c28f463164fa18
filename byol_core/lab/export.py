"""Take an encoder away: one file with the weights, the architecture and the preprocessing that
reproduces the embeddings, and the Python that loads it for that run's backbone.

The file is a plain ``torch.save`` of a dict of tensors, strings and numbers, so it loads with
``torch.load(path, weights_only=True)`` (no pickled code). ``python -m byol_core export <run>``
and the dashboard's "Download encoder" button write the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..augment.ops import channel_stats
from ..config import ModelConfig, to_dict
from ..data import load_data
from ..methods.networks import _HEAD_ATTRIBUTES
from .run_store import RunStore
from .summary import summarize_run

FORMAT = "byol-lab-encoder/1"


def encoder_bundle(store: RunStore, run_id: str) -> dict[str, Any]:
    """The run's encoder with what it takes to use it: architecture, image size, mean and std."""
    summary = summarize_run(store.get(run_id), store)
    if summary.damaged:
        raise ValueError(f"run {run_id} cannot be exported: {summary.damaged}.")
    if not summary.usable_encoder or summary.config is None:
        raise ValueError(f"run {run_id} has no finished encoder to export (state: {summary.state}); "
                         "export a finished or stopped pretraining or supervised run.")
    cfg = summary.config
    splits = load_data(cfg.data)  # the training statistics the encoder was normalised with
    return {"format": FORMAT, "run_id": run_id, "stage": summary.stage, "model": to_dict(cfg.model),
            "image_size": cfg.augment.image_size, "mean": as_float32(channel_stats(splits.mean, "mean")),
            "std": as_float32(channel_stats(splits.std, "std")),
            "state_dict": store.get(run_id).load_encoder()}


def as_float32(values: Sequence[float]) -> list[float]:
    """``values`` rounded to float32, as plain Python floats.

    Training and evaluation normalise with float32 tensors, so these are the numbers the network saw. The
    float64 statistics differ in their last digit with the order torch sums the pixels in (its thread
    count: the dashboard's preview thread loads data with one, the CLI with all cores), and that must not
    reach the file: the dashboard and the CLI write the same bytes.
    """
    return torch.tensor([float(v) for v in values], dtype=torch.float32).tolist()


def bundle_bytes(bundle: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(bundle, buffer)
    return buffer.getvalue()


def write_bundle(store: RunStore, run_id: str, path: str | Path | None = None) -> Path:
    """Write the run's encoder file (default ``encoder-<run id>.pt`` in the working folder)."""
    target = Path(path) if path is not None else Path(f"encoder-{run_id}.pt")
    target.write_bytes(bundle_bytes(encoder_bundle(store, run_id)))
    return target


def _torchvision_lines(model: ModelConfig) -> list[str] | None:
    """Plain-torchvision construction of the backbone, or None when it needs byol_core."""
    if model.backbone == "small-cnn" or model.hidden_layer is not None:
        return None
    import torchvision  # here, not at the top: importing it costs seconds (torch._dynamo) and a small-cnn needs none

    net = torchvision.models.get_model(model.backbone, weights=None)
    lines = [f"model = torchvision.models.{model.backbone}()"]
    head = next((attr for attr in _HEAD_ATTRIBUTES if hasattr(net, attr)), None)
    if head is not None:
        lines.append(f"model.{head} = torch.nn.Identity()  # exported without its classifier")
    if model.small_stem and hasattr(net, "conv1") and hasattr(net, "maxpool"):
        out_ch = net.conv1.out_channels
        lines.append(f"model.conv1 = torch.nn.Conv2d(3, {out_ch}, 3, 1, 1, bias=False)  # small-image stem")
        lines.append("model.maxpool = torch.nn.Identity()")
    return lines


def loading_snippet(bundle: dict[str, Any], filename: str = "encoder.pt") -> str:
    """Python that loads this file into a fresh model and embeds images exactly as the run did."""
    model = ModelConfig(**bundle["model"])
    build = _torchvision_lines(model)
    if build is None:
        head = ["import torch", "from byol_core.config import ModelConfig", "from byol_core.methods.networks import build_encoder",
                "", f"bundle = torch.load({filename!r}, weights_only=True)",
                "model = build_encoder(ModelConfig(**bundle['model']))  # needs byol_core for this backbone",
                "model.model.load_state_dict(bundle['state_dict'])"]
    else:
        head = ["import torch", "import torchvision", "", f"bundle = torch.load({filename!r}, weights_only=True)",
                *build, "model.load_state_dict(bundle['state_dict'])"]
    size = bundle["image_size"]
    return "\n".join([
        *head, "model.eval()", "",
        f"# Preprocessing that reproduces the run's embeddings: RGB in 0..1, {size}x{size} px (bilinear,",
        "# antialiased), normalised with the training images' mean and std.",
        "def preprocess(images):  # uint8 or float (N, 3, H, W); gray images: images.repeat(1, 3, 1, 1)",
        "    x = images.float() / 255 if images.dtype == torch.uint8 else images",
        f"    x = torch.nn.functional.interpolate(x, size=({size}, {size}), mode='bilinear', align_corners=False,",
        "                                        antialias=True)",
        "    mean = torch.tensor(bundle['mean']).view(1, 3, 1, 1)",
        "    std = torch.tensor(bundle['std']).view(1, 3, 1, 1)",
        "    return (x - mean) / std", "",
        "with torch.no_grad():",
        "    features = torch.flatten(model(preprocess(images)), 1)  # images: your (N, 3, H, W) batch",
    ])
