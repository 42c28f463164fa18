"""Tests of BYOL's view augmentation: the Kornia reference and the fast batched backend.

Besides shapes and API behaviour, the fast backend is checked against Kornia
statistically: both run on the same synthetic images designed so that the drawn
parameters can be read back from the output (a coordinate ramp for crops and
flips, colour patterns for jitter, noise for blur), and two-sample KS tests
compare the per-sample statistics. Negative controls (a different crop scale
range, hue jitter left out, one draw per batch instead of per sample) show that
the comparison fails when the fast path is wrong. The jitter order, which
marginal statistics barely see, has its own per-sample read-back test.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import kornia
import numpy as np
import pytest
import torch

from byol_core.augment.fast import FastViewAugment
from byol_core.augment.ops import blur_kernel_size, gaussian_blur, resample_boxes, shift_hue
from byol_core.augment.views import (
    BYOLAugment,
    build_supervised_augment,
    build_view_pipeline,
    eval_transform,
    preview,
    to_float_rgb,
)
from byol_core.config import AugmentConfig, ViewAugmentConfig
from byol_core.presets import PRESETS, get_preset

try:
    from scipy import stats as _scipy_stats
except ImportError:  # pragma: no cover - scipy is optional
    _scipy_stats = None

N = 2000  # samples per backend in the statistical comparisons
P_OK = 1e-3  # equivalent implementations must not look different at this level...
P_BROKEN = 1e-6  # ...and a broken one must look different at this level

IDENTITY_CROP = {"crop_scale_min": 1.0, "crop_scale_max": 1.0, "crop_ratio_min": 1.0, "crop_ratio_max": 1.0}
NOTHING = {"flip_p": 0.0, "jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": 0.0, "solarize_p": 0.0}


# --------------------------------------------------------------------------- KS helpers
def _kolmogorov_sf(lam: float) -> float:
    """P(K > lam) of the Kolmogorov distribution (asymptotic KS p-value)."""
    if lam < 0.2:
        return 1.0
    return float(min(1.0, 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))))


def ks_2samp_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample KS p-value (scipy when available, else the asymptotic formula)."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if _scipy_stats is not None:
        return float(_scipy_stats.ks_2samp(a, b).pvalue)
    grid = np.concatenate([a, b])
    d = np.max(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)))
    n = len(a) * len(b) / (len(a) + len(b))
    return _kolmogorov_sf(d * math.sqrt(n))


def ks_uniform_p(x: np.ndarray, lo: float, hi: float) -> float:
    """One-sample KS p-value of ``x`` against U(lo, hi)."""
    x = np.sort(np.asarray(x, float))
    if _scipy_stats is not None:
        return float(_scipy_stats.kstest(x, "uniform", args=(lo, hi - lo)).pvalue)
    cdf = np.clip((x - lo) / (hi - lo), 0, 1)
    n = len(x)
    d = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    return _kolmogorov_sf(d * math.sqrt(n))


def rate_z(a: np.ndarray, b: np.ndarray) -> float:
    """|z| of a two-proportion test between boolean samples ``a`` and ``b``."""
    pa, pb = a.mean(), b.mean()
    pool = (a.sum() + b.sum()) / (len(a) + len(b))
    se = math.sqrt(max(pool * (1 - pool) * (1 / len(a) + 1 / len(b)), 1e-12))
    return abs(pa - pb) / se


# --------------------------------------------------------------------------- runners
def view_cfg(**kw) -> ViewAugmentConfig:
    return ViewAugmentConfig(**{**NOTHING, **kw})


def run_kornia(view: ViewAugmentConfig, size: int, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_view_pipeline(view, size, (0.0,), (1.0,), normalize=False)(images)


def run_fast(view: ViewAugmentConfig, size: int, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return FastViewAugment(view, size, (0.0,), (1.0,), normalize=False)(images, generator=gen)


def batch_of(image: torch.Tensor, n: int = N) -> torch.Tensor:
    return image.unsqueeze(0).expand(n, -1, -1, -1)


# --------------------------------------------------------------------------- synthetic images
def coord_image(height: int = 24, width: int = 32) -> torch.Tensor:
    """uint8 RGB image whose red encodes x and green encodes y exactly (linear ramps)."""
    xs = torch.arange(width) * 8 + 4
    ys = torch.arange(height) * 10 + 5
    img = torch.zeros(3, height, width, dtype=torch.uint8)
    img[0] = xs.view(1, -1).expand(height, -1).to(torch.uint8)
    img[1] = ys.view(-1, 1).expand(-1, width).to(torch.uint8)
    img[2] = 128
    return img


def colour_image(size: int = 16) -> torch.Tensor:
    """uint8 RGB image: a hue wheel at saturation 0.6 with values 0.35-0.7 (no clamping under jitter)."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    hue = ((xx + yy * size).float() / (size * size)) * 2 * math.pi
    sat = torch.full_like(hue, 0.6)
    val = 0.35 + 0.35 * (xx.float() / (size - 1))
    rgb = kornia.color.hsv_to_rgb(torch.stack([hue, sat, val]).unsqueeze(0))[0]
    return (rgb * 255).round().to(torch.uint8)


