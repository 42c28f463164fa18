"""How fast the dashboard's pages answer in Chromium, idle and beside a training job (issue #23, item 6).

    python3 benchmarks/page_times.py --label now     # writes benchmarks/measured/pages/page-times.json
    python3 benchmarks/page_times.py --app-root /tmp/byol-before --label before \
        --out benchmarks/measured/pages/page-times-before.json

(In a folder of their own: benchmarks/results_readme.py renders every benchmarks/measured/*.json as accuracy.)

Over a runs folder it prepares once (a ``tiny`` experiment and a 3-seed ``tiny`` sweep, made with
``python -m byol_core``; kept under ``--work`` and copied fresh for each condition), it starts the dashboard
(``streamlit run dashboard/app.py`` of ``--app-root``: another checkout can be measured with this same script) and
drives Chromium with Playwright:

  first page      the Data page opened the moment the server answers its health check (and from the spawn)
  first visit     each other page's first load in that server (its own imports, first caches); then the
                  Embeddings page is reopened until UMAP's one-off compile is done (a minute of the server's CPU)
  warm reload     a reload of each page, ``--repeats`` rounds over the four pages (median per page)
  data switch     digits -> fashion-mnist -> digits ... on the Data page (the first is a cold load of the set)
  preview         the Data page's own "drawn in N ms" (the augmentation preview), every time it is drawn
  filter          Embeddings: the "Colour by" choice flipped (a widget change over the same encoders)
  shutdown        SIGTERM until the server has exited
  floor           (--floor) reloads of a Streamlit app of one heading and one line, same browser, same load

Two conditions: ``idle``, and ``job``: beside one BYOL pretraining job (``--job-preset``, many epochs) that a
job manager in another process (as a second dashboard would) trains in its worker process all through the
measurement, one torch thread (BYOL_WORKER_THREADS=1 for the dashboard too).

"Fully drawn" is when Streamlit's script run has ended and the page has stopped changing. Streamlit shows its
running indicator (``[data-testid="stStatusWidget"]``, what ``benchmarks.serve.settle`` waits on) only after a run
has lasted 500 ms, so the indicator cannot time a page faster than that; the end of the run is read instead
from the protocol (the ``script_finished`` message on the page's websocket, timed in the page), and the last
change to the page's elements after it (charts and images drawn) is added. After each measurement ``settle``'s
condition (no running indicator, no stale element) is checked to hold.

The machine is shared and noisy (2 cores): every figure is a median over repeats, and a before/after
comparison should run both checkouts back to back (``--app-root``). Writes JSON (the machine, the git
commit, every sample) and prints a table with the targets.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.serve import settle, start_streamlit, stop_server, wait_healthy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1440, "height": 2200}
PAGES = {"Data": ("/data", "Data & augmentations"), "Train": ("/train", "Train"),
         "Compare": ("/compare", "Compare"), "Embeddings": ("/embeddings", "Embeddings")}
TARGETS = {"warm_page_s": 0.6, "first_page_s": 3.0, "filter_s": 1.0, "data_switch_s": 1.5, "preview_ms": 300.0}
QUIET_MS = 500  # the page counts as drawn once nothing in it has changed for this long after its run ended
SCRIPT_FINISHED_OK = 0  # ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY: a whole-page run, not a fragment's
DEFAULT_WORK = Path(tempfile.gettempdir()) / "byol-page-times"
# Of the latest timed(): seconds until the server's first message (a reload: the browser has loaded Streamlit's
# JavaScript and connected) and until its run ended; the rest of the time is the browser drawing.
LAST_SPLIT = {"first_message_s": 0.0, "run_ended_s": 0.0}

# Runs in every page before Streamlit's own code: times the websocket's messages (the small ones kept, to find
# script_finished) and the last change to the page's elements outside the header (the running indicator's own
# animation does not count).
INIT_SCRIPT = """
(() => {
  const log = window.__pageTimes = {frames: [], lastChange: 0};
  const now = () => performance.timeOrigin + performance.now();
  const Native = window.WebSocket;
  class Timed extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (ev) => {
        const t = now();
        const d = ev.data;
        const small = d instanceof ArrayBuffer && d.byteLength < 256;
        log.frames.push([t, small ? btoa(String.fromCharCode(...new Uint8Array(d))) : null]);
      });
    }
  }
  window.WebSocket = Timed;
  const header = '[data-testid="stHeader"], [data-testid="stStatusWidget"], [data-testid="stToolbar"], '
               + '[data-testid="stToast"], [data-testid="stDecoration"]';
  const watch = () => new MutationObserver((records) => {
    for (const r of records) {
      const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (el && !el.closest(header)) { log.lastChange = now(); return; }
    }
  }).observe(document.documentElement, {subtree: true, childList: true, attributes: true, characterData: true});
  if (document.documentElement) watch(); else document.addEventListener('DOMContentLoaded', watch);
})();
"""
SETTLED = ("() => !document.querySelector('[data-testid=\"stStatusWidget\"] "
           "[data-testid=\"stStatusWidgetRunningIcon\"]') && !document.querySelector('[data-stale=\"true\"]')")


# --------------------------------------------------------------------------- timing one page change
def _script_finished_at(frames: list[list[Any]]) -> float | None:
    """The time (ms since the epoch) of the first whole-page script_finished among websocket ``frames``."""
    from google.protobuf.message import DecodeError
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    for t, b64 in frames:
        if b64 is None:
            continue
        try:
            msg = ForwardMsg.FromString(base64.b64decode(b64))
        except DecodeError:  # a frame that is not a whole ForwardMsg is not the one looked for
            continue
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished == SCRIPT_FINISHED_OK:
            return float(t)
    return None


def _log(page) -> dict[str, Any] | None:
    """The page's timing log, taken (its frames cleared); None while a navigation replaces the document."""
    try:
        return page.evaluate("() => { const l = window.__pageTimes; if (!l) return null;"
                             " const f = l.frames.splice(0); return {frames: f, lastChange: l.lastChange}; }")
    except Exception:  # noqa: BLE001 - the execution context is destroyed while the page navigates
        return None


