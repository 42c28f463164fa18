import json
import os
import threading

import pytest
import torch

from byol_core.config import ExperimentConfig
from byol_core.files import atomic_write_json
from byol_core.lab.run_store import DamagedRunError, Run, RunBusyError, RunStore


def test_create_writes_config_and_status_and_lists_newest_first(store: RunStore):
    a = store.create("byol", ExperimentConfig(name="First run!"))
    b = store.create("supervised", ExperimentConfig(name="second"), {"mode": "scratch"})
    assert "first-run" in a.id
    cfg, kind, options = b.read_config()
    assert (cfg.name, kind, options) == ("second", "supervised", {"mode": "scratch"})
    assert a.read_status()["state"] == "queued"
    assert {r.id for r in store.list()} == {a.id, b.id}
    assert store.get(a.id).path == a.path
    with pytest.raises(FileNotFoundError, match="no run 'nope'"):
        store.get("nope")


def test_metrics_are_appended_per_line_and_a_torn_line_is_ignored(store: RunStore):
    run = store.create("byol", ExperimentConfig())
    run.log({"kind": "step", "step": 1, "loss": torch.tensor(2.5)})
    run.log({"kind": "step", "step": 2, "loss": float("nan")})
    with open(run.metrics_path, "a") as fh:
        fh.write('{"kind": "step", "st')  # a crash mid-write
    events = run.read_metrics()
    assert [e["step"] for e in events] == [1, 2]
    assert events[0]["loss"] == 2.5 and events[1]["loss"] is None


def test_metrics_from_many_threads_stay_whole(store: RunStore):
    run = store.create("byol", ExperimentConfig())

    def write(t):
        for i in range(50):
            run.log({"thread": t, "i": i, "pad": "x" * 200})

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(run.read_metrics()) == 200


def test_status_is_replaced_atomically_and_merges_fields(store: RunStore):
    run = store.create("byol", ExperimentConfig())
    run.set_status("running", step=3)
    run.set_status("running", loss=1.5)
    status = json.loads(run.status_path.read_text())
    assert (status["state"], status["step"], status["loss"]) == ("running", 3, 1.5)
    assert not list(run.path.glob(".*.tmp"))
    with pytest.raises(ValueError, match="unknown run state"):
        run.set_status("exploded")


def test_running_run_of_a_dead_process_reads_as_interrupted(tmp_path):
    import time

    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    # A pid that cannot exist (beyond pid_max) stands for a crashed process.
    atomic_write_json(run_dir / "status.json", {"state": "running", "pid": 2 ** 30, "updated": time.time()})
    assert Run(run_dir).read_status()["state"] == "interrupted"
    # Our own process: running only while a thread of ours executes it.
    atomic_write_json(run_dir / "status.json", {"state": "running", "pid": os.getpid(), "updated": time.time()})
    assert Run(run_dir).read_status()["state"] == "interrupted"
    # Queued by a process that has since died: never going to start.
    atomic_write_json(run_dir / "status.json", {"state": "queued", "pid": 2 ** 30, "updated": time.time()})
    assert Run(run_dir).read_status()["state"] == "interrupted"
    atomic_write_json(run_dir / "status.json", {"state": "queued", "pid": os.getpid(), "updated": time.time()})
    assert Run(run_dir).read_status()["state"] == "queued"
    atomic_write_json(run_dir / "status.json", {"state": "running", "pid": os.getpid(), "updated": time.time()})
    with Run(run_dir).claim():  # running exactly while someone holds the run's lock
        assert Run(run_dir).read_status()["state"] == "running"
    assert Run(run_dir).read_status()["state"] == "interrupted"


def test_checkpoint_and_encoder_round_trip_with_weights_only(store: RunStore):
    run = store.create("byol", ExperimentConfig())
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run.load_checkpoint()
    with pytest.raises(FileNotFoundError, match="no exported encoder"):
        run.load_encoder()
    state = {"model": {"w": torch.arange(4.0)}, "optimizer": {}, "step": 7, "rng": {"cpu": torch.get_rng_state()}}
    run.save_checkpoint(state)
    back = run.load_checkpoint()
    assert back["step"] == 7 and torch.equal(back["model"]["w"], torch.arange(4.0))
    run.save_encoder({"conv.weight": torch.ones(2, 2)})
    assert torch.equal(run.load_encoder()["conv.weight"], torch.ones(2, 2))