def noise_image(size: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8)


# --------------------------------------------------------------------------- statistics read back
def crop_stats(out: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-sample crop/flip statistics of views of :func:`coord_image`."""
    xs = (out[:, 0] * 255 - 4) / 8  # source x coordinate that each output pixel read
    ys = (out[:, 1] * 255 - 5) / 10
    xr = (xs.amax((1, 2)) - xs.amin((1, 2))).numpy()
    yr = (ys.amax((1, 2)) - ys.amin((1, 2))).numpy()
    slope = (xs[:, :, -1] - xs[:, :, 0]).mean(1).numpy()
    return {
        "x_range": xr, "y_range": yr, "area": (xr + 1) * (yr + 1), "log_aspect": np.log((xr + 1) / (yr + 1)),
        "x_centre": xs.mean((1, 2)).numpy(), "y_centre": ys.mean((1, 2)).numpy(), "flipped": slope < 0,
    }


def hue_turns(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hue in turns, chroma) per pixel, via Kornia's HSV (independent of the fast path)."""
    hsv = kornia.color.rgb_to_hsv(x)
    return hsv[:, 0] / (2 * math.pi), x.amax(1) - x.amin(1)


def hue_shift(out: torch.Tensor, ref: torch.Tensor) -> np.ndarray:
    """Chroma-weighted circular mean hue change (turns) of each output vs the reference image."""
    h_out, c_out = hue_turns(out)
    h_in, c_in = hue_turns(ref.expand_as(out))
    ang = (h_out - h_in) * 2 * math.pi
    w = c_out * c_in
    return (torch.atan2((w * ang.sin()).sum((1, 2)), (w * ang.cos()).sum((1, 2))) / (2 * math.pi)).numpy()


def luma(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


def colour_stats(out: torch.Tensor, ref: torch.Tensor) -> dict[str, np.ndarray]:
    y = luma(out)
    chroma = out.amax(1) - out.amin(1)
    return {
        "mean_luma": y.mean((1, 2)).numpy(), "std_luma": y.std((1, 2)).numpy(),
        "chroma": chroma.mean((1, 2)).numpy(), "hue_shift": hue_shift(out, ref),
        "mean_red": out[:, 0].mean((1, 2)).numpy(),
    }


def hf_energy(x: torch.Tensor) -> np.ndarray:
    """Mean squared difference of neighbouring pixels: drops as blur gets stronger."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean((1, 2, 3))
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean((1, 2, 3))
    return (dx + dy).numpy()


def min_p(ka: dict[str, np.ndarray], fa: dict[str, np.ndarray]) -> tuple[float, dict[str, float]]:
    """Smallest KS p-value over the statistics, and all of them.

    Values are rounded to 1e-4 first: an untouched sample gives an exact atom in
    one backend and float noise of ~1e-6 around it in the other, which KS would
    otherwise read as a difference in distribution.
    """
    ps = {k: ks_2samp_p(np.round(ka[k], 4), np.round(fa[k], 4)) for k in ka if ka[k].dtype != bool}
    return min(ps.values()), ps


# --------------------------------------------------------------------------- the comparisons
CROP_VIEW = view_cfg(flip_p=0.5)  # default crop ranges (0.08-1, 3/4-4/3) + flip
COLOUR_VIEW = view_cfg(**IDENTITY_CROP, jitter_p=0.8)  # default jitter strengths
BLUR_SIZE = 40  # kernel 13 for the sigmas below
BLUR_VIEW = view_cfg(**IDENTITY_CROP, blur_p=0.5, blur_sigma_min=0.35, blur_sigma_max=1.8)


COLOUR_SIZE = 12


def crop_run(run, view: ViewAugmentConfig, seed: int) -> dict[str, np.ndarray]:
    return crop_stats(run(view, 16, batch_of(coord_image()), seed))


def colour_run(run, view: ViewAugmentConfig, seed: int) -> dict[str, np.ndarray]:
    ref = to_float_rgb(colour_image(COLOUR_SIZE).unsqueeze(0))
    return colour_stats(run(view, COLOUR_SIZE, batch_of(colour_image(COLOUR_SIZE)), seed), ref)


def blur_run(run, view: ViewAugmentConfig, seed: int) -> dict[str, np.ndarray]:
    return {"hf": hf_energy(run(view, BLUR_SIZE, batch_of(noise_image(BLUR_SIZE)), seed))}


@functools.cache
def kornia_reference(kind: str) -> dict[str, np.ndarray]:
    """Kornia's statistics for one comparison, computed once per test session."""
    if kind == "crop":
        return crop_run(run_kornia, CROP_VIEW, seed=1)
    if kind == "colour":
        return colour_run(run_kornia, COLOUR_VIEW, seed=3)
    return blur_run(run_kornia, BLUR_VIEW, seed=5)


def compare_crop(fview: ViewAugmentConfig = CROP_VIEW) -> tuple[float, float, dict]:
    ks, fs = kornia_reference("crop"), crop_run(run_fast, fview, seed=2)
    p, ps = min_p(ks, fs)
    return p, rate_z(ks["flipped"], fs["flipped"]), ps


def compare_colour(fview: ViewAugmentConfig = COLOUR_VIEW) -> tuple[float, dict]:
    return min_p(kornia_reference("colour"), colour_run(run_fast, fview, seed=4))


def compare_blur(fview: ViewAugmentConfig = BLUR_VIEW) -> tuple[float, dict]:
    return min_p(kornia_reference("blur"), blur_run(run_fast, fview, seed=6))


def test_crop_and_flip_distributions_match_kornia():
    p, z, ps = compare_crop()
    assert p > P_OK, ps
    assert z < 4.0


def test_colour_jitter_distributions_match_kornia():
    p, ps = compare_colour()
    assert p > P_OK, ps


def test_blur_strength_distribution_matches_kornia():
    p, ps = compare_blur()
    assert p > P_OK, ps


@pytest.mark.parametrize("field,threshold", [("grayscale_p", None), ("solarize_p", 0.5)])
def test_grayscale_and_solarize_rates_match_kornia(field, threshold):
    view = view_cfg(**IDENTITY_CROP, **{field: 0.2})
    if field == "grayscale_p":
        images = batch_of(colour_image(8))
        outs = (run_kornia(view, 8, images, 7), run_fast(view, 8, images, 8))
        hit = [(o.amax(1) - o.amin(1)).amax((1, 2)).numpy() < 1e-6 for o in outs]
        # the gray value itself (luma weights) must agree too
        assert min_p({"red": outs[0][:, 0].mean((1, 2)).numpy()}, {"red": outs[1][:, 0].mean((1, 2)).numpy()})[0] > P_OK
    else:
        images = batch_of(torch.full((3, 8, 8), 200, dtype=torch.uint8))
        hit = [o.mean((1, 2, 3)).numpy() < threshold
               for o in (run_kornia(view, 8, images, 7), run_fast(view, 8, images, 8))]
    sd = math.sqrt(0.2 * 0.8 / N)
    for h in hit:
        assert abs(h.mean() - 0.2) < 4 * sd
    assert rate_z(*hit) < 4.0


@pytest.mark.parametrize("backend", ["kornia", "fast"])
@pytest.mark.parametrize("op", ["brightness", "contrast", "saturation", "hue"])
def test_each_jitter_factor_follows_its_uniform_law(backend, op):
    """With one jitter op on, its factor is read back exactly and must be U(torchvision's range)."""
    strength = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1}[op]
    kw = {k: 0.0 for k in ("brightness", "contrast", "saturation", "hue")}
    kw[op] = strength
    view = view_cfg(**IDENTITY_CROP, jitter_p=1.0, **kw)
    n = 1000
    images = batch_of(colour_image(COLOUR_SIZE), n)
    x = to_float_rgb(images[:1])
    out = (run_kornia if backend == "kornia" else run_fast)(view, COLOUR_SIZE, images, seed=9)
    if op == "brightness":
        f = (out.mean((1, 2, 3)) / x.mean()).numpy()
    elif op == "contrast":
        f = (luma(out).std((1, 2)) / luma(x).std()).numpy()
    elif op == "saturation":
        f = ((out - luma(out).unsqueeze(1)).pow(2).sum((1, 2, 3)).sqrt()
             / (x - luma(x).unsqueeze(1)).pow(2).sum().sqrt()).numpy()
    else:
        f = hue_shift(out, x)
    lo, hi = (-strength, strength) if op == "hue" else (1 - strength, 1 + strength)
    assert ks_uniform_p(f, lo, hi) > P_OK


@pytest.mark.parametrize("backend", ["kornia", "fast"])
def test_jitter_order_is_drawn_per_sample(backend):
    """Saturation and hue do not commute, and the order can be read back per sample.

    On a flat colour with chroma C, value V and luma L, saturation-then-hue gives
    an output whose value is exactly s*V + (1-s)*L with s = output chroma / C;
    hue-then-saturation blends with the luma of the hue-shifted colour instead.
    So about half the samples fit that line when the order is drawn per sample,
    and nearly all or nearly none when one order is drawn per batch (as stock
    ``kornia.augmentation.ColorJitter`` does).
    """
    img = torch.tensor([128, 77, 77], dtype=torch.uint8).view(3, 1, 1).expand(3, 8, 8)
    x = to_float_rgb(img.unsqueeze(0))[0, :, 0, 0]
    value, chroma, lum = x.max(), x.max() - x.min(), luma(x.view(1, 3, 1, 1)).squeeze()
    view = view_cfg(**IDENTITY_CROP, jitter_p=1.0, brightness=0.0, contrast=0.0, saturation=1.0, hue=0.5)

    def saturation_first(out: torch.Tensor) -> np.ndarray:
        v, c = out.amax(1)[:, 0, 0], (out.amax(1) - out.amin(1))[:, 0, 0]
        s = c / chroma
        return ((v - (s * value + (1 - s) * lum)).abs() < 1e-4).numpy()

    images = batch_of(img, 1000)
    first = saturation_first((run_kornia if backend == "kornia" else run_fast)(view, 8, images, seed=12))
    assert 0.42 < first.mean() < 0.6


# --------------------------------------------------------------------------- negative controls
def test_crop_comparison_detects_a_different_scale_range():
    p, _, _ = compare_crop(dataclasses.replace(CROP_VIEW, crop_scale_min=0.2))
    assert p < P_BROKEN


def test_colour_comparison_detects_missing_hue_jitter():
    p, ps = compare_colour(dataclasses.replace(COLOUR_VIEW, hue=0.0))
    assert ps["hue_shift"] < P_BROKEN, ps
    assert p < P_BROKEN


def test_comparisons_detect_one_draw_per_batch(monkeypatch):
    def one_draw_per_batch(shape, lo, hi, device, generator):
        row = torch.rand((1, *shape[1:]), device=device, generator=generator)
        return lo + (hi - lo) * row.expand(shape)

    monkeypatch.setattr(FastViewAugment, "_uniform", staticmethod(one_draw_per_batch))
    p, z, _ = compare_crop()
    assert p < P_BROKEN and z > 10
    assert compare_colour()[0] < P_BROKEN
    assert compare_blur()[0] < P_BROKEN


# --------------------------------------------------------------------------- exact building blocks
def test_fast_building_blocks_equal_kornia_ops():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 20, 28)
    crop = kornia.augmentation.RandomResizedCrop((12, 12), align_corners=False, cropping_mode="slice")
    ref = crop(x)
    src = crop._params["src"]
    x0, y0 = src[:, 0, 0], src[:, 0, 1]
    w, h = src[:, 1, 0] - x0 + 1, src[:, 2, 1] - y0 + 1
    torch.testing.assert_close(resample_boxes(x, x0, y0, w, h, None, 12), ref, atol=1e-5, rtol=0)
    flip = torch.arange(16) % 2 == 0
    torch.testing.assert_close(resample_boxes(x, x0, y0, w, h, flip, 12),
                               torch.where(flip.view(-1, 1, 1, 1), ref.flip(-1), ref), atol=1e-5, rtol=0)

    img = torch.rand(16, 3, 24, 24)
    sigma = torch.linspace(0.1, 2.0, 16)
    blurred = kornia.filters.gaussian_blur2d(img, (7, 7), sigma.unsqueeze(1).expand(-1, 2), "reflect")
    torch.testing.assert_close(gaussian_blur(img, sigma, torch.ones(16, dtype=torch.bool), 7), blurred)
    torch.testing.assert_close(gaussian_blur(img, sigma, torch.zeros(16, dtype=torch.bool), 7), img)

    shift = torch.linspace(-0.5, 0.5, 16)
    torch.testing.assert_close(shift_hue(img, shift), kornia.enhance.adjust_hue(img, shift * 2 * math.pi),
                               atol=1e-5, rtol=0)