def timed(page, action: Callable[[], None], timeout_s: float = 180.0) -> float:
    """Seconds from just before ``action`` (a navigation or a widget change) until the page is fully drawn."""
    _log(page)  # drop what came before
    t0 = time.time() * 1000
    action()
    deadline = time.monotonic() + timeout_s
    finished: float | None = None
    first_message: float | None = None
    while finished is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no finished script run within {timeout_s:.0f} s")
        log = _log(page)
        if log is not None:
            if first_message is None and log["frames"]:
                first_message = float(log["frames"][0][0])
            finished = _script_finished_at(log["frames"])
        if finished is None:
            page.wait_for_timeout(30)
    while True:  # then until nothing has changed for QUIET_MS
        log = _log(page) or {"lastChange": 0}
        end = max(finished, float(log["lastChange"]))
        if time.time() * 1000 - end >= QUIET_MS:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page kept changing for {timeout_s:.0f} s")
        page.wait_for_timeout(50)
    page.wait_for_function(SETTLED, timeout=60_000)  # settle's condition holds, as the test suite waits for it
    LAST_SPLIT.update(first_message_s=((first_message or finished) - t0) / 1000, run_ended_s=(finished - t0) / 1000)
    return (end - t0) / 1000


def goto(page, url: str, heading: str) -> float:
    """Open ``url`` (a new session, as a typed address or a link opened fresh) and time it until drawn."""
    seconds = timed(page, lambda: page.goto(url, wait_until="commit"))
    page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=60_000)
    return seconds


def reload(page, heading: str) -> float:
    seconds = timed(page, lambda: page.reload(wait_until="commit"))
    page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=60_000)
    return seconds


