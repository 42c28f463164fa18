"""The Train page lists the newest runs as a static table, and every run as a sortable one when asked."""

from __future__ import annotations

from byol_core.lab.run_store import RunStore
from tests.app_helpers import _app, _page, table_column
from tests.lab.test_provenance import _finished

LISTED = 8  # dashboard/views/train.py's RUNS_LISTED


def test_the_newest_runs_are_listed_and_every_run_is_one_click_away(runs_dir):
    store = RunStore(runs_dir)
    made = [_finished(store, accuracy=0.5 + i / 100) for i in range(LISTED + 2)]
    at = _page(_app(), "views/train.py")
    assert table_column(at, "run") == [r.id for r in store.list()][:LISTED]  # newest first
    assert all(cell.endswith("%") for cell in table_column(at, "accuracy"))  # shares read as percentages
    assert any(f"{LISTED} newest of {LISTED + 2} runs" in c.value for c in at.caption)
    assert not at.dataframe  # the sortable table is drawn only once its expander is open

    at.session_state["train.all_runs_open"] = True
    at.run()
    assert not at.exception
    assert set(at.dataframe[0].value["run"]) == {r.id for r in made}

    # Another run finishes: the open table stays open and lists it too.
    late = _finished(store)
    at.run()
    assert late.id in set(at.dataframe[0].value["run"]) and len(at.dataframe[0].value) == LISTED + 3


def test_few_runs_need_no_second_table(runs_dir):
    store = RunStore(runs_dir)
    only = _finished(store)
    at = _page(_app(), "views/train.py")
    assert table_column(at, "run") == [only.id]
    assert not [e for e in at.expander if "Every run" in e.label]
