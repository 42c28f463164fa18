"""Turning image tensors into arrays ``st.image`` draws quickly (one strip instead of many images)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from byol_core.augment.ops import to_float_rgb


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """Float 0..1 (B, 3, H, W) -> uint8 (B, H, W, 3), values outside 0..1 clipped."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def resize_for_display(images: torch.Tensor, size: int = 96) -> torch.Tensor:
    """Float 0..1 (B, 3, H, W) -> (B, 3, size, size): nearest when enlarging (pixels stay honest),
    antialiased bilinear when shrinking."""
    x = to_float_rgb(images)
    if x.shape[-2:] == (size, size):
        return x
    if x.shape[-1] < size:
        return F.interpolate(x, size=(size, size), mode="nearest")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def strip(images: torch.Tensor, size: int = 96, gap: int = 4) -> np.ndarray:
    """A row of images (B, C, H, W) as one uint8 (size, B*size + (B-1)*gap, 3) picture on white."""
    x = resize_for_display(images, size)
    b = x.shape[0]
    out = np.full((size, b * size + max(b - 1, 0) * gap, 3), 255, dtype=np.uint8)
    tiles = to_uint8_hwc(x)
    for i in range(b):
        left = i * (size + gap)
        out[:, left:left + size] = tiles[i]
    return out


def thumbnails(images: torch.Tensor, size: int = 96) -> list[np.ndarray]:
    """Each image as a uint8 (size, size, 3) array."""
    x = resize_for_display(images, size)
    return list(to_uint8_hwc(x))


def pair_grid(originals: torch.Tensor, view1: torch.Tensor, view2: torch.Tensor, size: int = 96,
              groups: int = 2, gap: int = 4, group_gap: int = 16) -> np.ndarray:
    """Rows of (original, view 1, view 2) at ``size`` px, in ``groups`` side-by-side blocks, on white."""
    tiles = [thumbnails(x, size) for x in (originals, view1, view2)]
    n = len(tiles[0])
    per_group = -(-n // groups)
    block_w = 3 * size + 2 * gap
    height = per_group * size + max(per_group - 1, 0) * gap
    width = groups * block_w + (groups - 1) * group_gap
    out = np.full((height, width, 3), 255, dtype=np.uint8)
    for i in range(n):
        g, r = divmod(i, per_group)
        top = r * (size + gap)
        for c in range(3):
            left = g * (block_w + group_gap) + c * (size + gap)
            out[top:top + size, left:left + size] = tiles[c][i]
    return out


def framed(thumb: np.ndarray, colour: tuple[int, int, int], width: int = 3) -> np.ndarray:
    """A copy of a uint8 (size, size, 3) thumbnail with a ``width``-px frame of ``colour``."""
    out = thumb.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = (colour,) * 4
    return out


def grid(thumbs: list[np.ndarray], per_row: int = 8, gap: int = 3) -> np.ndarray:
    """Thumbnails (size, size, 3) in rows of ``per_row`` on white: one picture, drawn at once."""
    size = thumbs[0].shape[0]
    rows = -(-len(thumbs) // per_row)
    width = min(len(thumbs), per_row)
    out = np.full((rows * size + (rows - 1) * gap, width * size + (width - 1) * gap, 3), 255, dtype=np.uint8)
    for i, thumb in enumerate(thumbs):
        top, left = (i // per_row) * (size + gap), (i % per_row) * (size + gap)
        out[top:top + size, left:left + size] = thumb
    return out
