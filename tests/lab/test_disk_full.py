"""A full disk stops a run in one line naming the folder and its free space; the run stays readable and resumable."""

import errno
import os
import shutil
import subprocess

import pytest
import torch

from byol_core.cli import main
from byol_core.lab import run_store

TRAIN = ["--preset", "tiny", "--no-progress", "--set", "runtime.checkpoint_every_epochs=1", "--set",
         "byol.optim.epochs=4", "--set", "runtime.log_every=1"]


def _no_space(*_args, **_kwargs):
    """What torch.save raises when the disk fills under it: its own RuntimeError, the OSError only as context."""
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None


def _fail_once(real, when):
    calls = []

    def patched(*args, **kwargs):
        calls.append(1)
        if when(len(calls), *args):
            _no_space()
        return real(*args, **kwargs)

    return patched


def _assert_stopped_in_one_line(store, err: str):
    [run] = store.list()
    assert err.startswith("error: no space left on the disk holding ") and err.count("\n") == 1, err
    assert str(run.path) in err and " free)" in err and f"resume {run.id}" in err, err
    assert "Traceback" not in err and "inline_container" not in err
    status = run.read_status()  # status.json is still whole and says what happened
    assert status["state"] == "stopped" and "no space left" in status["error"]
    assert not list(run.path.glob(".*.tmp")) and not run.space_reserve_path.exists()
    return run


@pytest.mark.parametrize("where", ["checkpoint", "metrics", "status"])
def test_a_full_disk_stops_the_run_in_one_line_and_it_resumes(store, capsys, monkeypatch, where):
    if where == "checkpoint":  # the second epoch's checkpoint: the first one stays to resume from
        monkeypatch.setattr(torch, "save", _fail_once(torch.save, lambda n, *_: n == 2))
    elif where == "metrics":  # an event line in the middle of training
        monkeypatch.setattr(run_store.Run, "log", _fail_once(run_store.Run.log, lambda n, *_: n == 9))
    else:  # a progress write of status.json while running
        monkeypatch.setattr(run_store, "atomic_write_json", _fail_once(
            run_store.atomic_write_json, lambda n, path, *_: path.name == "status.json" and n == 6))
    assert main(["pretrain", "--runs-dir", str(store.root), *TRAIN]) == 2
    run = _assert_stopped_in_one_line(store, capsys.readouterr().err)
    assert main(["runs", "--runs-dir", str(store.root)]) == 0
    assert f"{run.id}" in (out := capsys.readouterr().out) and "stopped" in out, out
    monkeypatch.undo()  # space freed
    assert main(["resume", run.id, "--runs-dir", str(store.root), "--no-progress"]) == 0
    status = run.read_status()
    assert status["state"] == "finished" and not status.get("error")
    steps = [e["step"] for e in run.read_metrics() if e.get("kind") == "step"]
    assert steps == list(range(1, status["results"]["total_steps"] + 1))


def test_the_worker_says_a_full_disk_in_one_line(store, capsys, monkeypatch):
    from byol_core.lab import runner, worker
    from byol_core.lab.plans import plan
    from byol_core.presets import get_preset

    run = runner.create(store, plan("byol", get_preset("tiny")))
    monkeypatch.setattr(torch, "save", _no_space)
    assert worker.main([str(store.root), run.id]) == 1
    err = capsys.readouterr().err
    assert err.startswith("byol worker: no space left on the disk holding") and err.count("\n") == 1, err
    assert run.read_status()["state"] == "stopped"


@pytest.fixture()
def small_disk(tmp_path):
    """A 4 MB tmpfs (needs root; skipped where mounting is not permitted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=False, capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True)


def _fill(disk, leave: int):
    """Fill ``disk`` so that about ``leave`` bytes stay free; returns the filler file."""
    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    with open(filler, "wb") as fh:
        fh.write(bytes(max(shutil.disk_usage(disk).free - leave, 0)))
    return filler


def test_a_really_full_disk(small_disk, tmp_path, capsys):
    runs = small_disk / "runs"
    data_root = ["--set", f"data.root={tmp_path / 'data'}"]
    filler = _fill(small_disk, 4096)  # 4 KB free: not even the run folder's status fits
    assert main(["pretrain", "--runs-dir", str(runs), *TRAIN, *data_root]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no space left on the disk holding {runs} (") and err.count("\n") == 1, err
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    assert "unknown" not in capsys.readouterr().out  # no half-made run folder

    filler = _fill(small_disk, 1000 * 1024)  # room for one checkpoint of the tiny preset (~600 KB), not two
    assert main(["pretrain", "--runs-dir", str(runs), *TRAIN, *data_root]) == 2
    store = run_store.RunStore(runs)
    run = _assert_stopped_in_one_line(store, capsys.readouterr().err)
    assert run.load_checkpoint()["step"] > 0  # the work up to the last checkpoint is kept
    filler.unlink()
    assert main(["resume", run.id, "--runs-dir", str(runs), "--no-progress"]) == 0
    assert run.read_status()["state"] == "finished"
