"""The seed experiment as a study stage: its run holds the table, reads as a finished study, old runs still load."""

import contextlib
import io
import json
import threading

import numpy as np
import pytest

from byol_core import stats
from byol_core.cli import main
from byol_core.lab import runner
from byol_core.lab.comparison import METHOD_ORDER, PRIMARY, SECONDARY
from byol_core.lab.plans import plan
from byol_core.lab.run_store import RunStore
from byol_core.lab.stages import get_stage, stage_of_record
from byol_core.lab.summary import list_summaries, summarize_run
from byol_core.presets import get_preset
from byol_core.stats_text import interval_text
from byol_core.studies.experiment import EXPERIMENT, EXPERIMENT_KIND, ExperimentResult, run_experiment
from byol_core.studies.tables import unpack_correct

METHODS = ["BYOL kNN", "BYOL linear probe", "BYOL fine-tuned", "supervised from scratch", "random-init kNN",
           "raw-pixel kNN", "raw-pixel logistic regression"]  # the order they run in


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """One tiny experiment from the command line: its runs folder and what it printed and wrote."""
    folder = tmp_path_factory.mktemp("experiment")
    out = folder / "exp.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["experiment", "--preset", "tiny", "--runs-dir", str(folder / "runs"), "--no-progress",
                     "--json", str(out)]) == 0
    return RunStore(folder / "runs"), printed.getvalue(), json.loads(out.read_text())


def test_the_experiment_is_a_registered_study_stage():
    assert get_stage(EXPERIMENT_KIND) is EXPERIMENT and EXPERIMENT.study and not EXPERIMENT.resumable
    assert EXPERIMENT.run_kind == "experiment" and EXPERIMENT.optim_section is None
    assert plan(EXPERIMENT_KIND, get_preset("tiny")).stage_options == {}
    with pytest.raises(ValueError, match="takes no options"):
        plan(EXPERIMENT_KIND, get_preset("tiny"), options={"seeds": 3})


def test_the_experiment_run_holds_the_table_and_reads_as_a_finished_study(experiment):
    store, printed, written = experiment
    [exp] = [r for r in store.list() if r.read_record()["kind"] == EXPERIMENT_KIND]
    record, status = exp.read_record(), exp.read_status()
    assert stage_of_record(record) == EXPERIMENT_KIND and record["stage"] == EXPERIMENT_KIND
    assert status["state"] == "finished" and status["results"] == written  # the run holds what --json wrote
    assert status["step"] == status["total_steps"] == 5  # its five stage runs, counted like any study's
    result = ExperimentResult.from_dict(status["results"])
    assert result.run_id == exp.id and [r.method for r in result.rows] == list(METHOD_ORDER)  # stored in that order
    assert result.table() in printed  # the printed table is the run's
    accuracies = [r.accuracy for r in result.rows if r.accuracy is not None]
    assert len(accuracies) == 7 and all(0.0 <= a <= 1.0 for a in accuracies)
    lines = result.table().splitlines()
    assert [line[:30].strip() for line in lines[2:9]] == list(METHOD_ORDER)  # fixed order, never best first
    for line, row in zip(lines[2:9], result.rows, strict=True):  # one decimal, with its Wilson interval
        assert line[31:55].strip() == interval_text(row.summary()) and f"{100 * row.accuracy:.1f}%" in line
        assert row.summary().method == "wilson" and row.summary().images == 128
    assert "declared comparisons (secondary ones Holm-adjusted):" in lines[9]
    assert lines[10].startswith("  primary: BYOL linear probe - supervised from scratch: ")
    assert "(exact McNemar)" in lines[10]
    assert lines[-2].startswith("data set digits, 256 labelled training images (100% of labels), 128 test images; "
                                "95% intervals over the test images only (one seed: Wilson); wall time ")
    assert lines[-1].startswith("1 seed: the interval covers the test images only")
    # Each row's per-image correctness gives its accuracy exactly; a stage run's is its saved predictions.
    for stored, row in zip(written["rows"], result.rows, strict=True):
        [packed] = stored["correct"]
        correct = unpack_correct(packed, stored["images"])
        assert float(correct.mean()) == row.accuracy == stored["mean"] and np.array_equal(correct, row.correct)
        if row.run_id is not None:
            assert np.array_equal(store.get(row.run_id).load_correct(), correct)
    # The declared comparison first (exact McNemar, one seed), then the secondary pairs with Holm-adjusted p.
    primary, *secondary = written["comparisons"]
    assert (primary["a"], primary["b"], primary["primary"], primary["adjusted_p"]) == (*PRIMARY, True, None)
    assert primary["test"] == "exact McNemar" and primary["p"] == pytest.approx(
        stats.mcnemar(result.rows[1].correct, result.rows[3].correct).p_value)
    assert [(c["a"], c["b"]) for c in secondary] == list(SECONDARY) and not any(c["primary"] for c in secondary)
    assert [c["adjusted_p"] for c in secondary] == pytest.approx(stats.holm([c["p"] for c in secondary]))
    rows = [e for e in exp.read_metrics() if e.get("kind") == "row"]
    assert [e["method"] for e in rows] == METHODS
    # Every row with a run names a finished stage run of this store, and the summary reads it as a study.
    for row in result.rows:
        if row.run_id is not None:
            assert store.get(row.run_id).read_status()["state"] == "finished"
    summary = {s.id: s for s in list_summaries(store)}[exp.id]
    assert (summary.stage, summary.kind, summary.method, summary.state) == (
        EXPERIMENT_KIND, EXPERIMENT_KIND, "experiment", "finished")
    assert summary.stage_info.study and summary.metric is None and summary.damaged is None


