"""BYOL training throughput with the dashboard's Train page open in a browser vs the same job headless.

    python benchmarks/dashboard_overhead.py --preset digits-quick --epochs 80 --repeats 1

Two ways to run one BYOL pretraining job:
  headless   ``python -m byol_core pretrain --preset P --set byol.optim.epochs=E --no-progress``
  ui         ``streamlit run dashboard/app.py``; Chromium (Playwright) opens the Train page, picks the
             same preset and epochs in the form, clicks Start and keeps the page open (its job card
             re-renders the loss chart every few seconds via ``st.fragment``) until "Finished: kNN
             accuracy". The dashboard trains in a worker process it starts (``byol_core.lab.worker``).
The runs alternate, headless first and last (H, U, H, U, H, ... with ``--repeats`` UI runs), so a
noisy, shared machine slows both alike. Throughput comes from each run's metrics.jsonl "step"
events (one per ``runtime.log_every`` steps, with the window's ``img_per_s``):
  overall    all training images / all training time (the windows' summed durations; kNN checks
             during training are excluded by the trainer itself): the figure the target applies to
  median     the median window speed after the first 10% of the steps: robust to bursts of outside
             noise, but it also hides the dashboard's own cost when that comes in bursts (windows
             stalled while the page re-renders), so a big median/overall gap is itself a finding
Reported: UI / mean(headless) for both, and each UI run against the mean of the two headless runs
around it. The target is overall >= 0.90. Also per run: CPU seconds of the training process while its job
ran (for the UI run: its worker process; the Streamlit server's own CPU, which renders, and
that of Chromium and the Playwright driver are listed apart), the machine's busy and steal shares over the run (steal: the hypervisor
gave the cores to someone else), and "slow %": the windows after the first 10% that ran at under
half the headless median speed (stalls). Before clicking Start the UI run waits, by default, until the
server is idle: the dashboard compiles UMAP's numba code in a background thread on its first page
load (30-60 s of CPU), a one-off cost that ``--start-after ready`` includes instead.

The two runs' configs (config.json ``config`` sections, all but ``name``) are compared and any
difference is printed as a warning. Needs Chromium at /usr/bin/chromium and ``pip install playwright``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.serve import free_port, settle, stop_server, wait_healthy
from byol_core.lab.builtin_stages import BYOL
from byol_core.lab.run_store import RunStore
from byol_core.presets import PRESETS, get_preset

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "dashboard_overhead.json"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1440, "height": 2200}  # as tests/test_browser.py: the whole Train page is on screen
TARGET = 0.90
WARMUP_FRACTION = 0.10
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


# --------------------------------------------------------------------------- /proc readings
def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of stat)


def descendants(root: int) -> set[int]:
    """Every living process below ``root``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def machine_cpu() -> tuple[int, int, int]:
    """Jiffies since boot over all cores: (busy, steal, total) from /proc/stat."""
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in
                                                             Path("/proc/stat").read_text().split()[1:9])
    busy = user + nice + system + irq + softirq
    return busy, steal, busy + steal + idle + iowait


def machine_share(before: tuple[int, int, int], after: tuple[int, int, int]) -> dict[str, float]:
    total = max(after[2] - before[2], 1)
    return {"machine_busy_pct": 100 * (after[0] - before[0]) / total,
            "steal_pct": 100 * (after[1] - before[1]) / total}


