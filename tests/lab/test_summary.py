"""Run summaries: one run folder read once, damaged folders named not raised, and what tells two runs apart."""

from __future__ import annotations

import dataclasses
import json

import pytest

from byol_core.config import with_overrides
from byol_core.lab.run_store import RunStore
from byol_core.lab.summary import augmentation_summary, list_summaries, run_config_diff, summarize_run
from byol_core.presets import byol_paper_augment, get_preset
from tests.lab.test_provenance import _finished


# --------------------------------------------------------------------------- reading a folder
def test_damaged_files_mark_their_run_and_leave_the_others_listed(store):
    good = store.create("byol", get_preset("tiny"), {"mode": "byol"}, stage="byol")
    bad_status = store.create("byol", get_preset("tiny"), {"mode": "byol"}, stage="byol")
    bad_config = store.create("supervised", get_preset("tiny"), {"mode": "scratch"}, stage="scratch")
    bad_status.status_path.write_text("null")
    bad_config.config_path.write_text("[]")
    good.log({"kind": "step", "step": 1, "loss": 1.0})
    with open(good.metrics_path, "a") as fh:
        fh.write("42\n")  # a stray value is skipped, not fatal
    good.log({"kind": "step", "step": 2, "loss": 0.5})
    by_id = {s.id: s for s in list_summaries(store)}
    assert len(by_id) == 3
    assert by_id[good.id].damaged is None and [e["step"] for e in good.read_metrics()] == [1, 2]
    assert "status.json holds NoneType" in by_id[bad_status.id].damaged
    assert by_id[bad_status.id].state == "damaged" and not by_id[bad_status.id].resumable
    assert "config.json holds list" in by_id[bad_config.id].damaged and by_id[bad_config.id].config is None


def test_a_damaged_folder_is_summarised_with_what_is_wrong_instead_of_raising(store):
    torn = _finished(store)
    torn.config_path.write_text('{"kind": "byol", "config": {')  # cut off mid-write
    invalid = _finished(store)
    record = json.loads(invalid.config_path.read_text())
    record["config"]["byol"]["optim"]["lr"] = -1.0
    invalid.config_path.write_text(json.dumps(record))
    bad_status = _finished(store)
    bad_status.status_path.write_text("{\"state\": ")
    for run, damage in ((torn, "config.json"), (invalid, "does not hold a valid config"),
                        (bad_status, "status.json")):
        summary = summarize_run(run)
        assert summary.damaged and damage in summary.damaged, (damage, summary.damaged)
        assert summary.state == "damaged" and summary.id == run.id
        assert not summary.resumable and not summary.usable_encoder
    assert summarize_run(invalid).stage == "byol"  # what could be read still is
    assert summarize_run(torn).config is None and summarize_run(torn).name == torn.id


def test_runs_written_before_stages_existed_are_summarised(store):
    cfg = get_preset("tiny")
    old = store.create("supervised", cfg, {"mode": "scratch", "from_run": None})
    record = json.loads(old.config_path.read_text())
    assert record.pop("stage", None) is None  # created without a stage, as older versions did
    evaluated = store.create("evaluate", cfg, {"from_run": None})
    old.set_status("finished", results={"test_accuracy": 0.7, "step": 24, "total_steps": 24}, step=24, epoch=6.0)
    assert summarize_run(old).stage == "scratch" and summarize_run(old).metric == 0.7 and summarize_run(old).epochs_run == 6.0
    assert summarize_run(evaluated).stage == "knn" and summarize_run(evaluated).method == "random-init kNN"


