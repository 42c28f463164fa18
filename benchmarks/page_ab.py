"""Warm reloads of the dashboard's pages on two checkouts at once, alternating, in one browser (issue #23).

    python3 benchmarks/page_ab.py --before /tmp/before-checkout     # writes benchmarks/measured/pages/page-ab.json

``page_times.py`` measures one checkout per run, so a before/now pair a few minutes apart meets different load on
a shared machine, and three reloads a page spread widely. Here both dashboards are served at the same time over
copies of the same runs folder (``page_times.prepare_runs``), and each page is reloaded ``--reloads`` times on
each, alternating which goes first: the load hits both alike, and the medians of the two columns compare like with
like. Timing is ``page_times.reload`` (until the script run has ended and the page has stopped changing), after
UMAP's one-off compile has ended in both servers (``page_times.wait_for_umap``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.page_times import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEFAULT_WORK,
    INIT_SCRIPT,
    LAST_SPLIT,
    PAGES,
    VIEWPORT,
    git_commit,
    goto,
    prepare_runs,
    reload,
    wait_for_umap,
    write_result,
)
from benchmarks.serve import start_streamlit, stop_server, wait_healthy


def _serve(root: Path, runs: Path, log: Path) -> tuple[str, subprocess.Popen]:
    env = {**os.environ, "BYOL_RUNS_DIR": str(runs), "BYOL_MAX_JOBS": "1", "BYOL_DEFAULT_PRESET": "tiny",
           "PYTHONPATH": str(root)}
    with log.open("w") as out:  # the child keeps its own copy of the file
        return start_streamlit("dashboard/app.py", root, env, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout (e.g. a git worktree)")
    parser.add_argument("--now", type=Path, default=ROOT, help="this checkout by default")
    parser.add_argument("--reloads", type=int, default=10, help="warm reloads of each page on each checkout")
    parser.add_argument("--pages", default=",".join(PAGES), help="comma-separated, of " + ", ".join(PAGES))
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "measured" / "pages" / "page-ab.json")
    args = parser.parse_args()
    pages = {name: PAGES[name] for name in args.pages.split(",")}
    from playwright.sync_api import sync_playwright

    args.work.mkdir(parents=True, exist_ok=True)
    template = prepare_runs(args.work)
    roots = {"before": args.before.resolve(), "now": args.now.resolve()}
    folder = Path(tempfile.mkdtemp(prefix="page-ab-", dir=args.work))
    servers = {}
    samples: dict[str, dict[str, dict[str, list[float]]]] = {}
    umap_ready: dict[str, float] = {}  # seconds until each server's UMAP compile had ended
    try:
        for label, root in roots.items():
            shutil.copytree(template, folder / label)
            servers[label] = _serve(root, folder / label, folder / f"{label}.log")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            tabs = {}
            for label, (url, proc) in servers.items():
                wait_healthy(url, proc)
                context = browser.new_context(viewport=VIEWPORT)
                context.add_init_script(INIT_SCRIPT)
                tabs[label] = context.new_page()
            if "Embeddings" in pages:  # its first visit starts UMAP's compile: a minute of each server's CPU
                for label, (url, proc) in servers.items():
                    umap_ready[label] = wait_for_umap(tabs[label], url, proc.pid)
                    print(f"  {label}: UMAP ready after {umap_ready[label]:.0f} s", flush=True)
            for name, (path, heading) in pages.items():
                samples[name] = {label: {"reload_s": [], "until_run_ended_s": []} for label in servers}
                for label, (url, _proc) in servers.items():
                    goto(tabs[label], url + path, heading)  # first visit: imports and caches, not measured
                    goto(tabs[label], url + path, heading)
                for i in range(args.reloads):
                    for label in (list(servers) if i % 2 == 0 else list(reversed(servers))):
                        samples[name][label]["reload_s"].append(reload(tabs[label], heading))
                        samples[name][label]["until_run_ended_s"].append(LAST_SPLIT["run_ended_s"])
                print(f"  {name}: " + ", ".join(f"{label} {statistics.median(s['reload_s']):.2f} s"
                                               for label, s in samples[name].items()), flush=True)
            browser.close()
    finally:
        for _url, proc in servers.values():
            stop_server(proc)
        shutil.rmtree(folder, ignore_errors=True)
    medians = {name: {label: statistics.median(s["reload_s"]) for label, s in by.items()}
               for name, by in samples.items()}
    print("| page | before | now | now / before |\n|---|---|---|---|")
    for name, m in medians.items():
        print(f"| {name} | {m['before']:.2f} s | {m['now']:.2f} s | {m['now'] / m['before']:.2f} |")
    write_result(args.out, {"before": {"root": str(roots["before"]), **git_commit(roots["before"])},
                            "now": {"root": str(roots["now"]), **git_commit(roots["now"])},
                            "reloads": args.reloads, "umap_warm_up_s": umap_ready, "median_reload_s": medians,
                            "samples": samples})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
