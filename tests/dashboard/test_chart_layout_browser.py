"""The Compare page's accuracy curves drawn by Streamlit in Chromium: the legend covers neither the epoch axis
title nor a tick label, however many runs it lists (below the plot, eight long names squeezed the plot until
the legend lay over "epoch")."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.serve import free_port, settle, stop_server, wait_healthy
from tests.dashboard.test_browser import CHROMIUM, ROOT, _need

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Two columns of curves, as on the Compare page, with n runs of long names (?n=8).
APP = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import streamlit as st
from dashboard import charts

st.set_page_config(layout="wide")
n = int(st.query_params.get("n", 2))
curves = [(f"byol-digits-a-rather-long-run-name-{{i}} · ab{{i:02d}}", "BYOL kNN", [1, 2, 3, 4], [0.5, 0.6, 0.65, 0.7])
          for i in range(n)]
for i, column in enumerate(st.columns(2)):
    with column:
        st.plotly_chart(charts.accuracy_curves(curves), key=f"curves{{i}}", config={{"displayModeBar": False}})
"""

# Boxes (page pixels) of the first chart's legend and of its axis titles and tick labels.
BOXES = """() => {
    const plot = document.querySelector('.js-plotly-plot');
    const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    const legend = plot.querySelector('g.legend');
    return {legend: legend && box(legend), texts: [...plot.querySelectorAll(
        'text.xtitle, text.ytitle, g.xtick text, g.ytick text')].map(t => [t.textContent, box(t)])};
}"""


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_the_compare_legend_never_covers_the_epoch_axis(tmp_path):
    _need(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(tmp_path / "app.py"), "--server.port",
                             str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(url, proc)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1000, "height": 1200})  # narrow columns: long names wrap
            for runs in (2, 8):
                page.goto(f"{url}/?n={runs}")
                settle(page)
                page.wait_for_selector("g.legend", timeout=60_000)
                boxes = page.evaluate(BOXES)
                texts = [text for text, _ in boxes["texts"]]
                assert "epoch" in texts and "accuracy" in texts
                covered = [text for text, b in boxes["texts"] if _overlap(boxes["legend"], b)]
                assert not covered, f"with {runs} runs the legend covers {covered}"
            browser.close()
    finally:
        stop_server(proc)
