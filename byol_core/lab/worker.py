"""A run carried out in its own process: ``python -m byol_core.lab.worker RUNS_DIR RUN_ID``.

The dashboard's :class:`~byol_core.lab.jobs.JobManager` starts one of these per job so that training
never shares an interpreter (and its GIL) with the Streamlit server: a page redraw that builds
charts for 100 ms would otherwise stall every training step waiting for the lock. The run folder
is the only channel. The worker reads the config from it and writes metrics, status, checkpoints
and the encoder into it. It stops cleanly, with a checkpoint, when ``stop.request`` appears in the
folder, on SIGTERM or SIGINT, or when the process that started it goes away.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence

import torch

from ..files import DiskFullError
from . import runner
from .run_store import Run, RunStore

POLL_SECONDS = 0.25


def watch_for_stop(run: Run, stop: threading.Event, parent_pid: int | None,
                   poll_s: float = POLL_SECONDS) -> threading.Thread:
    """A daemon thread that sets ``stop`` on a stop request or when the parent process is gone."""

    def watch() -> None:
        while not stop.wait(poll_s):
            # A parent that died leaves us adopted by another process: our parent pid changes.
            if run.stop_requested() or (parent_pid is not None and os.getppid() != parent_pid):
                stop.set()

    thread = threading.Thread(target=watch, name=f"byol-stop-watch-{run.id}", daemon=True)
    thread.start()
    return thread


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m byol_core.lab.worker", description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", help="the run store's root folder")
    parser.add_argument("run_id", help="the run to carry out (created beforehand, with its config)")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="stop (with a checkpoint) when this process is no longer our parent")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads unless the run's config sets runtime.num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)  # a config's runtime.num_threads still wins (prepare_runtime)

    store = RunStore(args.runs_dir)
    try:
        run = store.get(args.run_id)
    except FileNotFoundError as exc:
        print(f"byol worker: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    watch_for_stop(run, stop, args.parent_pid)
    try:
        runner.execute(store, run, stop_event=stop)
    except DiskFullError as exc:  # the run is 'stopped' with this line in status.json; nothing to debug
        with contextlib.suppress(OSError):  # worker.log is on the same full disk
            print(f"byol worker: {exc}", file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 - runner already wrote 'failed' and the reason into status.json
        traceback.print_exc()  # into worker.log, for whoever debugs it
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
