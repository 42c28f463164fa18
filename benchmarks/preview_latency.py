"""Latency of the dashboard's augmentation preview: 8 source images -> originals, view 1, view 2.

What the Data page does on every control change, minus Streamlit itself: ``byol_core.augment.views.preview``
(the Kornia reference pipeline, both views, paper defaults) on 8 cached uint8 images, and the
same plus turning the three rows into the 96 px grid the page shows. Each draw uses a new seed,
as the page's "New draw" button does. The budget is 300 ms per re-render on 2 CPU cores.

Two paths are timed, taking turns draw by draw: ``dashboard`` (``dashboard.preview.run_preview``:
the page's single-intra-op-thread worker) and ``direct`` (``preview`` called in this thread with
torch's default thread count). Prints a table and writes JSON.

    python benchmarks/preview_latency.py --draws 20 --datasets digits fashion-mnist --sizes 96 16 --busy
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from byol_core.augment.views import preview
from byol_core.config import DataConfig
from byol_core.data import DataError, load_data
from byol_core.presets import byol_paper_augment
from dashboard.images import pair_grid
from dashboard.preview import run_preview

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "preview_latency.json"
BUDGET_MS = 300.0
DISPLAY_PX = 96


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


PATHS = {"dashboard": run_preview, "direct": preview}


def time_preview(images: torch.Tensor, size: int, draws: int) -> dict[str, dict[str, float]]:
    """Milliseconds per draw for each path: preview alone, and preview plus the 96 px display grid."""
    cfg = byol_paper_augment(size)
    out: dict[str, dict[str, float]] = {}
    only: dict[str, list[float]] = {p: [] for p in PATHS}
    full: dict[str, list[float]] = {p: [] for p in PATHS}
    first: dict[str, float] = {}
    for name, fn in PATHS.items():
        t0 = time.perf_counter()
        fn(images, cfg, 0)  # first call: Kornia's lazy set-up
        first[name] = 1000 * (time.perf_counter() - t0)
    for i in range(draws):
        for name in (list(PATHS) if i % 2 == 0 else list(PATHS)[::-1]):
            t0 = time.perf_counter()
            rows = PATHS[name](images, cfg, 1000 + i)
            t1 = time.perf_counter()
            pair_grid(*rows, size=DISPLAY_PX)
            t2 = time.perf_counter()
            only[name].append(1000 * (t1 - t0))
            full[name].append(1000 * (t2 - t0))
    for name in PATHS:
        out[name] = {"first_call_ms": first[name],
                     "preview_median_ms": statistics.median(only[name]),
                     "preview_p90_ms": percentile(only[name], 90),
                     "render_median_ms": statistics.median(full[name]),
                     "render_p90_ms": percentile(full[name], 90)}
    return out


def _busy(stop: threading.Event) -> None:
    """A stand-in for a training job in the same process: back-to-back matmuls on torch's default threads."""
    a = torch.randn(256, 256)
    while not stop.is_set():
        for _ in range(20):
            a = torch.tanh(a @ a.T / 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--count", type=int, default=8, help="source images per preview")
    parser.add_argument("--datasets", nargs="+", default=["digits", "fashion-mnist"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[96, 32])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--busy", action="store_true",
                        help="also time while a background thread keeps the cores busy, as a training job does")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    results = []
    for name in args.datasets:
        try:
            t0 = time.perf_counter()
            splits = load_data(DataConfig(name=name, download=False))
            load_ms = 1000 * (time.perf_counter() - t0)
            t0 = time.perf_counter()
            load_data(DataConfig(name=name, download=False))
            cached_ms = 1000 * (time.perf_counter() - t0)
        except DataError as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
            continue
        images = splits.train.images[:args.count].clone()
        for size, busy in [(size, busy) for busy in ([False, True] if args.busy else [False])
                           for size in args.sizes]:
            stop = threading.Event()
            worker = threading.Thread(target=_busy, args=(stop,), daemon=True)
            if busy:
                worker.start()
            try:
                timings = time_preview(images, size, args.draws)
            finally:
                stop.set()
                if busy:
                    worker.join()
            for path, timing in timings.items():
                row = {"path": path, "busy": busy, "dataset": name, "source_px": int(images.shape[-1]), "image_size": size,
                       "images": len(images), "draws": args.draws, "load_ms": load_ms, "cached_load_ms": cached_ms,
                       **timing}
                row["within_budget"] = row["render_p90_ms"] <= BUDGET_MS
                results.append(row)

    header = (f"{'path':<10} {'busy':<5} {'dataset':<14} {'src':>4} {'size':>5} {'first':>8} {'preview med':>12} {'p90':>8} "
              f"{'render med':>11} {'p90':>8} {'cached load':>12}  ok")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['path']:<10} {'yes' if r['busy'] else 'no':<5} {r['dataset']:<14} {r['source_px']:>4} {r['image_size']:>5} "
              f"{r['first_call_ms']:>6.1f}ms {r['preview_median_ms']:>10.1f}ms {r['preview_p90_ms']:>6.1f}ms "
              f"{r['render_median_ms']:>9.1f}ms {r['render_p90_ms']:>6.1f}ms {r['cached_load_ms']:>10.3f}ms  "
              f"{'yes' if r['within_budget'] else 'NO'}")
    print(f"budget: {BUDGET_MS:.0f} ms per re-render (p90 of render = preview + 96 px grid); "
          f"torch threads {torch.get_num_threads()}")
    out = {"budget_ms": BUDGET_MS, "load_average": list(os.getloadavg()), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
           "python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
