"""BYOL's two augmented views, with Kornia as the reference implementation.

Each view applies, in this order (BYOL paper, Grill et al. 2020, Table 6):
random resized crop, horizontal flip, colour jitter (random order), grayscale,
Gaussian blur, solarize, then per-channel normalisation. Every random parameter
is drawn per sample, and everything runs on the images' device.

``AugmentConfig.backend`` picks the implementation: ``"kornia"`` builds the
pipeline from ``kornia.augmentation`` modules (:func:`build_view_pipeline`),
``"fast"`` uses :class:`byol_core.augment.fast.FastViewAugment`, the same
distribution written as a few batched tensor ops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from kornia.enhance import (
    adjust_brightness_accumulative,
    adjust_contrast_with_mean_subtraction,
    adjust_hue,
    adjust_saturation_with_gray_subtraction,
)

# Only to build the "fast" backend when AugmentConfig.backend asks for it.
from byol_core.augment.fast import FastViewAugment
from byol_core.augment.ops import blur_kernel_size, channel_stats, no_autocast, to_float_rgb
from byol_core.config import AugmentConfig, ViewAugmentConfig

__all__ = [
    "BYOLAugment",
    "FastViewAugment",
    "blur_kernel_size",
    "build_supervised_augment",
    "build_view_pipeline",
    "eval_transform",
    "preview",
    "to_float_rgb",
]


class PerSampleColorJitter(K.ColorJitter):
    """Kornia's torchvision-compatible ``ColorJitter`` with the op order drawn per sample.

    ``K.ColorJitter`` draws one random order of (brightness, contrast, saturation,
    hue) for the whole batch; BYOL (like torchvision, which augments one image at
    a time) uses an independent order per image. The factors and the four ops are
    Kornia's; only the order is drawn per sample, and each op runs once per
    position on the samples that have it there.
    """

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        params = super().generate_parameters(batch_shape)
        params["sample_order"] = torch.argsort(torch.rand(batch_shape[0], 4), dim=1)
        return params

    def apply_transform(self, input: torch.Tensor, params: dict[str, torch.Tensor], flags: dict[str, Any],
                        transform: torch.Tensor | None = None) -> torch.Tensor:
        x = input.clamp(0.0, 1.0)
        order = params["sample_order"].to(x.device)
        names = ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor")
        factors = [params[n].to(x.device, x.dtype) for n in names]
        ops = (
            adjust_brightness_accumulative,
            adjust_contrast_with_mean_subtraction,
            adjust_saturation_with_gray_subtraction,
            lambda img, f: adjust_hue(img, f * math.tau),  # Kornia's hue is in radians; ours in turns
        )
        strengths = (self.brightness, self.contrast, self.saturation, self.hue)
        active = [k for k in range(4) if strengths[k] != 0]  # zero strength: the op is the identity
        for pos in range(4):
            for k in active:
                idx = (order[:, pos] == k).nonzero().squeeze(1)
                if idx.numel() == 0:
                    continue
                x = x.index_copy(0, idx, ops[k](x.index_select(0, idx), factors[k].index_select(0, idx)))
        return x.clamp(0.0, 1.0)


class KorniaViewAugment(torch.nn.Module):
    """One view: uint8/float (B, C, H, W) -> float (B, 3, S, S), via ``kornia.augmentation``."""

    def __init__(self, ops: torch.nn.Sequential) -> None:
        super().__init__()
        self.ops = ops

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with no_autocast(images.device):
            return self.ops(to_float_rgb(images))


def _normalize_module(mean: Sequence[float], std: Sequence[float]) -> K.Normalize:
    return K.Normalize(mean=torch.tensor(channel_stats(mean, "mean")),
                       std=torch.tensor(channel_stats(std, "std")))


def build_view_pipeline(view: ViewAugmentConfig, image_size: int, mean: Sequence[float],
                        std: Sequence[float], normalize: bool = True) -> torch.nn.Module:
    """The Kornia pipeline of one BYOL view (paper Table 6), every parameter drawn per sample.

    Operations whose probability (or strength) is zero are left out. Crops are
    sliced and resized bilinearly (``align_corners=False``, no antialiasing);
    blur sigmas are in pixels of the view, the kernel as :func:`blur_kernel_size` sizes it.
    """
    size = int(image_size)
    ops: list[torch.nn.Module] = [
        K.RandomResizedCrop(size=(size, size), scale=(view.crop_scale_min, view.crop_scale_max),
                            ratio=(view.crop_ratio_min, view.crop_ratio_max), resample="bilinear",
                            align_corners=False, cropping_mode="slice", p=1.0),
    ]
    if view.flip_p > 0:
        ops.append(K.RandomHorizontalFlip(p=view.flip_p))
    strengths = (view.brightness, view.contrast, view.saturation, view.hue)
    if view.jitter_p > 0 and max(strengths) > 0:
        ops.append(PerSampleColorJitter(brightness=view.brightness, contrast=view.contrast,
                                        saturation=view.saturation, hue=view.hue, p=view.jitter_p))
    if view.grayscale_p > 0:
        ops.append(K.RandomGrayscale(p=view.grayscale_p))
    if view.blur_p > 0:
        k = blur_kernel_size(size, view.blur_sigma_max)
        ops.append(K.RandomGaussianBlur(kernel_size=(k, k), sigma=(view.blur_sigma_min, view.blur_sigma_max),
                                        border_type="reflect", p=view.blur_p))
    if view.solarize_p > 0:
        t = view.solarize_threshold
        ops.append(K.RandomSolarize(thresholds=(t, t), additions=(0.0, 0.0), p=view.solarize_p))
    if normalize:
        ops.append(_normalize_module(mean, std))
    return KorniaViewAugment(torch.nn.Sequential(*ops))


class BYOLAugment(torch.nn.Module):
    """BYOL's two asymmetric views of a batch (paper Table 6): view 1 always blurred,
    view 2 rarely blurred and sometimes solarized (as set in ``AugmentConfig``)."""

    def __init__(self, cfg: AugmentConfig, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.backend == "fast":
            self.view1: torch.nn.Module = FastViewAugment(cfg.view1, cfg.image_size, mean, std)
            self.view2: torch.nn.Module = FastViewAugment(cfg.view2, cfg.image_size, mean, std)
        elif cfg.backend == "kornia":
            self.view1 = build_view_pipeline(cfg.view1, cfg.image_size, mean, std)
            self.view2 = build_view_pipeline(cfg.view2, cfg.image_size, mean, std)
        else:
            raise ValueError(f"unknown augmentation backend {cfg.backend!r}; use 'kornia' or 'fast'.")

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(view1, view2), both normalised float (B, 3, S, S), drawn independently."""
        x = to_float_rgb(images)
        return self.view1(x), self.view2(x)