def test_a_runs_method_is_named_after_its_source_runs_family_looked_up_in_the_store(store):
    cfg = get_preset("tiny")
    simclr = store.create("simclr", cfg, {"mode": "simclr", "from_run": None}, stage="simclr")
    byol = store.create("byol", cfg, {"mode": "byol", "from_run": None}, stage="byol")

    def method(stage: str, kind: str, source: str | None, in_store: RunStore | None = None) -> str:
        run = store.create(kind, cfg, {"mode": stage, "from_run": source}, stage=stage)
        return summarize_run(run, in_store).method

    assert method("linear", "linear", simclr.id) == "SimCLR linear probe"
    assert method("finetune", "supervised", simclr.id) == "SimCLR fine-tuned"
    assert method("knn", "evaluate", simclr.id) == "SimCLR kNN"
    assert method("linear", "linear", byol.id) == "BYOL linear probe"
    assert method("knn", "evaluate", byol.id) == "BYOL kNN"
    assert method("knn", "evaluate", None) == "random-init kNN"
    # A source that is gone, or is no run id at all, names the stage's own method.
    for source in ("20200101-000000-byol-gone-0000", "../elsewhere", ".hidden", "a/b"):
        assert method("linear", "linear", source) == "BYOL linear probe", source
        assert method("knn", "evaluate", source) == "kNN (evaluated run)", source
    # The store given is the one the source is looked up in.
    assert method("linear", "linear", simclr.id, RunStore(store.root / "elsewhere")) == "BYOL linear probe"
    assert method("linear", "linear", simclr.id, store) == "SimCLR linear probe"
    assert {s.method for s in list_summaries(store) if s.source_run == simclr.id} == {
        "SimCLR linear probe", "SimCLR fine-tuned", "SimCLR kNN"}


# --------------------------------------------------------------------------- describing and comparing
def test_augmentation_summary_names_each_view_and_follows_every_toggle():
    paper = byol_paper_augment(32)
    assert augmentation_summary(paper) == ("32 px · crop 0.08–1 · flip 0.5 · jitter 0.8 · gray 0.2 · blur 1/0.1 · "
                                           "solarize 0/0.2")
    no_flip = dataclasses.replace(paper, view1=dataclasses.replace(paper.view1, flip_p=0.0),
                                  view2=dataclasses.replace(paper.view2, flip_p=0.0))
    assert "no flip" in augmentation_summary(no_flip) and "flip 0.5" not in augmentation_summary(no_flip)
    one_view = dataclasses.replace(paper, view2=dataclasses.replace(paper.view2, grayscale_p=0.0, crop_scale_min=0.5))
    assert "gray 0.2/0" in augmentation_summary(one_view) and "crop 0.08–1/0.5–1" in augmentation_summary(one_view)
    seen = {augmentation_summary(a) for a in (paper, no_flip, one_view, get_preset("digits-quick").augment)}
    assert len(seen) == 4


def test_run_config_diff_lists_exactly_the_fields_that_differ(store: RunStore):
    base = get_preset("tiny")
    a = summarize_run(_finished(store, base))
    b = summarize_run(_finished(store, with_overrides(base, {"seed": 3, "byol.optim.lr": 0.003,
                                                         "augment.view2.solarize_p": 0.0})))
    changes = run_config_diff(a, b)
    assert {c.field: (c.before, c.after) for c in changes} == {
        "seed": (base.seed, 3), "byol.optim.lr": (base.byol.optim.lr, 0.003),
        "augment.view2.solarize_p": (base.augment.view2.solarize_p, 0.0)}
    assert run_config_diff(a, a) == []
    probe = summarize_run(_finished(store, base, stage="linear"))
    assert [c.field for c in run_config_diff(a, probe)] == ["stage"]  # same config, another stage
    damaged = _finished(store)
    damaged.config_path.write_text("{")
    with pytest.raises(ValueError, match="has no readable config"):
        run_config_diff(a, summarize_run(damaged))


# --------------------------------------------------------------------------- values read from disk are checked
def _poison(run, where: str, field: str, raw: str) -> None:
    """Put the JSON text ``raw`` (NaN, 1e20, "x", ...) under ``field`` of status.json, its results or config.json."""
    path = run.config_path if where == "record" else run.status_path
    data = json.loads(path.read_text())
    target = data["results"] if where == "results" else data
    target[field] = "@@"
    path.write_text(json.dumps(data).replace('"@@"', raw))


POISONS = [  # (file part, field, JSON text of the damaged value, what the reason quotes)
    ("status", "step", "1e20", "1e+20"),
    ("status", "step", "-3", "-3"),
    ("status", "total_steps", str(10**30), str(10**30)),
    ("status", "epoch", '"three"', "'three'"),
    ("status", "finished", "Infinity", "inf"),
    ("status", "error", "42", "42"),
    ("results", "knn_accuracy", "NaN", "nan"),
    ("results", "test_accuracy", "1.5", "1.5"),
    ("results", "test_images", "-1", "-1"),
    ("record", "kind", '["byol"]', "['byol']"),
]


