"""A run's worker process that kills itself (SIGKILL: no handler, no cleanup) at a chosen point.

``python -m tests.lab.crash_worker RUNS_DIR RUN_ID POINT``, or :func:`work` in a forked process. The
points fall on every side of a checkpoint and an epoch event, so a test can kill a run at each of them
in turn and check what a resume makes of it.
"""

import os
import signal
import sys

import torch

from byol_core import files
from byol_core.lab import run_store, worker

POINTS = ("none", "after_start", "mid_epoch", "after_epoch_event", "mid_checkpoint", "after_checkpoint")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    """Patch this process's run store to die at ``point`` (the first time it is reached)."""
    run_cls = run_store.Run
    if point == "after_checkpoint":  # checkpoint.pt replaced, nothing after it done
        save = run_cls.save_checkpoint
        run_cls.save_checkpoint = lambda self, state: (save(self, state), _die())
    elif point == "mid_checkpoint":  # the checkpoint written into its temporary copy, not yet moved into place
        run_cls.save_checkpoint = lambda self, state: files.atomic_write(
            self.checkpoint_path, lambda fh: (torch.save(state, fh), fh.flush(), _die()))
    elif point != "none":
        log, steps = run_cls.log, []

        def dying_log(self, event):
            log(self, event)
            kind = event.get("kind")
            steps.extend([event] if kind == "step" else [])
            if (point == "after_start" and kind == "start") or (point == "after_epoch_event" and kind == "epoch") \
                    or (point == "mid_epoch" and len(steps) >= 2 and event.get("epoch", 0) % 1):
                _die()

        run_cls.log = dying_log


def work(runs_dir: str, run_id: str, point: str) -> int:
    arm(point)
    return worker.main([runs_dir, run_id, "--threads", "1"])


if __name__ == "__main__":
    sys.exit(work(*sys.argv[1:4]))
