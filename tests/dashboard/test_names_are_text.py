"""A run's name and note are text on every page: no Markdown, HTML or spreadsheet formula in them comes alive."""

from __future__ import annotations

import csv
import io
import re

from byol_core.lab import runner
from byol_core.lab.annotations import annotate
from byol_core.lab.plans import plan
from byol_core.lab.run_store import RunStore
from byol_core.lab.summary import list_summaries
from tests.app_helpers import _app, _errors, _page, _tiny_cfg, compare_runs, table_column

NAME = "![x](http://example.com/x.png) <img src=x> :red[r] **b**"
NOTE = "=HYPERLINK(\"http://example.com\",\"click\")"
LIVE = re.compile(r"(?<!\\)!\[x\]|(?<!\\)<img|(?<!\\):red\[|(?<!\\)\*\*b")  # the name's markup, unescaped


def _shown(at) -> list[str]:
    """Every piece of Markdown the page sent: bodies, captions, boxes and widget labels."""
    texts = [str(e.value) for kind in ("markdown", "caption", "error", "warning", "info", "success")
             for e in getattr(at, kind)]
    return texts + [str(w.label) for kind in ("selectbox", "radio", "button", "slider") for w in getattr(at, kind)]


def test_a_run_name_with_markup_is_shown_as_text_and_its_csv_cells_are_inert(runs_dir):
    from dashboard import tables

    store = RunStore(runs_dir)
    run = runner.start(plan("byol", _tiny_cfg(1.0)), store)
    assert run.read_status()["state"] == "finished"
    annotate(run, name=NAME, note=NOTE)

    at = _page(_app(), "views/embeddings.py")
    assert not _errors(at), _errors(at)
    assert at.selectbox(key="emb.a").value == run.id
    shown = _shown(at)
    assert not [t for t in shown if LIVE.search(t)], [t for t in shown if LIVE.search(t)]
    heading = next(t for t in shown if "example" in t)  # the plot's heading names the run, escaped
    assert "\\!\\[x\\]\\(http" in heading and "\\<img" in heading

    _page(at, "views/compare.py")
    assert not _errors(at), _errors(at)
    assert not [t for t in _shown(at) if LIVE.search(t)]
    assert NAME in list(compare_runs(at)["name"])  # a data frame's cell is plain text already: shown as written

    _page(at, "views/train.py")  # its list of runs is a static table, whose cells are Markdown: escaped there
    [cell] = list(at.table[0].value["name"])
    assert not LIVE.search(cell), cell
    assert table_column(at, "name") == [NAME]  # and it reads as written

    rows = tables.compare_rows(list_summaries(store))
    [row] = list(csv.DictReader(io.StringIO(tables.rows_to_csv(rows))))
    assert row["note"] == "'" + NOTE and row["name"] == NAME
    assert float(row["accuracy"]) == rows[0]["accuracy"]  # numbers stay numbers
