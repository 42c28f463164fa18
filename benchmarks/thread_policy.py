"""Training speed of a dashboard job beside a CPU hog, for torch thread counts and OpenMP wait policies.

Each case trains the same BYOL job for a fixed number of steps in a worker process
(``python -m byol_core.lab.worker``, exactly as the dashboard does), with or without a busy process
beside it (one core spinning, as a browser or a second job would). Speed is the median img/s of
the job's step events; each case is reported as a ratio to the reference case (2 threads,
libgomp's default wait policy, no hog) measured in the same invocation, since this machine is shared.

    python benchmarks/thread_policy.py [--preset digits-quick] [--steps 150] [--repeats 2]

Prints a table and writes benchmarks/results/thread_policy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from byol_core.config import with_overrides
from byol_core.lab import runner
from byol_core.lab.builtin_stages import BYOL
from byol_core.lab.plans import plan
from byol_core.lab.run_store import RunStore
from byol_core.presets import get_preset

# (torch threads, OMP_WAIT_POLICY): "" is libgomp's own default (spin a while, then sleep), which
# byol_core would otherwise replace with PASSIVE when the worker imports it.
CASES = [(2, ""), (1, ""), (2, "PASSIVE"), (1, "PASSIVE"), (2, "ACTIVE")]
HOG = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def _job_speed(store: RunStore, preset: str, steps: int, threads: int, wait_policy: str) -> dict:
    base = get_preset(preset)
    cfg = with_overrides(base, {"byol.optim.min_steps": steps, "byol.optim.epochs": 0.01, "byol.knn_every_epochs": 0,
                                "runtime.log_every": 5})
    run = runner.create(store, plan(BYOL.name, cfg))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env["OMP_WAIT_POLICY"] = wait_policy
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "byol_core.lab.worker", str(store.root), run.id, "--threads", str(threads)],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    speeds = [e["img_per_s"] for e in run.read_metrics() if e.get("kind") == "step" and e.get("img_per_s")]
    warm = speeds[2:] or speeds  # the first windows include start-up
    return {"img_per_s": statistics.median(warm), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="digits-quick")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "thread_policy.json"))
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs")
        for repeat in range(args.repeats):
            for hog in (False, True):
                for threads, policy in CASES:
                    hog_proc = None
                    if hog:  # one core kept busy for longer than the job can take
                        hog_proc = subprocess.Popen([sys.executable, "-c", HOG.format(seconds=900)])
                    try:
                        result = _job_speed(store, args.preset, args.steps, threads, policy)
                    finally:
                        if hog_proc is not None:
                            hog_proc.kill()
                            hog_proc.wait()
                    rows.append({"repeat": repeat, "hog": hog, "threads": threads,
                                 "wait_policy": policy or "libgomp", **result})
                    print(f"  repeat {repeat} hog={hog!s:<5} threads={threads} policy={policy or 'libgomp':<8} "
                          f"{result['img_per_s']:8.0f} img/s", file=sys.stderr)

    reference = statistics.median(r["img_per_s"] for r in rows
                                  if not r["hog"] and r["threads"] == 2 and r["wait_policy"] == "libgomp")
    table = []
    for hog in (False, True):
        for threads, policy in CASES:
            same = [r for r in rows if r["hog"] == hog and r["threads"] == threads
                    and r["wait_policy"] == (policy or "libgomp")]
            speed = statistics.median(r["img_per_s"] for r in same)
            table.append({"hog": hog, "threads": threads, "wait_policy": policy or "libgomp",
                          "img_per_s": speed, "ratio": speed / reference,
                          "runs": [round(r["img_per_s"]) for r in same]})
    print(f"{'beside a hog':<13} {'threads':>7} {'OMP wait':<9} {'img/s':>8} {'ratio':>6}  runs")
    for t in table:
        print(f"{'yes' if t['hog'] else 'no':<13} {t['threads']:>7} {t['wait_policy']:<9} {t['img_per_s']:8.0f} "
              f"{t['ratio']:6.2f}  {t['runs']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"preset": args.preset, "steps": args.steps, "repeats": args.repeats,
                               "cpu_count": os.cpu_count(), "reference_img_per_s": reference, "rows": table,
                               "raw": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