def test_only_one_claim_of_a_run_at_a_time_even_from_two_threads(store: RunStore):
    run = store.create("byol", ExperimentConfig())
    with run.claim():
        assert run.claimed()
        busy = f"run {run.id} is already being trained \\(by process {os.getpid()}\\)"
        with pytest.raises(RunBusyError, match=busy), Run(run.path).claim():
            pass
    assert not run.claimed()
    with run.claim():  # free again once released
        pass


@pytest.mark.parametrize("content", [b"\x8a\x17 random bytes" * 50, b"PK\x03\x04truncated"])
def test_a_damaged_checkpoint_or_encoder_is_named_in_one_line(store: RunStore, content: bytes):
    run = store.create("byol", ExperimentConfig())
    run.checkpoint_path.write_bytes(content)
    run.encoder_path.write_bytes(content)
    for load, name in ((run.load_checkpoint, "checkpoint.pt"), (run.load_encoder, "encoder.pt")):
        with pytest.raises(DamagedRunError) as info:
            load()
        message = str(info.value)
        assert f"{name} is damaged" in message and "\n" not in message
        assert "weights_only" not in message  # never the advice to unpickle an untrusted file


def test_run_ids_are_names_inside_the_store_never_paths(store: RunStore, tmp_path):
    run = store.create("byol", ExperimentConfig())
    outside = tmp_path / "outside" / "x"
    outside.mkdir(parents=True)
    (outside / "config.json").write_text(run.config_path.read_text())
    for bad in ("../outside/x", "/etc", "..", f"{run.id}/../{run.id}"):
        with pytest.raises(FileNotFoundError, match="is not a run id"):
            store.get(bad)
    assert store.get(run.id).path == run.path


def test_metrics_are_cut_back_to_a_step_atomically(store: RunStore):
    run = store.create("byol", ExperimentConfig())
    for step in range(1, 6):
        run.log({"kind": "step", "step": step})
    run.log({"kind": "note"})
    assert run.keep_metrics_up_to(3) == 2
    assert [e.get("step") for e in run.read_metrics()] == [1, 2, 3, None]
    assert run.keep_metrics_up_to(3) == 0


def test_orphan_temp_copies_are_cleaned_by_the_lock_holder_only(store: RunStore):
    run = store.create("byol", ExperimentConfig())
    orphans = [run.path / f".checkpoint.pt.{i}abc.tmp" for i in range(3)] + [run.path / ".encoder.pt.x1.tmp"]
    others = [run.path / ".status.json.x2.tmp", run.path / ".annotations.json.x3.tmp"]  # other writers' files
    for path in orphans + others:
        path.write_bytes(b"\0" * 1024)
    with run.claim():
        assert not any(p.exists() for p in orphans)  # a run claimed (trained, resumed) sheds its dead copies
        assert all(p.exists() for p in others)
        live = run.path / ".checkpoint.pt.live.tmp"  # being written by the holder: a second claimant keeps out
        live.write_bytes(b"\0")
        with pytest.raises(RunBusyError), Run(run.path).claim():
            pass
        assert live.exists()
    assert not live.exists()  # a run's claim ending (finished, stopped, failed) sheds them too
    assert all(p.exists() for p in others)


def test_a_torn_last_line_is_cut_off_before_a_resume_appends(store: RunStore):
    run = store.create("byol", ExperimentConfig())
    for step in (1, 2):
        run.log({"kind": "step", "step": step})
    with open(run.metrics_path, "a") as fh:
        fh.write('{"kind": "step", "st')  # killed (or out of disk space) mid-line
    assert run.keep_metrics_up_to(2) == 0
    run.log({"kind": "resume", "step": 2})
    assert [e["kind"] for e in run.read_metrics()] == ["step", "step", "resume"]
