"""kill -9 again and again, at every point around checkpoints: every event once, the weights of a run never killed."""

import multiprocessing
import os
import signal
import subprocess
import sys

import pytest
import torch

from byol_core.config import with_overrides
from byol_core.lab import runner
from byol_core.lab.plans import plan
from byol_core.presets import get_preset
from tests.lab import crash_worker
from tests.lab.test_faults import ROOT, _wait_until

EPOCHS = 16  # 4 steps an epoch on the tiny preset: 64 steps, a checkpoint and a kNN score every epoch
# Where each worker process dies: right after a checkpoint (where epoch events used to be lost), while one is
# written (leaving its temporary copy), right after an epoch event, mid-epoch, at start; "external": a real
# `python -m byol_core.lab.worker` killed from here as soon as checkpoint.pt changes.
KILLS = ["after_checkpoint", "after_start", "after_checkpoint", "mid_checkpoint", "after_epoch_event",
         "after_checkpoint", "external", "mid_epoch", "after_checkpoint", "mid_checkpoint", "after_checkpoint",
         "after_epoch_event", "external", "after_checkpoint"]
NOISE = ("img_per_s",)  # the only field that may differ from an uninterrupted run's


def _forked(ctx, runs_dir, run_id: str, point: str) -> int:
    """The run's worker in a process forked from one that has already imported torch (starts in a moment)."""
    proc = ctx.Process(target=crash_worker.work, args=(str(runs_dir), run_id, point))
    proc.start()
    proc.join(600)
    return proc.exitcode


def _stamp(path):
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _killed_when_the_checkpoint_changes(runs_dir, run) -> int:
    before = _stamp(run.checkpoint_path)
    proc = subprocess.Popen([sys.executable, "-m", "byol_core.lab.worker", str(runs_dir), run.id, "--threads", "1"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        _wait_until(lambda: _stamp(run.checkpoint_path) != before or proc.poll() is not None, timeout=600)
        proc.send_signal(signal.SIGKILL)
    finally:
        code = proc.wait(60)
    return code


def _events(run) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in NOISE} for e in run.read_metrics()
            if e.get("kind") in ("step", "epoch")]


@pytest.mark.slow
def test_kill_9_around_checkpoints_loses_and_doubles_no_event(store):
    cfg = with_overrides(get_preset("tiny"), {"byol.optim.epochs": EPOCHS, "runtime.checkpoint_every_epochs": 1,
                                              "runtime.log_every": 1, "byol.knn_every_epochs": 1})
    reference, killed = (runner.create(store, plan("byol", cfg)) for _ in range(2))
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.lab.crash_worker"])
    assert _forked(ctx, store.root, reference.id, "none") == 0

    outcomes = []
    for point in KILLS:
        if point == "external":
            code = _killed_when_the_checkpoint_changes(store.root, killed)
        else:
            code = _forked(ctx, store.root, killed.id, point)
        outcomes.append((point, code))
        assert killed.read_status()["state"] == "interrupted", outcomes
    # Every scheduled kill struck (an external one only misses if the run outpaced us and finished).
    assert all(code == -signal.SIGKILL for point, code in outcomes if point != "external"), outcomes
    assert sum(code == -signal.SIGKILL for _point, code in outcomes) >= len(KILLS) - 2, outcomes
    assert _forked(ctx, store.root, killed.id, "none") == 0

    status = killed.read_status()
    assert status["state"] == "finished", status
    total = status["results"]["total_steps"]
    events = _events(killed)
    assert [e["step"] for e in events if e["kind"] == "step"] == list(range(1, total + 1))
    assert [e["epoch"] for e in events if e["kind"] == "epoch"] == list(range(1, EPOCHS + 1))
    assert all("val_knn_accuracy" in e for e in events if e["kind"] == "epoch")
    assert events == _events(reference)  # same losses, same kNN scores, in the same order
    for ours, theirs in ((killed.load_checkpoint()["model"], reference.load_checkpoint()["model"]),
                         (killed.load_encoder(), reference.load_encoder())):
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), \
            "the killed run's weights differ from the uninterrupted run's"
    assert not list(killed.path.glob(".*.tmp")) and not killed.space_reserve_path.exists()