def build_supervised_augment(image_size: int, crop_scale_min: float, flip_p: float, mean: Sequence[float],
                             std: Sequence[float], backend: str = "kornia") -> torch.nn.Module:
    """Light augmentation for supervised training: random resized crop + flip + normalise."""
    view = ViewAugmentConfig(crop_scale_min=crop_scale_min, crop_scale_max=1.0, flip_p=flip_p, jitter_p=0.0,
                             grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)
    if backend == "fast":
        return FastViewAugment(view, image_size, mean, std)
    if backend != "kornia":
        raise ValueError(f"unknown augmentation backend {backend!r}; use 'kornia' or 'fast'.")
    return build_view_pipeline(view, image_size, mean, std)


def eval_transform(images: torch.Tensor, image_size: int, mean: Sequence[float],
                   std: Sequence[float]) -> torch.Tensor:
    """Deterministic evaluation input: resize to ``image_size`` x ``image_size`` (bilinear,
    antialiased) and normalise. uint8/float, 1 or 3 channels -> float RGB."""
    x = to_float_rgb(images)
    size = int(image_size)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    m = torch.tensor(channel_stats(mean, "mean"), device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(channel_stats(std, "std"), device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


@torch.no_grad()
def preview(images: torch.Tensor, cfg: AugmentConfig,
            seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(originals resized to ``image_size``, view1, view2), float 0..1, not normalised.

    Always uses the Kornia backend. The draws are reproducible for a given
    ``seed``; the random state is forked, so the caller's global RNG is untouched.
    """
    size = cfg.image_size
    devices = [images.device.index or 0] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        # Kornia draws its parameters with the CPU generator; seed only the forked generators.
        torch.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(devices[0]):
                torch.cuda.manual_seed(seed)
        view1 = build_view_pipeline(cfg.view1, size, (0.0,), (1.0,), normalize=False)(images)
        view2 = build_view_pipeline(cfg.view2, size, (0.0,), (1.0,), normalize=False)(images)
    originals = eval_transform(images, size, (0.0,), (1.0,)).clamp(0.0, 1.0)
    return originals, view1, view2
