"""What exactly each run was: names and notes, archive and delete, the tables that carry them.

Core first, then the Train page's run panel driven with AppTest (helpers from test_dashboard).
"""

from __future__ import annotations

import json

import pytest

from byol_core.cli import main
from byol_core.config import ExperimentConfig, with_overrides
from byol_core.lab.annotations import MAX_NAME_CHARS, Annotations, annotate, read_annotations
from byol_core.lab.run_store import Run, RunBusyError, RunStore
from byol_core.lab.summary import augmentation_summary, list_summaries, summarize_run
from byol_core.presets import get_preset
from dashboard import tables
from tests.app_helpers import _app, _errors, _page, compare_runs, table_column


def _finished(store: RunStore, cfg: ExperimentConfig | None = None, stage: str = "byol",
              accuracy: float = 0.9) -> Run:
    """A run that reads as finished with a headline number, without training (seconds matter here)."""
    cfg = cfg or get_preset("tiny")
    run = store.create("byol" if stage == "byol" else "supervised", cfg, {"mode": stage, "from_run": None},
                       stage=stage)
    run.set_status("finished", results={"knn_accuracy": accuracy, "test_accuracy": accuracy, "test_images": 100},
                   epoch=2.0, step=12, total_steps=12, finished=1.7e9)
    return run


# --------------------------------------------------------------------------- annotations
def test_name_and_note_are_written_beside_the_run_and_read_back(store: RunStore):
    run = _finished(store)
    config_before, status_before = run.config_path.read_bytes(), run.status_path.read_bytes()
    assert read_annotations(run) == Annotations()  # none yet: the defaults
    annotate(run, name="  lr sweep\n  #3 ", note="Blur off in view 1.\nLoss plateaued at step 40.")
    annotate(run, archived=True)  # a later change keeps the earlier fields
    on_disk = json.loads(run.annotations_path.read_text())
    assert on_disk == {"name": "lr sweep #3", "note": "Blur off in view 1.\nLoss plateaued at step 40.",
                       "archived": True}
    summary = summarize_run(run)
    assert (summary.display_name, summary.note, summary.archived) == ("lr sweep #3", on_disk["note"], True)
    assert summary.short().startswith("lr sweep #3 · BYOL kNN")
    # What ran, and what its trainer reported, are untouched.
    assert run.config_path.read_bytes() == config_before and run.status_path.read_bytes() == status_before
    assert not list(run.path.glob(".*.tmp"))
    with pytest.raises(ValueError, match=f"keep it to {MAX_NAME_CHARS}"):
        annotate(run, name="x" * (MAX_NAME_CHARS + 1))
    assert read_annotations(run).name == "lr sweep #3"  # a refused change writes nothing


def test_a_damaged_annotations_file_reads_as_none_and_never_hides_the_run(store: RunStore):
    run = _finished(store)
    for damaged in ('{"name": "half', "[1, 2]", '{"name": 5, "note": ["x"], "archived": "yes"}'):
        run.annotations_path.write_text(damaged)
        summary = summarize_run(run)
        assert (summary.display_name, summary.note, summary.archived) == ("", "", False), damaged
        assert summary.damaged is None and summary.state == "finished"
    run.annotations_path.write_text('{"name": "kept", "archived": 1}')  # the good field survives a bad one
    assert (read_annotations(run).name, read_annotations(run).archived) == ("kept", False)
    annotate(run, note="fixed")  # saving over a damaged file works
    assert read_annotations(run).note == "fixed"


# --------------------------------------------------------------------------- delete
def test_delete_is_refused_while_the_run_trains_and_removes_the_folder_otherwise(store: RunStore):
    run, other = _finished(store), _finished(store)
    busy = pytest.raises(RunBusyError, match=f"run {run.id} is being trained right now; stop it first")
    with run.claim(), busy:  # as a trainer holds it
        store.delete(run.id)
    assert run.path.is_dir() and run.config_path.is_file()
    queued = store.create("byol", get_preset("tiny"))  # queued by this (live) process: its job would start
    with pytest.raises(RunBusyError, match="is queued to train; stop its job first"):
        store.delete(queued.id)
    store.delete(run.id)
    assert not run.path.exists()
    assert {r.id for r in store.list()} == {other.id, queued.id}
    assert not [p for p in store.root.iterdir() if p.name.startswith(".deleting")]
    with pytest.raises(FileNotFoundError, match="no run"):
        store.delete(run.id)
    with pytest.raises(FileNotFoundError, match="not a run id"):
        store.delete("../etc")


# --------------------------------------------------------------------------- tables
def test_tables_and_csv_carry_name_seed_lr_views_and_what_ran(store: RunStore):
    run = _finished(store, with_overrides(get_preset("tiny"), {"seed": 7}))
    annotate(run, name="seven, the lucky one", note="first try")
    hidden = _finished(store)
    annotate(hidden, archived=True)
    summaries = list_summaries(store)
    rows = {r["run_id"]: r for r in tables.compare_rows(summaries)}
    row = rows[run.id]
    views = augmentation_summary(get_preset("tiny").augment)
    assert (row["name"], row["seed"], row["lr"], row["augmentation"], row["epochs_run"], row["steps_run"]) == (
        "seven, the lucky one", 7, get_preset("tiny").byol.optim.lr, views, 2.0, 12)
    lines = tables.rows_to_csv([row]).splitlines()
    assert lines[0].split(",")[:4] == ["method", "accuracy", "metric", "name"]
    assert '"seven, the lucky one"' in lines[1] and views in lines[1] and lines[1].endswith("first try")
    table = tables.runs_table(summaries)
    assert [r["archived"] for r in table] == [s.archived for s in summaries]
    assert {r["run"]: r["name"] for r in table}[run.id] == "seven, the lucky one"
    assert "archived" not in tables.runs_table([s for s in summaries if not s.archived])[0]


