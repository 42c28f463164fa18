"""Process-wide objects and per-session choices shared by the dashboard's pages.

Process-wide (``st.cache_resource``): the run store, the :class:`~byol_core.lab.jobs.JobManager` that runs
training jobs in background worker processes, and the UMAP :class:`~byol_core.analysis.embeddings.KeyedFutures` of UMAP layouts. Per
session (``st.session_state``): the Data page's :class:`~byol_core.lab.choices.DataChoice` (data set, view
size and the views the person changed), which every page reads and none copies. Nothing here learns anything; it only wires
``byol_core`` objects to the UI.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

import streamlit as st

from byol_core.analysis.embeddings import KeyedFutures
from byol_core.config import AugmentConfig, ConfigError, DataConfig
from byol_core.data import DataError, DataSplits, Progress, load_data
from byol_core.lab.choices import DataChoice
from byol_core.lab.jobs import JobManager
from byol_core.lab.run_store import RunStore
from byol_core.presets import preset_for

RUNS_DIR_ENV = "BYOL_RUNS_DIR"
MAX_JOBS_ENV = "BYOL_MAX_JOBS"
WORKER_THREADS_ENV = "BYOL_WORKER_THREADS"
DEFAULT_PRESET_ENV = "BYOL_DEFAULT_PRESET"  # one preset for every data set, e.g. "tiny" in tests

# Errors a person can cause (a bad path, a value out of range, a missing run): shown as st.error.
USER_ERRORS: tuple[type[BaseException], ...] = (DataError, ConfigError, ValueError, FileNotFoundError)

DATASET_LABELS = {
    "digits": "digits (built in, 8×8 handwritten digits)",
    "fashion-mnist": "fashion-mnist (28×28 clothing)",
    "cifar10": "cifar10 (32×32 photos)",
    "stl10": "stl10 (96×96 photos, large download)",
    "folder": "an image folder on this machine",
    "upload": "images I upload",
}

FIRST_PASS_MARK = "to decode into the cache"  # how the folder loader's plan of a first pass begins its message
CHOICE_KEY = "data_choice"  # the Data page's DataChoice: data set, view size, the views the person changed


# --------------------------------------------------------------------------- process-wide objects
def runs_dir() -> str:
    return os.environ.get(RUNS_DIR_ENV) or "runs"


def _positive_int_env(name: str, default: int | None) -> int | None:
    try:
        return max(1, int(os.environ[name]))
    except (KeyError, ValueError):
        return default


def max_jobs() -> int:
    return _positive_int_env(MAX_JOBS_ENV, 1)


def worker_threads() -> int | None:
    """Torch threads per training job (None: torch's default, all cores)."""
    return _positive_int_env(WORKER_THREADS_ENV, None)


def _release_manager(manager: JobManager) -> None:
    manager.shutdown(timeout=30.0)


_MANAGERS: list[JobManager] = []  # every manager this process made: stop_all_jobs stops their jobs


@st.cache_resource(show_spinner=False, on_release=_release_manager)
def _manager(root: str, max_concurrent: int, threads: int | None) -> JobManager:
    manager = JobManager(RunStore(root), max_concurrent=max_concurrent, worker_threads=threads)
    # On a clean exit (Ctrl-C, SIGTERM) jobs save a checkpoint and end as 'stopped', ready to resume;
    # after a hard kill their runs read 'interrupted', which the Train page can resume as well.
    atexit.register(manager.shutdown, SHUTDOWN_WAIT_S)
    _MANAGERS.append(manager)
    return manager


SHUTDOWN_WAIT_S = 20.0  # how long a clean exit waits for a job to save its checkpoint before killing its worker


def stop_all_jobs() -> None:
    """Stop every job of this process, each saving a checkpoint and ending 'stopped' (the server's exit: the
    server re-raises the signal after its own shutdown, and a process ended by a signal runs no atexit hook)."""
    for manager in _MANAGERS:
        manager.shutdown(SHUTDOWN_WAIT_S)


def get_manager() -> JobManager:
    """The process's JobManager (one per runs folder and job limit).

    The limit and the duplicate-job rule hold for the runs folder, across every dashboard and command on it: the
    manager reads both from the folder (:mod:`byol_core.lab.active_runs`), and lists the others' jobs too.
    """
    return _manager(runs_dir(), max_jobs(), worker_threads())


@st.cache_resource(show_spinner=False, on_release=lambda futures: futures.shutdown())
def get_projections() -> KeyedFutures:
    """The process's background UMAP projections, one future per cache key (two at a time)."""
    return KeyedFutures(max_workers=2, name="umap")


def start_umap_warmup() -> None:
    """Compile UMAP's numba code in the background once per process, so the first projection is quick."""
    from byol_core.analysis.embeddings import warm_up_umap  # looked up per call, so tests can replace it

    warm_up_umap()


# --------------------------------------------------------------------------- errors
@contextlib.contextmanager
def user_errors(prefix: str = "") -> Iterator[None]:
    """Show a person's mistake as an error box with its message instead of a traceback."""
    try:
        yield
    except USER_ERRORS as exc:
        st.error(f"{prefix}{exc}", icon=":material/error:")


# --------------------------------------------------------------------------- per-session choices
def start_preset(key: str, dataset: str) -> str:
    """The preset a page's preset select (widget ``key``) starts from on ``dataset``.

    The one tuned for the data set (:func:`byol_core.presets.preset_for`), unless BYOL_DEFAULT_PRESET names
    one for every data set (the tests' seconds-long "tiny"). A new data set drops the select's choice, so the
    page starts again from that data set's own preset; a choice for the same data set is kept.
    """
    if st.session_state.get(f"{key}_for") != dataset:
        st.session_state.pop(key, None)
        st.session_state[f"{key}_for"] = dataset
    return os.environ.get(DEFAULT_PRESET_ENV) or preset_for(dataset)


def get_choice() -> DataChoice:
    """The Data page's choice (data set, view size, the views the person changed): the one object pages read."""
    if CHOICE_KEY not in st.session_state:
        st.session_state[CHOICE_KEY] = DataChoice()
    return st.session_state[CHOICE_KEY]


def set_choice(choice: DataChoice) -> None:
    st.session_state[CHOICE_KEY] = choice


def get_data_cfg() -> DataConfig:
    return get_choice().data


def get_data_source() -> str:
    """What the Data page's select shows for the current data set ('upload' for uploaded images)."""
    return get_choice().source


def set_data_cfg(cfg: DataConfig, source: str | None = None) -> None:
    """A new data set: the person's view changes stay, the view size becomes the data set's own."""
    set_choice(get_choice().with_data(cfg, source))


def get_augment_cfg() -> AugmentConfig:
    """The views the Data page shows: its data set's tuned views with the person's changes (read, never stored)."""
    return get_choice().augment


def set_augment_cfg(cfg: AugmentConfig) -> None:
    set_choice(get_choice().with_augment(cfg))


# --------------------------------------------------------------------------- data
# A page's reruns (a filter, a lasso, a slider) ask for the same data many times a minute. byol_core's cache
# answers at once for a built-in set, but for an image folder each ask lists the folder again to notice changed
# files: about a second per 100,000 files, most of a filter's time on the Embeddings page at that size. Splits
# asked for again within SPLITS_REUSE_S of the last ask are reused, for at most SPLITS_MAX_AGE_S after their
# listing (a person clicking through filters lists the folder every two minutes, not every click); then the
# loader looks at the disk again. Every job lists afresh in its own process.
SPLITS_REUSE_S = 15.0
SPLITS_MAX_AGE_S = 120.0


class RecentSplits:
    """The last few ``load_data`` results by config, reused while asked for again within :data:`SPLITS_REUSE_S`
    seconds and for at most :data:`SPLITS_MAX_AGE_S` after they were loaded."""

    def __init__(self, load: Callable[..., DataSplits], clock: Callable[[], float] = time.monotonic,
                 size: int = 4) -> None:
        self._load, self._clock, self._size = load, clock, size
        self._items: dict[DataConfig, tuple[float, float, DataSplits]] = {}  # loaded at, last asked, splits
        self._lock = threading.Lock()

    def get(self, cfg: DataConfig, progress: Progress | None = None) -> DataSplits:
        now = self._clock()
        with self._lock:
            hit = self._items.get(cfg)
        # A folder deleted meanwhile (an upload removed) is never answered from memory.
        gone = cfg.folder is not None and not os.path.isdir(os.path.expanduser(cfg.folder))
        if hit is not None and now - hit[1] < SPLITS_REUSE_S and now - hit[0] < SPLITS_MAX_AGE_S and not gone:
            splits = hit[2]
            with self._lock:
                self._items[cfg] = (hit[0], now, splits)
            return splits.handed_out()
        splits = self._load(cfg, progress=progress)
        with self._lock:
            self._items.pop(cfg, None)
            self._items[cfg] = (now, now, splits)
            while len(self._items) > self._size:
                self._items.pop(next(iter(self._items)))
        return splits


_recent_splits = RecentSplits(load_data)


def load_splits(cfg: DataConfig, progress: Progress | None = None) -> DataSplits:
    """``load_data``, reused for a few seconds per config (:class:`RecentSplits`)."""
    return _recent_splits.get(cfg, progress)


def load_with_progress(cfg: DataConfig) -> DataSplits:
    """A new data set, loaded with a progress bar; an image folder's first pass into the disk cache also leaves
    the loader's plan (images to decode, disk, time) as a caption. The loader lists the folder once, for both."""
    first_pass = st.empty()
    bar = st.progress(0.0, text=f"Loading {cfg.name}…")

    def show(message: str, fraction: float) -> None:
        if FIRST_PASS_MARK in message:
            first_pass.caption(f"First pass: {message}.")
        bar.progress(min(max(fraction, 0.0), 1.0), text=message)

    try:
        return load_splits(cfg, progress=show)
    finally:
        bar.empty()
