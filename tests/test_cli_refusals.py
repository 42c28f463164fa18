"""Bad input on the command line: one clear line, exit code 2, no traceback, and no run folder left behind."""

from __future__ import annotations

import json
import os

import pytest

from byol_core.cli import main
from byol_core.lab.annotations import annotate
from byol_core.lab.run_store import RunStore


def _refused(capsys, runs, argv: list[str], *words: str) -> str:
    """Run the CLI, and check it refused with one line naming ``words`` and made no run folder."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err
    assert not runs.exists() or not [p for p in runs.iterdir() if not p.name.startswith(".")], list(runs.iterdir())
    return err


def _pretrain(runs, *sets: str) -> list[str]:
    argv = ["pretrain", "--preset", "tiny", "--runs-dir", str(runs), "--no-progress"]
    for s in sets:
        argv += ["--set", s]
    return argv


@pytest.mark.parametrize("setting, word", [
    ("seed=18446744073709551616", "seed"),
    ("seed=-1", "seed"),
    ("data.split_seed=18446744073709551616", "split_seed"),
    ("runtime.device=meta", "runtime.device"),
    ("runtime.device=cuda:x", "runtime.device"),
    ("runtime.num_threads=100000", "num_threads"),
])
def test_out_of_range_settings_are_refused_before_a_run_folder(tmp_path, capsys, setting, word):
    runs = tmp_path / "runs"
    _refused(capsys, runs, _pretrain(runs, setting), word)


def test_a_study_whose_seeds_run_past_the_largest_seed_is_refused(tmp_path, capsys):
    runs = tmp_path / "runs"
    _refused(capsys, runs, ["sweep", "--preset", "tiny", "--runs-dir", str(runs), "--seeds", "3", "--set",
                            "seed=4294967294"], "seed")


def _folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    only_text = tmp_path / "notes"
    only_text.mkdir()
    (only_text / "readme.txt").write_text("no images here")
    return {"/proc": "system folder", "/sys/kernel": "system folder", "/dev": "system folder",
            str(tmp_path / "missing"): "does not exist", str(empty): "no images", str(fifo): "not a directory",
            str(only_text): "no images", str(tmp_path / ("a" * 300)): "File name too long"}


def test_bad_image_folders_are_refused_before_a_run_folder(tmp_path, capsys):
    runs = tmp_path / "runs"
    for folder, why in _folders(tmp_path).items():
        _refused(capsys, runs, _pretrain(runs, "data.name=folder", f"data.folder={folder}"), "data.folder", why)


def test_an_unreadable_image_folder_is_refused(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    if os.geteuid() == 0:  # root reads every folder: this one is made to look unreadable to it
        access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **k: os.fspath(p) != str(folder) and access(p, mode, **k))
    try:
        runs = tmp_path / "runs"
        _refused(capsys, runs, _pretrain(runs, "data.name=folder", f"data.folder={folder}"), "data.folder",
                 "cannot be read")
    finally:
        folder.chmod(0o755)


def test_a_deeply_nested_config_file_is_refused(tmp_path, capsys):
    runs = tmp_path / "runs"
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    _refused(capsys, runs, ["pretrain", "--config", str(deep), "--runs-dir", str(runs)], "nested")
    deep.write_text('{"name": ' + "[" * 200 + "]" * 200 + "}")  # deep enough to hurt a repr, not the parser
    _refused(capsys, runs, ["pretrain", "--config", str(deep), "--runs-dir", str(runs)], "nested")
    _refused(capsys, runs, _pretrain(runs, "name=" + "[" * 100_000 + "]" * 100_000), "nested")


def test_an_oversized_config_file_is_refused_without_reading_it(tmp_path, capsys):
    runs = tmp_path / "runs"
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"name": "x" * 2**21}))  # 2 MB: valid, and far more than any config
    _refused(capsys, runs, ["pretrain", "--config", str(big), "--runs-dir", str(runs)], "too large", "big.json")
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as fh:
        fh.truncate(100 * 2**20)  # 100 MB, sparse: refused from its size alone
    _refused(capsys, runs, ["config", "--config", str(huge)], "too large")


def test_run_ids_longer_than_a_file_name_are_refused(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    long_id = "a" * 300
    for argv in (["runs", "rename", long_id, "x"], ["resume", long_id], ["runs", "delete", long_id],
                 ["export", long_id], ["supervised", "--preset", "tiny", "--mode", "finetune", "--from", long_id]):
        err = _refused(capsys, runs, [*argv, "--runs-dir", str(runs)], "run id", "too long")
        assert long_id not in err  # the message stays short


ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b1m\u202eevil"


def test_run_names_with_terminal_escapes_are_printed_escaped(store: RunStore, capsys):
    from byol_core.config import ExperimentConfig

    run = store.create("byol", ExperimentConfig(name="plain"))
    annotate(run, note="fine")
    run.annotations_path.write_text(json.dumps({"name": ESCAPES, "note": ESCAPES}))
    assert main(["runs", "--runs-dir", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert run.id in out and "pwned" in out and "red" in out
    assert not any(c in out for c in "\x1b\x07\x9b\u202e"), repr(out)
    assert "\\x1b" in out  # shown, not hidden
    assert main(["runs", "rename", run.id, "\x1b[2Jx", "--runs-dir", str(store.root)]) == 0
    assert "\x1b" not in capsys.readouterr().out
    assert main(["runs", "rename", "\x1b[2J", "--runs-dir", str(store.root)]) == 2
    assert "\x1b" not in capsys.readouterr().err
    assert main(["pretrain", "--preset", "tiny", "--runs-dir", str(store.root), "--set", "seed=\x1b[2J"]) == 2
    assert "\x1b" not in capsys.readouterr().err


def test_a_gpu_this_machine_lacks_is_refused_before_a_run_folder(tmp_path, capsys, monkeypatch):
    import torch

    runs = tmp_path / "runs"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a machine with one GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    _refused(capsys, runs, _pretrain(runs, "runtime.device=cuda:3"), "runtime.device", "1 CUDA GPU(s)")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    _refused(capsys, runs, _pretrain(runs, "runtime.device=mps"), "runtime.device", "MPS is not available")