# --------------------------------------------------------------------------- a run's numbers
def run_summary(run_dir: Path) -> dict[str, Any]:
    """Throughput and timings of the one BYOL run under ``run_dir``, from its metrics.jsonl and status."""
    runs = [r for r in RunStore(run_dir).list() if r.read_status().get("kind") == BYOL.run_kind]
    if len(runs) != 1:
        raise RuntimeError(f"expected one BYOL run in {run_dir}, found {[r.id for r in runs]}")
    run = runs[0]
    events = run.read_metrics()
    start = next(e for e in events if e.get("kind") == "start")
    batch = min(int(start["batch_size"]), int(start["num_images"]))  # EpochSampler: full batches only
    steps = [e for e in events if e.get("kind") == "step" and e.get("img_per_s")]
    if not steps:
        raise RuntimeError(f"run {run.id} logged no step events")
    total_steps = int(start["total_steps"])
    prev = int(start["step"])
    images = seconds = 0.0
    later: list[float] = []
    for e in steps:
        n = (int(e["step"]) - prev) * batch
        prev = int(e["step"])
        images += n
        seconds += n / e["img_per_s"]
        if e["step"] > WARMUP_FRACTION * total_steps:
            later.append(e["img_per_s"])
    windows = [[int(e["step"]), round(e["img_per_s"], 1)] for e in steps]
    status = run.read_status()
    config = json.loads(run.config_path.read_text())
    return {"run_id": run.id, "state": status.get("state"), "steps": prev, "total_steps": total_steps,
            "images": int(images), "train_s": seconds, "img_per_s_median": statistics.median(later or
                                                                                           [steps[-1]["img_per_s"]]),
            "img_per_s_overall": images / seconds, "windows": windows, "later_img_per_s": later,
            "run_wall_s": (status.get("finished") or time.time()) - (status.get("started") or time.time()),
            "knn_accuracy": (status.get("results") or {}).get("knn_accuracy"), "config": config["config"]}


