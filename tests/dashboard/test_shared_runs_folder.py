"""Two dashboards on one runs folder: each page shows, and can stop, the jobs the other started."""

from __future__ import annotations

import time

from byol_core.config import with_overrides
from byol_core.lab.jobs import JobManager
from byol_core.lab.plans import plan
from byol_core.lab.run_store import RunStore
from byol_core.presets import get_preset
from tests.app_helpers import _app, _page


def test_the_train_page_lists_and_stops_a_job_another_dashboard_started(runs_dir):
    other = JobManager(RunStore(runs_dir), max_concurrent=1, isolation="thread")  # the other dashboard's manager
    try:
        spec = plan("byol", with_overrides(get_preset("tiny"), {"byol.optim.epochs": 400}))
        job = other.submit(spec)
        deadline = time.time() + 300
        while job.run.read_status().get("step", 0) == 0 and time.time() < deadline:
            time.sleep(0.1)
        assert job.state == "running", job.error

        at = _page(_app(), "views/train.py")
        assert any(job.id in str(m.value) for m in at.markdown)  # its card, with the run's id
        assert any("another dashboard" in c.value for c in at.caption)
        at.button(key=f"stop.{job.id}").click().run()
        assert not at.exception, [e.value for e in at.exception]
        other.wait(job.id, timeout=600)
        assert job.state == "stopped" and job.run.read_status()["state"] == "stopped"
        at.run()
        assert not at.exception
        assert not at.get("button") or all(b.key != f"stop.{job.id}" for b in at.button)
    finally:
        other.shutdown()
