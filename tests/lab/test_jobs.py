import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from byol_core.config import with_overrides
from byol_core.data import DataError
from byol_core.lab.jobs import JobManager
from byol_core.lab.plans import plan
from byol_core.lab.run_store import RunStore
from byol_core.presets import get_preset


@pytest.fixture(params=["process", "thread"])
def manager(store, request):
    m = JobManager(store, max_concurrent=1, isolation=request.param)
    yield m
    m.shutdown()


def _wait_until(condition, timeout: float) -> None:
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cfg():
    return get_preset("tiny")


def test_a_byol_job_runs_in_the_background_and_finishes(manager, cfg):
    job = manager.submit(plan("byol", cfg))
    assert job.state in ("queued", "running")
    manager.wait(job.id, timeout=600)
    assert job.state == "finished", job.error
    assert job.progress()["fraction"] == 1.0
    assert job.progress()["img_per_s"] > 0  # the last step's speed outlives the epoch and end events
    assert job.run.read_status()["state"] == "finished"
    assert any(e["kind"] == "step" for e in job.run.read_metrics())
    trained_in = job.run.read_status()["pid"]
    assert (trained_in != os.getpid()) == (manager.isolation == "process")


def test_identical_requests_while_active_start_one_job(manager, cfg):
    slow = with_overrides(cfg, {"byol.optim.epochs": 50})
    jobs = []
    threads = [threading.Thread(target=lambda: jobs.append(manager.submit(plan("byol", slow)))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({j.id for j in jobs}) == 1
    assert len(manager.store.list()) == 1
    manager.stop(jobs[0].id)
    manager.wait(jobs[0].id, timeout=600)
    assert jobs[0].state == "stopped"


def test_extra_jobs_queue_until_a_slot_frees(manager, cfg):
    long = with_overrides(cfg, {"byol.optim.epochs": 200})
    first = manager.submit(plan("byol", long))
    second = manager.submit(plan("scratch", cfg))
    _wait_until(lambda: first.state == "running", 300)
    assert first.state == "running" and second.state == "queued"
    manager.stop(first.id)
    manager.wait(second.id, timeout=600)
    assert first.state == "stopped" and second.state == "finished", second.error


def test_a_stopped_job_resumes_to_the_end(manager, cfg):
    long = with_overrides(cfg, {"byol.optim.epochs": 30, "runtime.log_every": 1})
    job = manager.submit(plan("byol", long))
    _wait_until(lambda: job.last_event.get("step", 0) >= 3, 300)
    manager.stop(job.id)
    manager.wait(job.id, timeout=600)
    assert job.state == "stopped"
    stopped_at = job.run.load_checkpoint()["step"]
    assert 0 < stopped_at < job.run.read_status()["total_steps"]
    again = manager.resume(job.id)
    manager.wait(again.id, timeout=600)
    status = again.run.read_status()
    assert again.state == "finished" and status["results"]["step"] == status["results"]["total_steps"]


def test_failures_are_recorded_not_raised(manager, cfg, tmp_path):
    (tmp_path / "empty").mkdir()
    empty = with_overrides(cfg, {"data.name": "folder", "data.folder": str(tmp_path / "empty")})
    with pytest.raises(DataError, match="holds no images"):  # known wrong beforehand: refused, no run folder
        manager.submit(plan("byol", empty))
    assert manager.store.list() == []
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "a.png").write_text("not an image")  # found only when training reads it
    corrupt = with_overrides(cfg, {"data.name": "folder", "data.folder": str(tmp_path / "corrupt")})
    job = manager.submit(plan("byol", corrupt))
    manager.wait(job.id, timeout=600)
    assert job.state == "failed" and "could be read" in job.error
    with pytest.raises(ValueError, match="not a torchvision model"):  # refused before a run exists
        manager.submit(plan("byol", with_overrides(cfg, {"model.backbone": "resnet19"})))
    with pytest.raises(ValueError, match="needs a pretraining run"):
        plan("finetune", cfg)
    with pytest.raises(ValueError, match="unknown stage"):
        plan("dance", cfg)


def test_a_worker_that_dies_hard_fails_the_job_with_its_exit_code(store, cfg):
    manager = JobManager(store, isolation="process")
    try:
        job = manager.submit(plan("byol", with_overrides(cfg, {"byol.optim.epochs": 200})))
        _wait_until(lambda: job.last_event.get("step", 0) > 0, 300)
        os.kill(job.process.pid, signal.SIGKILL)
        manager.wait(job.id, timeout=600)
        assert job.state == "failed"
        assert "exited with code -9" in job.error
    finally:
        manager.shutdown()


def test_a_worker_stops_with_a_checkpoint_when_its_parent_is_gone(store, cfg):
    run = store.create("byol", with_overrides(cfg, {"byol.optim.epochs": 200}))
    # A --parent-pid that is not our parent reads as "the dashboard that started me has died".
    not_parent = os.getpid() + 1_000_000
    result = subprocess.run([sys.executable, "-m", "byol_core.lab.worker", str(store.root), run.id,
                             "--parent-pid", str(not_parent)],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    status = run.read_status()
    assert status["state"] == "stopped"
    assert 0 <= run.load_checkpoint()["step"] < status["results"]["total_steps"]


def test_an_unknown_isolation_is_refused(store):
    with pytest.raises(ValueError, match="isolation"):
        JobManager(store, isolation="fork")


def test_the_eta_uses_the_training_rate_not_the_start_up_time(store, cfg, monkeypatch):
    from byol_core.lab import jobs as jobs_mod
    from byol_core.lab.jobs import Job

    clock = [1000.0]
    monkeypatch.setattr(jobs_mod.time, "time", lambda: clock[0])
    job = Job(id="j", stage="byol", label="BYOL", run=store.create("byol", cfg), key="k", state="running")
    job.started = clock[0] - 60  # a minute of start-up (imports, data) before the first step
    job.observe({"kind": "start", "step": 0, "total_steps": 100})
    assert job.progress()["eta_s"] is None
    job.observe({"kind": "step", "step": 10, "total_steps": 100})
    clock[0] += 10
    job.observe({"kind": "step", "step": 20, "total_steps": 100})  # 10 steps in 10 s
    assert job.progress()["eta_s"] == pytest.approx(80.0)
    clock[0] += 70
    job.observe({"kind": "step", "step": 90, "total_steps": 100})
    assert job.progress()["eta_s"] == pytest.approx(10.0)


# --------------------------------------------------------------------------- two managers, one runs folder
# The other party is a JobManager in another process, or a second JobManager in this one: they share
# nothing but the runs folder, so the second must behave exactly as another process would.
_OTHER_PROCESS = """
import sys
import torch
from byol_core.config import with_overrides
from byol_core.lab.jobs import JobManager
from byol_core.lab.plans import plan
from byol_core.lab.run_store import RunStore
from byol_core.presets import get_preset
torch.set_num_threads(1)
manager = JobManager(RunStore(sys.argv[1]), max_concurrent=1, isolation="thread")
job = manager.submit(plan("byol", with_overrides(get_preset("tiny"), {"byol.optim.epochs": float(sys.argv[2])})))
manager.wait(job.id, timeout=600)
print(job.state, job.error)
"""
LONG_EPOCHS = 400  # bounded by its steps; the tests stop it long before


def _start_elsewhere(store, cfg, how):
    """Start a long BYOL job as another party would; returns ``end(kill)``: its final state, once it has ended.

    ``kill``: end it first (a test that failed half-way must not wait for its hundreds of epochs).
    """
    if how == "process":
        other = subprocess.Popen([sys.executable, "-c", _OTHER_PROCESS, str(store.root), str(LONG_EPOCHS)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def end(kill: bool = False) -> str:
            if kill and other.poll() is None:
                other.kill()
            out, err = other.communicate(timeout=600)
            assert kill or other.returncode == 0, err
            return (out.split() or ["killed"])[0]
        return end
    manager = JobManager(RunStore(store.root), max_concurrent=1, isolation="thread")  # its own memory
    job = manager.submit(plan("byol", with_overrides(cfg, {"byol.optim.epochs": LONG_EPOCHS})))

    def end_here(kill: bool = False) -> str:
        if kill:
            manager.stop(job.id)
        manager.wait(job.id, timeout=600)
        manager.shutdown()
        return job.state
    return end_here


@pytest.mark.parametrize("how", ["process", "manager"])
def test_two_managers_on_one_runs_folder_hold_one_job_limit_and_one_duplicate_rule(store, cfg, how):
    end_theirs = _start_elsewhere(store, cfg, how)
    mine = JobManager(store, max_concurrent=1, isolation="thread")
    try:
        _wait_until(lambda: any(r.read_status().get("step", 0) > 0 for r in store.list()), 300)
        theirs = store.list()[0]
        assert theirs.read_status()["state"] == "running", theirs.read_status()
        # The same job again is refused, with the reason; the job shows in this manager's list.
        duplicate = plan("byol", with_overrides(cfg, {"byol.optim.epochs": LONG_EPOCHS}))
        with pytest.raises(ValueError, match=f"already running as run {theirs.id}"):
            mine.submit(duplicate)
        assert mine.find_active(duplicate).id == theirs.id
        assert [j.id for j in mine.active_jobs()] == [theirs.id]
        # Another job waits for the one slot the folder has, while theirs keeps training.
        second = mine.submit(plan("scratch", cfg))
        step_then = theirs.read_status()["step"]
        _wait_until(lambda: theirs.read_status().get("step", 0) > step_then, 300)
        assert theirs.read_status()["state"] == "running"
        assert second.state == "queued" and second.run.read_status()["state"] == "queued"
        assert not second.run.claimed()
        assert {j.id: j.state for j in mine.active_jobs()} == {theirs.id: "running", second.id: "queued"}
        mine.stop(theirs.id)  # a job of another manager stops through its run folder
        assert end_theirs() == "stopped"
        end_theirs = None
        mine.wait(second.id, timeout=600)
        assert second.state == "finished", second.error
        assert second.run.read_status()["started"] > theirs.read_status()["updated"]  # only after theirs ended
    finally:
        mine.shutdown()
        if end_theirs is not None:
            end_theirs(kill=True)


def test_a_damaged_metric_event_never_reaches_a_jobs_progress(store, cfg):
    from byol_core.lab.jobs import Job

    job = Job(id="j", stage="byol", label="BYOL", run=store.create("byol", cfg), key="k", state="running")
    job.observe({"kind": "step", "step": 5, "total_steps": 10, "img_per_s": 100.0})
    job.observe({"kind": "step", "step": "six", "total_steps": 1e20, "img_per_s": float("nan")})  # from a damaged file
    assert job.progress()["fraction"] == 0.5
    assert (job.progress()["step"], job.progress()["total_steps"], job.progress()["img_per_s"]) == (5, 10, 100.0)


def test_a_study_and_the_runs_it_trains_take_one_slot(store, cfg):
    from byol_core.lab.active_runs import active_runs

    study = store.create("sweep", cfg, {"mode": "sweep", "from_run": None}, stage="sweep")
    inner = store.create("byol", cfg, {"mode": "byol", "from_run": None}, stage="byol")  # made by the study
    made_next = store.create("supervised", cfg, {"mode": "scratch", "from_run": None}, stage="scratch")
    manager = JobManager(store, max_concurrent=1, isolation="thread")
    with study.claim(), inner.claim():  # both trained by this process, as a study's worker trains them
        study.set_status("running")
        inner.set_status("running")
        assert [a.run.id for a in active_runs(store)] == [study.id]
        assert manager.trained_now() == 1 and [j.id for j in manager.active_jobs()] == [study.id]
        assert made_next.id not in {a.run.id for a in active_runs(store)}  # queued by the study's process
    # Once the study's process lets go, they read 'interrupted'; the run queued meanwhile takes no slot.
    assert [a.run.id for a in active_runs(store)] == [made_next.id] and manager.trained_now() == 0