def config_diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Dotted paths where two config dicts differ (numbers compared by value: 80 == 80.0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                out.append(f"{sub}: {a.get(key, '<missing>')!r} vs {b.get(key, '<missing>')!r}")
            else:
                out.extend(config_diff(a[key], b[key], sub))
        return out
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


# --------------------------------------------------------------------------- headless
def run_headless(args: argparse.Namespace, runs_dir: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "byol_core", "pretrain", "--preset", args.preset,
           "--set", f"byol.optim.epochs={args.epochs:g}", "--runs-dir", str(runs_dir), "--no-progress"]
    log = runs_dir.parent / f"{runs_dir.name}.log"
    before = machine_cpu()
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
        timer = threading.Timer(args.timeout, proc.kill)
        timer.start()
        cpu_at_start = None
        try:
            while True:  # wait4 with WNOHANG keeps the process unreaped, so /proc can still be read
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if cpu_at_start is None and _any_run_in(runs_dir, ("running", "finished")):
                    cpu_at_start = proc_cpu_s(proc.pid)
                time.sleep(0.2)
        except BaseException:  # Ctrl-C, SIGTERM: take the training process down too
            proc.kill()
            os.waitpid(proc.pid, 0)
            raise
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    after = machine_cpu()
    if proc.returncode != 0:
        raise RuntimeError(f"headless run failed (exit {proc.returncode}):\n{log.read_text()[-3000:]}")
    process_cpu = usage.ru_utime + usage.ru_stime
    return {"mode": "headless", **run_summary(runs_dir), "wall_s": wall, "process_cpu_total_s": process_cpu,
            "job_cpu_s": process_cpu - (cpu_at_start or 0.0), "server_cpu_s": None, "browser_cpu_s": None,
            **machine_share(before, after)}


def _any_run_in(runs_dir: Path, states: tuple[str, ...]) -> bool:
    """Whether a run under ``runs_dir`` is in one of ``states`` (status.json, as written)."""
    for status in runs_dir.glob("*/status.json"):
        try:
            if json.loads(status.read_text()).get("state") in states:
                return True
        except (OSError, ValueError):
            continue
    return False


# --------------------------------------------------------------------------- dashboard


def _errors(page) -> list[str]:
    boxes = page.locator('[data-testid="stAlertContentError"], [data-testid="stException"]')
    return [boxes.nth(i).inner_text() for i in range(boxes.count())]


def _wait_idle(pid: int, max_s: float, below: float = 0.15, quiet_s: float = 4.0) -> float:
    """Wait until ``pid`` uses under ``below`` of a core for ``quiet_s`` in a row; the seconds waited."""
    t0 = time.perf_counter()
    quiet = 0.0
    last = proc_cpu_s(pid)
    while quiet < quiet_s and time.perf_counter() - t0 < max_s:
        time.sleep(1.0)
        now = proc_cpu_s(pid)
        quiet = quiet + 1.0 if now - last < below else 0.0
        last = now
    return time.perf_counter() - t0


def fill_train_form(page, args: argparse.Namespace) -> None:
    """Preset, (the preset's own data if needed), epochs and kNN interval in the Train page's form."""
    if args.preset != "digits-quick":  # the form's default
        box = page.get_by_test_id("stSelectbox").filter(has_text="Preset (starting point)").first
        box.click()
        page.get_by_role("option", name=args.preset, exact=True).first.click()
        settle(page)
    if args.preset_data:
        page.get_by_text("Use the preset's own data set").first.click()
        settle(page)
    _set_number(page, "Epochs", args.epochs)
    # The form offers the preset's kNN interval, but 1 where the preset has 0 (tiny): match the CLI.
    knn_every = get_preset(args.preset).byol.knn_every_epochs or 0
    page.get_by_text("More settings", exact=True).first.click()
    if _set_number(page, "kNN check every N epochs", knn_every):
        print(f"   note: the form's 'kNN check every N epochs' was not the preset's {knn_every}; set it")


def _set_number(page, label: str, value: float) -> bool:
    """Type ``value`` into the number input ``label`` unless it shows it already; whether it had to."""
    box = page.get_by_label(label, exact=True).first
    box.wait_for(timeout=30_000)
    if float(box.input_value()) == value:
        return False
    box.fill(f"{value:g}")
    box.press("Enter")
    settle(page)
    shown = float(box.input_value())
    if shown != value:
        raise RuntimeError(f"the {label!r} input shows {shown}, not {value}")
    return True


def run_ui(args: argparse.Namespace, runs_dir: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BYOL_RUNS_DIR": str(runs_dir), "BYOL_MAX_JOBS": "1", **dict(args.ui_env)}
    log_path = runs_dir.parent / f"{runs_dir.name}-streamlit.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed in the finally below
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    out: dict[str, Any] = {"mode": "ui"}
    try:
        wait_healthy(url, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(f"{url}/train", wait_until="domcontentloaded")
                page.get_by_role("heading", name="Train", exact=True).first.wait_for(timeout=120_000)
                settle(page)
                fill_train_form(page, args)
                if errors := _errors(page):
                    raise RuntimeError(f"the Train page shows errors before Start: {errors}")
                out["idle_wait_s"] = (_wait_idle(server.pid, args.idle_max_s) if args.start_after == "idle"
                                      else 0.0)

                def others() -> float:  # Chromium and the Playwright driver: our descendants but the server's
                    skip = {server.pid, *descendants(server.pid)}
                    return sum(proc_cpu_s(pid) for pid in descendants(os.getpid()) - skip)

                def server_tree() -> dict[int, float]:  # the server and its workers, CPU seconds each
                    return {pid: proc_cpu_s(pid) for pid in {server.pid, *descendants(server.pid)}}

                before, browser_cpu = machine_cpu(), others()
                tree_before = server_tree()
                seen = dict(tree_before)  # a worker's CPU is read while it lives; it is gone once reaped
                t0 = time.perf_counter()
                page.get_by_role("button", name="Start", exact=True).click()
                # Wait on the run folder, not the page: Playwright's wait_for re-queries the DOM every
                # animation frame, browser work a person watching the page does not cause.
                while not _any_run_in(runs_dir, ("finished", "failed", "stopped")):
                    for pid, cpu in server_tree().items():
                        seen[pid] = max(cpu, seen.get(pid, 0.0))
                    if time.perf_counter() - t0 > args.timeout:
                        raise TimeoutError(f"the UI run did not end within {args.timeout:.0f} s")
                    time.sleep(0.5)
                page.get_by_text("Finished: kNN accuracy").first.wait_for(timeout=60_000)
                out["wall_s"] = time.perf_counter() - t0
                out["server_cpu_s"] = seen[server.pid] - tree_before[server.pid]
                out["job_cpu_s"] = sum(seen.values()) - sum(tree_before.values()) - out["server_cpu_s"]
                out["browser_cpu_s"] = others() - browser_cpu
                out.update(machine_share(before, machine_cpu()))
                out["charts_on_page"] = page.locator(".js-plotly-plot").count()
                if errors := _errors(page):
                    print(f"warning: the Train page shows errors after the run: {errors}")
                if args.screenshot:
                    Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=args.screenshot, full_page=True)
            finally:
                browser.close()
    finally:
        stop_server(server)
        log.close()
    return {**out, **run_summary(runs_dir)}


# --------------------------------------------------------------------------- report
def _fmt(value: Any, spec: str) -> str:
    return "-".rjust(int(spec.split(".")[0])) if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'run':<12} {'img/s med':>9} {'img/s all':>9} {'train s':>8} {'run s':>7} {'job CPU s':>9} "
          f"{'server CPU s':>12} {'browser CPU s':>13} {'busy %':>7} {'steal %':>7} {'slow %':>7} {'kNN %':>6}")
    for row in rows:
        acc = row.get("knn_accuracy")
        print(f"{row['label']:<12} {row['img_per_s_median']:9.0f} {row['img_per_s_overall']:9.0f} "
              f"{row['train_s']:8.1f} {row['run_wall_s']:7.1f} {_fmt(row.get('job_cpu_s'), '9.1f')} "
              f"{_fmt(row.get('server_cpu_s'), '12.1f')} {_fmt(row.get('browser_cpu_s'), '13.1f')} {row['machine_busy_pct']:7.0f} {row['steal_pct']:7.1f} "
              f"{row['slow_windows_pct']:7.1f} {_fmt(None if acc is None else 100 * acc, '6.1f')}")


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    heads = [r for r in rows if r["mode"] == "headless"]
    uis = [r for r in rows if r["mode"] == "ui"]
    out: dict[str, Any] = {"target": TARGET}
    slow = 0.5 * statistics.mean(r["img_per_s_median"] for r in heads)
    for r in rows:  # windows (after the first 10%) at under half the headless median speed: stalls
        r["slow_windows_pct"] = 100 * sum(v < slow for v in r["later_img_per_s"]) / max(len(r["later_img_per_s"]), 1)
    for key in ("img_per_s_overall", "img_per_s_median"):
        h = statistics.mean(r[key] for r in heads)
        u = statistics.mean(r[key] for r in uis)
        out[key] = {"headless_mean": h, "ui_mean": u, "ratio": u / h,
                    "headless_spread": (max(r[key] for r in heads) - min(r[key] for r in heads)) / h}
        # each UI run against the headless runs right before and after it
        out[key]["bracketed_ratios"] = [
            r[key] / statistics.mean([rows[i - 1][key], rows[i + 1][key]])
            for i, r in enumerate(rows) if r["mode"] == "ui"]
    out["meets_target"] = {"overall": out["img_per_s_overall"]["ratio"] >= TARGET,
                           "median_window": out["img_per_s_median"]["ratio"] >= TARGET}
    return out


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="digits-quick", choices=sorted(PRESETS))
    parser.add_argument("--epochs", type=float, default=80.0,
                        help="BYOL epochs per run (default 80: ~45 s of digits-quick on 2 quiet cores)")
    parser.add_argument("--repeats", type=int, default=1, help="UI runs; headless runs: one more (H U H U H ...)")
    parser.add_argument("--start-after", choices=("idle", "ready"), default="idle",
                        help="idle: click Start once the server is idle (UMAP's numba warm-up done); "
                             "ready: as soon as the form is filled in")
    parser.add_argument("--idle-max-s", type=float, default=180.0, help="longest wait for an idle server")
    parser.add_argument("--preset-data", action=argparse.BooleanOptionalAction, default=None,
                        help="switch on the Train page's 'Use the preset's own data set' toggle (default: "
                             "on for every preset but digits-quick, whose data and views the Data page uses)")
    parser.add_argument("--ui-env", action="append", default=[], type=_env_pair, metavar="KEY=VALUE",
                        help="extra environment of the dashboard's server only, e.g. OMP_NUM_THREADS=1 "
                             "(to try a fix; the headless runs keep this process's environment)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds one run may take")
    parser.add_argument("--screenshot", help="save the Train page at the end of the (last) UI run here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary runs folders")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    if args.preset_data is None:
        args.preset_data = args.preset != "digits-quick"
    # SIGTERM (timeout, kill) unwinds like Ctrl-C, so the finally blocks stop the server and the browser.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing (apt-get install chromium)")

    tmp = Path(tempfile.mkdtemp(prefix="byol-dashboard-overhead-"))
    order = ["headless"] + ["ui", "headless"] * args.repeats
    rows: list[dict[str, Any]] = []
    counts = {"headless": 0, "ui": 0}
    try:
        for mode in order:
            counts[mode] += 1
            label = f"{mode}-{counts[mode]}"
            print(f"== {label}: {args.preset}, {args.epochs:g} epochs", flush=True)
            runner = run_headless if mode == "headless" else run_ui
            row = {"label": label, **runner(args, tmp / label)}
            print(f"   {row['img_per_s_median']:.0f} img/s (median), {row['img_per_s_overall']:.0f} img/s "
                  f"(overall), run {row['run_wall_s']:.1f} s, steal {row['steal_pct']:.1f}%", flush=True)
            rows.append(row)
    finally:
        if args.keep:
            print(f"runs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    reference = {k: v for k, v in rows[0]["config"].items() if k != "name"}
    mismatches: dict[str, list[str]] = {}
    for row in rows[1:]:
        diff = config_diff(reference, {k: v for k, v in row["config"].items() if k != "name"})
        if diff:
            mismatches[row["label"]] = diff
            print(f"warning: {row['label']}'s config differs from {rows[0]['label']}'s: " + "; ".join(diff))
    summary = summarise(rows)

    import streamlit
    import torch

    print(f"\n{args.preset}, {args.epochs:g} epochs, {NCPU} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), streamlit {streamlit.__version__}, start after: {args.start_after}"
          + "".join(f", UI {k}={v}" for k, v in args.ui_env))
    print_table(rows)
    for key, what in (("img_per_s_overall", "overall"), ("img_per_s_median", "median window")):
        s = summary[key]
        brackets = ", ".join(f"{r:.2f}" for r in s["bracketed_ratios"])
        print(f"UI / mean(headless), {what:<13}: {s['ratio']:.3f} (each UI run vs its neighbours: {brackets}; "
              f"headless spread {100 * s['headless_spread']:.0f}%)")
    met = {k: "met" if v else "NOT met" for k, v in summary["meets_target"].items()}
    print(f"target >= {TARGET:.2f}: overall {met['overall']}, median window {met['median_window']}"
          + ("" if not mismatches else "  -- configs differ, see the warnings"))
    ui_rows = [r for r in rows if r["mode"] == "ui"]
    if ui_rows and args.start_after == "idle":
        print("UI runs waited " + ", ".join(f"{r['idle_wait_s']:.0f} s" for r in ui_rows)
              + " for an idle server before Start")

    for row in rows:
        row.pop("config")
        row.pop("later_img_per_s")
    out = {"args": vars(args), "machine": platform.platform(), "processor": platform.processor() or platform.machine(),
           "cores": NCPU, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "streamlit": streamlit.__version__, "order": [r["label"] for r in rows],
           "config_mismatches": mismatches, "config": reference, "runs": rows, "summary": summary}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
