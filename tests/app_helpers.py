"""What the dashboard tests share: the app under Streamlit's AppTest, a fresh runs folder, waiting on runs."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from byol_core.lab.run_store import Run, RunStore

APP = Path(__file__).resolve().parents[1] / "dashboard" / "navigation.py"  # the script each session runs
PAGES = ("views/data.py", "views/train.py", "views/compare.py", "views/embeddings.py")
TIMEOUT = 120


def _app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def _page(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _wait_for(store: RunStore, predicate, timeout: float = 600.0) -> list:
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = [r for r in store.list() if predicate(r.read_status())]
        if runs:
            return runs
        time.sleep(0.2)
    states = {r.id: r.read_status().get("state") for r in store.list()}
    raise AssertionError(f"no run reached the expected state within {timeout} s: {states}")


def _wait_for_end(store: RunStore, timeout: float = 600.0) -> Run:
    """The run that finished or failed, once the dashboard's job for it has ended too.

    A worker writes its final status a moment before it exits and its supervising thread notices.
    """
    from dashboard import state

    run = _wait_for(store, lambda s: s.get("state") in ("finished", "failed"), timeout)[0]
    state.get_manager().wait(run.id, timeout=600)
    return run


def _tiny_cfg(epochs: float = 1.0):
    from byol_core.config import with_overrides
    from byol_core.presets import get_preset

    return with_overrides(get_preset("tiny"), {"byol.optim.epochs": epochs, "name": "byol-digits"})
