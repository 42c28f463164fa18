"""An image folder through its disk cache: the first pass, a restart, training speed and memory.

    python3 benchmarks/folder_cache.py --images 20000            # writes benchmarks/measured/folder-cache/folder-cache-20k.json
    python3 benchmarks/folder_cache.py --images 200000 --workdir /big/disk

Generates (once, kept in ``--workdir``) a folder of JPEGs of varied sizes, a few hundred pixels a side,
in 10 class subfolders, then measures:

  first pass      images/s decoding the whole folder into a fresh cache (worker processes, as load_data does)
  restart         a new process, cache complete: seconds from its start to its first BYOL step done, and the
                  part of that spent importing torch and byol_core
  peak RSS        VmHWM of that process after --steps more BYOL steps read from the cache
  throughput      BYOL steps on batches read from the cache against the same images held in memory, in this
                  process, timed rounds alternating between the two (medians; their ratio is the figure to quote)

The machine is quoted in the JSON; on a shared machine the ratio is the stable figure, the rates are not.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

STARTED = time.time()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np
import torch

from byol_core.config import with_overrides
from byol_core.data import ImageSet, load_data
from byol_core.data.folder import load_folder
from byol_core.data.image_cache import CACHE_ENV, ImageCache
from byol_core.methods.byol import _BYOLHooks, pretrain_byol
from byol_core.methods.loop import EpochSampler
from byol_core.presets import get_preset

IMPORTED = time.time()
CLASSES = 10
# A folder of its own: benchmarks/results_readme.py renders every measured/*.json as an accuracy result.
MEASURED = Path(__file__).resolve().parent / "measured" / "folder-cache"


# ---------------------------------------------------------------------------- the folder
def _write_images(args: tuple[str, int, int]) -> None:
    from PIL import Image, ImageDraw

    folder, start, end = args
    for i in range(start, end):
        rng = np.random.default_rng(i)
        w, h = (int(v) for v in rng.integers(200, 520, 2))
        # Coarse random colours smoothly enlarged, a few shapes, a little grain: compresses like a photo (~20 kB).
        coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(img)
        for _ in range(4):
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            draw.ellipse((x0, y0, x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))),
                         fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        grain = rng.integers(-8, 9, (h // 4, w // 4, 1), dtype=np.int16).repeat(4, 0).repeat(4, 1)
        pixels = np.asarray(img, dtype=np.int16)
        pixels[: grain.shape[0], : grain.shape[1]] += grain
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
            Path(folder) / f"class-{i % CLASSES}" / f"{i:07d}.jpg", quality=85)


def make_folder(folder: Path, count: int, link_from: Path | None = None) -> float:
    """The folder of ``count`` JPEGs (made once; a marker file says it is complete); seconds spent making it.

    With ``link_from`` (a smaller folder made before) its files are hard-linked under new names until there are
    ``count``: minutes instead of an hour for 200,000, the same bytes to decode (but more of them in the page cache).
    """
    marker = folder / f".complete-{count}"
    if marker.is_file():
        return 0.0
    shutil.rmtree(folder, ignore_errors=True)
    for c in range(CLASSES):
        (folder / f"class-{c}").mkdir(parents=True)
    started = time.perf_counter()
    if link_from is not None:
        sources = sorted(link_from.rglob("*.jpg"))
        for i in range(count):
            source = sources[i % len(sources)]
            os.link(source, folder / source.parent.name / f"{i // len(sources)}-{source.name}")
    else:
        step = 500
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(_write_images, [(str(folder), s, min(s + step, count)) for s in range(0, count, step)]))
    marker.write_text("")
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- measurements
def _config(folder: Path, args: argparse.Namespace):
    return with_overrides(get_preset("folder-quick"), {
        "data.name": "folder", "data.folder": str(folder), "data.root": str(Path(args.workdir) / "data"),
        "data.folder_image_size": args.size, "data.val_fraction": 0.0, "runtime.device": "cpu",
        "runtime.precision": "fp32", "runtime.log_every": 1, "byol.knn_every_epochs": 0})


def _peak_rss_mb() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def _cpu_seconds() -> float:
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def first_pass(folder: Path, args: argparse.Namespace) -> dict:
    cfg = _config(folder, args)
    shutil.rmtree(ImageCache.for_folder(folder, args.size, cfg.data.root).where, ignore_errors=True)  # this one only
    last = [0.0]

    def report(message: str, fraction: float) -> None:
        if time.monotonic() - last[0] > 10 or fraction >= 0.9:
            print(f"  {message}", flush=True)
            last[0] = time.monotonic()

    started, cpu_before = time.perf_counter(), _cpu_seconds()
    source = load_folder(cfg.data, report, workers=args.workers)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    # CPU time (this process and its finished workers) does not depend on what else the machine runs: images per
    # CPU-second times the cores is the rate the same machine reaches when nothing else runs.
    return {"seconds": round(seconds, 1), "images_per_s": round(args.images / seconds, 1),
            "cpu_seconds": round(cpu, 1), "images_per_cpu_s": round(args.images / cpu, 1),
            "workers": args.workers or os.cpu_count(), "skipped": len(source.skipped_files),
            "cache_bytes": os.path.getsize(source.train.images.path)}


def restart(folder: Path, args: argparse.Namespace) -> dict:
    """A new process on the complete cache: time to its first step, then its peak RSS over more steps."""
    command = [sys.executable, __file__, "--child", "--images", str(args.images), "--size", str(args.size),
               "--workdir", args.workdir, "--steps", str(args.steps), "--threads", str(args.threads)]
    started = time.time()
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ.copy())
    child = json.loads(done.stdout.strip().splitlines()[-1])
    child["to_first_step_s"] = round(child.pop("first_step_at") - started, 1)
    return child


def child(folder: Path, args: argparse.Namespace) -> None:
    cfg = _config(folder, args)
    cfg = with_overrides(cfg, {"byol.optim.min_steps": args.steps + 1, "byol.optim.epochs": 0.01})
    out: dict = {"import_s": round(IMPORTED - STARTED, 1)}
    steps = []

    def on_event(event: dict) -> None:
        if event.get("kind") == "step":
            if not steps:
                out["first_step_at"] = time.time()
                out["after_import_s"] = round(time.time() - IMPORTED, 1)
            steps.append(event)

    stop = threading.Event()
    splits = load_data(cfg.data)
    pretrain_byol(cfg, splits, callbacks=[on_event, lambda e: stop.set() if len(steps) > args.steps else None],
                  stop_event=stop)
    out.update({f"{k}_mb": round(v) for k, v in _peak_rss_mb().items()}, steps=len(steps))
    print(json.dumps(out), flush=True)


def throughput(folder: Path, args: argparse.Namespace) -> dict:
    """BYOL steps on batches from the cache and from memory: one model, the same batches, the two sources
    alternating step by step (which goes first alternates too), so only where the batch comes from differs and
    a busy machine slows both alike. Also the batch read alone."""
    cfg = _config(folder, args)
    splits = load_data(cfg.data)
    keep = min(len(splits.train), args.memory_images)
    on_disk = splits.train.subset(torch.arange(keep)).images
    sources = {"cache": on_disk, "memory": on_disk.materialize()}
    hooks = _BYOLHooks(cfg, dataclasses.replace(splits, train=ImageSet(on_disk, splits.train.labels[:keep])),
                       torch.device("cpu"), bf16=False)
    sampler = EpochSampler(hooks.plan, 0, torch.device("cpu"))
    seconds: dict[str, list[float]] = {name: [] for name in sources}
    reads: dict[str, list[float]] = {name: [] for name in sources}
    step = 0
    for pair in range(args.compare_steps):
        for name in (("cache", "memory") if pair % 2 else ("memory", "cache")):
            idx = sampler.indices(step)
            started = time.perf_counter()
            sources[name][idx]
            reads[name].append(time.perf_counter() - started)
            hooks.images = sources[name]
            started = time.perf_counter()
            hooks.step(step, idx)
            seconds[name].append(time.perf_counter() - started)
            step += 1
    batch = hooks.plan.batch
    step_s = {name: statistics.median(v) for name, v in seconds.items()}
    read_ms = {name: 1000 * statistics.median(v) for name, v in reads.items()}
    return {"images": keep, "batch": batch, "steps_each": args.compare_steps, "threads": torch.get_num_threads(),
            "cache_images_per_s": round(batch / step_s["cache"], 1),
            "memory_images_per_s": round(batch / step_s["memory"], 1),
            "ratio": round(step_s["memory"] / step_s["cache"], 3),
            "batch_read_ms_cache": round(read_ms["cache"], 3), "batch_read_ms_memory": round(read_ms["memory"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=96, help="data.folder_image_size: the stored side")
    parser.add_argument("--workdir", default="/tmp/byol-folder-cache-bench")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: one per core)")
    parser.add_argument("--steps", type=int, default=40, help="steps after the first one in the restart process")
    parser.add_argument("--compare-steps", type=int, default=30, help="BYOL steps of each kind in the comparison")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--memory-images", type=int, default=20_000, help="images held in memory to compare with")
    parser.add_argument("--link-from", default=None, help="make the folder from hard links to this folder's JPEGs")
    parser.add_argument("--out", default=None)
    parser.add_argument("--restart-only", action="store_true",
                        help="measure the restart again (cache complete) into the existing JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = Path(args.workdir) / f"folder-{args.images}"
    torch.set_num_threads(args.threads)
    os.environ[CACHE_ENV] = str(Path(args.workdir) / "cache")
    if args.child:
        child(folder, args)
        return

    out = Path(args.out) if args.out else MEASURED / f"folder-cache-{args.images // 1000}k.json"
    if args.restart_only:
        result = json.loads(out.read_text())
        result["restart"] = restart(folder, args)
        print(f"restart: {result['restart']}", flush=True)
        _write(result, args, out)
        return
    made = make_folder(folder, args.images, Path(args.link_from) if args.link_from else None)
    print(f"folder of {args.images:,} JPEGs at {folder}" + (f" (made in {made:.0f} s)" if made else ""), flush=True)
    result = {"benchmark": "folder_cache", "images": args.images, "stored_size": args.size,
              "folder": f"hard links to {args.link_from}" if args.link_from else "generated JPEGs",
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                          "torch": torch.__version__, "load_average": os.getloadavg()}}
    result["first_pass"] = first_pass(folder, args)
    print(f"first pass: {result['first_pass']}", flush=True)
    result["restart"] = restart(folder, args)
    print(f"restart: {result['restart']}", flush=True)
    result["throughput"] = throughput(folder, args)
    print(f"throughput: {result['throughput']}", flush=True)
    _write(result, args, out)


def _write(result: dict, args: argparse.Namespace, out: Path) -> None:
    fp, rs, tp = result["first_pass"], result["restart"], result["throughput"]
    rows = [("first pass", (f"{fp['images_per_s']:,.0f} images/s ({fp['seconds']:.0f} s, {fp['workers']} workers; "
                           f"{fp['images_per_cpu_s']:,.0f} per CPU-second)"), ">= 400 images/s"),
            ("restart to first step", f"{rs['to_first_step_s']:.1f} s ({rs['import_s']:.1f} s of it importing)",
             "<= 10 s"),
            ("throughput cache / memory", (f"{tp['ratio']:.3f} ({tp['cache_images_per_s']:.0f} vs "
                                          f"{tp['memory_images_per_s']:.0f} images/s; a batch read {tp['batch_read_ms_cache']:.2f} "
                                           f"vs {tp['batch_read_ms_memory']:.2f} ms)"), ">= 0.95"),
            ("peak RSS while training", f"{rs['VmHWM_mb']:,} MB", "<= 1536 MB"),
            ("cache on disk", f"{fp['cache_bytes'] / 2**30:.2f} GB", "")]
    print(f"\n{args.images:,} images stored at {args.size} px, {os.cpu_count()} cores")
    print(f"| {'measure':<27} | {'value':<46} | target |\n|---|---|---|")
    for name, value, target in rows:
        print(f"| {name:<27} | {value:<46} | {target} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
