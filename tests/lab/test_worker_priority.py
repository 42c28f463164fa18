"""A job's worker process runs nicer than the process that started it, so the host's pages win the CPU."""

from __future__ import annotations

import os
import time

import pytest

from byol_core.config import with_overrides
from byol_core.lab.jobs import WORKER_NICENESS, JobManager
from byol_core.lab.plans import plan
from byol_core.presets import get_preset

pytestmark = pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no process priorities on this OS")


def test_a_worker_is_nicer_than_its_host_and_still_trains(store):
    manager = JobManager(store, max_concurrent=1, isolation="process", worker_threads=1)
    try:
        job = manager.submit(plan("byol", with_overrides(get_preset("tiny"), {"byol.optim.epochs": 200})))
        deadline = time.monotonic() + 300
        while job.process is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.process is not None, job.error
        host = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, job.process.pid) == min(19, host + WORKER_NICENESS)
        while job.last_event.get("step", 0) < 1 and job.active and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.last_event.get("step", 0) >= 1, job.error  # the nicer worker trains all the same
        assert os.getpriority(os.PRIO_PROCESS, 0) == host  # the host keeps its own priority
    finally:
        manager.shutdown(timeout=120)
