"""The Embeddings explorer at 100,000 points: draw, filter and lasso times in Chromium, plotly against Embedding Atlas.

Synthetic points (clustered 2-D positions, 10 classes) stand in for a projected collection; what is timed
is the page's side: a Streamlit app drawing them as the Embeddings page does (two plots side by side, built
by ``dashboard.explorer_chart.filtered_scatter``, ``st.plotly_chart`` with lasso selection), or with Apple's
Embedding Atlas component (``embedding-atlas``, optional: pass ``--atlas-python`` to an interpreter that has
it; it is not in requirements.txt). Times, in headless Chromium (``--disable-gpu``; the atlas also tried with
SwiftShader flags):

- first draw: from a reload until the plots hold the points and Streamlit is idle;
- filter: from clicking a class filter until the plots hold exactly the filtered points and Streamlit is idle;
- lasso (plotly): from releasing a lasso drag until the page reports the selection.

Plotly draws a seeded sample of ``explorer_chart.DRAW_MAX`` points (a lasso still selects every point inside
it); ``--all-points`` also times it drawing all of them. ``--projection`` times the layouts on 100k x 512
synthetic features (PCA; UMAP fitted on a subsample, the rest placed among their neighbours). Prints a table
and writes JSON; ``--screenshot`` saves the page with a filter and a saved selection.

    python benchmarks/explorer_points.py --points 100000 --screenshot /work/notes/explorer-100k.png \
        --all-points --atlas-python /tmp/ea_venv/bin/python --projection
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from serve import drag_lasso, free_port, stop_server, wait_healthy

from dashboard.explorer_chart import PLOT_CONFIG

CHROMIUM = "/usr/bin/chromium"
BASE_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SWIFTSHADER_ARGS = ["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                    "--enable-unsafe-webgpu"]
DEFAULT_OUT = ROOT / "benchmarks" / "measured" / "explorer" / "explorer_points.json"  # not an accuracy file
BUDGET_S = 1.0  # issue 22 / 23: a filter or selection answers in <= 1 s

APP = r'''
import os, sys
sys.path.insert(0, os.environ["EXPLORER_ROOT"])
from pathlib import Path
import numpy as np
import streamlit as st
from byol_core.analysis.embeddings import SavedSelection, load_selections, save_selection
from dashboard import explorer_chart, selection
from dashboard.explorer_chart import filtered_scatter
explorer_chart.DRAW_MAX = int(os.environ["EXPLORER_DRAW_MAX"])
explorer_chart.PLOT_CONFIG = {**explorer_chart.PLOT_CONFIG, "plotGlPixelRatio": float(os.environ["EXPLORER_GL_RATIO"])}

N, VIEW, SAVE_DIR = int(os.environ["EXPLORER_POINTS"]), os.environ["EXPLORER_VIEW"], Path(os.environ["EXPLORER_SAVE"])
CLASSES = [f"class {c}" for c in range(10)]

@st.cache_data
def points(n):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    centres = rng.normal(scale=8.0, size=(10, 2))
    return (centres[labels] + rng.normal(size=(n, 2))).astype(np.float32), labels

st.set_page_config(layout="wide")
xy, labels = points(N)
st.title(f"Explorer: {N:,} points ({VIEW})")
choice = st.radio("True class", ["all", *CLASSES], horizontal=True, key="filter")
shown = None if choice == "all" else np.flatnonzero(labels == CLASSES.index(choice))
chosen = st.session_state.get("rows") or []
c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
name = c1.text_input("Name", key="name")
if c2.button("Save selection", key="save"):
    rows = chosen or (shown.tolist() if shown is not None else [])
    save_selection(SAVE_DIR, SavedSelection(name=name, data_key="bench", rows=tuple(rows)))
saved = load_selections(SAVE_DIR, "bench")
st.caption("Saved selections: " + ", ".join(f"{s.name} ({len(s.rows):,} images)" for s in saved) if saved else
           "No saved selection yet.")
st.markdown(f"Selected: {len(chosen)} points" if chosen else "Nothing selected")
if VIEW == "plotly":
    def picked(key):  # as the page: every point inside the lasso, drawn or not
        st.session_state["rows"] = selection.rows_in_region(st.session_state.get(key), xy, shown)
    for col, side in zip(st.columns(2), "ab"):
        with col:
            fig = filtered_scatter(xy, labels, CLASSES, shown, highlight=chosen, dragmode="lasso")
            st.plotly_chart(fig, key=f"plot.{side}", on_select=lambda side=side: picked(f"plot.{side}"),
                            selection_mode=("points", "box", "lasso"), config=explorer_chart.PLOT_CONFIG)
else:
    import pandas as pd
    from embedding_atlas.streamlit import embedding_atlas
    frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "label": np.asarray(CLASSES)[labels]})
    if shown is not None:
        frame = frame.iloc[shown].reset_index(drop=True)
    embedding_atlas(frame, x="x", y="y", text="label", labels="disabled", key="atlas")
'''

# Points held by the plotly plots (all but the grey "filtered out" and overlay traces), or -1 while not drawn.
PLOTLY_POINTS = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  if (plots.length < 2 || !plots.every(p => p._fullData)) return -1;
  return plots.map(p => p._fullData.filter(t => !['filtered out', 'selection'].includes(t.name))
                                   .reduce((s, t) => s + (t._length ?? 0), 0));
}"""
SELECTED_TEXT = ("() => { const e = [...document.querySelectorAll('[data-testid=\"stMarkdown\"]')]"
                 ".find(m => /Selected: |Nothing selected/.test(m.innerText)); return e ? e.innerText : null; }")