def test_cli_lists_names_hides_archived_and_changes_runs(tmp_path, capsys):
    store = RunStore(tmp_path / "runs")
    kept, archived = _finished(store), _finished(store)
    runs = ["--runs-dir", str(store.root)]
    assert main(["runs", "rename", kept.id, "baseline A", *runs]) == 0
    assert main(["runs", "note", kept.id, "the one to beat", *runs]) == 0
    assert main(["runs", "archive", archived.id, *runs]) == 0
    capsys.readouterr()
    assert main(["runs", *runs]) == 0
    listed = capsys.readouterr().out
    assert kept.id in listed and '"baseline A"' in listed and archived.id not in listed
    assert main(["runs", "--all", *runs]) == 0
    assert f"{archived.id}" in capsys.readouterr().out
    assert read_annotations(kept).note == "the one to beat"
    with kept.claim():
        assert main(["runs", "delete", kept.id, *runs]) == 2
    assert "being trained right now" in capsys.readouterr().err
    assert main(["runs", "delete", archived.id, *runs]) == 0 and not archived.path.exists()
    assert main(["runs", "rename", *runs]) == 2
    assert "needs a run id" in capsys.readouterr().err


# --------------------------------------------------------------------------- the Train page's run panel
def _panel(runs_dir, run_id: str):
    at = _page(_app(), "views/train.py")
    at.selectbox(key="train.show_run").set_value(run_id).run()
    assert not at.exception and not _errors(at), _errors(at)
    return at


def test_the_run_panel_saves_a_name_and_note_and_diffs_two_runs(runs_dir):
    store = RunStore(runs_dir)
    a = _finished(store)
    b = _finished(store, with_overrides(get_preset("tiny"), {"seed": 5}))
    at = _panel(runs_dir, a.id)
    assert any('"kind": "byol"' in c.value and '"seed": 0' in c.value for c in at.code)  # the full config.json
    at.text_input(key=f"details.name.{a.id}").set_value("digits baseline")
    at.text_area(key=f"details.note.{a.id}").set_value("seed 0, the tiny preset")
    at.button(key=f"details.save.{a.id}").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    assert read_annotations(a).name == "digits baseline" and read_annotations(a).note == "seed 0, the tiny preset"
    assert table_column(at, "name")[table_column(at, "run").index(a.id)] == "digits baseline"  # the list shows it at once
    assert at.text_input(key=f"details.name.{a.id}").value == "digits baseline"

    at.selectbox(key=f"details.diff.{a.id}").set_value(b.id).run()
    assert not at.exception
    assert table_column(at, "field") == ["seed"]
    assert (table_column(at, "this run"), table_column(at, "other run")) == (["0"], ["5"])


def test_deleting_from_the_panel_needs_confirmation_and_is_refused_while_training(runs_dir):
    store = RunStore(runs_dir)
    keep, run = _finished(store), _finished(store)
    at = _panel(runs_dir, run.id)
    delete = at.button(key=f"details.delete.{run.id}")
    assert delete.disabled
    at.checkbox(key=f"details.confirm_delete.{run.id}").check().run()
    assert not at.button(key=f"details.delete.{run.id}").disabled

    with run.claim():  # as its trainer holds it: refused with a message, not a traceback
        at.button(key=f"details.delete.{run.id}").click().run()
    assert not at.exception
    assert any("is being trained right now" in e for e in _errors(at)), _errors(at)
    assert run.path.is_dir()

    at.checkbox(key=f"details.confirm_delete.{run.id}").check()
    at.button(key=f"details.delete.{run.id}").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    assert not run.path.exists() and [r.id for r in store.list()] == [keep.id]
    assert table_column(at, "run") == [keep.id]
    assert at.selectbox(key="train.show_run").value is None


def test_archived_runs_leave_the_lists_but_stay_readable(runs_dir):
    store = RunStore(runs_dir)
    keep, run = _finished(store), _finished(store)
    at = _panel(runs_dir, run.id)
    at.button(key=f"details.archive.{run.id}").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    assert read_annotations(run).archived
    assert table_column(at, "run") == [keep.id]  # hidden from the list...
    assert at.selectbox(key="train.show_run").value == run.id  # ...but the panel stays, to unarchive
    assert at.button(key=f"details.archive.{run.id}").label == "Unarchive"
    at.toggle(key="train.show_archived").set_value(True).run()
    assert set(table_column(at, "run")) == {keep.id, run.id} and table_column(at, "archived").count("yes") == 1

    _page(at, "views/compare.py")
    compared = list(compare_runs(at)["run_id"])
    assert run.id not in compared and keep.id in compared