def test_blur_kernel_is_a_tenth_of_the_side_and_holds_three_sigma():
    assert blur_kernel_size(224, 2.0) == 23  # the paper's kernel at the paper's size
    assert blur_kernel_size(512, 0.5) == 53  # 10% of the side, made odd
    assert [blur_kernel_size(s, 2.0) for s in (16, 28, 32, 96)] == [13] * 4  # +-3 sigma of the largest sigma
    assert blur_kernel_size(8, 2.0) == 7 and blur_kernel_size(16, 10.0) == 15  # never wider than the image
    assert blur_kernel_size(8, 0.1) == 3


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("backend", ["kornia", "fast"])
def test_blur_at_the_largest_sigma_is_visible_at_every_preset_size(name, backend):
    """View 1's strongest blur changes a textured image by more than 2 grey levels on average.

    With sigmas scaled by size / 224 it changed 16 px views by ~1e-13 and 32 px views by ~0.6/255.
    """
    aug = get_preset(name).augment
    sigma = aug.view1.blur_sigma_max
    view = view_cfg(**IDENTITY_CROP, blur_p=1.0, blur_sigma_min=sigma, blur_sigma_max=sigma)
    images = noise_image(aug.image_size).unsqueeze(0)
    blurred = (run_kornia if backend == "kornia" else run_fast)(view, aug.image_size, images)
    change = (blurred - to_float_rgb(images)).abs().mean().item()
    assert change > 2 / 255, (aug.image_size, change * 255)


