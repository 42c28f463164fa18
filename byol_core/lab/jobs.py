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

The job limit and the duplicate-job rule hold for every manager on one runs folder (two dashboards, a
dashboard and a script), because both are read from the folder, never from one manager's memory. A job
trains only while fewer than ``max_concurrent`` runs of the folder are trained (:func:`active_runs`:
queued or running, and their trainer holds the run's lock), decided under the folder's start lock,
which is held until the new trainer holds its run; a job identical to one queued or running in the
folder is refused (:class:`DuplicateJobError`), decided under the folder's submit lock. Jobs of other
managers are listed (:meth:`JobManager.active_jobs`) and stopped through their run folder's stop request.
What is read from the folder is in :mod:`byol_core.lab.active_runs`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..events import STEP
from ..files import exclusive_lock, parse_jsonl
from . import runner
from .active_runs import ACTIVE, ActiveRun, active_runs, has_ended, key_of_run, stage_of_run
from .annotations import read_annotations
from .plans import JobSpec
from .run_store import Run, RunBusyError, RunStore
from .stages import get_stage, stage_of_record
from .summary import checked_event

ISOLATIONS = ("process", "thread")
FOLLOW_SECONDS = 0.5  # how often a supervising thread reads its worker's new metrics
SLOT_POLL_SECONDS = 0.5  # how often a queued job looks for a free slot in the runs folder
CLAIM_TIMEOUT_S = 120.0  # the longest a new trainer may take to hold its run (a worker imports torch first)
LOCK_TIMEOUT_S = 30.0  # the longest a submit waits for another manager's submit
# Workers run this much nicer than their host, so the host's page redraws win the CPU from training when both want
# it (benchmarks/page_times.py); training still gets every cycle the host leaves idle, nearly all of them.
WORKER_NICENESS = 10
SUBMIT_LOCK = ".jobs-submit.lock"  # in the runs folder: one duplicate check and run creation at a time
START_LOCK = ".jobs-start.lock"  # in the runs folder: one slot decision at a time, held until its trainer holds the run
PROGRESS_FIELDS = ("stage", "step", "total_steps", "epoch", "img_per_s", "doing")
_Poll = Callable[[], "BaseException | int | None"]  # None while a job trains, then its exit code or exception
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # the folder holding byol_core/


class DuplicateJobError(ValueError):
    """The job is already queued or running in the runs folder (started by another manager or process)."""


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
    elsewhere: bool = False  # started by another manager (another dashboard or process) on the same runs folder
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
        event = checked_event(event)  # read back from metrics.jsonl: a damaged field is left out
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
    """Starts, queues, stops and resumes jobs; at most ``max_concurrent`` train at once in the runs folder.

    The limit counts every process's trainers on the folder (:func:`active_runs`), this manager's and others'.
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
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}

    # -- starting
    def submit(self, spec: JobSpec) -> Job:
        """Queue a job. The same spec while this manager has it queued or running returns that job (a double
        click, or two tabs pressing Start together, never trains twice); while another manager or process has
        it queued or running, a :class:`DuplicateJobError` says which run it is.
        """
        # A job that cannot work is refused before the runs folder is touched (runner.create checks it again).
        spec.stage_info.check_options(spec.stage_options)
        runner.check_source(self.store, spec)
        runner.check_buildable(spec)
        with self._lock, self._folder_lock(SUBMIT_LOCK):
            existing = self.find_active(spec)
            if existing is not None and not existing.elsewhere:
                return existing
            if existing is not None:
                raise DuplicateJobError(
                    f"this exact job is already {existing.state} as run {existing.id}, started by another dashboard "
                    f"or command on {self.store.root}; wait for it to end, or stop it, before starting it again.")
            run = runner.create(self.store, spec)
            job = Job(id=run.id, stage=spec.stage, label=spec.label or spec.stage_info.short_title, run=run,
                      key=spec.key)
            self._jobs[job.id] = job
            self._start(job)
        return job

    def find_active(self, spec: JobSpec) -> Job | None:
        """The queued or running job that ``spec`` would duplicate: this manager's, or another's read from the folder.

        A job of this manager whose run's status.json says it has ended does not count, though its worker process
        may still be exiting (2-5 s after 'stopped', while torch tears down): Start is offered as soon as the card
        shows the job stopped, and the new job's slot is free then too (:func:`active_runs` reads the same file).
        """
        with self._lock:
            candidates = [j for j in self._jobs.values() if j.key == spec.key and j.active]
        mine = next((j for j in candidates if not has_ended(j.run)), None)
        return mine or next((j for j in self._elsewhere() if key_of_run(j.run) == spec.key), None)

    def resume(self, run_id: str) -> Job:
        """Continue a stopped or interrupted run from its checkpoint, as a new job on the same run.

        A RunBusyError when another manager or process has the run queued or training.
        """
        with self._lock, self._folder_lock(SUBMIT_LOCK):
            existing = self._jobs.get(run_id)
            if existing is not None and existing.active:
                return existing
            run = runner.resume_check(self.store, run_id)
            if run.read_status().get("state") in ACTIVE:
                raise RunBusyError(f"run {run_id} is already queued to resume by another dashboard or command; "
                                   "wait for it, or stop it there.")
            stage = stage_of_record(run.read_record())
            if stage is None:
                raise ValueError(f"run {run_id} is not a job that can be resumed.")
            label = existing.label if existing is not None else get_stage(stage).short_title
            job = Job(id=run_id, stage=stage, label=label, run=run, key=f"resume|{run_id}")
            run.set_status("queued")  # in the folder: every manager now sees it waiting for a slot
            self._jobs[run_id] = job
            self._start(job, check=lambda: runner.resume_check(self.store, run_id))
        return job

    def _folder_lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """One holder at a time across every manager on the runs folder; a RunBusyError when it stays busy."""
        return _lock_or_busy(self.store.root / name, LOCK_TIMEOUT_S)

    def trained_now(self) -> int:
        """How many runs of the folder are being trained right now, by any process: the slots taken."""
        return len(active_runs(self.store, trained_only=True))

    def _start(self, job: Job, check: Callable[[], Any] | None = None) -> None:
        """Give ``job`` a supervising thread that waits for a slot, then trains (``check`` first)."""

        def target() -> None:
            try:
                started = self._take_slot(job, check)
                if started is None:  # stopped while queued
                    job.state = "stopped"
                    job.run.set_status("stopped")
                    job.run.clear_stop_request()
                    return
                self._follow(job, *started)
                status = job.run.read_status()
                job.state = status.get("state", "finished")
                job.error = status.get("error")
            except Exception as exc:  # noqa: BLE001 - recorded for the UI, never raised into it
                job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            finally:
                job.ended = time.time()

        job.thread = threading.Thread(target=target, name=f"byol-job-{job.id}", daemon=True)
        job.thread.start()

    def _take_slot(self, job: Job, check: Callable[[], Any] | None) -> tuple[_Poll, _MetricsFollower] | None:
        """Wait until the folder has a free slot, then start training; None when the job was stopped first.

        Decided under the folder's start lock, held until the new trainer holds its run: no other manager
        can count the slot as free in between.
        """
        while True:
            if job.stop_event.is_set() or job.run.stop_requested():
                return None
            with contextlib.ExitStack() as held:
                try:
                    held.enter_context(exclusive_lock(self.store.root / START_LOCK, timeout=SLOT_POLL_SECONDS))
                except TimeoutError:
                    continue  # another manager is starting a job: look again
                if self.trained_now() < self.max_concurrent:
                    job.state, job.started = "running", time.time()
                    if check is not None:
                        check()
                    follower = _MetricsFollower(job.run.metrics_path)  # the events from here on
                    poll = self._launch(job)
                    deadline = time.monotonic() + CLAIM_TIMEOUT_S
                    while not job.run.claimed() and poll() is None and time.monotonic() < deadline:
                        time.sleep(0.05)
                    return poll, follower
            time.sleep(SLOT_POLL_SECONDS)

    def _launch(self, job: Job) -> _Poll:
        """Start training ``job``; returns a poll: None while it trains, then its exit code (or exception)."""
        if self.isolation == "process":
            return self._start_worker(job)
        ended: list[BaseException | int] = []

        def train() -> None:
            try:
                runner.execute(self.store, job.run, callbacks=[job.observe], stop_event=job.stop_event)
                ended.append(0)
            except BaseException as exc:  # noqa: BLE001 - raised again in the supervising thread
                ended.append(exc)

        threading.Thread(target=train, name=f"byol-train-{job.id}", daemon=True).start()
        return lambda: ended[0] if ended else None

    def _start_worker(self, job: Job) -> Callable[[], int | None]:
        """``python -m byol_core.lab.worker`` for the job's run; its output goes to the run's worker.log."""
        run = job.run
        run.clear_stop_request()
        env = dict(os.environ)
        # The worker must import this very byol_core, wherever the host was started from.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        command = [sys.executable, "-m", "byol_core.lab.worker", str(self.store.root), run.id,
                   "--parent-pid", str(os.getpid())]
        if self.worker_threads:
            command += ["--threads", str(self.worker_threads)]
        with open(run.worker_log_path, "ab") as log:
            job.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        _lower_priority(job.process.pid, WORKER_NICENESS)
        return job.process.poll

    def _follow(self, job: Job, poll: _Poll, follower: _MetricsFollower) -> None:
        """Follow the training until it ends: a worker's metrics, and stop requests either way."""
        run = job.run
        while True:
            ended = poll()
            if job.process is not None and job.stop_event.is_set() and not run.stop_requested():
                run.request_stop()  # the worker checks for it every 0.25 s
            elif job.process is None and run.stop_requested():
                job.stop_event.set()  # asked through the run folder (another manager's Stop)
            for event in follower.new_events() if job.process is not None else ():
                job.observe(event)  # a thread's job observes its events as they happen
            if ended is not None:
                break
            if job.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    job.process.wait(FOLLOW_SECONDS)
            else:
                time.sleep(min(FOLLOW_SECONDS, 0.1))
        run.clear_stop_request()
        if isinstance(ended, BaseException):
            raise ended
        if ended != 0 and run.read_status().get("state") not in ("failed", "finished", "stopped"):
            # A hard crash (killed, out of memory, segfault) that could not write its own status.
            tail = _tail(run.worker_log_path) or "no output"
            run.set_status("failed", error=f"the worker process exited with code {ended}: {tail}")

    # -- controlling and reading
    def stop(self, job_id: str) -> None:
        """Ask a job to stop; it saves a checkpoint and ends as 'stopped' (resumable).

        A job of another manager is asked through its run folder (``stop.request``), which its trainer watches.
        """
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None and job.active:
            job.stop_event.set()  # a worker's supervising thread passes it on as stop.request
        elif (other := self._elsewhere_job(job_id)) is not None:
            other.run.request_stop()

    def forget(self, job_id: str) -> None:
        """Drop an ended job's card (its run was deleted); an active job is kept."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and not job.active:
                del self._jobs[job_id]

    def get(self, job_id: str) -> Job | None:
        """This manager's job, else another manager's while it is queued or running (read from the folder)."""
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None else self._elsewhere_job(job_id)

    def jobs(self) -> list[Job]:
        """Jobs of this manager, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def active_jobs(self) -> list[Job]:
        """Every queued or running job on the runs folder: this manager's, and other managers' read from it."""
        with self._lock:
            mine = [j for j in self._jobs.values() if j.active]
        return sorted(mine + self._elsewhere(), key=lambda j: j.created, reverse=True)

    def _elsewhere(self) -> list[Job]:
        """Queued and running jobs of other managers and processes, read from the runs folder."""
        with self._lock:
            mine = {j.id for j in self._jobs.values() if j.active}
        views = (_job_of_run(a) for a in active_runs(self.store) if a.run.id not in mine)
        return [v for v in views if v is not None]

    def _elsewhere_job(self, job_id: str) -> Job | None:
        return next((j for j in self._elsewhere() if j.id == job_id), None)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(f"no job {job_id!r} in this manager.")
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


def _job_of_run(active: ActiveRun) -> Job | None:
    """A card's view of a job another manager runs: its stage, state and latest progress from the run folder."""
    stage = stage_of_run(active.run)
    if stage is None:
        return None
    status = active.status
    created = status.get("created") if isinstance(status.get("created"), (int, float)) else time.time()
    return Job(id=active.run.id, stage=stage, label=read_annotations(active.run).name or get_stage(stage).short_title,
               run=active.run, key="", state=status["state"], created=float(created), elsewhere=True,
               last_event=checked_event({k: status[k] for k in PROGRESS_FIELDS if k in status}))


def _lower_priority(pid: int, niceness: int) -> None:
    """Make process ``pid`` ``niceness`` steps nicer than this one, where the OS has priorities.

    Set right after the spawn, not by the worker itself: Linux keeps a niceness per thread, inherited when a thread
    is made, so this reaches the worker before it has any (torch's OpenMP pool), and its ~5 s import yields too.
    """
    if not hasattr(os, "setpriority"):
        return
    with contextlib.suppress(OSError):  # the worker exited at once (its exit code tells why), or no permission
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness))


@contextlib.contextmanager
def _lock_or_busy(path: Path, timeout: float) -> Iterator[None]:
    try:
        with exclusive_lock(path, timeout=timeout):
            yield
    except TimeoutError as exc:
        raise RunBusyError(f"{exc} (another dashboard or command is starting a job there)") from None


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
