import json
import os
import threading

import pytest
import torch

from byol_core.config import ExperimentConfig
from byol_core.runs import Run, RunStore, atomic_write_json


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

    from byol_core.runs import mark_active

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
    mark_active("r1", True)
    try:
        assert Run(run_dir).read_status()["state"] == "running"
    finally:
        mark_active("r1", False)


def test_checkpoint_and_encoder_round_trip_with_weights_only(store: RunStore):
    run = store.create("byol", ExperimentConfig())
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run.load_checkpoint()
    with pytest.raises(FileNotFoundError, match="no exported encoder"):
        run.load_encoder()
    state = {"model": {"w": torch.arange(4.0)}, "step": 7, "rng": {"cpu": torch.get_rng_state()}}
    run.save_checkpoint(state)
    back = run.load_checkpoint()
    assert back["step"] == 7 and torch.equal(back["model"]["w"], torch.arange(4.0))
    run.save_encoder({"conv.weight": torch.ones(2, 2)})
    assert torch.equal(run.load_encoder()["conv.weight"], torch.ones(2, 2))