# --------------------------------------------------------------------------- API behaviour
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


@pytest.mark.parametrize("backend", ["kornia", "fast"])
@pytest.mark.parametrize("channels", [1, 3])
def test_byol_augment_shapes_dtypes_devices(backend, channels):
    cfg = AugmentConfig(image_size=16, backend=backend)
    aug = BYOLAugment(cfg, MEAN, STD)
    images = torch.randint(0, 256, (4, channels, 20, 24), dtype=torch.uint8)
    for inp in (images, images.float() / 255):
        v1, v2 = aug(inp)
        for v in (v1, v2):
            assert v.shape == (4, 3, 16, 16)
            assert v.dtype == torch.float32
            assert v.device == images.device
            assert torch.isfinite(v).all()


@pytest.mark.parametrize("backend", ["kornia", "fast"])
def test_identical_images_get_different_views(backend):
    aug = BYOLAugment(AugmentConfig(image_size=16, backend=backend), MEAN, STD)
    images = batch_of(noise_image(24), 2).contiguous()
    torch.manual_seed(0)
    v1, v2 = aug(images)
    assert not torch.allclose(v1[0], v1[1])
    assert not torch.allclose(v2[0], v2[1])
    assert not torch.allclose(v1[0], v2[0])


@pytest.mark.parametrize("backend", ["kornia", "fast"])
def test_view1_is_blurred_more_than_view2(backend):
    cfg = AugmentConfig(image_size=96)
    keep = {**IDENTITY_CROP, "flip_p": 0.0, "jitter_p": 0.0, "grayscale_p": 0.0}
    view1 = dataclasses.replace(cfg.view1, **keep)
    view2 = dataclasses.replace(cfg.view2, **keep)
    images = batch_of(noise_image(96), 64)
    run = run_kornia if backend == "kornia" else run_fast
    hf1, hf2 = hf_energy(run(view1, 96, images, 0)), hf_energy(run(view2, 96, images, 0))
    assert hf1.mean() < 0.85 * hf2.mean()
    assert (hf1 <= hf_energy(to_float_rgb(images[:1]))[0] + 1e-6).all()  # blur never sharpens


