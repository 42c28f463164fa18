"""Background jobs: training runs for the dashboard (or any long-lived process).

A :class:`JobManager` is thread-safe and knows nothing of the UI: the dashboard keeps one per
process and only reads from it. Jobs write everything worth keeping into their run folder, so a
page refresh, a second tab or a restart loses nothing: the run store is the source of truth.

Each job has a supervising thread. With ``isolation="process"`` (the default) that thread starts a
worker process (:mod:`byol_core.lab.worker`) and follows the run folder's metrics, so training does not
share the GIL with the host: a Streamlit rerun holds it for 50-150 ms while it builds charts, and a
small model's step is hundreds of short operations that each need it back. ``"thread"`` trains in
the supervising thread itself: no start-up cost (a worker spends ~5 s importing torch), for tests
and scripts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..events import STEP
from ..files import parse_jsonl
from . import runner
from .plans import JobSpec
from .run_store import Run, RunStore
from .stages import get_stage, stage_of_record

ACTIVE = ("queued", "running")
ISOLATIONS = ("process", "thread")
FOLLOW_SECONDS = 0.5  # how often a supervising thread reads its worker's new metrics
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # the folder holding byol_core/


@dataclass
class Job:
    """One background job; its metrics and results live in ``run``'s folder."""

    id: str
    stage: str
    label: str
    run: Run
    key: str
    state: str = "queued"
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    last_event: dict[str, Any] = field(default_factory=dict)
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)
    process: subprocess.Popen | None = field(default=None, repr=False)
    _rate_anchor: tuple[float, int] | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def observe(self, event: dict[str, Any]) -> None:
        """Fold a metric event into ``last_event``: the latest value of every field.

        So an epoch summary (no speed) does not hide the last step's img/s. One reference swap:
        safe to read from other threads. The first step event (after start-up, data loading and a
        resume's checkpoint) anchors the ETA's rate.
        """
        if event.get("kind") == STEP and self._rate_anchor is None:
            self._rate_anchor = (time.time(), event.get("step", 0))
        self.last_event = {**self.last_event, **event}

    def progress(self) -> dict[str, Any]:
        """Fraction done, images per second and an ETA in seconds, from the latest event."""
        event = self.last_event
        step, total = event.get("step", 0), event.get("total_steps") or 0
        fraction = min(step / total, 1.0) if total else (1.0 if self.state == "finished" else 0.0)
        return {"fraction": fraction, "step": step, "total_steps": total, "img_per_s": event.get("img_per_s"),
                "eta_s": self._eta(step, total), "stage": event.get("stage")}

    def _eta(self, step: int, total: int) -> float | None:
        """Remaining steps at the rate measured since the first step: start-up time does not inflate it."""
        if self._rate_anchor is None or not total or step >= total:
            return None
        t0, step0 = self._rate_anchor
        done, elapsed = step - step0, time.time() - t0
        if done < 2 or elapsed <= 0:
            return None  # one window is too little to tell a rate
        return (total - step) * elapsed / done


