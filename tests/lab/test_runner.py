"""The runner: a run folder finished, resumed or failed with its reason."""

import threading

import pytest

from byol_core.config import with_overrides
from byol_core.lab import runner
from byol_core.lab.plans import plan
from byol_core.presets import get_preset


@pytest.fixture(scope="module")
def cfg():
    return get_preset("tiny")


def test_runner_stores_a_finished_run_with_metrics_and_a_loadable_encoder(cfg, store):
    run = runner.start(plan("byol", cfg), store)
    status = run.read_status()
    assert status["state"] == "finished"
    assert 0.0 <= status["results"]["knn_accuracy"] <= 1.0
    kinds = {e["kind"] for e in run.read_metrics()}
    assert {"start", "step", "epoch"} <= kinds
    assert run.load_checkpoint()["step"] == status["results"]["total_steps"]
    encoder = run.load_encoder()
    assert any(k.startswith("features.") for k in encoder)

    probe = runner.start(plan("linear", cfg, source_run=run.id), store)
    assert probe.read_status()["results"]["from_run"] == run.id
    assert probe.read_status()["state"] == "finished"


def test_runner_resumes_a_stopped_run_to_the_end(cfg, store):
    stop = threading.Event()
    run = runner.start(plan("byol", with_overrides(cfg, {"runtime.log_every": 1})), store,
                       callbacks=[lambda e: e["kind"] == "step" and e["step"] >= 2 and stop.set()],
                       stop_event=stop)
    assert run.read_status()["state"] == "stopped"
    assert run.load_checkpoint()["step"] == 2
    runner.resume(store, run.id)
    status = run.read_status()
    assert status["state"] == "finished" and status["results"]["step"] == status["results"]["total_steps"]
    with pytest.raises(ValueError, match="already finished"):
        runner.resume(store, run.id)


def test_runner_marks_a_failed_run_with_the_reason(cfg, store, tmp_path):
    from byol_core.data import DataError

    with pytest.raises(ValueError, match="not a torchvision model"):  # refused before a run folder exists
        runner.start(plan("byol", with_overrides(cfg, {"model.backbone": "resnet19"})), store)
    assert store.list() == []
    (tmp_path / "empty").mkdir()
    empty = with_overrides(cfg, {"data.name": "folder", "data.folder": str(tmp_path / "empty")})
    with pytest.raises(DataError, match="no images"):  # a folder without images: refused before a run folder too
        runner.start(plan("byol", empty), store)
    assert store.list() == []
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "0.png").write_bytes(b"not a png")  # an image by its name only: found out when read
    broken = with_overrides(cfg, {"data.name": "folder", "data.folder": str(tmp_path / "broken")})
    with pytest.raises(DataError, match="could be read"):  # fails while running: the run says why
        runner.start(plan("byol", broken), store)
    status = store.list()[0].read_status()
    assert status["state"] == "failed" and "could be read" in status["error"]
