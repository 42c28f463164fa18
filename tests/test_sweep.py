"""The label-efficiency sweep, end to end on the tiny preset with very short training."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from byol_core import runner, sweep
from byol_core.cli import main
from byol_core.config import ConfigError
from byol_core.presets import get_preset
from byol_core.runs import RunStore
from byol_core.sweep import METHODS, parse_fractions, run_sweep

SHORT = ["--set", "byol.optim.epochs=1", "--set", "supervised.optim.epochs=1", "--set", "supervised.optim.min_steps=0",
         "--set", "supervised.linear_optim.epochs=1"]


def test_sweep_runs_one_pretraining_per_seed_and_writes_json_csv_and_table(tmp_path, capsys):
    out = tmp_path / "out" / "sweep.json"
    code = main(["sweep", "--preset", "tiny", "--label-fractions", "1,0.1", "--seeds", "2", "--runs-dir",
                 str(tmp_path / "runs"), "--no-progress", "--json", str(out), *SHORT])
    assert code == 0
    printed = capsys.readouterr().out
    assert "10% labels" in printed and "100% labels" in printed and "raw-pixel logistic regression" in printed

    result = json.loads(out.read_text())
    assert result["label_fractions"] == [0.1, 1.0] and result["seeds"] == [0, 1]
    rows = result["rows"]
    assert {(r["method"], r["label_fraction"]) for r in rows} == {(m, f) for m in METHODS for f in (0.1, 1.0)}
    for r in rows:
        assert r["n"] == 2 and len(r["values"]) == 2 and r["seeds"] == [0, 1] and len(r["run_ids"]) == 2
        assert all(0.0 <= v <= 1.0 for v in r["values"])
        low, high = r["ci95"]
        assert low <= r["mean"] <= high
        assert r["labelled_images"] == (256 if r["label_fraction"] == 1.0 else 25)
    floors = [r for r in rows if r["method"].startswith("raw-pixel")]
    assert all(r["run_ids"] == [None, None] for r in floors)
    assert all(r["values"][0] == r["values"][1] for r in floors)  # same split every seed: a floor does not move

    with open(out.with_suffix(".csv"), newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == len(rows) and lines[0]["method"] == rows[0]["method"]
    assert float(lines[0]["ci95_low"]) == pytest.approx(rows[0]["ci95"][0])

    # Every stage run is an ordinary run folder; one BYOL pretraining per seed, reused by every fraction.
    store = RunStore(tmp_path / "runs")
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
    assert "--seeds" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing was started


def test_table_says_n_and_gives_no_interval_for_one_seed():
    result = sweep.SweepResult(run_id="r", dataset="digits", config_name="tiny", label_fractions=[0.5], seeds=[0])
    result.row("BYOL kNN", 0.5).add(0, 0.9, "run-a")
    result.row("random-init kNN", 0.5).add(0, 0.5, "run-b")
    result.row("random-init kNN", 0.5).add(1, 0.7, "run-c")
    table = result.table()
    assert "90.0 (1)" in table and "60.0 ± " in table and "(2)" in table
    row = result.row("BYOL kNN", 0.5).to_dict()
    assert row["ci95"] is None and row["n"] == 1 and row["std"] == 0.0
