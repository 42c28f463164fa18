"""Trust under faults: no double training, no lost or doubled steps, no tracebacks for bad input."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from byol_core.cli import main
from byol_core.config import with_overrides
from byol_core.lab import runner
from byol_core.lab.plans import plan
from byol_core.lab.run_store import RunStore
from byol_core.presets import get_preset

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "byol_core", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_until(condition, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.1)


def _steps(run) -> list[int]:
    return [e["step"] for e in run.read_metrics() if e.get("kind") == "step"]


def _stopped_run(store: RunStore, overrides: dict, stop_at: int):
    stop = threading.Event()
    cfg = with_overrides(get_preset("tiny"), {"runtime.log_every": 1, **overrides})
    run = runner.start(plan("byol", cfg), store, stop_event=stop,
                       callbacks=[lambda e: e.get("kind") == "step" and e["step"] >= stop_at and stop.set()])
    assert run.read_status()["state"] == "stopped"
    return run


def test_two_resumes_started_together_train_the_run_once(store):
    run = _stopped_run(store, {"byol.optim.epochs": 6}, stop_at=2)
    procs = [_cli("resume", run.id, "--runs-dir", str(store.root), "--no-progress") for _ in range(2)]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    loser = next(err for code, err in outcomes if code == 2)
    assert "already being trained" in loser or "still running" in loser or "already finished" in loser, loser
    assert "Traceback" not in loser
    status = run.read_status()
    assert status["state"] == "finished" and not status.get("error")
    steps = _steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == status["results"]["total_steps"]


def test_a_run_killed_hard_resumes_with_every_step_logged_once(store):
    cfg_args = ["--preset", "tiny", "--runs-dir", str(store.root), "--no-progress", "--set", "byol.optim.epochs=40",
                "--set", "runtime.log_every=1"]
    proc = _cli("pretrain", *cfg_args)
    _wait_until(lambda: store.list() and store.list()[0].checkpoint_path.exists()
                and len(_steps(store.list()[0])) > store.list()[0].load_checkpoint()["step"])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    run = store.list()[0]
    assert run.read_status()["state"] == "interrupted"
    checkpoint_step = run.load_checkpoint()["step"]
    assert main(["resume", run.id, "--runs-dir", str(store.root), "--no-progress"]) == 0
    steps = _steps(run)
    assert steps == list(range(1, run.read_status()["results"]["total_steps"] + 1))
    resume = next(e for e in run.read_metrics() if e.get("kind") == "resume")
    assert resume["step"] == checkpoint_step and "resuming from the checkpoint" in resume["message"]


def test_resume_without_a_checkpoint_says_it_starts_again(store, capsys):
    run = _stopped_run(store, {"byol.optim.epochs": 2}, stop_at=2)
    run.checkpoint_path.unlink()
    assert main(["resume", run.id, "--runs-dir", str(store.root), "--no-progress"]) == 0
    assert "training starts again from step 0" in capsys.readouterr().err
    steps = _steps(run)
    assert steps == sorted(set(steps)) and steps[0] == 1


@pytest.mark.parametrize("damage", [b"\x00\x01 random bytes" * 40, None], ids=["random-bytes", "truncated"])
def test_resume_of_a_damaged_checkpoint_is_one_clear_line(store, capsys, damage):
    run = _stopped_run(store, {"byol.optim.epochs": 2}, stop_at=2)
    good = run.checkpoint_path.read_bytes()
    run.checkpoint_path.write_bytes(damage if damage is not None else good[: len(good) // 2])
    assert main(["resume", run.id, "--runs-dir", str(store.root), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: run {run.id}: checkpoint.pt is damaged") and err.count("\n") == 1, err
    assert "delete it to train this run again from step 0" in err and "weights_only" not in err
    assert run.read_status()["state"] == "stopped"  # nothing about the run was changed


def test_resume_takes_safe_overrides_and_refuses_the_others(store, capsys):
    run = _stopped_run(store, {"byol.optim.epochs": 2}, stop_at=2)
    assert main(["resume", run.id, "--runs-dir", str(store.root), "--set", "model.width=16"]) == 2
    assert "cannot change on resume" in capsys.readouterr().err
    assert main(["resume", run.id, "--runs-dir", str(store.root), "--no-progress",
                 "--set", "byol.optim.lr=1e-4"]) == 0
    assert run.read_config()[0].byol.optim.lr == 1e-4
    assert run.read_status()["state"] == "finished"


def test_damaged_run_files_never_hide_the_other_runs(store, capsys):
    runs = [store.create("byol", get_preset("tiny"), {"mode": "byol"}, stage="byol") for _ in range(3)]
    runs[0].status_path.write_text("null")
    runs[1].status_path.write_text("[]")
    runs[2].config_path.write_text("[]")
    good = runner.start(plan("knn", get_preset("tiny")), store)
    good.log({"kind": "step", "step": 1})
    with open(good.metrics_path, "a") as fh:
        fh.write("42\n")
    assert main(["runs", "--runs-dir", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert out.count("damaged: ") == 3 and "status.json holds NoneType" in out and "config.json holds list" in out
    assert f"{good.id}" in out and "kNN accuracy=" in out


def test_bad_input_is_refused_before_a_run_folder_exists(store, capsys, tmp_path):
    runs = str(store.root)
    outside = tmp_path / "outside"
    for args, message in [
        (["pretrain", "--set", "model.backbone=resnet19"], "not a torchvision model"),
        (["pretrain", "--set", "model.hidden_layer=nope"], "is not a module"),
        (["pretrain", "--set", "runtime.device=cuda"], "no CUDA GPU"),
        (["evaluate", "--from", "missing-run"], "no run 'missing-run'"),
        (["supervised", "--mode", "finetune"], "needs a pretraining run"),
        (["evaluate", "--from", f"../{outside.name}/x"], "is not a run id"),
    ]:
        assert main([*args, "--preset", "tiny", "--runs-dir", runs, "--no-progress"]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
    assert store.list() == []
    assert main(["resume", "../outside/x", "--runs-dir", runs]) == 2
    assert "is not a run id" in capsys.readouterr().err


def test_the_readme_folder_command_works_in_either_order(tmp_path, capsys):
    for sets in (["data.name=folder", f"data.folder={tmp_path}"], [f"data.folder={tmp_path}", "data.name=folder"]):
        assert main(["config", "--preset", "tiny", *[a for s in sets for a in ("--set", s)]]) == 0
        assert json.loads(capsys.readouterr().out)["data"]["folder"] == str(tmp_path)


def test_a_config_file_missing_fields_says_which_were_defaulted(tmp_path, capsys):
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"name": "partial", "byol": {"tau_base": 0.98}}))
    assert main(["config", "--config", str(path)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["byol"]["tau_base"] == 0.98
    assert f"note: {path} does not set seed, data" in captured.err and "byol.optim" in captured.err


def test_skipped_images_are_listed_by_the_cli_and_in_the_run_folder(store, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "imgs"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (12, 12), (60 * i, 100 if cls == "a" else 0, 0)).save(folder / cls / f"{i}.png")
    (folder / "a" / "broken.png").write_bytes(b"not an image")
    assert main(["evaluate", "--preset", "tiny", "--runs-dir", str(store.root), "--no-progress",
                 "--set", "data.name=folder", "--set", f"data.folder={folder}", "--set", "data.folder_image_size=16",
                 "--set", f"data.root={tmp_path / 'root'}"]) == 0
    err = capsys.readouterr().err
    assert "1 file(s) skipped" in err and "broken.png" in err
    run = store.list()[0]
    assert "broken.png" in run.skipped_files_path.read_text()


def test_an_experiment_that_fails_is_not_left_running(store, tmp_path, capsys):
    broken = tmp_path / "broken-images"  # an image by its name only: found out when the experiment reads it
    broken.mkdir()
    (broken / "0.png").write_bytes(b"not a png")
    assert main(["experiment", "--preset", "tiny", "--runs-dir", str(store.root), "--no-progress",
                 "--set", "data.name=folder", "--set", f"data.folder={broken}"]) == 2
    [run] = store.list()
    status = run.read_status()
    assert status["state"] == "failed" and "broken-images" in status["error"]


def test_a_folder_with_too_many_files_is_refused_quickly_with_the_reason(tmp_path):
    from byol_core.config import DataConfig
    from byol_core.data import DataError, load_data

    for i in range(12):
        (tmp_path / f"{i}.png").write_bytes(b"x")
        (tmp_path / f"notes-{i}.txt").write_text("x")
    with pytest.raises(DataError, match="holds more than 10 images; point data.folder at a smaller folder"):
        load_data(DataConfig(name="folder", folder=str(tmp_path), max_folder_images=10))
    for i in range(300):
        (tmp_path / "deep" / str(i)).mkdir(parents=True)
    with pytest.raises(DataError, match="most of them not images"):
        load_data(DataConfig(name="folder", folder=str(tmp_path / "deep"), max_folder_images=5))


class _Upload:
    def __init__(self, name: str, data: bytes) -> None:
        self.name, self._data, self.size = name, data, len(data)

    def getvalue(self) -> bytes:
        return self._data


def test_uploads_are_capped_named_safely_and_cleaned_up(tmp_path):
    from byol_core.data import uploads
    from byol_core.lab.run_store import RunStore
    from byol_core.lab.uploads_in_use import remove_unused_uploads

    long_name = "x" * 300 + ".PNG"
    folder = uploads.save_uploads([_Upload(long_name, b"png-bytes")], root=str(tmp_path)).folder
    [saved] = [p for p in folder.iterdir() if not p.name.startswith(".")]  # beside its hidden manifest
    assert saved.suffix == ".png" and len(saved.name) <= uploads.MAX_NAME_CHARS + 4
    with pytest.raises(ValueError, match="uploads are limited to"):
        uploads.save_uploads([_Upload("a.png", b"0123456789abc")], root=str(tmp_path), max_bytes=10)
    for i in range(uploads.KEEP_UNUSED_UPLOADS + 3):  # no run uses them: the lab cleans up all but the newest
        time.sleep(0.01)
        uploads.save_uploads([_Upload(f"{i}.png", bytes([i]))], root=str(tmp_path), max_bytes=2**20)
        remove_unused_uploads(RunStore(tmp_path / "runs"), tmp_path)
    assert len(uploads.list_uploads(tmp_path)) == uploads.KEEP_UNUSED_UPLOADS
