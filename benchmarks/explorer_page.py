"""The real Embeddings page over a folder of 100,000 images, in Chromium: the whole collection embedded in the
background, class filters timed, a selection saved, a Parquet export read back with pandas, a screenshot.

``explorer_points.py`` times the drawing alone on synthetic points; this drives the page a person uses, so it
also holds what a page run does around the plots (the data set, the scores, the explorer's tools).

    python benchmarks/explorer_page.py            # writes benchmarks/measured/explorer/explorer-page-100k.json

Steps: a folder of generated JPEGs in class subfolders (hard links to ``folder_cache.py``'s 20k folder, which
it makes when missing), a short BYOL run on it (``folder-quick`` at 32 px, a few steps: the page needs an
encoder, not a good one; its first pass fills the disk cache), then the dashboard on that runs folder. On the
page: PCA, no second encoder, "whole collection" with the slider at its end; it waits for the embeddings (in the
background, with progress), then adds a class to the "True class" filter twice, timing each from the click on
the option until the plot holds the filtered classes and Streamlit is idle. A filter asks for the data set
again (the page rerun), so this also times the dashboard's reuse of a folder's splits. UMAP's one-off compile
starts with the Embeddings page and runs beside these (the numbers include it, as a person's first minute would).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pandas as pd
from folder_cache import make_folder
from serve import free_port, settle, stop_server, wait_healthy

from byol_core.data.image_cache import CACHE_ENV

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DEFAULT_OUT = ROOT / "benchmarks" / "measured" / "explorer" / "explorer-page-100k.json"
BUDGET_S = 1.0  # issue 22: a filter or selection answers in <= 1 s
# The first plot's traces as [name, points drawn]; null while not drawn.
TRACES = """() => { const p = document.querySelector('.st-key-emb-plot-a .js-plotly-plot');
  return p && p._fullData ? p._fullData.map(t => [t.name, t._length ?? 0]) : null; }"""
IDLE = ("() => !document.querySelector('[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')")


def prepare(work: Path, images: int) -> Path:
    """The folder, its encoder run and the runs folder (kept under ``work``: a rerun reuses them)."""
    source = work / "folder-20000"
    make_folder(source, 20_000)
    folder = work / f"folder-{images}"
    make_folder(folder, images, source)
    runs = work / f"runs-{images}"
    if not any(runs.glob("*/status.json")):
        subprocess.run([sys.executable, "-m", "byol_core", "pretrain", "--preset", "folder-quick", "--runs-dir",
                        str(runs), "--no-progress", "--set", "data.name=folder", "--set", f"data.folder={folder}",
                        "--set", "data.folder_image_size=32", "--set", f"data.root={work / 'data'}",
                        "--set", "byol.optim.epochs=0.01", "--set", "byol.optim.min_steps=20",
                        "--set", "byol.knn_every_epochs=0"],
                       check=True, cwd=ROOT, env={**os.environ, CACHE_ENV: str(work / "cache")})
    return runs


def _wait_traces(page, condition: str, timeout_ms: float) -> None:
    page.wait_for_function(f"() => {{ const t = ({TRACES})(); return t !== null && ({condition}) && ({IDLE})(); }}",
                           timeout=timeout_ms, polling="raf")


def drive(url: str, runs: Path, screenshot: Path) -> dict:
    from playwright.sync_api import sync_playwright

    result: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 2000})
        try:
            _walk(page, url, result, screenshot)
        except Exception:
            page.screenshot(path=str(screenshot.with_name("explorer-page-failure.png")))
            raise
        finally:
            browser.close()
    return result


def _walk(page, url: str, result: dict, screenshot: Path) -> None:
    page.goto(f"{url}/embeddings")
    settle(page, 180_000)
    page.locator('[data-testid="stRadio"] label', has_text="PCA").first.click()
    settle(page, 180_000)
    page.locator(".st-key-emb-b").click()
    page.get_by_role("option", name="— none —").click()
    settle(page, 180_000)
    page.locator('[data-testid="stRadio"] label', has_text="whole collection").first.click()
    page.locator('[class*="st-key-emb-n-all-"]').first.wait_for(timeout=300_000)
    settle(page, 180_000)
    slider = page.locator('[class*="st-key-emb-n-all-"] input[type=range]').first
    slider.focus()
    page.keyboard.press("End")
    started = time.perf_counter()
    settle(page, 180_000)
    result["images"] = int(slider.get_attribute("value"))
    _wait_traces(page, "t.length > 0", 3_600_000)  # embedded in the background, then drawn
    result["embedded_and_drawn_s"] = round(time.perf_counter() - started, 1)
    settle(page, 60_000)
    page.get_by_text("Filter the points").first.click()
    settle(page, 60_000)
    filters = []
    for name in ("class-3", "class-7"):
        box = page.locator(".st-key-emb-f-classes input")
        box.click()
        box.fill(name)  # typed, then Enter: the option list's own filtering picks it
        page.get_by_role("option", name=name, exact=True).wait_for(timeout=30_000)
        started = time.perf_counter()
        box.press("Enter")
        # Filtered: a grey trace of the others, and this class drawn in colour.
        _wait_traces(page, f"t.some(x => x[0] === 'filtered out') && t.some(x => x[0] === '{name}')", 120_000)
        filters.append(round(time.perf_counter() - started, 2))
        page.keyboard.press("Escape")
        settle(page, 60_000)
    result["filter_s"] = filters
    result["drawn"] = page.evaluate(TRACES)
    result["passing"] = page.get_by_text("images pass the filters").first.inner_text()
    page.get_by_role("tab", name="Saved selections").click()
    page.locator(".st-key-emb-save-name input").fill("classes 3 and 7")
    page.locator(".st-key-emb-save-name input").press("Enter")
    settle(page, 60_000)
    page.locator(".st-key-emb-save button").click()
    saved = page.get_by_text(re.compile(r"^Saved \d"))
    saved.first.wait_for(timeout=60_000)
    settle(page, 60_000)
    result["saved"] = saved.first.inner_text()
    page.get_by_role("tab", name="Export").click()
    page.get_by_role("button", name="Write Parquet").click()  # the Export tool is drawn once its tab is open
    page.get_by_text("Written:").first.wait_for(timeout=600_000)
    settle(page, 60_000)
    page.mouse.move(5, 5)  # the export button's tooltip would cover the tabs
    page.get_by_role("tab", name="Saved selections").click()
    settle(page, 60_000)
    page.get_by_text("Filter the points").first.scroll_into_view_if_needed()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot))
    result["screenshot"] = str(screenshot.relative_to(ROOT) if screenshot.is_relative_to(ROOT) else screenshot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "byol-folder-cache-bench")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    runs = prepare(args.work, args.images)
    cached = any(runs.glob("_cache/embeddings-*"))  # then the page reads them instead of embedding again
    port = free_port()
    env = {**os.environ, "BYOL_RUNS_DIR": str(runs), CACHE_ENV: str(args.work / "cache"), "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                               "--server.headless", "true", "--server.port", str(port), "--server.address",
                               "127.0.0.1", "--browser.gatherUsageStats", "false"],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, timeout=180)
        result = drive(url, runs, args.out.with_suffix(".png"))
    finally:
        stop_server(server)
    exported = max(runs.glob("_exports/*/embeddings.parquet"), key=lambda f: f.stat().st_mtime)
    frame = pd.read_parquet(exported)  # the export, read back as a person would
    result["parquet"] = {"rows": len(frame), "columns": list(frame.columns),
                         "classes": sorted(frame["class"].unique().tolist())}
    result.update(embeddings_were_cached=cached, machine=f"{platform.machine()} · {os.cpu_count()} cores", load_average=os.getloadavg(),
                  budget_s=BUDGET_S)
    print(f"{'images':>8} {'embedded+drawn s':>17} {'filters s':>12}  parquet rows  saved")
    print(f"{result['images']:>8} {result['embedded_and_drawn_s']:>17} {result['filter_s']!s:>12}  "
          f"{result['parquet']['rows']:>12}  {result['saved']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
