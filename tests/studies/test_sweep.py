"""The label-efficiency sweep, end to end on the tiny preset with very short training."""

from __future__ import annotations

import csv
import json
import re
import time
from collections import Counter

import numpy as np
import pytest

from byol_core import stats
from byol_core.cli import main
from byol_core.config import ConfigError, parse_set_args, with_overrides
from byol_core.lab import runner
from byol_core.lab.comparison import METHOD_ORDER, PRIMARY, SECONDARY
from byol_core.lab.jobs import JobManager
from byol_core.lab.plans import JobSpec, plan
from byol_core.lab.run_store import RunStore
from byol_core.presets import get_preset
from byol_core.studies import sweep
from byol_core.studies.sweep import METHODS, parse_fractions, run_sweep
from byol_core.studies.tables import unpack_correct
from tests.app_helpers import _app, _errors, _page

SHORT = ["--set", "byol.optim.epochs=1", "--set", "supervised.optim.epochs=1", "--set", "supervised.optim.min_steps=0",
         "--set", "supervised.linear_optim.epochs=1"]


def test_sweep_runs_one_pretraining_per_seed_and_writes_json_csv_and_table(tmp_path, capsys):
    out = tmp_path / "out" / "sweep.json"
    code = main(["sweep", "--preset", "tiny", "--label-fractions", "1,0.1", "--seeds", "2", "--runs-dir",
                 str(tmp_path / "runs"), "--no-progress", "--json", str(out), *SHORT])
    assert code == 0
    printed = capsys.readouterr().out
    assert "10% labels" in printed and "100% labels" in printed and "raw-pixel logistic regression" in printed
    assert "over seeds (each its own training and labelled subset) and test images" in printed
    assert "primary: BYOL linear probe - supervised from scratch" in printed
    assert "2 seeds: too few to read this interval" in printed  # the n < 3 note

    result = json.loads(out.read_text())
    assert result["label_fractions"] == [0.1, 1.0] and result["seeds"] == [0, 1]
    rows = result["rows"]
    assert {(r["method"], r["label_fraction"]) for r in rows} == {(m, f) for m in METHODS for f in (0.1, 1.0)}
    store = RunStore(tmp_path / "runs")
    for r in rows:
        assert r["n"] == 2 and len(r["values"]) == 2 and r["seeds"] == [0, 1] and len(r["run_ids"]) == 2
        assert all(0.0 <= v <= 1.0 for v in r["values"])
        low, high = r["ci95"]
        assert low <= r["mean"] <= high and r["interval"] == "seeds and test images"
        assert 0.0 <= r["ci95_clipped"][0] <= r["mean"] <= r["ci95_clipped"][1] <= 1.0
        assert r["labelled_images"] == (256 if r["label_fraction"] == 1.0 else 26)  # round(10%) of each class
        # Each seed's per-image correctness gives its value exactly, and the row's interval is computed from it.
        correct = [unpack_correct(c, r["images"]) for c in r["correct"]]
        assert r["images"] == 128 and [float(c.mean()) for c in correct] == r["values"]
        assert stats.accuracy_summary(np.stack(correct)).ci == tuple(r["ci95"])
        for run_id, c in zip(r["run_ids"], correct, strict=True):
            if run_id is not None:  # the stage run's own predictions and headline
                assert np.array_equal(store.get(run_id).load_correct(), c)
                results = store.get(run_id).read_status()["results"]
                headline = results.get("test_accuracy", results.get("knn_accuracy"))
                assert headline == pytest.approx(float(c.mean()), abs=1e-6)
    floors = [r for r in rows if r["method"].startswith("raw-pixel")]
    assert all(r["run_ids"] == [None, None] for r in floors)
    # A floor is fit on each seed's labelled subset and scored on the test images: it has an interval now.
    assert all(r["half_width"] > 0 for r in floors)
    small = [r for r in floors if r["label_fraction"] == 0.1]
    assert any(r["values"][0] != r["values"][1] for r in small), small  # 26 labels drawn per seed: floors move
    comparisons = result["comparisons"]
    for fraction in (0.1, 1.0):
        here = [c for c in comparisons if c["label_fraction"] == fraction]
        primary = [c for c in here if c["primary"]]
        assert [(c["a"], c["b"]) for c in primary] == [PRIMARY] and primary[0]["adjusted_p"] is None
        secondary = [c for c in here if not c["primary"]]
        assert [(c["a"], c["b"]) for c in secondary] == list(SECONDARY)
        assert [c["adjusted_p"] for c in secondary] == pytest.approx(stats.holm([c["p"] for c in secondary]))
        assert all(c["test"] == "seeds and test images" and c["verdict"] for c in here)

    with open(out.with_suffix(".csv"), newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == len(rows) and lines[0]["method"] == rows[0]["method"]
    assert float(lines[0]["ci95_low"]) == pytest.approx(rows[0]["ci95"][0])

    # Every stage run is an ordinary run folder; one BYOL pretraining per seed, reused by every fraction.
    stages = Counter(run.read_record().get("stage") or run.read_record()["kind"] for run in store)
    assert stages == {"byol": 2, "finetune": 4, "linear": 4, "scratch": 4, "knn": 8, "sweep": 1}
    byol_runs = set(result["byol_runs"])
    assert len(byol_runs) == 2
    fine_tuned = next(r for r in rows if r["method"] == "BYOL fine-tuned")
    sources = {store.get(i).read_record()["options"]["from_run"] for i in fine_tuned["run_ids"]}
    assert sources == byol_runs  # each seed fine-tunes its own pretraining
    test_sets = {store.get(i).read_status()["results"]["test_images"] for i in fine_tuned["run_ids"]}
    assert test_sets == {128}

    summary = store.get(result["run_id"])
    status = summary.read_status()
    assert status["state"] == "finished" and status["results"]["rows"] == rows


def _short(cfg, **more):
    """``cfg`` with the CLI test's short training (and ``more``)."""
    return with_overrides(cfg, {**parse_set_args(SHORT[1::2]), **more})


def _wait_until(condition, timeout: float = 600.0) -> None:
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline:
        time.sleep(0.1)


def test_a_sweep_is_a_job_whose_run_holds_the_table_and_counts_its_runs(store):
    spec = plan("sweep", _short(get_preset("tiny")), options={"label_fractions": [0.5], "seeds": 2})
    assert spec.stage_options == {"label_fractions": [0.5], "seeds": 2}
    manager = JobManager(store, isolation="thread")
    try:
        job = manager.submit(spec)
        assert manager.submit(spec) is job  # the duplicate rule covers sweeps, options included
        manager.wait(job.id, timeout=900)
    finally:
        manager.shutdown()
    assert job.state == "finished", job.error
    record = job.run.read_record()
    assert record["stage"] == "sweep" and record["kind"] == "sweep"
    assert record["options"] == {"mode": "sweep", "from_run": None, "label_fractions": [0.5], "seeds": 2}

    results = job.run.read_status()["results"]
    assert results["run_id"] == job.run.id  # the job's run is the sweep's summary: no second one
    assert [r.read_record()["kind"] for r in store.list()].count("sweep") == 1
    assert {r["method"] for r in results["rows"]} == set(METHODS)
    for row in results["rows"]:
        assert row["label_fraction"] == 0.5 and row["n"] == 2 and row["seeds"] == [0, 1]
        assert len(row["values"]) == 2 and all(0.0 <= v <= 1.0 for v in row["values"])
        low, high = row["ci95"]
        assert low <= row["mean"] <= high and row["mean"] == pytest.approx(sum(row["values"]) / 2)

    # Progress counts runs: 2 seeds x (1 pretraining + 5 runs at the one fraction) = 12.
    steps = [e for e in job.run.read_metrics() if e.get("kind") in ("start", "step")]
    assert steps[0]["kind"] == "start" and steps[0]["total_steps"] == 12
    assert [e["step"] for e in steps[1:]] == list(range(13))
    assert steps[1]["doing"] == "seed 0: BYOL pretraining" and steps[-1]["doing"] == "done"
    assert job.progress()["fraction"] == 1.0 and job.progress()["total_steps"] == 12
    assert len(store.list()) == 1 + 12
    assert sweep.run_counts(1, 2) == {"BYOL pretrainings": 2, "supervised trainings and linear probes": 6,
                                      "kNN evaluations": 4}


def test_a_stopped_sweep_ends_stopped_and_starts_no_further_run(store):
    long_pretraining = _short(get_preset("tiny"), **{"byol.optim.epochs": 400.0, "runtime.log_every": 1})
    manager = JobManager(store, isolation="thread")
    try:
        job = manager.submit(plan("sweep", long_pretraining, options={"label_fractions": [1.0], "seeds": 2}))
        pretraining = lambda: [r for r in store.list() if r.read_record()["kind"] == "byol"]
        _wait_until(lambda: pretraining() and pretraining()[0].read_status().get("step", 0) > 0)
        manager.stop(job.id)
        manager.wait(job.id, timeout=600)
    finally:
        manager.shutdown()
    assert job.state == "stopped", job.error
    status = job.run.read_status()
    assert status["state"] == "stopped" and status["total_steps"] == 12
    assert status["step"] == 1  # the pretraining it stopped is the one run that ended
    [byol] = pretraining()
    assert byol.read_status()["state"] == "stopped"
    assert len(store.list()) == 2  # the sweep and the pretraining it stopped; nothing after
    assert status["results"]["rows"] == [] and status["results"]["byol_runs"] == [byol.id]


def test_bad_sweep_options_are_refused_before_a_run_folder_exists(store):
    cfg = get_preset("tiny")
    for options, message in (({"label_fractions": [0.1, 1.5]}, "label fraction 1.5 is outside (0, 1]"),
                             ({"label_fractions": [0]}, "label fraction 0 is outside (0, 1]"),
                             ({"label_fractions": []}, "label_fractions is empty"),
                             ({"seeds": 0}, "seeds = 0; run at least 1 seed"),
                             ({"seeds": 1.5}, "give a whole number of seeds"),
                             ({"fractions": [0.1]}, "no option 'fractions'")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            plan("sweep", cfg, options=options)
    manager = JobManager(store, isolation="thread")
    try:  # a spec made by hand is checked too, when the job is submitted
        with pytest.raises(ConfigError, match="label fraction 2 is outside"):
            manager.submit(JobSpec(stage="sweep", config=cfg, stage_options={"label_fractions": [2], "seeds": 1}))
    finally:
        manager.shutdown()
    with pytest.raises(ConfigError, match="takes no options"):
        plan("byol", cfg, options={"seeds": 3})
    assert plan("sweep", cfg).stage_options == {"label_fractions": [0.01, 0.1, 1.0], "seeds": 3}
    assert not store.root.exists() or not any(store.root.iterdir())


def test_a_failing_stage_fails_the_sweep_run_with_the_reason(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no device today")

    monkeypatch.setattr(runner, "start", broken)
    store = RunStore(tmp_path / "runs")
    with pytest.raises(RuntimeError, match="no device today"):
        run_sweep(get_preset("tiny"), store, [0.5], 1)
    (summary,) = store.list()
    status = summary.read_status()
    assert status["state"] == "failed" and "no device today" in status["error"]
    assert not summary.claimed()


def test_label_fractions_are_checked():
    assert parse_fractions("1, 0.01,0.1,0.1") == [0.01, 0.1, 1.0]
    for bad in ("0", "1.5", "a", ""):
        with pytest.raises(ConfigError):
            parse_fractions(bad)


def test_bad_fractions_or_seeds_are_a_one_line_error(tmp_path, capsys):
    assert main(["sweep", "--preset", "tiny", "--label-fractions", "0,1", "--runs-dir", str(tmp_path)]) == 2
    assert main(["sweep", "--preset", "tiny", "--seeds", "0", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "label fraction 0 is outside (0, 1]" in err and "seeds = 0; run at least 1 seed" in err
    assert not any(tmp_path.iterdir())  # nothing was started


def test_rows_without_per_image_scores_give_no_interval_for_one_seed_and_say_what_they_cover():
    # Values alone (as sweeps saved before per-image scores were kept): one value has no interval, two seeds a
    # t-interval over the seeds only, clipped to 0-100% when shown, and a row missing a seed names its n.
    result = sweep.SweepResult(run_id="r", dataset="digits", config_name="tiny", label_fractions=[0.5], seeds=[0, 1])
    result.row("BYOL kNN", 0.5).add(0, 0.9, "run-a")
    result.row("random-init kNN", 0.5).add(0, 0.5, "run-b")
    result.row("random-init kNN", 0.5).add(1, 0.7, "run-c")
    table = result.table()
    assert "90.0% n=1" in table and "60.0% (0.0 to 100.0)" in table and "± 0.0" not in table
    assert "over seeds only (no per-image scores saved" in table
    row = result.row("BYOL kNN", 0.5).to_dict()
    assert row["ci95"] is None and row["n"] == 1 and row["std"] == 0.0 and row["correct"] == [None]


@pytest.mark.usefixtures("runs_dir")
def test_the_compare_page_starts_a_sweep_job_that_the_train_page_lists():
    from dashboard import state

    at = _page(_app(), "views/compare.py")
    form = "compare.new_study"
    assert at.radio(key=f"{form}.kind").value == "sweep"
    assert at.selectbox(key=f"{form}.preset").value == "digits-quick"  # the Data page's data set's preset
    assert at.multiselect(key=f"{form}.fractions").value == [0.01, 0.1, 1.0]
    assert at.number_input(key=f"{form}.seeds").value == 3
    captions = lambda: " | ".join(c.value for c in at.caption)
    assert ("48 runs: 3 BYOL pretrainings, 27 supervised trainings and linear probes, 18 kNN evaluations "
            "(seconds each). About as long as 30 Train-page jobs") in captions()

    at.multiselect(key=f"{form}.fractions").set_value([]).run()
    assert any("label_fractions is empty" in e for e in _errors(at)), _errors(at)
    assert at.button(key=f"{form}.start").disabled

    at.selectbox(key=f"{form}.preset").set_value("tiny").run()
    at.multiselect(key=f"{form}.fractions").set_value([1.0]).run()
    at.number_input(key=f"{form}.seeds").set_value(1).run()
    at.number_input(key=f"{form}.epochs.tiny").set_value(1.0).run()
    assert "6 runs: 1 BYOL pretrainings" in captions() and not _errors(at)
    at.button(key=f"{form}.start").click().run()
    assert not at.exception, at.exception

    manager = state.get_manager()
    [job] = manager.jobs()
    assert job.stage == "sweep" and job.state in ("queued", "running") and job.label == "Label-efficiency sweep · tiny"
    cfg, kind, options = job.run.read_config()
    assert kind == "sweep" and options["label_fractions"] == [1.0] and options["seeds"] == 1
    assert cfg.byol.optim.epochs == 1.0 and cfg.data.name == "digits"
    at.run()
    assert at.button(key=f"{form}.start").disabled  # the same sweep is active

    _page(at, "views/train.py")
    assert any(job.id in str(m.value) and "Label-efficiency sweep" in str(m.value) for m in at.markdown)
    manager.wait(job.id, timeout=900)
    assert job.state == "finished", job.error
    _page(at, "views/compare.py")
    assert at.selectbox(key="compare.study").value == job.run.id
    assert {r["method"] for r in job.run.read_status()["results"]["rows"]} == set(METHODS)
    table = at.dataframe[-1].value  # the study's table, last on the page
    assert set(table["method"]) == set(METHODS) and set(table["n"]) == {1}


def test_the_label_efficiency_chart_draws_clipped_error_bars_in_method_order_from_zero():
    from dashboard import charts

    # Two seeds far apart: the raw interval reaches below 0 and above 1, an accuracy cannot.
    rows = [{"method": m, "label_fraction": f, "mean": 0.5 + 0.01 * i, "n": 2, "ci95": [-0.9, 1.9]}
            for i, m in enumerate(reversed(METHOD_ORDER)) for f in (0.1, 1.0)]  # given best first, worst last
    fig = charts.label_efficiency(rows)
    assert [t.name for t in fig.data] == list(METHOD_ORDER)  # the fixed order, never by accuracy
    for trace in fig.data:
        assert trace.fill is None  # error bars, no filled bands
        tops = [y + up for y, up in zip(trace.y, trace.error_y.array, strict=True)]
        bottoms = [y - down for y, down in zip(trace.y, trace.error_y.arrayminus, strict=True)]
        assert tops == pytest.approx([1.0, 1.0]) and bottoms == pytest.approx([0.0, 0.0])
        assert [d[0] for d in trace.customdata] == [0.1, 1.0]  # hover gives the true share, nudged or not
    assert fig.layout.yaxis.range[0] == 0.0
    xs = sorted(trace.x[0] for trace in fig.data)  # nudged apart at one share, so no bar hides another
    assert len(set(xs)) == len(METHOD_ORDER) and xs[0] < 0.1 < xs[-1]
