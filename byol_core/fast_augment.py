"""BYOL's view augmentation as a few batched tensor ops (the ``"fast"`` backend).

This is the same random augmentation as the Kornia reference in
:mod:`byol_core.augment` (BYOL paper, Grill et al. 2020, Table 6), written so a
whole batch goes through a fixed, small number of kernels:

* crop and flip together: one ``F.affine_grid`` + ``F.grid_sample`` per batch,
  with crop boxes sampled vectorised (10 candidates per sample, the first one
  that fits, else a centre crop, as torchvision does);
* colour jitter as per-sample factors applied by broadcasting, in a per-sample
  random order (a loop over the 4 positions with masks);
* grayscale and solarize as masked ``torch.where``;
* Gaussian blur as a separable grouped convolution with one kernel per sample.

Every random parameter is drawn per sample on the images' device, so there are
no host/device copies of images and no device syncs. It only needs torch (no
Kornia), and ``tests/test_augment.py`` checks it against Kornia statistically.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from byol_core.config import ViewAugmentConfig

# ITU-R BT.601 luma weights, as torchvision and Kornia use for grayscale.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
# Candidate crop boxes drawn per sample before falling back to a centre crop (torchvision uses 10).
CROP_ATTEMPTS = 10


# --------------------------------------------------------------------------- shared helpers
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


def blur_kernel_size(image_size: int) -> int:
    """Side of the Gaussian blur kernel: the odd number nearest 10% of the image side, at least 3.

    At 224 px this is 23, the kernel of the BYOL paper (Table 6).
    """
    k = 2 * math.floor((0.1 * image_size - 1) / 2 + 0.5) + 1
    return max(3, k)


def blur_sigma_range(view: ViewAugmentConfig, image_size: int) -> tuple[float, float]:
    """The view's blur sigma range in pixels at ``image_size``.

    The config gives sigmas in pixels at 224 px (the paper's 0.1-2.0); scaling by
    ``image_size / 224`` keeps the same blur relative to the image at any size.
    """
    scale = image_size / 224.0
    return view.blur_sigma_min * scale, view.blur_sigma_max * scale


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


def _bcast(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


# --------------------------------------------------------------------------- the pipeline
class FastViewAugment(torch.nn.Module):
    """One BYOL view's augmentation as batched tensor ops; same distribution as the Kornia pipeline.

    Steps, in the paper's order (Table 6): random resized crop + horizontal flip,
    colour jitter (random order per sample), grayscale, Gaussian blur, solarize,
    normalise. ``forward`` takes uint8 or float (B, C, H, W), C in {1, 3}, and
    returns float (B, 3, S, S) on the input's device.
    """

    def __init__(self, view: ViewAugmentConfig, image_size: int, mean: Sequence[float],
                 std: Sequence[float], normalize: bool = True) -> None:
        super().__init__()
        self.view = view
        self.image_size = int(image_size)
        self.normalize = normalize
        self.kernel_size = blur_kernel_size(self.image_size)
        self.sigma_range = blur_sigma_range(view, self.image_size)
        self.register_buffer("mean", torch.tensor(channel_stats(mean, "mean")).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(channel_stats(std, "std")).view(1, 3, 1, 1),
                             persistent=False)

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, normalize={self.normalize}, view={self.view}"

    # ---------------------------------------------------------------- random draws
    @staticmethod
    def _uniform(shape: tuple[int, ...], lo: float, hi: float, device: torch.device,
                 generator: torch.Generator | None) -> torch.Tensor:
        """Independent U(lo, hi) draws; ``shape[0]`` is the batch, so every sample gets its own."""
        return lo + (hi - lo) * torch.rand(shape, device=device, generator=generator)

    def _coin(self, batch: int, p: float, device: torch.device,
              generator: torch.Generator | None) -> torch.Tensor:
        return self._uniform((batch,), 0.0, 1.0, device, generator) < p

    # ---------------------------------------------------------------- forward
    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch. ``generator``, if given, must live on ``images.device``."""
        with no_autocast(images.device):
            return self._forward(to_float_rgb(images), generator)

    def _forward(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        v = self.view
        x = self._crop_flip(x, generator)
        if v.jitter_p > 0 and max(v.brightness, v.contrast, v.saturation, v.hue) > 0:
            x = self._jitter(x, generator)
        if v.grayscale_p > 0:
            gray = self._coin(x.shape[0], v.grayscale_p, x.device, generator)
            x = torch.where(_bcast(gray), rgb_to_gray(x).expand_as(x), x)
        if v.blur_p > 0:
            x = self._blur(x, generator)
        if v.solarize_p > 0:
            sol = self._coin(x.shape[0], v.solarize_p, x.device, generator)
            x = torch.where(_bcast(sol) & (x >= v.solarize_threshold), 1.0 - x, x)
        if self.normalize:
            x = (x - self.mean.to(x.device, x.dtype)) / self.std.to(x.device, x.dtype)
        return x

    def _crop_flip(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Random resized crop (torchvision's box sampling) and horizontal flip as one grid_sample.

        Boxes: 10 candidate (area, log-ratio) draws per sample, all at once; the
        first that fits is used, else torchvision's centred fallback box.
        """
        v, dev = self.view, x.device
        batch, _, height, width = x.shape
        n = CROP_ATTEMPTS
        area = height * width * self._uniform((batch, n), v.crop_scale_min, v.crop_scale_max, dev, generator)
        log_ratio = self._uniform((batch, n), math.log(v.crop_ratio_min), math.log(v.crop_ratio_max),
                                  dev, generator)
        ratio = torch.exp(log_ratio)
        w = torch.round(torch.sqrt(area * ratio))
        h = torch.round(torch.sqrt(area / ratio))
        valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        index = torch.arange(n, device=dev).expand(batch, n)
        first = torch.where(valid, index, n).amin(dim=1)
        found = first < n
        first = first.clamp(max=n - 1).unsqueeze(1)
        w = w.gather(1, first).squeeze(1)
        h = h.gather(1, first).squeeze(1)
        # torchvision's fallback: the largest centred box whose ratio is in range.
        in_ratio = width / height
        if in_ratio < v.crop_ratio_min:
            fw, fh = width, round(width / v.crop_ratio_min)
        elif in_ratio > v.crop_ratio_max:
            fw, fh = round(height * v.crop_ratio_max), height
        else:
            fw, fh = width, height
        w = torch.where(found, w, float(fw)).clamp(1, width)
        h = torch.where(found, h, float(fh)).clamp(1, height)
        x0 = torch.floor(self._uniform((batch,), 0.0, 1.0, dev, generator) * (width - w + 1))
        y0 = torch.floor(self._uniform((batch,), 0.0, 1.0, dev, generator) * (height - h + 1))
        x0 = torch.where(found, torch.minimum(x0, width - w), torch.floor((width - w) / 2))
        y0 = torch.where(found, torch.minimum(y0, height - h), torch.floor((height - h) / 2))

        flip = None
        if v.flip_p > 0:
            flip = self._coin(batch, v.flip_p, dev, generator)
        return resample_boxes(x, x0, y0, w, h, flip, self.image_size)

    def _jitter(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """torchvision ColorJitter with prob ``jitter_p``: per-sample factors and per-sample op order.

        Brightness scales the image, contrast blends it with its mean luma,
        saturation with its per-pixel luma, hue rotates HSV hue; each step clamps
        to [0, 1]. The three blends share one fused pass per position. Hue, the
        costly op, runs once for the whole batch: each sample's blends that come
        before its hue step run first, then hue, then the blends after it, which
        is the same sequence per sample as looping over the 4 positions.
        """
        v, dev, batch = self.view, x.device, x.shape[0]
        apply = self._coin(batch, v.jitter_p, dev, generator)
        factors = (
            self._uniform((batch,), max(0.0, 1 - v.brightness), 1 + v.brightness, dev, generator),
            self._uniform((batch,), max(0.0, 1 - v.contrast), 1 + v.contrast, dev, generator),
            self._uniform((batch,), max(0.0, 1 - v.saturation), 1 + v.saturation, dev, generator),
            self._uniform((batch,), -v.hue, v.hue, dev, generator),
        )
        order = torch.argsort(self._uniform((batch, 4), 0.0, 1.0, dev, generator), dim=1)  # op at each position
        out = x.clamp(0.0, 1.0)
        blends = v.brightness > 0 or v.contrast > 0 or v.saturation > 0
        if v.hue > 0:
            hue_pos = torch.argsort(order, dim=1)[:, 3]  # position of the hue step per sample
            if blends:
                for pos in range(3):
                    out = self._blend_step(out, order[:, pos], pos < hue_pos, factors)
            out = shift_hue(out, factors[3])
            if blends:
                for pos in range(1, 4):
                    out = self._blend_step(out, order[:, pos], pos > hue_pos, factors)
        else:
            everyone = torch.ones(batch, dtype=torch.bool, device=dev)
            for pos in range(4):
                out = self._blend_step(out, order[:, pos], everyone, factors)
        return torch.where(_bcast(apply), out, x)

    def _blend_step(self, out: torch.Tensor, op: torch.Tensor, active: torch.Tensor,
                    factors: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """One jitter position for the blend ops: ``f * x + (1 - f) * target``, clamped.

        Per sample: brightness (``op == 0``) has target 0, contrast (1) the mean
        luma, saturation (2) the per-pixel luma; inactive samples (or ``op == 3``)
        get ``f = 1`` and come out unchanged.
        """
        v = self.view
        f = torch.ones_like(factors[0])
        if v.brightness > 0:
            f = torch.where(active & (op == 0), factors[0], f)
        if v.contrast == 0 and v.saturation == 0:
            return (_bcast(f).to(out.dtype) * out).clamp_(0.0, 1.0)
        # out' = f * out + (1 - f) * target; the target term is built on one channel and added in one addcmul.
        gray = rgb_to_gray(out)
        target = torch.zeros_like(gray)
        if v.contrast > 0:
            sel = active & (op == 1)
            f = torch.where(sel, factors[1], f)
            target = target + _bcast(sel.to(out.dtype)) * gray.mean(dim=(2, 3), keepdim=True)
        if v.saturation > 0:
            sel = active & (op == 2)
            f = torch.where(sel, factors[2], f)
            target = torch.addcmul(target, _bcast(sel.to(out.dtype)), gray)
        f = _bcast(f).to(out.dtype)
        return torch.addcmul(target.mul_(1 - f), f, out).clamp_(0.0, 1.0)

    def _blur(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Gaussian blur with prob ``blur_p``, sigma ~ U(range) per sample, reflect padding.

        See :func:`gaussian_blur`.
        """
        v, dev, batch = self.view, x.device, x.shape[0]
        lo, hi = self.sigma_range
        sigma = self._uniform((batch,), lo, hi, dev, generator)
        blur = self._coin(batch, v.blur_p, dev, generator)
        return gaussian_blur(x, sigma, blur, self.kernel_size)
