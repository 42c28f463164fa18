"""Stateless image ops and augmentation parameters shared by both augmentation backends.

The Kornia reference (:mod:`byol_core.augment.views`) and the fast batched backend
(:mod:`byol_core.augment.fast`) both take images through :func:`to_float_rgb`,
normalise with :func:`channel_stats`, run without autocast and size their blur
kernel with :func:`blur_kernel_size` (blur sigmas are in pixels of the view). The tensor ops
(grayscale, hue rotation, crop resampling, per-sample blur) are the fast
backend's building blocks; ``tests/test_augment.py`` checks each against Kornia.
Nothing here draws random numbers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights, as torchvision and Kornia use for grayscale.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------- input and parameters
def to_float_rgb(images: torch.Tensor) -> torch.Tensor:
    """uint8 (0..255) or float (0..1) images (B, C, H, W), C in {1, 3} -> float 0..1 with 3 channels.

    uint8 images are scaled by 1/255 to float32; float32/float64 images are kept
    as they are and half-precision ones are promoted to float32 (colour ops need
    the precision). One-channel images are repeated to RGB because every backbone
    here takes RGB.
    """
    if images.dim() != 4:
        raise ValueError(f"expected images shaped (B, C, H, W), got shape {tuple(images.shape)}.")
    channels = images.shape[1]
    if channels not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {channels} (shape {tuple(images.shape)}).")
    if images.dtype == torch.uint8:
        x = images.float().div_(255.0)
    elif images.dtype in (torch.float32, torch.float64):
        x = images
    elif images.is_floating_point():
        x = images.float()
    else:
        raise TypeError(f"expected uint8 or floating-point images, got {images.dtype}.")
    if channels == 1:
        x = x.expand(-1, 3, -1, -1).contiguous()
    return x


def no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Run augmentation in full precision even when called inside a training step's autocast region."""
    if device.type in ("cpu", "cuda", "mps", "xpu"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def channel_stats(values: Sequence[float], name: str = "mean") -> tuple[float, float, float]:
    """A per-channel mean or std as a 3-tuple; a 1-tuple applies to all three channels."""
    vals = tuple(float(v) for v in values)
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise ValueError(f"{name} needs 1 or 3 values, got {len(vals)}: {values!r}.")
    if name == "std" and min(vals) <= 0:
        raise ValueError(f"std values must be positive, got {values!r}.")
    return vals  # type: ignore[return-value]


def blur_kernel_size(image_size: int, sigma_max: float) -> int:
    """Side of the Gaussian blur kernel for sigmas up to ``sigma_max`` pixels at ``image_size``.

    Odd, at least 10% of the image side (the BYOL paper's 23 px at 224 px, Table 6) and at least
    ``2 * ceil(3 * sigma_max) + 1``, so the kernel holds +-3 sigma (99.7% of the Gaussian) and the
    largest sigma really blurs at small sizes; never wider than the image (reflect padding needs
    the radius below the side), and at least 3.
    """
    tenth = -(-int(image_size) // 10)  # ceil(10% of the side), in integers so 230 px gives 23, not 25
    holds_sigma = 2 * math.ceil(3 * sigma_max) + 1
    k = max(tenth, holds_sigma)
    k += 1 - k % 2  # odd, so the kernel has a centre pixel
    widest = image_size - 1 + image_size % 2  # the largest odd size that fits in the image
    return max(3, min(k, widest))


# --------------------------------------------------------------------------- colour ops
def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """Luma (B, 1, H, W) of RGB images (B, 3, H, W)."""
    r, g, b = x.unbind(1)
    return (LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b).unsqueeze(1)


def shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of RGB images (B, 3, H, W) by ``shift`` turns per sample (B,).

    Same result as RGB -> HSV, ``h = (h + shift) mod 1``, HSV -> RGB (torchvision's
    ``adjust_hue``), without building the HSV tensor: value and chroma are unchanged
    by the rotation, so each channel is ``v - chroma * clamp(min(k, 4 - k), 0, 1)``.
    """
    maxc, argmax = x.max(dim=1)
    chroma = maxc - x.amin(dim=1)
    r, g, b = x.unbind(1)
    # hue in sixths of a turn, [0, 6) up to the wrap: the max channel decides the sector
    num = torch.where(argmax == 0, g - b, torch.where(argmax == 1, b - r + 2 * chroma, r - g + 4 * chroma))
    hue6 = num / chroma.clamp_min(1e-12)  # grey pixels: num == 0, and chroma == 0 zeroes them below anyway
    n = torch.tensor((5.0, 3.0, 1.0), device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + (hue6 + 6.0 * shift.view(-1, 1, 1).to(x.dtype)).unsqueeze(1), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return maxc.unsqueeze(1) - chroma.unsqueeze(1) * ramp


# --------------------------------------------------------------------------- geometric / blur kernels
def resample_boxes(x: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor, w: torch.Tensor, h: torch.Tensor,
                   flip: torch.Tensor | None, size: int) -> torch.Tensor:
    """Crop boxes (pixel offsets/sizes per sample) resized to ``size`` x ``size``, optionally mirrored.

    One ``affine_grid`` + ``grid_sample`` for the whole batch. The grid maps output
    pixel centres into the box as ``F.interpolate(box, align_corners=False)``
    does and is clamped to the box's outer pixel centres, so it reads exactly the
    pixels that slicing the box and resizing it bilinearly would.
    """
    batch, _, height, width = x.shape
    sx = w / width
    if flip is not None:
        sx = torch.where(flip, -sx, sx)
    zeros = torch.zeros_like(sx)
    theta = torch.stack([
        torch.stack([sx, zeros, (2 * x0 + w) / width - 1], dim=1),
        torch.stack([zeros, h / height, (2 * y0 + h) / height - 1], dim=1),
    ], dim=1).to(x.dtype)
    grid = F.affine_grid(theta, [batch, x.shape[1], size, size], align_corners=False)
    lo_x = ((2 * x0 + 1) / width - 1).view(-1, 1, 1).to(x.dtype)
    hi_x = ((2 * (x0 + w) - 1) / width - 1).view(-1, 1, 1).to(x.dtype)
    lo_y = ((2 * y0 + 1) / height - 1).view(-1, 1, 1).to(x.dtype)
    hi_y = ((2 * (y0 + h) - 1) / height - 1).view(-1, 1, 1).to(x.dtype)
    grid = torch.stack([grid[..., 0].clamp(lo_x, hi_x), grid[..., 1].clamp(lo_y, hi_y)], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, mask: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur sample i with a Gaussian of std ``sigma[i]`` where ``mask[i]``; reflect padding.

    Runs as two 1-D grouped convolutions over the batch folded into channels
    (groups = B * C); samples that are not blurred get a unit-impulse kernel, so
    they come out unchanged without a device sync to select them.
    """
    batch, chans, height, width = x.shape
    k = kernel_size
    radius = k // 2
    offsets = torch.arange(k, device=x.device, dtype=torch.float32) - radius
    kernel = torch.exp(-offsets.pow(2) / (2 * sigma.float().view(-1, 1).pow(2)))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    impulse = (offsets == 0).to(kernel.dtype).expand_as(kernel)
    kernel = torch.where(mask.view(-1, 1), kernel, impulse).to(x.dtype)
    kernel = kernel.repeat_interleave(chans, dim=0)  # (B*C, k)
    y = x.reshape(1, batch * chans, height, width)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kernel.view(-1, 1, 1, k), groups=batch * chans)
    y = F.conv2d(y, kernel.view(-1, 1, k, 1), groups=batch * chans)
    return y.view(batch, chans, height, width)