UMAP_PENDING = "showing PCA meanwhile"  # the Embeddings page's words while UMAP is not ready


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) process ``pid`` has used, from /proc; None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_umap(page, url: str, server_pid: int, timeout_s: float = 300.0) -> float:
    """Reopen the Embeddings page until it shows UMAP, then wait until the server is quiet; the seconds that took.

    The page's first visit starts UMAP's one-off numba compile, about a minute of CPU in the server's process: the
    exact neighbour search's (the page shows UMAP once that is done), then pynndescent's, which goes on for 20-30 s
    more on one core. Warm reloads are timed after both, not during them.
    """
    start = time.monotonic()
    path, heading = PAGES["Embeddings"]
    while True:
        goto(page, url + path, heading)
        if page.get_by_text(UMAP_PENDING).count() == 0:
            break
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"the Embeddings page still showed PCA after {timeout_s:.0f} s")
        page.wait_for_timeout(3000)
    before = _cpu_seconds(server_pid)
    while before is not None and time.monotonic() - start < timeout_s:
        time.sleep(2.0)
        now = _cpu_seconds(server_pid)
        if now is None or now - before < 0.2:  # under a tenth of a core: the compile has ended
            break
        before = now
    return time.monotonic() - start


def preview_ms(page) -> float | None:
    """The Data page's own draw time of the augmentation preview ("drawn in N ms")."""
    text = page.locator("text=/drawn in \\d+ ms/").first
    try:
        found = re.search(r"drawn in (\d+) ms", text.inner_text(timeout=10_000))
    except Exception:  # noqa: BLE001 - the page changed its caption: reported as missing, not a crash
        return None
    return float(found.group(1)) if found else None


def pick(page, label: str, option_text: str) -> float:
    """Choose ``option_text`` in the select box ``label`` (typed, then Enter); time from the Enter until drawn."""
    settle(page)
    page.get_by_label(label, exact=True).first.click()
    page.keyboard.type(option_text)  # the select box filters its options as one types
    page.get_by_role("option").filter(has_text=option_text).first.wait_for(timeout=20_000)
    return timed(page, lambda: page.keyboard.press("Enter"))


def choose_radio(page, option_text: str) -> float | None:
    """Click the radio option ``option_text``; None when the page has no such option."""
    target = page.locator('[data-testid="stRadio"] label').filter(has_text=re.compile(f"^{re.escape(option_text)}$"))
    if target.count() == 0:
        return None
    settle(page)
    return timed(page, target.first.click)


