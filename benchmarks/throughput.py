"""BYOL training throughput against a plain forward+backward of the same backbone, in one process.

    python benchmarks/throughput.py --backbone resnet18 --size 32 --batch 64 --device cpu

Rows (input images per second; a BYOL step takes B images and makes 2B views):
  ours            our full step: per-sample augmentation of uint8 images, online forward of both views,
                  target forward, backward, optimiser step, EMA update
  ours-no-aug     the same step on pre-made views (the model's share of the cost)
  reference       a plain forward+backward+Adam step of the bare backbone at batch 2B, counted as B
                  input images per step: what one BYOL step's online network costs at minimum
  lucidrains      byol-pytorch's BYOL (batch-shared augmentation), when that package is installed
Timed rounds alternate between the candidates and the median is reported, so a noisy, shared
machine slows every row alike; the ratios are the figures to quote.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from byol_core.augment.views import BYOLAugment
from byol_core.config import ModelConfig, parse_set_args, with_overrides
from byol_core.device import autocast, resolve_device, use_bf16
from byol_core.methods.byol import BYOL, byol_step
from byol_core.methods.networks import build_backbone
from byol_core.presets import byol_paper_augment


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_candidates(args: argparse.Namespace, device: torch.device) -> dict[str, Callable[[], None]]:
    bf16 = use_bf16(args.precision, device)
    channels_last = not args.no_channels_last
    small_stem = args.size <= 64 if args.stem == "auto" else args.stem == "small"
    model_cfg = with_overrides(ModelConfig(backbone=args.backbone, small_stem=small_stem), parse_set_args(args.set))
    images = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8, device=device)
    aug_cfg = byol_paper_augment(args.size, backend=args.augment)
    mem = torch.channels_last if channels_last else torch.contiguous_format

    torch.manual_seed(0)
    byol = BYOL.from_config(model_cfg, args.size).to(device).to(memory_format=mem)
    augment = BYOLAugment(aug_cfg, (0.5,), (0.25,)).to(device)
    opt = torch.optim.Adam(byol.online_parameters(), lr=1e-4, **({"fused": True} if device.type == "cuda" else {}))
    forward = torch.compile(byol) if args.compile else byol

    def ours() -> None:
        byol_step(byol, augment, opt, images, lr=1e-4, tau=0.99, bf16=bf16, channels_last=channels_last,
                  forward=forward)

    with torch.no_grad():
        views = [v.contiguous(memory_format=mem) for v in augment(images)]

    def _no_aug_step() -> None:  # the same update on views made once: what augmenting costs is the difference
        byol_step(byol, lambda _images: views, opt, images, lr=1e-4, tau=0.99, bf16=bf16,
                  channels_last=channels_last, forward=forward)

    backbone = build_backbone(model_cfg).to(device).to(memory_format=mem)
    ref_opt = torch.optim.Adam(backbone.parameters(), lr=1e-4)
    double = torch.randn(2 * args.batch, 3, args.size, args.size, device=device).contiguous(memory_format=mem)

    def reference() -> None:
        with autocast(device, bf16):
            loss = backbone(double).float().square().mean()
        ref_opt.zero_grad(set_to_none=True)
        loss.backward()
        ref_opt.step()

    candidates = {"ours": ours, "ours-no-aug": _no_aug_step, "reference": reference}
    try:
        from byol_pytorch import BYOL as LucidBYOL  # optional: only for the comparison row
    except ImportError:
        print("lucidrains byol-pytorch is not installed: its row is skipped (pip install byol-pytorch)")
    else:
        torch.manual_seed(0)
        net = build_backbone(model_cfg)
        lucid = LucidBYOL(net, image_size=args.size, hidden_layer=-1 if args.backbone != "small-cnn" else "pool",
                          projection_size=model_cfg.projector_out,
                          projection_hidden_size=model_cfg.projector_hidden).to(device).to(memory_format=mem)
        lucid_opt = torch.optim.Adam(lucid.parameters(), lr=1e-4)
        float_images = images.float() / 255.0

        def lucidrains() -> None:
            with autocast(device, bf16):
                loss = lucid(float_images)
            lucid_opt.zero_grad(set_to_none=True)
            loss.backward()
            lucid_opt.step()
            lucid.update_moving_average()

        candidates["lucidrains"] = lucidrains
    return candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--augment", default="fast", choices=("fast", "kornia"))
    parser.add_argument("--stem", default="auto", choices=("auto", "small", "standard"),
                        help="ResNet stem: 'small' (3x3, no max-pool) is the default up to 64 px")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="model config overrides, e.g. --set projector_hidden=1024")
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    args = parser.parse_args()
    device = resolve_device(args.device)
    candidates = make_candidates(args, device)
    for fn in candidates.values():
        for _ in range(args.warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, fn in candidates.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            _sync(device)
            times[name].append((time.perf_counter() - t0) / args.steps)
    step_s = {name: statistics.median(ts) for name, ts in times.items()}
    rows = []
    print(f"device {device}, {args.backbone}, {args.size}px, batch {args.batch}, augment {args.augment}, "
          f"precision {args.precision} (bf16={use_bf16(args.precision, device)}), "
          f"{torch.get_num_threads()} threads")
    print(f"{'candidate':<12} {'ms/step':>9} {'img/s':>9} {'vs reference':>13}")
    for name, s in step_s.items():
        rate = args.batch / s
        ratio = step_s["reference"] / s
        rows.append({"candidate": name, "ms_per_step": 1000 * s, "img_per_s": rate, "ratio_to_reference": ratio})
        print(f"{name:<12} {1000 * s:9.1f} {rate:9.0f} {ratio:12.2f}x")
    if "lucidrains" in step_s:
        print(f"ours / lucidrains: {step_s['lucidrains'] / step_s['ours']:.2f}x")
    # The seed experiment (STL10): BYOL 50 epochs on 105k train+unlabeled images, then 25 epochs of
    # fine-tuning on 5k labelled ones; a supervised step costs about the reference's forward+backward
    # per image, and the reference row counts B input images per 2B processed.
    byol_s = 50 * 105_000 * step_s["ours"] / args.batch
    finetune_s = 25 * 5_000 * step_s["reference"] / (2 * args.batch)
    estimate = {"byol_minutes": byol_s / 60, "finetune_minutes": finetune_s / 60,
                "total_minutes": (byol_s + finetune_s) / 60}
    print(f"seed experiment at these rates (STL10 sizes; meaningful at --size 96): BYOL {byol_s / 60:.1f} min + "
          f"fine-tune {finetune_s / 60:.1f} min = {(byol_s + finetune_s) / 60:.1f} min")
    out = {"args": vars(args), "device": str(device), "machine": platform.platform(),
           "processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "rows": rows,
           "seed_experiment_estimate": estimate}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