@pytest.mark.parametrize("backend", ["kornia", "fast"])
def test_view2_solarize_rate_on_constant_image(backend):
    cfg = AugmentConfig(image_size=8)
    images = batch_of(torch.full((3, 10, 10), 230, dtype=torch.uint8), 1000)
    out = (run_kornia if backend == "kornia" else run_fast)(cfg.view2, 8, images, seed=11)
    # brightness jitter keeps 230/255 above the 0.5 threshold, so a value below it means solarized
    rate = (out.mean((1, 2, 3)) < 0.5).float().mean().item()
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 1000)
    v1 = (run_kornia if backend == "kornia" else run_fast)(cfg.view1, 8, images, seed=11)
    assert (v1 >= 0.5).all()  # view 1 is never solarized


def test_preview_is_reproducible_and_leaves_global_rng_alone():
    cfg = AugmentConfig(image_size=16)
    images = torch.randint(0, 256, (3, 3, 24, 24), dtype=torch.uint8)
    state = torch.get_rng_state()
    a = preview(images, cfg, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    b = preview(images, cfg, seed=1)
    c = preview(images, cfg, seed=2)
    assert len(a) == 3
    for t in a:
        assert t.shape == (3, 3, 16, 16) and t.dtype == torch.float32
        assert t.min() >= 0 and t.max() <= 1
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert torch.equal(a[0], c[0])
    assert not torch.equal(a[1], c[1]) and not torch.equal(a[2], c[2])


def test_eval_transform_is_deterministic_and_normalises():
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    a = eval_transform(images, 16, (0.5,), (0.25,))
    assert a.shape == (2, 3, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, eval_transform(images, 16, (0.5,), (0.25,)))
    white = torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    torch.testing.assert_close(eval_transform(white, 8, MEAN, STD),
                               ((1 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1).expand(1, 3, 8, 8))


def test_to_float_rgb():
    gray = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    out = to_float_rgb(gray)
    assert out.shape == (1, 3, 1, 2) and out.dtype == torch.float32
    assert torch.equal(out[0, :, 0, 1], torch.ones(3))
    with pytest.raises(ValueError):
        to_float_rgb(torch.zeros(1, 2, 4, 4))


@pytest.mark.parametrize("backend", ["kornia", "fast"])
def test_supervised_augment(backend):
    aug = build_supervised_augment(16, 0.5, 0.5, MEAN, STD, backend=backend)
    out = aug(torch.randint(0, 256, (4, 3, 20, 20), dtype=torch.uint8))
    assert out.shape == (4, 3, 16, 16) and out.dtype == torch.float32


def test_fast_generator_makes_views_reproducible():
    view = AugmentConfig().view2
    images = torch.randint(0, 256, (8, 3, 20, 20), dtype=torch.uint8)
    a = run_fast(view, 16, images, seed=3)
    assert torch.equal(a, run_fast(view, 16, images, seed=3))
    assert not torch.equal(a, run_fast(view, 16, images, seed=4))


@pytest.mark.parametrize("backend", ["kornia", "fast"])
def test_views_stay_float32_inside_autocast(backend):
    aug = BYOLAugment(AugmentConfig(image_size=16, backend=backend), MEAN, STD)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v1, v2 = aug(torch.randint(0, 256, (2, 3, 20, 20), dtype=torch.uint8))
    assert v1.dtype == v2.dtype == torch.float32