class JobManager:
    """Starts, queues, stops and resumes jobs; at most ``max_concurrent`` run at once.

    ``isolation``: ``"process"`` trains each job in a worker process, ``"thread"`` in this one.
    ``worker_threads``: torch CPU threads of a worker whose config does not set ``runtime.num_threads``
    (None: torch's default, all cores; with the dashboard's light refreshes that trained faster than
    leaving a core to the page, see ``benchmarks/dashboard_overhead.py``).
    """

    def __init__(self, store: RunStore, max_concurrent: int = 1, isolation: str = "process",
                 worker_threads: int | None = None) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent = {max_concurrent}; at least 1 job must be able to run.")
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation = {isolation!r}; choose one of {ISOLATIONS}.")
        self.store = store
        self.max_concurrent = max_concurrent
        self.isolation = isolation
        self.worker_threads = worker_threads
        self._slots = threading.Semaphore(max_concurrent)
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}

    # -- starting
    def submit(self, spec: JobSpec) -> Job:
        """Queue a job; the same spec while an identical one is queued or running returns that one.

        So a double click, or two tabs pressing Start together, never trains twice.
        """
        with self._lock:
            existing = self.find_active(spec)
            if existing is not None:
                return existing
            run = runner.create(self.store, spec)
            job = Job(id=run.id, stage=spec.stage, label=spec.label or spec.stage_info.short_title, run=run,
                      key=spec.key)
            self._jobs[job.id] = job
            self._start(job)
        return job

    def find_active(self, spec: JobSpec) -> Job | None:
        """The queued or running job of this process that ``spec`` would duplicate, if any."""
        with self._lock:
            return next((j for j in self._jobs.values() if j.key == spec.key and j.active), None)

    def resume(self, run_id: str) -> Job:
        """Continue a stopped or interrupted run from its checkpoint, as a new job on the same run."""
        with self._lock:
            existing = self._jobs.get(run_id)
            if existing is not None and existing.active:
                return existing
            run = self.store.get(run_id)
            stage = stage_of_record(run.read_record())
            if stage is None:
                raise ValueError(f"run {run_id} is not a job that can be resumed.")
            label = existing.label if existing is not None else get_stage(stage).short_title
            job = Job(id=run_id, stage=stage, label=label, run=run, key=f"resume|{run_id}")
            self._jobs[run_id] = job
            self._start(job, check=lambda: runner.resume_check(self.store, run_id))
        return job

    def _start(self, job: Job, check: Callable[[], Any] | None = None) -> None:
        """Give ``job`` a supervising thread that waits for a slot, then trains (``check`` first)."""

        def target() -> None:
            with self._slots:  # queued until a slot frees up
                if job.stop_event.is_set():
                    job.state, job.ended = "stopped", time.time()
                    job.run.set_status("stopped")
                    return
                job.state, job.started = "running", time.time()
                try:
                    if check is not None:
                        check()
                    if self.isolation == "process":
                        self._train_in_worker(job)
                    else:
                        runner.execute(self.store, job.run, callbacks=[job.observe], stop_event=job.stop_event)
                    status = job.run.read_status()
                    job.state = status.get("state", "finished")
                    job.error = status.get("error")
                except Exception as exc:  # noqa: BLE001 - recorded for the UI, never raised into it
                    job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
                finally:
                    job.ended = time.time()

        job.thread = threading.Thread(target=target, name=f"byol-job-{job.id}", daemon=True)
        job.thread.start()

    def _train_in_worker(self, job: Job) -> None:
        """Run the job in ``python -m byol_core.lab.worker``, following its metrics until it exits."""
        run = job.run
        run.clear_stop_request()
        env = dict(os.environ)
        # The worker must import this very byol_core, wherever the host was started from.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        command = [sys.executable, "-m", "byol_core.lab.worker", str(self.store.root), run.id,
                   "--parent-pid", str(os.getpid())]
        if self.worker_threads:
            command += ["--threads", str(self.worker_threads)]
        follower = _MetricsFollower(run.metrics_path)
        with open(run.worker_log_path, "ab") as log:
            job.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
            while True:
                try:
                    returncode = job.process.wait(FOLLOW_SECONDS)
                except subprocess.TimeoutExpired:
                    returncode = None
                if job.stop_event.is_set() and not run.stop_requested():
                    run.request_stop()  # the worker checks for it every 0.25 s
                for event in follower.new_events():
                    job.observe(event)
                if returncode is not None:
                    break
        run.clear_stop_request()
        if returncode != 0 and run.read_status().get("state") not in ("failed", "finished", "stopped"):
            # A hard crash (killed, out of memory, segfault) that could not write its own status.
            tail = _tail(run.worker_log_path) or "no output"
            run.set_status("failed", error=f"the worker process exited with code {returncode}: {tail}")

    # -- controlling and reading
    def stop(self, job_id: str) -> None:
        """Ask a job to stop; it saves a checkpoint and ends as 'stopped' (resumable)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            job.stop_event.set()  # a worker's supervising thread passes it on as stop.request

    def forget(self, job_id: str) -> None:
        """Drop an ended job's card (its run was deleted); an active job is kept."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and not job.active:
                del self._jobs[job_id]

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Jobs of this process, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        job = self.get(job_id)
        if job is None:
            raise KeyError(f"no job {job_id!r} in this process.")
        if job.thread is not None:
            job.thread.join(timeout)
        return job

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every job and wait for it (tests, process exit); a worker that outlasts ``timeout`` is killed."""
        for job in self.jobs():
            self.stop(job.id)
        deadline = time.monotonic() + timeout
        for job in self.jobs():
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))
            if job.process is not None and job.process.poll() is None:
                job.process.kill()
                job.process.wait()
        with self._lock:
            self._jobs.clear()


class _MetricsFollower:
    """Reads the events appended to a metrics.jsonl since the last call (complete lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new_events(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")  # a line still being written waits for the next call
        if end < 0:
            return []
        self.offset += end + 1
        return parse_jsonl(chunk[:end])


def _tail(path: Path, max_chars: int = 400) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return ""
    return text[-max_chars:]