# --------------------------------------------------------------------------- runs folder and job
def prepare_runs(work: Path) -> Path:
    """A runs folder with a ``tiny`` experiment and a 3-seed ``tiny`` sweep (made once, kept under ``work``)."""
    template = work / "runs-template"
    if (template / ".complete").exists():
        return template
    shutil.rmtree(template, ignore_errors=True)
    base = [sys.executable, "-m", "byol_core"]
    common = ["--preset", "tiny", "--runs-dir", str(template), "--no-progress", "--set", "runtime.num_threads=1"]
    for command in (["experiment"], ["sweep", "--seeds", "3"]):
        print(f"preparing runs: byol_core {' '.join(command)} (tiny)", flush=True)
        subprocess.run(base + command + common, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    (template / ".complete").write_text("")
    return template


# A job manager in its own process, as another dashboard on the folder would be: its worker trains the job the way
# the dashboard's own jobs train (python -m byol_core.lab.worker), with the worker code of the checkout measured.
JOB_SCRIPT = """
import signal, sys, threading
from byol_core.config import with_overrides
from byol_core.lab.jobs import JobManager
from byol_core.lab.plans import plan
from byol_core.lab.run_store import RunStore
from byol_core.presets import get_preset
runs, preset, epochs = sys.argv[1], sys.argv[2], float(sys.argv[3])
manager = JobManager(RunStore(runs), max_concurrent=1, worker_threads=1)
cfg = with_overrides(get_preset(preset), {"byol.optim.epochs": epochs, "runtime.num_threads": 1})
job = manager.submit(plan("byol", cfg, name="page-times-job", label="page-times job"))
print(job.id, flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
done.wait()
manager.shutdown(timeout=60)
"""


class TrainingJob:
    """One long BYOL job trained beside the measurement (its manager in a process of its own)."""

    def __init__(self, app_root: Path, runs: Path, preset: str, epochs: float, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(app_root)}
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-c", JOB_SCRIPT, str(runs), preset, str(epochs)],
                                     cwd=app_root, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.run_dir = runs / self.proc.stdout.readline().strip()

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.run_dir / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def wait_training(self, timeout_s: float = 600.0) -> None:
        """Until its first training steps are logged (the worker has imported torch and loaded the data)."""
        deadline = time.monotonic() + timeout_s
        while not (self.status().get("state") == "running" and (self.status().get("step") or 0) > 0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the training job did not start: {self.status()}")
            time.sleep(1.0)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


# --------------------------------------------------------------------------- one condition
def measure_condition(args: argparse.Namespace, template: Path, condition: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix=f"page-times-{condition}-", dir=args.work))
    runs = folder / "runs"
    shutil.copytree(template, runs)
    job = None
    if condition == "job":
        job = TrainingJob(args.app_root, runs, args.job_preset, args.job_epochs, folder / "job.log")
        job.wait_training()
        print(f"  training job {job.run_dir.name} is training", flush=True)
    result: dict[str, Any] = {"condition": condition}
    env = {**os.environ, "BYOL_RUNS_DIR": str(runs), "BYOL_MAX_JOBS": "1", "BYOL_DEFAULT_PRESET": "tiny",
           "BYOL_WORKER_THREADS": "1", "PYTHONPATH": str(args.app_root)}
    with sync_playwright() as p, open(folder / "streamlit.log", "w") as server_log:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(INIT_SCRIPT)
        page = context.new_page()
        spawned = time.time()
        url, proc = start_streamlit("dashboard/app.py", args.app_root, env, server_log)
        try:
            wait_healthy(url, proc)
            result["server_ready_s"] = time.time() - spawned
            first = goto(page, url + "/data", PAGES["Data"][1])
            result["first_page_s"] = first
            result["first_page_from_spawn_s"] = result["server_ready_s"] + first
            previews = [preview_ms(page)]
            result["first_visit_s"] = {"Data": first}
            for name, (path, heading) in list(PAGES.items())[1:]:
                result["first_visit_s"][name] = goto(page, url + path, heading)
            print(f"  first page {first:.2f} s; first visits "
                  + ", ".join(f"{k} {v:.2f}" for k, v in result["first_visit_s"].items()), flush=True)
            result["umap_warm_up_s"] = wait_for_umap(page, url, proc.pid)
            print(f"  UMAP ready after {result['umap_warm_up_s']:.0f} s more", flush=True)
            reloads: dict[str, list[float]] = {name: [] for name in PAGES}
            script_part: dict[str, list[float]] = {name: [] for name in PAGES}
            connected: dict[str, list[float]] = {name: [] for name in PAGES}
            for _ in range(args.repeats):  # rounds over the pages: a burst of outside load hits every page alike
                for name, (path, heading) in PAGES.items():
                    goto(page, url + path, heading)
                    reloads[name].append(reload(page, heading))
                    script_part[name].append(LAST_SPLIT["run_ended_s"])
                    connected[name].append(LAST_SPLIT["first_message_s"])
                    if name == "Data":
                        previews.append(preview_ms(page))
            result["warm_reload_s"] = reloads
            result["warm_reload_until_run_ended_s"] = script_part  # the rest of each reload is the browser drawing
            result["warm_reload_until_first_message_s"] = connected  # the browser loading Streamlit and connecting
            print("  warm reloads (median) " + ", ".join(f"{k} {statistics.median(v):.2f}"
                                                          for k, v in reloads.items()), flush=True)
            goto(page, url + "/data", PAGES["Data"][1])
            switches = []
            for _ in range(args.switches):
                for option in ("fashion-mnist", "digits"):
                    switches.append(pick(page, "Data set", option))
                    previews.append(preview_ms(page))
            result["data_switch_s"] = switches
            result["preview_ms"] = [v for v in previews if v is not None]
            print("  data switches " + ", ".join(f"{v:.2f}" for v in switches), flush=True)
            goto(page, url + "/embeddings", PAGES["Embeddings"][1])
            choose_radio(page, "PCA")  # the instant layout: the filter is timed, not a UMAP fit
            flips = [choose_radio(page, option) for _ in range(args.switches)
                     for option in ("correct / incorrect", "true class")]
            result["filter_s"] = [v for v in flips if v is not None]
            print("  filter " + ", ".join(f"{v:.2f}" for v in result["filter_s"]), flush=True)
            if args.floor:
                result["floor_reload_s"] = measure_floor(browser, folder, args.repeats * len(PAGES))
                print("  floor (a one-heading Streamlit app) " + ", ".join(f"{v:.2f}" for v in
                                                                          result["floor_reload_s"]), flush=True)
            if job is not None:
                result["job_state_at_end"] = job.status().get("state")
                result["job_step_at_end"] = job.status().get("step")
        finally:
            browser.close()
            t0 = time.time()
            stop_server(proc, timeout=60)
            result["shutdown_s"] = time.time() - t0
            if job is not None:
                job.stop()
    print(f"  shutdown {result['shutdown_s']:.2f} s", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    return result


FLOOR_APP = 'import streamlit as st\n\nst.title("Floor")\nst.write("One heading and one line: what any page costs.")\n'


def measure_floor(browser, folder: Path, reloads: int) -> list[float]:
    """Warm reloads of a Streamlit app of one heading and one line, served and drawn like the dashboard, under the
    same load: what a reload costs before any page of ours draws anything (the floor under the targets)."""
    app = folder / "floor_app.py"
    app.write_text(FLOOR_APP)
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    with open(folder / "floor.log", "w") as log:
        url, proc = start_streamlit(app, folder, log=log)
        try:
            wait_healthy(url, proc)
            goto(page, url, "Floor")
            goto(page, url, "Floor")
            return [reload(page, "Floor") for _ in range(reloads)]
        finally:
            context.close()
            stop_server(proc, timeout=60)


# --------------------------------------------------------------------------- summary and table
def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The figures the targets apply to: medians over the samples."""
    switches = result.get("data_switch_s") or []
    return {
        "first_page_s": result.get("first_page_s"),
        "first_page_from_spawn_s": result.get("first_page_from_spawn_s"),
        "warm_page_s": {k: _median(v) for k, v in result.get("warm_reload_s", {}).items()},
        "warm_page_worst_s": max((_median(v) or 0.0 for v in result.get("warm_reload_s", {}).values()), default=None),
        "warm_page_until_run_ended_s": {k: _median(v) for k, v in result.get("warm_reload_until_run_ended_s", {}).items()},
        "warm_page_until_first_message_s": {k: _median(v) for k, v in
                                            result.get("warm_reload_until_first_message_s", {}).items()},
        "data_switch_first_s": switches[0] if switches else None,
        "data_switch_s": _median(switches[1:] or switches),
        "preview_ms": _median(result.get("preview_ms") or []),
        "filter_s": _median(result.get("filter_s") or []),
        "shutdown_s": result.get("shutdown_s"),
        "floor_reload_s": _median(result.get("floor_reload_s") or []),
    }


def _fmt(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if unit == "ms" else f"{value:.2f} s"


def table(summaries: dict[str, dict[str, Any]]) -> str:
    conditions = list(summaries)
    rows = [("first page after server start (from health)", "first_page_s", None, "s", TARGETS["first_page_s"]),
            ("first page from the server's spawn", "first_page_from_spawn_s", None, "s", None)]
    rows += [(f"warm reload: {page}", "warm_page_s", page, "s", TARGETS["warm_page_s"]) for page in PAGES]
    rows += [(f"  {page}: until the server's first message", "warm_page_until_first_message_s", page, "s", None)
             for page in PAGES]
    rows += [(f"  {page}: until its run ended", "warm_page_until_run_ended_s", page, "s", None) for page in PAGES]
    rows += [("data-set switch (warm, median)", "data_switch_s", None, "s", TARGETS["data_switch_s"]),
             ("data-set switch (first: loads the set)", "data_switch_first_s", None, "s", TARGETS["data_switch_s"]),
             ("augmentation preview (its own draw)", "preview_ms", None, "ms", TARGETS["preview_ms"]),
             ("Embeddings filter (colour by)", "filter_s", None, "s", TARGETS["filter_s"]),
             ("server shutdown", "shutdown_s", None, "s", None),
             ("floor: reload of a one-heading Streamlit app", "floor_reload_s", None, "s", None)]
    head = f"| measure | target | {' | '.join(conditions)} |"
    lines = [head, "|" + "---|" * (2 + len(conditions))]
    for title, key, sub, unit, target in rows:
        cells = []
        for c in conditions:
            value = summaries[c].get(key)
            value = value.get(sub) if isinstance(value, dict) else value
            ok = "" if value is None or target is None else (" ✓" if value <= target else " ✗")
            cells.append(_fmt(value, unit) + ok)
        goal = "—" if target is None else f"≤ {_fmt(target, unit)}"
        lines.append(f"| {title} | {goal} | {' | '.join(cells)} |")
    return "\n".join(lines)


def write_result(path: Path, result: dict[str, Any]) -> None:
    """``result`` as JSON at ``path``, after when it was taken and the machine it ran on (with its load at the end:
    the machine is shared)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    facts = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
             "machine": f"{platform.machine()}, {os.cpu_count()} shared cores (other jobs running), "
                        f"load average at the end {os.getloadavg()[0]:.2f}"}
    path.write_text(json.dumps({**facts, **result}, indent=2) + "\n")


def git_commit(root: Path) -> dict[str, Any]:
    def git(*a: str) -> str:
        out = subprocess.run(["git", *a], cwd=root, capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    changed = git("status", "--short")
    return {"commit": git("rev-parse", "HEAD") or None, "changed_files": len(changed.splitlines()) if changed else 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-root", type=Path, default=ROOT, help="the checkout whose dashboard is measured")
    parser.add_argument("--label", default="now", help="what this measurement is (before, now)")
    parser.add_argument("--commit", default=None, help="the commit the app root holds, when it is no git checkout")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "measured" / "pages" / "page-times.json")
    parser.add_argument("--conditions", default="idle,job", help="comma-separated: idle, job")
    parser.add_argument("--repeats", type=int, default=3, help="warm reloads of each page (median)")
    parser.add_argument("--switches", type=int, default=2, help="rounds of data-set switches and filter flips")
    parser.add_argument("--job-preset", default="cpu-quick", help="the training job's preset (condition 'job')")
    parser.add_argument("--job-epochs", type=float, default=50, help="enough that it trains all through")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="runs folders and logs")
    parser.add_argument("--floor", action="store_true",
                        help="also time reloads of a one-heading Streamlit app under the same load")
    args = parser.parse_args(argv)
    args.app_root = args.app_root.resolve()
    if not Path(CHROMIUM).exists():
        parser.error(f"{CHROMIUM} is missing: install Debian's chromium package")
    args.work.mkdir(parents=True, exist_ok=True)
    template = prepare_runs(args.work)
    results = {}
    for condition in args.conditions.split(","):
        print(f"condition {condition} ({args.app_root})", flush=True)
        results[condition] = measure_condition(args, template, condition)
    summaries = {c: summarize(r) for c, r in results.items()}
    print(table(summaries))
    revision = git_commit(args.app_root)
    if args.commit:
        revision["commit"] = args.commit
    write_result(args.out, {"label": args.label, "app_root": str(args.app_root), **revision, "targets": TARGETS,
                            "settings": {"repeats": args.repeats, "switches": args.switches,
                                         "job_preset": args.job_preset, "job_epochs": args.job_epochs,
                                         "worker_threads": 1, "quiet_ms": QUIET_MS},
                            "summary": summaries, "samples": results})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
