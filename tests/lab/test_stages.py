"""Stages, plans and run summaries: the one job model in core."""

import json

import pytest

from byol_core.config import ConfigError, DataConfig, load_config, with_overrides
from byol_core.lab.jobs import JobManager
from byol_core.lab.plans import plan
from byol_core.lab.stages import Stage, get_stage, register, stage_names, unregister
from byol_core.lab.summary import list_summaries, summarize_run
from byol_core.presets import get_preset


@pytest.fixture
def toy_stage():
    """A stage defined here only: it reads the data config, logs two events and reports a score."""

    def body(ctx):
        for step in (1, 2):
            for callback in ctx.callbacks:
                callback({"kind": "step", "stage": "toy", "step": step, "total_steps": 2, "epoch": step / 2,
                          "loss": 1.0 / step})
        return {"toy_score": 0.25 + ctx.cfg.data.label_fraction / 2, "step": 2, "total_steps": 2}

    stage = register(Stage(name="toy", title="Toy stage (for tests)", method="toy method", body=body,
                           metric="toy_score", metric_name="toy score", resumable=False))
    yield stage
    unregister("toy")


def test_a_toy_stage_runs_through_plan_job_manager_and_run_summary(toy_stage, store):
    spec = plan("toy", get_preset("tiny"), overrides={"data.label_fraction": 0.5})
    assert spec.stage == "toy" and spec.label == "Toy stage"
    assert [str(c) for c in spec.changes] == ["data.label_fraction: 1 → 0.5 (set for this job)"]
    manager = JobManager(store, isolation="thread")
    try:
        job = manager.submit(spec)
        manager.wait(job.id, timeout=60)
    finally:
        manager.shutdown()
    assert job.state == "finished", job.error
    [summary] = list_summaries(store)
    assert (summary.stage, summary.method, summary.metric_name) == ("toy", "toy method", "toy score")
    assert summary.metric == pytest.approx(0.5) and summary.steps_run == 2 and summary.epochs_run == 1.0
    assert summary.state == "finished" and summary.damaged is None and not summary.resumable
    assert [e["step"] for e in job.run.read_metrics()] == [1, 2]


def test_stages_are_registered_once_with_their_headline_metric():
    assert stage_names()[:5] == ["byol", "scratch", "finetune", "linear", "knn"]
    assert get_stage("evaluate").name == "knn"  # runs written before stages existed still resolve
    assert get_stage("byol").headline({"knn_accuracy": 0.9, "test_accuracy": 0.1}) == 0.9
    assert get_stage("finetune").headline({"test_accuracy": 0.8}) == 0.8
    assert get_stage("knn").method_for(None) == "random-init kNN"
    with pytest.raises(ValueError, match="unknown stage 'dance'"):
        get_stage("dance")
    with pytest.raises(ValueError, match="source"):
        Stage(name="bad", title="Bad", method="bad", body=lambda ctx: {}, source="sometimes")


def test_plan_merges_the_data_page_choice_and_explains_each_change():
    preset = get_preset("digits-quick")
    spec = plan("scratch", preset, data=DataConfig(name="fashion-mnist", max_train_images=500), num_images=70,
                overrides={"supervised.optim.lr": 3e-4})
    changes = {c.field: c for c in spec.changes}
    assert changes["data.name"].after == "fashion-mnist" and "Data page" in changes["data.name"].reason
    assert changes["supervised.optim.lr"].before == 1e-3 and changes["supervised.optim.lr"].reason == "set for this job"
    # The preset keeps its experiment design (caps, label fraction); the plan says so instead of hiding it.
    assert spec.config.data.max_train_images is None and spec.config.data.label_fraction == 0.05
    assert any("max_train_images = none from the preset (the Data page had 500)" in n for n in spec.notes)
    assert any("10 epochs → 300 steps because min_steps = 300 with 70 training images" in n for n in spec.notes)


def test_plan_validates_sources_and_the_whole_config_after_every_override(tmp_path):
    with pytest.raises(ConfigError, match="needs a pretraining run"):
        plan("finetune", get_preset("tiny"))
    with pytest.raises(ConfigError, match="does not start from another run"):
        plan("scratch", get_preset("tiny"), source_run="some-run")
    # A rule that ties two fields together holds whatever order they are set in.
    for order in (("data.name", "data.folder"), ("data.folder", "data.name")):
        values = {"data.name": "folder", "data.folder": str(tmp_path)}
        cfg = with_overrides(get_preset("tiny"), {k: values[k] for k in order})
        assert cfg.data.name == "folder" and cfg.data.folder == str(tmp_path)
    with pytest.raises(ConfigError, match=r"^--set byol.optim.lr=-1: .*allowed range"):
        with_overrides(get_preset("tiny"), {"data.name": "digits", "byol.optim.lr": "-1"})


def test_identical_specs_share_one_key_and_a_changed_field_does_not():
    base = get_preset("tiny")
    assert plan("byol", base).key == plan("byol", base).key
    assert plan("byol", base).key != plan("byol", base, overrides={"seed": 1}).key
    assert plan("byol", base).key != plan("scratch", base).key


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


def test_runs_written_before_stages_existed_are_summarised(store):
    cfg = get_preset("tiny")
    old = store.create("supervised", cfg, {"mode": "scratch", "from_run": None})
    record = json.loads(old.config_path.read_text())
    assert record.pop("stage", None) is None  # created without a stage, as older versions did
    evaluated = store.create("evaluate", cfg, {"from_run": None})
    old.set_status("finished", results={"test_accuracy": 0.7, "step": 24, "total_steps": 24}, step=24, epoch=6.0)
    assert summarize_run(old).stage == "scratch" and summarize_run(old).metric == 0.7 and summarize_run(old).epochs_run == 6.0
    assert summarize_run(evaluated).stage == "knn" and summarize_run(evaluated).method == "random-init kNN"


def test_a_run_folders_config_json_works_as_a_config_file(store):
    cfg = with_overrides(get_preset("tiny"), {"seed": 7})
    run = store.create("byol", cfg, {"mode": "byol"}, stage="byol")
    assert load_config(run.config_path) == cfg
