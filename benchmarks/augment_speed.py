"""Throughput of BYOL's two-view augmentation: Kornia reference vs the fast batched backend.

Both backends run in the same process, taking turns, on the same uint8 batch with the default
BYOL view settings (paper Table 6, ``AugmentConfig``); each iteration makes two
views per image. Prints a table and writes JSON.

    python benchmarks/augment_speed.py --size 32 --batch 256 --device cpu --iters 10
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from byol_core.augment.views import BYOLAugment
from byol_core.config import AugmentConfig

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "augment_speed.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_backends(backends: tuple[str, ...], images: torch.Tensor, size: int, iters: int,
                  warmup: int) -> dict[str, dict[str, float]]:
    """Seconds per batch (median, mean) and view-images per second for each backend.

    The backends take turns within every iteration (the starting one alternating),
    so a change in background load on a shared machine hits them alike.
    """
    augs = {b: BYOLAugment(AugmentConfig(image_size=size, backend=b), (0.5,), (0.25,)) for b in backends}
    times: dict[str, list[float]] = {b: [] for b in backends}
    with torch.no_grad():
        for aug in augs.values():
            for _ in range(warmup):
                aug(images)
        _sync(images.device)
        for i in range(iters):
            for name in (backends if i % 2 == 0 else backends[::-1]):
                t0 = time.perf_counter()
                augs[name](images)
                _sync(images.device)
                times[name].append(time.perf_counter() - t0)
    views = 2 * images.shape[0]
    out = {}
    for name, ts in times.items():
        median = sorted(ts)[len(ts) // 2]
        out[name] = {"median_s": median, "mean_s": sum(ts) / len(ts), "view_images_per_s": views / median}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="output view side in pixels (AugmentConfig.image_size)")
    parser.add_argument("--src-size", type=int, default=None, help="side of the input images (default: --size)")
    parser.add_argument("--batch", type=int, default=256, help="images per batch (two views each)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per backend")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations per backend")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    src = args.src_size or args.size
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 3, src, src), generator=gen, dtype=torch.uint8).to(device)
    torch.manual_seed(0)

    results = time_backends(("kornia", "fast"), images, args.size, args.iters, args.warmup)
    ratio = results["fast"]["view_images_per_s"] / results["kornia"]["view_images_per_s"]

    print(f"BYOL two-view augmentation: batch {args.batch}, {src}px -> {args.size}px, device {device}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"{'backend':<8} {'ms/batch':>10} {'view-images/s':>15}")
    for name, r in results.items():
        print(f"{name:<8} {1000 * r['median_s']:>10.1f} {r['view_images_per_s']:>15.0f}")
    print(f"fast/kornia: {ratio:.2f}x")

    report = {
        "size": args.size, "src_size": src, "batch": args.batch, "device": str(device), "iters": args.iters,
        "warmup": args.warmup, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "results": results, "fast_over_kornia": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
