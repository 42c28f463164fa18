"""Stages: the one job model in core (plans are tested in test_plans, run summaries in test_summary)."""

import pytest

from byol_core.config import load_config, with_overrides
from byol_core.lab.jobs import JobManager
from byol_core.lab.plans import plan
from byol_core.lab.stages import Stage, get_stage, register, stage_names, unregister
from byol_core.lab.summary import list_summaries
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


def test_a_run_folders_config_json_works_as_a_config_file(store):
    cfg = with_overrides(get_preset("tiny"), {"seed": 7})
    run = store.create("byol", cfg, {"mode": "byol"}, stage="byol")
    assert load_config(run.config_path) == cfg
