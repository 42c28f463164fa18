"""The dashboard in a real browser: `streamlit run`, Debian's Chromium driven by Playwright.

Visits every page, trains a tiny BYOL run and a supervised baseline, waits for the loss chart,
clicks a point of the embedding plot and saves a screenshot of each page under
test-artifacts/screenshots/. Skipped when Chromium or Playwright is missing (fails under CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.serve import free_port, settle, stop_server, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1440, "height": 2200}

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _need(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)")
    pytest.skip(reason)


@pytest.fixture()
def server(tmp_path):
    port = free_port()
    # The tiny preset keeps every job short by steps: the test waits on state, whatever the machine's speed.
    env = {**os.environ, "BYOL_RUNS_DIR": str(tmp_path / "runs"), "BYOL_MAX_JOBS": "1",
           "BYOL_DEFAULT_PRESET": "tiny"}
    log = open(tmp_path / "streamlit.log", "w")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        stop_server(proc)
        log.close()
        print((tmp_path / "streamlit.log").read_text()[-3000:])


def _goto(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
    settle(page)


def _no_error_boxes(page) -> None:
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, [errors.nth(i).inner_text() for i in range(errors.count())]
    assert page.locator('[data-testid="stException"]').count() == 0


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


CHART_HAS_POINTS = """() => [...document.querySelectorAll('.js-plotly-plot')].some(
    gd => (gd.data || []).some(t => t.x && t.x.length > 0))"""

# Pixel position (page coordinates) of the first point of the first embedding plot's first trace.
FIRST_POINT = """() => {
    const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
        g => (g.data || []).some(t => t.type === 'scattergl'));
    if (!gd || !gd._fullLayout || !gd._fullLayout.xaxis) return null;
    const t = (gd._fullData || []).find(t => t.type === 'scattergl' && t.x && t.x.length > 0);
    if (!t) return null;
    const L = gd._fullLayout, box = gd.getBoundingClientRect();
    return {x: box.left + L._size.l + L.xaxis.l2p(t.x[0]), y: box.top + L._size.t + L.yaxis.l2p(t.y[0])};
}"""


def test_dashboard_in_chromium(server):
    _need(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is not installed (pip install playwright)")
        return

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(server, wait_until="domcontentloaded")

            # Data & augmentations: the preview grid, the controls, no error.
            page.get_by_role("heading", name="Data & augmentations").first.wait_for(timeout=90_000)
            settle(page)
            page.locator('[data-testid="stImage"]').first.wait_for(timeout=60_000)
            assert page.get_by_text("Reset to BYOL paper defaults").count() == 1
            _no_error_boxes(page)
            _shot(page, "1-data.png")

            # Train: a tiny BYOL run, then the loss chart fills in; then a supervised baseline.
            _goto(page, "Train")
            page.get_by_role("button", name="Start", exact=True).click()
            page.wait_for_function(CHART_HAS_POINTS, timeout=600_000)
            page.get_by_text("Finished: kNN accuracy").first.wait_for(timeout=600_000)
            settle(page)
            page.get_by_text("Supervised from scratch (baseline)").click()
            settle(page)
            page.get_by_role("button", name="Start", exact=True).click()
            page.get_by_text("Finished: test accuracy").first.wait_for(timeout=600_000)
            settle(page)
            _no_error_boxes(page)
            _shot(page, "2-train.png")

            # Compare: both runs in the chart and the table, plus the random-init kNN floor.
            _goto(page, "Compare")
            page.get_by_role("button", name="Run random-init kNN").click()
            page.get_by_text("Random-init kNN", exact=True).first.wait_for(timeout=600_000)
            settle(page)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            assert page.get_by_text("Download CSV").count() == 1
            _no_error_boxes(page)
            _shot(page, "3-compare.png")

            # Embeddings: PCA layout (fixed while we click), click a point, see its neighbours.
            _goto(page, "Embeddings")
            page.get_by_text("PCA", exact=True).first.click()
            settle(page)
            page.wait_for_function(f"() => ({FIRST_POINT})() !== null", timeout=90_000)
            page.wait_for_timeout(1000)
            selected = page.get_by_text("Selected: class").first
            for _ in range(3):  # a WebGL point is picked on hover; move there, pause, then click
                point = page.evaluate(FIRST_POINT)
                page.mouse.move(point["x"] - 20, point["y"] - 20)
                page.mouse.move(point["x"], point["y"], steps=5)
                page.wait_for_timeout(500)
                page.mouse.click(point["x"], point["y"])
                try:
                    selected.wait_for(timeout=20_000)
                    break
                except PlaywrightTimeout:
                    settle(page)
            selected.wait_for(timeout=30_000)
            settle(page)
            _no_error_boxes(page)
            _shot(page, "4-embeddings-pca.png")

            # UMAP (computed in a background thread) replaces PCA when done; the selection stays.
            page.get_by_text("UMAP", exact=True).first.click()
            page.get_by_text("· UMAP of").first.wait_for(timeout=240_000)
            settle(page)
            assert page.get_by_text("Selected: class").count() >= 1
            _no_error_boxes(page)
            _shot(page, "5-embeddings-umap.png")
        finally:
            browser.close()
