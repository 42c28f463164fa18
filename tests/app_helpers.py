"""What the dashboard tests share: the app under Streamlit's AppTest, a fresh runs folder, waiting on runs."""

from __future__ import annotations

import re
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


def table_column(at: AppTest, column: str) -> list:
    """A column of the first table on the page that has it, as a person reads it: a static table's cells
    (``st.table`` reads them as Markdown) with their escapes removed, a data frame's values as they are."""
    for table in at.table:
        if column in table.value.columns:
            return [re.sub(r"\\(.)", r"\1", str(v)) for v in table.value[column]]
    for frame in at.dataframe:
        if column in frame.value.columns:
            return list(frame.value[column])
    raise AssertionError(f"no table on the page has a column {column!r}")


def compare_runs(at: AppTest):
    """The Compare page's table of every run behind its numbers, its expander opened as a person would."""
    at.session_state["compare.runs_open"] = True
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at.dataframe[0].value


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
