"""BYOL's view augmentation as a few batched tensor ops (the ``"fast"`` backend).

This is the same random augmentation as the Kornia reference in
:mod:`byol_core.augment.views` (BYOL paper, Grill et al. 2020, Table 6), written so a
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
The tensor ops it is built from live in :mod:`byol_core.augment.ops`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from byol_core.augment.ops import (
    blur_kernel_size,
    channel_stats,
    gaussian_blur,
    no_autocast,
    resample_boxes,
    rgb_to_gray,
    shift_hue,
    to_float_rgb,
)

if TYPE_CHECKING:
    from ..config import ViewAugmentConfig

# Candidate crop boxes drawn per sample before falling back to a centre crop (torchvision uses 10).
CROP_ATTEMPTS = 10


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
        self.kernel_size = blur_kernel_size(self.image_size, view.blur_sigma_max)
        self.sigma_range = (view.blur_sigma_min, view.blur_sigma_max)  # pixels of the view
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
