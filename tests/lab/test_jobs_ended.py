"""A job whose status.json says it has ended no longer blocks the same job, though its process is still exiting.

The state is built by hand (a job the manager still counts as running, its run's status file written directly), so
nothing here depends on how long a worker takes to exit.
"""

from __future__ import annotations

import pytest

from byol_core.lab import runner
from byol_core.lab.jobs import Job, JobManager
from byol_core.lab.plans import plan
from byol_core.presets import get_preset


@pytest.fixture()
def manager(store):
    m = JobManager(store, max_concurrent=1, isolation="thread")
    yield m
    m.shutdown(timeout=120)


def _job_still_reaping(manager: JobManager, spec) -> Job:
    """A job as the manager holds it between its trainer writing its end and the supervising thread seeing the
    process exit: state 'running', no thread."""
    run = runner.create(manager.store, spec)
    job = Job(id=run.id, stage=spec.stage, label="BYOL", run=run, key=spec.key, state="running")
    manager._jobs[job.id] = job  # the manager's own table: what submit() fills, without training anything
    return job


def test_a_queued_job_blocks_its_duplicate(manager):
    spec = plan("byol", get_preset("tiny"))
    job = _job_still_reaping(manager, spec)
    assert job.run.read_status()["state"] == "queued"
    assert manager.find_active(spec) is job


@pytest.mark.parametrize("ended", ["stopped", "finished", "failed"])
def test_once_the_status_file_says_ended_the_same_job_can_start_again(manager, ended):
    spec = plan("byol", get_preset("tiny"))
    job = _job_still_reaping(manager, spec)
    job.run.set_status(ended)
    assert job.active  # the manager has not reaped it yet ...
    assert manager.find_active(spec) is None  # ... but Start is offered: the file says it is over
    other = plan("scratch", get_preset("tiny"))
    assert manager.find_active(other) is None


def test_a_new_submit_after_stopped_starts_a_new_run(manager):
    spec = plan("byol", get_preset("tiny"))
    old = _job_still_reaping(manager, spec)
    old.run.set_status("stopped")
    new = manager.submit(spec)
    assert new.id != old.id  # not handed back the stopping job
    assert manager.find_active(spec) is new
    manager.wait(new.id, timeout=600)
    assert new.state == "finished", new.error
    assert old.run.read_status()["state"] == "stopped"  # the old run is left as its trainer ended it


def test_the_folders_active_runs_follow_a_run_that_ends_and_is_queued_again(store):
    from byol_core.lab.active_runs import active_runs

    run = runner.create(store, plan("byol", get_preset("tiny")))
    assert [a.run.id for a in active_runs(store)] == [run.id]  # queued by this (live) process
    run.set_status("finished")
    for _ in range(2):  # read once, then remembered as ended: the answer stays the same
        assert active_runs(store) == []
        assert active_runs(store, trained_only=True) == []
    run.set_status("queued")  # a resume writes status.json again: the run is read again
    assert [a.run.id for a in active_runs(store)] == [run.id]
    run.set_status("stopped")
    assert active_runs(store) == []
    run.set_status("queued")
    assert [a.run.id for a in active_runs(store)] == [run.id]
