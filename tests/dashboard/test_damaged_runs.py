"""One damaged number in one run folder never hides the other runs, or anything below the runs table."""

from __future__ import annotations

import json

import pytest

from byol_core.lab.run_store import RunStore
from tests.app_helpers import _app, _page, compare_runs, table_column
from tests.lab.test_provenance import _finished
from tests.lab.test_summary import _poison

POISONS = [  # (file part, field, JSON text of the damaged value)
    ("status", "step", "1e20"),
    ("status", "step", "-3"),
    ("status", "total_steps", str(10**30)),
    ("status", "epoch", '"three"'),
    ("results", "knn_accuracy", "NaN"),
    ("results", "test_images", "1e20"),
    ("record", "kind", "42"),
]


@pytest.mark.parametrize("where, field, raw", POISONS, ids=[f"{p[1]}={p[2]}" for p in POISONS])
def test_train_and_compare_show_a_damaged_run_and_everything_else(runs_dir, where, field, raw):
    store = RunStore(runs_dir)
    good, bad = _finished(store), _finished(store)
    _poison(bad, where, field, raw)
    with open(good.metrics_path, "a") as fh:  # a damaged event among good ones reaches the charts too
        fh.write(json.dumps({"kind": "epoch", "stage": "byol", "epoch": 1, "step": 6, "total_steps": 12,
                             "val_knn_accuracy": 0.5}) + "\n")
        fh.write('{"kind": "epoch", "stage": "byol", "epoch": "two", "step": 1e20, "val_knn_accuracy": NaN}\n')

    at = _page(_app(), "views/train.py")
    runs = table_column(at, "run")
    states = dict(zip(runs, table_column(at, "state"), strict=True))
    assert states == {good.id: "finished", bad.id: "damaged"}
    problem = dict(zip(runs, table_column(at, "problem"), strict=True))[bad.id]
    assert field in problem, problem
    assert at.selectbox(key="train.show_run") is not None  # the widgets below the table are drawn
    at.selectbox(key="train.show_run").set_value(bad.id).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(field in e.value for e in at.error), [e.value for e in at.error]
    at.selectbox(key="train.show_run").set_value(good.id).run()
    assert not at.exception, [e.value for e in at.exception]

    _page(at, "views/compare.py")
    assert list(compare_runs(at)["run_id"]) == [good.id]  # the damaged run is no result to compare
    assert at.get("download_button") and [t.label for t in at.tabs][1] == "Accuracy per epoch"
    at.session_state["compare.section"] = "Accuracy per epoch"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(m.value.startswith("**Pretraining") for m in at.markdown) and not at.get("download_button")
