"""The dashboard in a real browser: `streamlit run`, Debian's Chromium driven by Playwright.

Visits every page, trains a tiny BYOL run and a supervised baseline, waits for the loss chart,
clicks a point of the embedding plot and saves a screenshot of each page under
test-artifacts/screenshots/. Skipped when Chromium or Playwright is missing (fails under CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks.serve import drag_lasso, settle

ROOT = Path(__file__).resolve().parents[2]
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


def _open(p, url: str):
    """Headless Chromium on the dashboard's first page, drawn: (browser, page); close the browser after."""
    browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Data & augmentations").first.wait_for(timeout=90_000)
    settle(page)
    return browser, page


def _goto(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
    settle(page)


def _pick(page, label: str, option_text: str) -> None:
    """Open a select box by its label and choose the first option containing ``option_text``.

    A click that lands while the page reruns can leave the list closed, so it is opened again if needed.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    option = page.get_by_role("option").filter(has_text=option_text).first
    for _ in range(3):
        settle(page)
        page.get_by_label(label, exact=True).first.click()
        try:
            option.wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    option.click()
    settle(page)


def _scroll_to_top_of(page, selector: str) -> None:
    """Scroll the last element matching ``selector`` to the top of the view (Streamlit scrolls its own container)."""
    page.evaluate("sel => { const all = document.querySelectorAll(sel); all[all.length - 1]"
                  ".scrollIntoView({block: 'start'}); }", selector)


def _wait_for_file_text(root: Path, pattern: str, text: str, timeout_s: float = 120.0) -> None:
    """Wait until a file under ``root`` matching ``pattern`` holds ``text`` (what the page saved)."""
    deadline = time.monotonic() + timeout_s
    while not any(text in f.read_text() for f in root.glob(pattern)):
        assert time.monotonic() < deadline, f"no {pattern} under {root} holds {text!r} after {timeout_s:.0f} s"
        time.sleep(0.5)


def _no_error_boxes(page) -> None:
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, [errors.nth(i).inner_text() for i in range(errors.count())]
    assert page.locator('[data-testid="stException"]').count() == 0


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


# The first embedding plot's drawing area (page coordinates), once plotly is in lasso mode.
PLOT_AREA = """() => {
    const gd = document.querySelector('.st-key-emb-plot-a .js-plotly-plot');
    if (!gd || !gd._fullLayout || gd._fullLayout.dragmode !== 'lasso') return null;
    const L = gd._fullLayout, box = gd.getBoundingClientRect();
    return {left: box.left + L._size.l, top: box.top + L._size.t, width: L._size.w, height: L._size.h};
}"""

CONFUSION_MATRIX_DRAWN = """() => [...document.querySelectorAll('.js-plotly-plot .gtitle')].some(
    t => t.textContent === 'Confusion matrix')"""

CHART_HAS_POINTS = """() => [...document.querySelectorAll('.js-plotly-plot')].some(
    gd => (gd.data || []).some(t => t.x && t.x.length > 0))"""

# Pixel position (page coordinates) of the first point of the first embedding plot's first trace.
FIRST_POINT = """() => {
    const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
        g => (g.data || []).some(t => t.customdata && t.type.startsWith('scatter')));
    if (!gd || !gd._fullLayout || !gd._fullLayout.xaxis) return null;
    const t = (gd._fullData || []).find(t => t.type.startsWith('scatter') && t.x && t.x.length > 0);
    if (!t) return null;
    const L = gd._fullLayout, box = gd.getBoundingClientRect();
    return {x: box.left + L._size.l + L.xaxis.l2p(t.x[0]), y: box.top + L._size.t + L.yaxis.l2p(t.y[0])};
}"""


# One finished encoder per backbone family the export snippet handles differently: byol_core's own
# convnet, a torchvision ResNet with the small-image stem and with its standard stem, a torchvision
# model whose head is not `fc`, and any network read at a named hidden layer.
BACKBONE_FAMILIES = {
    "small-cnn": {},
    "resnet18-small-stem": {"model.backbone": "resnet18", "model.small_stem": True},
    "resnet18-standard-stem": {"model.backbone": "resnet18", "model.small_stem": False},
    "mobilenet_v3_small": {"model.backbone": "mobilenet_v3_small"},
    "hidden-layer": {"model.backbone": "resnet18", "model.hidden_layer": "layer3"},
}

# Runs in a fresh interpreter: the downloaded file and the page's snippet, nothing else of this process.
LOAD_IN_FRESH_PROCESS = """
import sys, torch
images = torch.load(sys.argv[2], weights_only=True)
exec(open(sys.argv[1]).read())
torch.save(features, sys.argv[3])
"""


def _finished_encoder_runs(runs_dir: Path) -> dict[str, tuple[str, torch.Tensor, torch.Tensor]]:
    """A finished pretraining run per backbone family (random weights): run id, test images, their features."""
    from byol_core.config import with_overrides
    from byol_core.data import load_data
    from byol_core.lab.run_store import RunStore
    from byol_core.methods.evaluation import embed
    from byol_core.methods.networks import build_encoder, encoder_state_dict
    from byol_core.presets import get_preset

    store, made = RunStore(runs_dir), {}
    for family, overrides in BACKBONE_FAMILIES.items():
        cfg = with_overrides(get_preset("tiny"), {**overrides, "name": f"export-{family}"})
        run = store.create("byol", cfg, {"mode": "byol"}, stage="byol")
        torch.manual_seed(7)
        encoder = build_encoder(cfg.model)
        run.save_encoder(encoder_state_dict(encoder))
        run.set_status("finished", results={})  # no headline number: stays out of Compare
        splits = load_data(cfg.data)
        images = splits.test.images[:8]
        made[family] = (run.id, images, embed(encoder, images, cfg.augment.image_size, splits.mean, splits.std))
    return made


def _download_and_load_each_family(page, runs_dir: Path, tmp_path: Path) -> None:
    """Train page: pick each run, click Download encoder, load the file with the page's snippet elsewhere."""
    for family, (run_id, images, expected) in _finished_encoder_runs(runs_dir).items():
        _goto(page, "Train")
        _pick(page, "Charts of a run", run_id)
        button = page.get_by_role("button", name="Download encoder")
        button.first.wait_for(timeout=60_000)
        with page.expect_download(timeout=60_000) as download:
            button.first.click()
        folder = tmp_path / family
        folder.mkdir()
        download.value.save_as(folder / download.value.suggested_filename)  # the name the snippet loads
        snippet = page.locator('[data-testid="stCode"] code').filter(has_text="bundle = torch.load").first
        (folder / "snippet.py").write_text(snippet.inner_text())
        torch.save(images, folder / "images.pt")
        (folder / "load.py").write_text(LOAD_IN_FRESH_PROCESS)
        done = subprocess.run([sys.executable, "load.py", "snippet.py", "images.pt", "features.pt"], check=False,
                              cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{family}: {done.stderr[-2000:]}"
        features = torch.load(folder / "features.pt", weights_only=True)
        torch.testing.assert_close(features, expected, atol=1e-4, rtol=1e-4, msg=f"{family}: other embeddings")


def test_dashboard_in_chromium(server, tmp_path):
    runs_dir = tmp_path / "runs"  # the server's BYOL_RUNS_DIR
    _need(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is not installed (pip install playwright)")
        return

    with sync_playwright() as p:
        browser, page = _open(p, server)
        try:
            # Data & augmentations: the preview grid, the controls, no error.
            page.locator('[data-testid="stImage"]').first.wait_for(timeout=60_000)
            assert page.get_by_text("Reset to BYOL paper defaults").count() == 1
            _no_error_boxes(page)
            _shot(page, "1-data.png")
            # Only the open view's controls are drawn: View 2's come when its tab is opened, View 1's go.
            assert page.get_by_text("View 2 is ").count() == 0
            page.get_by_role("tab", name="View 2").click()
            page.get_by_text("View 2 is ").first.wait_for(timeout=30_000)
            settle(page)
            assert page.get_by_text("View 1 is ").count() == 0
            _no_error_boxes(page)

            # Train: a tiny BYOL run, then the loss chart fills in; then a supervised baseline.
            _goto(page, "Train")
            page.get_by_role("button", name="Start", exact=True).click()
            page.wait_for_function(CHART_HAS_POINTS, timeout=600_000)
            page.get_by_text("Finished: kNN accuracy").first.wait_for(timeout=600_000)
            settle(page)
            page.locator('[data-testid="stTable"]').first.wait_for(timeout=30_000)  # the list of runs
            page.get_by_text("Supervised from scratch (baseline)").click()
            settle(page)
            # Before Start: what the job changes from its preset, and why.
            page.get_by_text("What this job changes from the tiny preset").first.click()
            page.get_by_text("steps because min_steps").first.wait_for(timeout=30_000)
            settle(page)
            _shot(page, "2a-config-diff.png")
            page.get_by_role("button", name="Start", exact=True).click()
            page.get_by_text("Finished: test accuracy").first.wait_for(timeout=600_000)
            settle(page)
            _no_error_boxes(page)
            _shot(page, "2-train.png")

            # The baseline's own panel: a name, its config against the BYOL run's, and where it fails.
            _pick(page, "Charts of a run", "supervised")
            page.get_by_label("Name", exact=True).fill("baseline, 2 epochs")
            page.get_by_role("button", name="Save name and note").click()
            _wait_for_file_text(runs_dir, "*supervised*/annotations.json", "baseline, 2 epochs")
            settle(page)
            _pick(page, "Diff against", "byol")
            page.locator('[data-testid="stDataFrame"]').last.wait_for(timeout=30_000)
            page.get_by_text("Where it fails").first.click()
            page.get_by_text("Misclassified test images").first.wait_for(timeout=120_000)
            settle(page)
            page.wait_for_function(CONFUSION_MATRIX_DRAWN, timeout=60_000)  # a plot titled "Confusion matrix"
            _no_error_boxes(page)
            _shot(page, "2b-run-details.png")
            # The page scrolls inside Streamlit's container: bring the matrix and the gallery into view.
            _scroll_to_top_of(page, ".js-plotly-plot .gtitle")  # the matrix's title
            settle(page)
            _shot(page, "2c-confusion-matrix-and-misclassified.png")

            # Compare: both runs in the chart and the table, plus the random-init kNN floor.
            _goto(page, "Compare")
            page.get_by_role("button", name="Run random-init kNN").click()
            page.get_by_text("Random-init kNN", exact=True).first.wait_for(timeout=600_000)
            settle(page)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            assert page.get_by_text("Download CSV").count() == 1
            _no_error_boxes(page)
            _shot(page, "3-compare.png")

            # A label-efficiency sweep over two seeds, started from its form (the page draws only its open tab),
            # fills the page with seeds. 10% and 100% of the labels (1% of the tiny set is two images), two seeds:
            # 22 short runs.
            page.get_by_role("tab", name="Label efficiency and the colour ablation").click()
            page.get_by_role("button", name="Remove 1%", exact=True).first.wait_for(timeout=60_000)
            page.get_by_role("button", name="Remove 1%", exact=True).first.click()
            settle(page)
            page.get_by_label("Seeds", exact=True).fill("2")
            page.get_by_label("Seeds", exact=True).press("Enter")
            settle(page)
            page.get_by_role("button", name="Start", exact=True).click()
            page.get_by_text("nudged sideways").first.wait_for(timeout=900_000)
            page.wait_for_function("() => !document.body.innerText.includes('Still running: the table so far')",
                                   timeout=900_000)
            settle(page)
            _no_error_boxes(page)
            _shot(page, "3a-compare-seeds.png")
            _scroll_to_top_of(page, ".st-key-compare-sweep")
            settle(page)
            _shot(page, "3b-label-efficiency.png")

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

            # Colour by correct / incorrect, then lasso a group of points: its images, class mix and placement.
            page.locator('[data-testid="stRadio"] label', has_text="correct / incorrect").first.click()
            page.get_by_text("of them right").first.wait_for(timeout=240_000)
            settle(page)
            page.locator('[data-testid="stRadio"] label', has_text="lasso a group").first.click()
            settle(page)
            page.wait_for_function(f"() => ({PLOT_AREA})() !== null", timeout=60_000)
            drag_lasso(page, page.evaluate(PLOT_AREA), 0.3, steps=4)
            page.get_by_text("Selection:").first.wait_for(timeout=60_000)
            settle(page)
            _no_error_boxes(page)
            _shot(page, "6-embeddings-lasso.png")

            # Take each backbone family's encoder away and load it, as a user would, in a fresh process.
            _download_and_load_each_family(page, runs_dir, tmp_path)
        except Exception:
            _shot(page, "failure.png")  # where it stopped, for whoever reads the CI log
            raise
        finally:
            browser.close()