def test_an_experiment_run_written_before_it_was_a_stage_still_loads(store, capsys):
    cfg = get_preset("tiny")
    old = store.create("experiment", cfg)  # as older versions wrote it: a kind, no stage, no options
    assert "stage" not in old.read_record() and old.read_record()["options"] == {}
    results = {"run_id": old.id, "dataset": "digits", "label_fraction": 1.0, "labelled_images": 256,
               "test_images": 128, "rows": [{"method": "raw-pixel kNN", "accuracy": 0.9, "run_id": None,
                                             "seconds": 0.1}], "wall_seconds": 2.0, "config_name": "tiny"}
    old.set_status("finished", results=results)
    summary = summarize_run(old)
    assert (summary.stage, summary.kind, summary.method, summary.state, summary.metric) == (
        EXPERIMENT_KIND, "experiment", "experiment", "finished", None)
    assert summary.damaged is None
    again = ExperimentResult.from_dict(summary.results)
    assert {k: again.to_dict()[k] for k in results} == {**results, "rows": again.to_dict()["rows"]}
    [row] = again.to_dict()["rows"]  # its fields kept; no per-image scores, so no interval
    assert {k: row[k] for k in results["rows"][0]} == results["rows"][0]
    assert row["ci95"] is None and row["correct"] == [None] and again.comparisons() == []
    table = again.table()
    assert "raw-pixel kNN" in table and "90.0%" in table and "±" not in table
    assert "none (one value without per-image scores)" in table
    assert main(["runs", "--runs-dir", str(store.root)]) == 0
    assert old.id in capsys.readouterr().out


def test_an_experiment_stopped_before_it_starts_fails_with_the_reason(store):
    stop = threading.Event()
    stop.set()
    with pytest.raises(RuntimeError, match="stopped before BYOL pretraining started"):
        run_experiment(get_preset("tiny"), store, stop_event=stop)
    [run] = store.list()  # the experiment's own run only: nothing was started
    status = run.read_status()
    assert status["state"] == "failed" and "stopped before BYOL pretraining" in status["error"]
    assert not run.claimed()
    with pytest.raises(ValueError, match="cannot be resumed; start it again"):
        runner.resume_check(store, run.id)
