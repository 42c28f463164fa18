"""The jobs on one runs folder, read from the folder itself: what every job manager on it shares.

Two dashboards (or a dashboard and a script) on one runs folder share no memory, only the folder. So the
job limit counts the runs being trained there (:func:`active_runs`: queued or running, and their trainer
holds the run's lock), whoever started them, and the duplicate-job rule compares a job with the jobs
that made the folder's active runs (:func:`key_of_run`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, NamedTuple

from .plans import JobSpec, stage_options_of
from .run_store import DamagedRunError, Run, RunStore
from .stages import get_stage, stage_of_record

ACTIVE = ("queued", "running")
# What a trainer writes into status.json as it ends. Its process may take seconds more to exit (a checkpoint, torch's
# teardown), but for the person the job is over once the file says so.
ENDED = ("stopped", "finished", "failed")

# status.json stamps (inode, size, mtime) of runs last read as ended, per runs folder: such a run is not read again
# until its status.json is replaced (every write replaces it: a resume, or a trainer starting it again). Pages ask
# for the folder's active runs several times a rerun and every few seconds while a job trains; nearly all runs
# have long ended.
_ENDED_STAMPS: dict[Path, dict[Path, tuple[int, int, int]]] = {}
_STAMPS_LOCK = threading.Lock()


class ActiveRun(NamedTuple):
    """A run of the folder that some live process has queued or is training."""

    run: Run
    status: dict[str, Any]
    trained: bool  # its trainer holds the run's lock: it takes one of the folder's slots


def active_runs(store: RunStore, trained_only: bool = False) -> list[ActiveRun]:
    """The runs of ``store`` that live processes have queued or are training, whoever started them.

    The runs a study makes and trains (in the study's process, while it trains) are part of the study's job and
    are left out, so a sweep takes one slot. ``trained_only``: only those whose trainer holds the run's lock.
    """
    found: list[tuple[ActiveRun, bool]] = []  # (the run, whether it is a study)
    with _STAMPS_LOCK:
        ended_before = _ENDED_STAMPS.get(store.root, {})
    ended_now: dict[Path, tuple[int, int, int]] = {}
    for run in store.list():
        stamp = file_stamp(run.status_path)
        if stamp is not None and ended_before.get(run.path) == stamp:
            ended_now[run.path] = stamp  # ended when last read, and its status.json has not been written since
            continue
        if trained_only and not run.claimed():
            continue
        status = run.read_status()  # a run whose process is gone reads 'interrupted'
        if status.get("state") in ACTIVE:
            trained = status.get("state") == "running" or run.claimed()
            found.append((ActiveRun(run, status, trained), trained and _is_study(run)))
        elif status.get("state") in ENDED and stamp is not None:
            ended_now[run.path] = stamp
    with _STAMPS_LOCK:
        _ENDED_STAMPS[store.root] = ended_now  # deleted runs drop out
    # A study makes and trains its runs in its own process: the other active runs of that process are the study's.
    # (So jobs of a manager that trains in threads, beside a study of its own, are not told apart from it: that
    # manager is for tests and scripts; the dashboard's trains each job in a worker process of its own.)
    studies = {a.status.get("pid") for a, study in found if study}
    return [a for a, study in found if study or a.status.get("pid") not in studies]


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, modification time) of a file, None when it is missing: changes with every write to it."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def has_ended(run: Run) -> bool:
    """Whether the run's status.json says its trainer has ended it (stopped, finished or failed)."""
    return run.read_status().get("state") in ENDED


def stage_of_run(run: Run) -> str | None:
    """The run's stage (None for a config.json that cannot be read, or no known stage)."""
    try:
        return stage_of_record(run.read_record())
    except DamagedRunError:
        return None


def _is_study(run: Run) -> bool:
    stage = stage_of_run(run)
    return stage is not None and get_stage(stage).study


def key_of_run(run: Run) -> str | None:
    """The :attr:`JobSpec.key` of the job that made ``run`` (None when its config.json cannot be read)."""
    stage = stage_of_run(run)
    try:
        cfg, _kind, options = run.read_config()
    except DamagedRunError:
        return None
    if stage is None:
        return None
    source = options.get("from_run") if isinstance(options.get("from_run"), str) else None
    return JobSpec(stage, cfg, source_run=source, stage_options=stage_options_of(options)).key