IDLE = ("() => !document.querySelector('[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')")


def _serve(app: Path, env: dict[str, str], python: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([python, "-m", "streamlit", "run", str(app), "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, timeout=180)
    return proc, url


def _wait_points(page, expected: int, timeout_ms: float = 120_000) -> None:
    page.wait_for_function(f"() => {{ const n = ({PLOTLY_POINTS})(); return Array.isArray(n) && "
                           f"n.every(v => v === {expected}) && ({IDLE})(); }}", timeout=timeout_ms, polling="raf")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # painted


def _wait_atlas(page, timeout_ms: float = 120_000) -> None:
    """Streamlit idle and the atlas iframe drawing: a canvas with a size inside it, then two frames."""
    page.wait_for_function(IDLE, timeout=timeout_ms, polling="raf")
    frame_el = page.wait_for_selector('iframe[title*="embedding_atlas"]', timeout=timeout_ms)
    frame = frame_el.content_frame()
    frame.wait_for_function("() => [...document.querySelectorAll('canvas')].some(c => c.width > 0 && c.height > 0)",
                            timeout=min(timeout_ms, 60_000))
    frame.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def _click_filter(page, label: str) -> float:
    start = time.perf_counter()
    page.locator('[data-testid="stRadio"] label', has_text=label).first.click()
    return start


def _lasso(page, size: float) -> float:
    area = page.evaluate("""() => { const r = document.querySelector('.js-plotly-plot .nsewdrag').getBoundingClientRect();
                                    return {left: r.left, top: r.top, width: r.width, height: r.height}; }""")
    return drag_lasso(page, area, size)


def run_view(view: str, n: int, python: str, browser_args: list[str], changes: int,
             screenshot: Path | None, draw_max: int = 20_000, gl_ratio: float | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    labels_count = [min(c, draw_max) for c in _class_counts(n)]  # the points a plot draws
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "explorer_app.py"
        app.write_text(APP)
        env = {**os.environ, "EXPLORER_ROOT": str(ROOT), "EXPLORER_POINTS": str(n), "EXPLORER_VIEW": view,
               "EXPLORER_SAVE": tmp, "EXPLORER_DRAW_MAX": str(draw_max),
               "EXPLORER_GL_RATIO": str(gl_ratio or PLOT_CONFIG["plotGlPixelRatio"])}
        proc, url = _serve(app, env, python)
        result: dict = {"view": view, "points": n, "browser_args": browser_args,
                        "points_drawn": min(n, draw_max) if view == "plotly" else n,
                        "gl_pixel_ratio": (gl_ratio or PLOT_CONFIG["plotGlPixelRatio"]) if view == "plotly" else None}
        console: list[str] = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=browser_args)
                page = browser.new_page(viewport={"width": 1500, "height": 1100})
                page.on("console", lambda m: console.append(m.text[:300]) if m.type == "error" else None)
                page.on("pageerror", lambda e: console.append(str(e)[:300]))
                wait = (lambda expected: _wait_points(page, expected)) if view == "plotly" else \
                    (lambda expected: _wait_atlas(page))
                page.goto(url)
                everything = min(n, draw_max) if view == "plotly" else n
                wait(everything)  # the first load warms the server's cache of the points
                start = time.perf_counter()
                page.reload()
                wait(everything)
                result["first_draw_s"] = time.perf_counter() - start
                filter_s = []
                for i in range(changes):
                    c = i % 5
                    start = _click_filter(page, f"class {c}")
                    wait(labels_count[c])
                    filter_s.append(time.perf_counter() - start)
                    start = _click_filter(page, "all")
                    wait(everything)
                    filter_s.append(time.perf_counter() - start)
                result["filter_s"] = [round(t, 3) for t in filter_s]
                result["filter_median_s"] = statistics.median(filter_s)
                result["filter_max_s"] = max(filter_s)
                if view == "plotly":
                    lasso_s = []
                    for size in (0.10, 0.15, 0.20):  # three sizes: each lasso changes the count shown
                        before = page.evaluate(SELECTED_TEXT)
                        start = _lasso(page, size)
                        page.wait_for_function(f"() => ({SELECTED_TEXT})() !== {json.dumps(before)} && ({IDLE})()",
                                               timeout=120_000, polling="raf")
                        lasso_s.append(time.perf_counter() - start)
                    result["lasso_s"] = [round(t, 3) for t in lasso_s]
                    result["lasso_median_s"] = statistics.median(lasso_s)
                if screenshot is not None:  # a new session (no lasso left over): the filter's rows are saved
                    page.reload()
                    wait(everything)
                    _click_filter(page, "class 3")
                    wait(labels_count[3])
                    page.get_by_label("Name").fill("class three")
                    page.get_by_role("button", name="Save selection").click()
                    page.get_by_text("class three (").first.wait_for(timeout=120_000)
                    wait(labels_count[3])
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(screenshot), full_page=True)
                    result["screenshot"] = str(screenshot)
                browser.close()
        except Exception as exc:  # noqa: BLE001 - a view that cannot draw is a result to record, not a crash
            result["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
        finally:
            stop_server(proc)
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            if "error" in result and stderr:
                result["server_stderr_tail"] = stderr[-800:]
            if "error" in result and console:
                result["browser_errors"] = console[-5:]
    return result


def _class_counts(n: int) -> list[int]:
    import numpy as np

    labels = np.random.default_rng(0).integers(0, 10, n)
    return [int((labels == c).sum()) for c in range(10)]


def _added_weight(python: str) -> dict:
    """What installing embedding-atlas added: the MB and packages of that interpreter's own site-packages
    (a venv made with --system-site-packages over this project's environment holds only the additions)."""
    where = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                           text=True, check=True).stdout.strip()
    files = [f for f in Path(where).rglob("*") if f.is_file()]
    packages = sorted({p.name.split("-")[0] for p in Path(where).glob("*.dist-info")})
    return {"site_packages": where, "added_mb": round(sum(f.stat().st_size for f in files) / 2**20),
            "added_packages": len(packages), "some_added": [p for p in packages if p.lower() in
                                                             {"duckdb", "litellm", "sentence_transformers",
                                                              "accelerate", "fastapi", "uvicorn", "transformers",
                                                              "embedding_atlas"}]}


def run_projection(n: int, dim: int = 512) -> dict:
    import numpy as np

    from byol_core.analysis.embeddings import UMAP_FIT_MAX, pca_2d, umap_2d

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, dim)).astype(np.float32)
    x = centres[rng.integers(0, 10, n)] + 0.8 * rng.normal(size=(n, dim)).astype(np.float32)
    out: dict = {"points": n, "dim": dim, "umap_fit_points": UMAP_FIT_MAX}
    start = time.perf_counter()
    pca_2d(x)
    out["pca_s"] = time.perf_counter() - start
    umap_2d(x[:5000])  # numba's one-off compiles (both neighbour searches), paid before timing, as the page's warm-up
    start = time.perf_counter()
    umap_2d(x[:UMAP_FIT_MAX])
    out["umap_fit_subsample_only_s"] = time.perf_counter() - start
    start = time.perf_counter()
    umap_2d(x, fit_max=UMAP_FIT_MAX)
    out["umap_fit_subsample_and_place_rest_s"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=3, help="filter round trips (class k, then all) per view")
    parser.add_argument("--atlas-python", default=None, help="a Python with embedding-atlas installed")
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument("--projection", action="store_true")
    parser.add_argument("--all-points", action="store_true", help="also time plotly drawing all points")
    parser.add_argument("--gl-ratio-before", type=float, default=None,
                        help="also time the page with this plotGlPixelRatio (plotly's default: 2), the same run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    results: dict = {
        "decision": "plotly kept (drawing a seeded sample of explorer_chart.DRAW_MAX points; a lasso selects every "
                    "point inside it). Embedding Atlas's Streamlit component fetches DuckDB-WASM from a CDN at run "
                    "time, so offline it never draws (see browser_errors), and it adds a large install.",
        "earlier_measurements": {
            "note": "same machine, same day, before the changes they led to",
            "plotly_all_100k_points_load_13_to_15": {"filter_median_s": 13.42, "filter_max_s": 17.43,
                                                      "lasso_median_s": 18.21, "first_draw_s": 15.05},
            "umap_learn_transform_for_80k_after_fit_on_20k_s": 916.4 - 128.2,
            "umap_fit_20k_s": 128.2, "pca_100k_full_fit_s": 19.5, "load_average": "13-16"},
        "machine": f"{platform.node()} · {os.cpu_count()} cores · {platform.processor() or 'cpu'}",
                     "load_average_at_start": os.getloadavg(), "budget_s": BUDGET_S, "views": []}
    results["views"].append(run_view("plotly", args.points, sys.executable, BASE_ARGS, args.changes,
                                     args.screenshot))
    if args.gl_ratio_before:  # the drawing the page had before, timed beside the current one
        results["views"].append(run_view("plotly", args.points, sys.executable, BASE_ARGS, args.changes, None,
                                         gl_ratio=args.gl_ratio_before))
    if args.all_points:  # the same page drawing every point: the "before" of the sampled drawing
        results["views"].append(run_view("plotly", args.points, sys.executable, BASE_ARGS, args.changes, None,
                                         draw_max=10**9))
    if args.atlas_python:
        results["atlas_install"] = _added_weight(args.atlas_python)
        for flags in (BASE_ARGS, BASE_ARGS + SWIFTSHADER_ARGS):
            results["views"].append(run_view("atlas", args.points, args.atlas_python, flags, args.changes, None))
    if args.projection:
        results["projection"] = run_projection(args.points)
    results["load_average_at_end"] = os.getloadavg()  # 2 shared cores: other jobs slow every number here
    print(f"{'view':8} {'flags':12} {'drawn':>7} {'first draw s':>12} {'filter median s':>16} {'filter max s':>13} "
          f"{'lasso median s':>15}  error")
    for r in results["views"]:
        flags = "swiftshader" if any("swiftshader" in a for a in r["browser_args"]) else "--disable-gpu"
        flags += f" gl×{r['gl_pixel_ratio']:g}" if r.get("gl_pixel_ratio") else ""
        cells = [f"{r[k]:.2f}" if isinstance(r.get(k), float) else "–"
                 for k in ("first_draw_s", "filter_median_s", "filter_max_s", "lasso_median_s")]
        print(f"{r['view']:8} {flags:12} {r['points_drawn']:>7} {cells[0]:>12} {cells[1]:>16} {cells[2]:>13} {cells[3]:>15}  "
              f"{r.get('error', '')[:80]}")
    if "projection" in results:
        print("projection:", json.dumps({k: round(v, 2) if isinstance(v, float) else v
                                         for k, v in results["projection"].items()}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
