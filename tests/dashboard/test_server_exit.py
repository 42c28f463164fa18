"""Stopping the dashboard's server loses no training: a job running when the server gets SIGTERM (or Ctrl-C) saves
its checkpoint and ends 'stopped', ready to resume, before the server exits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from benchmarks.serve import settle

from .conftest import dashboard
from .test_browser import CHROMIUM, _need

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _statuses(runs: Path) -> list[dict]:
    found = []
    for path in runs.glob("*/status.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):  # written atomically, but the folder may be new
            pass
    return found


def test_sigterm_stops_a_running_job_with_its_checkpoint(tmp_path):
    _need(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    runs = tmp_path / "runs"
    # digits-quick trains for minutes: still running when the signal comes, whatever the machine's speed.
    with dashboard(tmp_path, preset="digits-quick") as (url, proc), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.goto(url + "/train", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Train", exact=True).first.wait_for(timeout=90_000)
        settle(page)
        page.get_by_role("button", name="Start", exact=True).click()
        deadline = time.monotonic() + 600
        while not any(s.get("state") == "running" and (s.get("step") or 0) > 0 for s in _statuses(runs)):
            assert time.monotonic() < deadline, f"no job trained a step within 600 s: {_statuses(runs)}"
            time.sleep(0.5)
        browser.close()
        proc.terminate()
        proc.wait(timeout=120)
    [status] = _statuses(runs)
    assert status["state"] == "stopped", status
    [run] = [p.parent for p in runs.glob("*/status.json")]
    assert (run / "checkpoint.pt").is_file()