@pytest.mark.parametrize("where, field, raw, shown", POISONS, ids=[f"{p[1]}={p[2]}" for p in POISONS])
def test_a_damaged_value_on_disk_marks_its_run_damaged_naming_the_field(store, where, field, raw, shown):
    good, bad = _finished(store), _finished(store)
    _poison(bad, where, field, raw)
    by_id = {s.id: s for s in list_summaries(store)}
    damaged = by_id[bad.id]
    assert damaged.damaged is not None and field in damaged.damaged and shown in damaged.damaged, damaged.damaged
    assert damaged.state == "damaged" and not damaged.resumable and not damaged.usable_encoder
    # Nothing of the bad value is passed on: every number the pages and the CLI show is in range.
    for number in (damaged.steps_run, damaged.total_steps, damaged.epochs_run, damaged.metric, damaged.finished_at):
        assert number is None or (0 <= number < 1e12), number
    assert damaged.error is None or isinstance(damaged.error, str)
    assert all(not isinstance(v, (int, float)) or 0 <= v <= 1 for k, v in damaged.results.items() if "accuracy" in k)
    assert by_id[good.id].damaged is None and by_id[good.id].state == "finished" and by_id[good.id].steps_run == 12


def test_a_config_seed_too_large_for_a_table_marks_the_run_damaged(store):
    run = _finished(store)
    record = json.loads(run.config_path.read_text())
    record["config"]["seed"] = 10**30
    run.config_path.write_text(json.dumps(record))
    summary = summarize_run(run)
    assert summary.damaged and "seed" in summary.damaged and summary.seed is None


def test_metric_events_reach_charts_with_only_usable_numbers(store):
    from byol_core.lab.summary import checked_event

    event = {"kind": "step", "stage": "byol", "step": 1e20, "total_steps": 12, "loss": "high", "lr": 0.1,
             "img_per_s": float("inf"), "val_knn_accuracy": float("nan"), "epoch": -1.0}
    assert checked_event(event) == {"kind": "step", "stage": "byol", "total_steps": 12, "lr": 0.1}
    fine = {"kind": "epoch", "stage": "byol", "epoch": 2, "step": 12, "total_steps": 12, "val_knn_accuracy": 0.5}
    assert checked_event(fine) == fine


def test_what_real_runs_write_is_never_taken_for_damage(store):
    """The checks know every field of every stage's and study's results: none of them marks a good run damaged."""
    from byol_core.studies import ablation, experiment, sweep

    row = sweep.SweepRow(sweep.METHODS[0], 0.5, 12)
    for seed, value in ((0, 0.8), (1, 0.9)):
        row.add(seed, value, f"run-{seed}")
    swept = sweep.SweepResult("s", "digits", "tiny", [0.5], [0, 1], 100, 20, ["b0", "b1"], [row], 3.5).to_dict()
    cells = [ablation.AblationCell(m, aug, e, {0: 0.7, 1: 0.75}, {0: "r0", 1: "r1"})
             for m in ablation.METHODS for aug in (ablation.FULL, ablation.NO_COLOUR) for e in ablation.EVALUATIONS]
    ablated = ablation.AblationResult("a", "digits", [0, 1], 12, 100, cells, 2.0, "tiny").to_dict()
    single = [ablation.AblationCell(m, aug, e, {0: 0.7}, {0: "r0"})
              for m in ablation.METHODS for aug in (ablation.FULL, ablation.NO_COLOUR) for e in ablation.EVALUATIONS]
    one_seed = ablation.AblationResult("a", "digits", [0], 12, 100, single, 2.0, "tiny").to_dict()
    tried = experiment.ExperimentResult("e", "digits", 0.1, 12, 100,
                                        [experiment.ExperimentRow("BYOL kNN", 0.8, "r", 1.0),
                                         experiment.ExperimentRow("pixels", None, None, 0.1)], 2.0, "tiny").to_dict()
    for results in (swept, ablated, one_seed, tried):
        run = _finished(store)
        run.set_status("finished", results=json.loads(json.dumps(results)))  # as it is stored
        summary = summarize_run(run)
        assert summary.damaged is None, summary.damaged
        assert summary.results == json.loads(json.dumps(results))
