"""The runs folder's summaries for the pages, each run read again only when its files changed.

The Train, Compare and Embeddings pages list the runs folder on every rerun, and reading and checking a run's
config.json, status.json and annotations costs about 10 ms (0.5-0.8 s for a 55-run folder on 2 busy cores),
though between two reruns almost nothing changed: a training job rewrites one status.json. So a run's
:class:`~byol_core.lab.summary.RunSummary` is kept with the stamps of the files it was read from (inode, size,
modification time: every write to them replaces the file or grows it) and reused while they are the same. A queued
or running run is always read again: whether its trainer still holds it is in a lock, not in a file.
"""

from __future__ import annotations

import threading
from pathlib import Path

from byol_core.lab.active_runs import ACTIVE, file_stamp
from byol_core.lab.run_store import Run, RunStore
from byol_core.lab.summary import RunSummary, summarize_run

_Stamp = tuple[tuple[int, int, int] | None, ...]
_LOCK = threading.Lock()
_KEPT: dict[Path, dict[Path, tuple[_Stamp, RunSummary]]] = {}  # runs folder -> run folder -> (stamp, summary)


def _stamp(run: Run, store: RunStore, source: str | None) -> _Stamp:
    """What a summary of ``run`` is read from: its own files, and the config of its source run (for its method)."""
    own = tuple(file_stamp(p) for p in (run.config_path, run.status_path, run.annotations_path, run.encoder_path))
    source_run = store.find(source) if source else None
    return (*own, file_stamp(source_run.config_path) if source_run is not None else None)


def list_summaries(store: RunStore) -> list[RunSummary]:
    """:func:`byol_core.lab.summary.list_summaries`, with the runs whose files are unchanged not read again."""
    with _LOCK:
        kept = dict(_KEPT.get(store.root.resolve(), {}))
    fresh: dict[Path, tuple[_Stamp, RunSummary]] = {}
    for run in store.list():
        old = kept.get(run.path)
        if old is not None and old[1].state not in ACTIVE and _stamp(run, store, old[1].source_run) == old[0]:
            fresh[run.path] = old
            continue
        before = _stamp(run, store, None)  # taken before the read: a write during it shows next time
        summary = summarize_run(run, store)
        source = _stamp(run, store, summary.source_run)[-1]
        fresh[run.path] = ((*before[:-1], source), summary)
    with _LOCK:
        _KEPT[store.root.resolve()] = fresh  # deleted runs drop out
    return [summary for _, summary in fresh.values()]
