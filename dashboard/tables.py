"""Formatting of run summaries for the pages: the Compare table and CSV, the Train page's run list, durations.

The run model itself lives in core (:mod:`byol_core.lab.summary`); this module only shapes it for
display.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import streamlit as st

from byol_core.lab.comparison import comparison_key
from byol_core.lab.summary import RunSummary
from byol_core.text import csv_cell, markdown_text

# New columns go after the first three, which readers of older exports rely on.
CSV_COLUMNS = ("method", "accuracy", "metric", "name", "dataset", "label_fraction", "seed", "lr", "augmentation",
               "epochs_run", "steps_run", "backbone", "image_size", "test_images", "from_run", "run_id", "finished",
               "comparison_key", "note")  # the note stays last: free text, the widest cell


def compare_rows(summaries: Sequence[RunSummary]) -> list[dict[str, Any]]:
    """One row per finished run with a headline number, for the Compare page's table, chart and CSV."""
    rows = []
    for s in summaries:
        if s.state != "finished" or s.metric is None or s.config is None or s.stage_info is None:
            continue
        rows.append({
            "method": s.method,
            "accuracy": s.metric,
            "metric": s.metric_name,
            "name": s.display_name,
            "dataset": s.dataset,
            "label_fraction": s.label_fraction,
            "seed": s.seed,
            "lr": s.lr,
            "augmentation": s.augmentation,
            "epochs_run": s.epochs_run,
            "steps_run": s.steps_run,
            "backbone": s.config.model.backbone,
            "image_size": s.config.augment.image_size,
            "test_images": s.results.get("test_images"),
            "num_classes": s.results.get("num_classes"),
            "from_run": s.source_run or "",
            "run_id": s.id,
            "label": f"{s.display_name or s.method} · {s.id[-4:]}",
            "finished": time.strftime("%Y-%m-%d %H:%M", time.localtime(s.finished_at or 0)),
            "note": s.note,
            "comparison_key": comparison_key(s.config),  # runs with one key are seeds of one comparison
        })
    return rows


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The Compare CSV; every text cell through :func:`~byol_core.text.csv_cell`, so no name or note runs as a
    spreadsheet formula."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: csv_cell(v) for k, v in r.items()})
    return buf.getvalue()


def runs_table(summaries: Sequence[RunSummary]) -> list[dict[str, Any]]:
    """The Train page's list of the runs given, damaged ones with their reason; an "archived" column when any is."""
    any_archived = any(s.archived for s in summaries)
    return [{"run": s.id, "name": s.display_name, "what": s.method, "data set": s.dataset, "state": s.state,
             "accuracy": s.metric, "labels kept": s.label_fraction, "seed": s.seed, "lr": s.lr,
             "augmentation": s.augmentation, "epochs run": s.epochs_run, "steps": s.steps_run,
             **({"archived": s.archived} if any_archived else {}), "problem": s.damaged or s.error or ""}
            for s in summaries]


RUNS_PERCENT = ("accuracy", "labels kept")  # the shares among runs_table's columns


def table_cells(rows: Sequence[dict[str, Any]], percent: Collection[str] = ()) -> list[dict[str, str]]:
    """``rows`` as ``st.table`` shows them. It reads every cell as Markdown, so text is escaped
    (:func:`~byol_core.text.markdown_text`); the ``percent`` columns' shares read as percentages, other numbers
    with four significant digits, a missing value as an empty cell."""
    def cell(column: str, value: Any) -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float | int) and column in percent:
            return f"{100 * value:.1f}%"
        if isinstance(value, float):
            return f"{value:.4g}"
        return markdown_text(value)

    return [{column: cell(column, value) for column, value in row.items()} for row in rows]


NAME_CHAR_PX = 7  # a generous width of one character of the table's font (wide letters included)
NAME_PADDING_PX = 24
NAME_COLUMN_PX = (100, 900)  # 900 px hold the longest name a run can be given (MAX_NAME_CHARS)


def name_column_width(names: Iterable[str]) -> int:
    """Pixels that show the longest of ``names`` whole (Streamlit sizes a column to at most 500 px, which cut
    off names over about 85 characters), within :data:`NAME_COLUMN_PX`."""
    longest = max((len(n) for n in names), default=0)
    low, high = NAME_COLUMN_PX
    return min(high, max(low, NAME_CHAR_PX * longest + NAME_PADDING_PX))


def runs_table_columns(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``column_config`` of :func:`runs_table`'s rows: shares as percentages, and a name column wide enough
    for the longest name."""
    return {
        "name": st.column_config.TextColumn(
            "name", width=name_column_width(str(r.get("name") or "") for r in rows),
            help="The name given to the run under \"About this run\"; empty when none was given."),
        "accuracy": st.column_config.NumberColumn(format="percent"),
        "labels kept": st.column_config.NumberColumn(format="percent"),
    }


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"
