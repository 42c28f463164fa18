"""Background jobs: training runs in threads, for the dashboard (or any long-lived process).

A :class:`JobManager` is thread-safe and knows nothing of the UI: the dashboard keeps one per
process and only reads from it. Jobs write everything worth keeping into their run folder, so a
page refresh, a second tab or a restart loses nothing: the run store is the source of truth.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import runner
from .config import ExperimentConfig, to_json
from .runs import Run, RunStore

JOB_KINDS = ("byol", "scratch", "finetune", "linear", "evaluate")
ACTIVE = ("queued", "running")


@dataclass
class Job:
    """One background job; its metrics and results live in ``run``'s folder."""

    id: str
    kind: str
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

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def progress(self) -> dict[str, Any]:
        """Fraction done, images per second and an ETA in seconds, from the latest event."""
        event = self.last_event
        step, total = event.get("step", 0), event.get("total_steps") or 0
        fraction = min(step / total, 1.0) if total else (1.0 if self.state == "finished" else 0.0)
        eta = None
        if self.started and 0 < fraction < 1:
            elapsed = time.time() - self.started
            eta = elapsed * (1 - fraction) / fraction
        return {"fraction": fraction, "step": step, "total_steps": total, "img_per_s": event.get("img_per_s"),
                "eta_s": eta, "stage": event.get("stage")}


class JobManager:
    """Starts, queues, stops and resumes jobs; at most ``max_concurrent`` run at once."""

    def __init__(self, store: RunStore, max_concurrent: int = 1) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent = {max_concurrent}; at least 1 job must be able to run.")
        self.store = store
        self.max_concurrent = max_concurrent
        self._slots = threading.Semaphore(max_concurrent)
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}

    # -- starting
    def submit(self, kind: str, cfg: ExperimentConfig, *, from_run: str | None = None,
               label: str | None = None) -> Job:
        """Queue a job; the same request while an identical one is queued or running returns that one.

        So a double click, or two tabs pressing Start together, never trains twice.
        """
        if kind not in JOB_KINDS:
            raise ValueError(f"unknown job kind {kind!r}; choose one of {JOB_KINDS}.")
        if kind in ("finetune", "linear") and not from_run:
            raise ValueError(f"a {kind} job needs a BYOL run to start from; pick one first.")
        key = f"{kind}|{from_run}|{to_json(cfg)}"
        with self._lock:
            for job in self._jobs.values():
                if job.key == key and job.active:
                    return job
            store_kind = {"byol": "byol", "evaluate": "evaluate", "linear": "linear"}.get(kind, "supervised")
            run = self.store.create(store_kind, cfg, {"mode": kind, "from_run": from_run})
            job = Job(id=run.id, kind=kind, label=label or f"{kind} · {cfg.name}", run=run, key=key)
            self._jobs[job.id] = job
            self._start(job, lambda stop, cbs: self._work(job, cfg, from_run, stop, cbs))
        return job

    def resume(self, run_id: str) -> Job:
        """Continue a stopped or interrupted run from its checkpoint, as a new job on the same run."""
        with self._lock:
            existing = self._jobs.get(run_id)
            if existing is not None and existing.active:
                return existing
            run = self.store.get(run_id)
            _, store_kind, options = run.read_config()
            kind = options.get("mode") or store_kind
            job = Job(id=run_id, kind=kind, label=f"{kind} · resumed", run=run, key=f"resume|{run_id}")
            self._jobs[run_id] = job
            self._start(job, lambda stop, cbs: runner.resume(self.store, run_id, callbacks=cbs, stop_event=stop))
        return job

    def _work(self, job: Job, cfg: ExperimentConfig, from_run: str | None, stop: threading.Event,
              callbacks: list) -> None:
        if job.kind == "byol":
            runner.pretrain(cfg, self.store, callbacks=callbacks, stop_event=stop, run=job.run)
        elif job.kind == "evaluate":
            runner.evaluate(cfg, self.store, from_run=from_run, run=job.run)
        else:
            runner.supervised(cfg, self.store, job.kind, from_run=from_run, callbacks=callbacks,
                              stop_event=stop, run=job.run)

    def _start(self, job: Job, work: Callable[[threading.Event, list], None]) -> None:
        def on_event(event: dict[str, Any]) -> None:
            job.last_event = event  # one reference swap: safe to read from other threads

        def target() -> None:
            with self._slots:  # queued until a slot frees up
                if job.stop_event.is_set():
                    job.state, job.ended = "stopped", time.time()
                    job.run.set_status("stopped")
                    return
                job.state, job.started = "running", time.time()
                try:
                    work(job.stop_event, [on_event])
                    status = job.run.read_status()
                    job.state = status.get("state", "finished")
                    job.error = status.get("error")
                except Exception as exc:  # noqa: BLE001 - recorded for the UI, never raised into it
                    job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
                finally:
                    job.ended = time.time()

        job.thread = threading.Thread(target=target, name=f"byol-job-{job.id}", daemon=True)
        job.thread.start()

    # -- controlling and reading
    def stop(self, job_id: str) -> None:
        """Ask a job to stop; it saves a checkpoint and ends as 'stopped' (resumable)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            job.stop_event.set()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Jobs of this process, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def any_active(self) -> bool:
        return any(job.active for job in self.jobs())

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        job = self.get(job_id)
        if job is None:
            raise KeyError(f"no job {job_id!r} in this process.")
        if job.thread is not None:
            job.thread.join(timeout)
        return job

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every job and wait for the threads (tests, process exit)."""
        for job in self.jobs():
            job.stop_event.set()
        for job in self.jobs():
            if job.thread is not None:
                job.thread.join(timeout)
        with self._lock:
            self._jobs.clear()
