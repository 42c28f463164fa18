"""Distributed BYOL pretraining: torchrun, two Gloo processes on the CPU, compared with one process.

torch's SyncBatchNorm runs on GPUs only, so on the CPU each rank normalises over its own shard. The
single-process reference therefore runs the same training (same seed, same global batch, the same
views) with the forward pass taken shard by shard and the shard losses averaged: the computation
DistributedDataParallel performs across the two ranks.
"""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from byol_core import cli, distributed
from byol_core.config import with_overrides
from byol_core.data import load_data
from byol_core.lab.run_store import RunStore
from byol_core.methods import loop
from byol_core.methods.byol import _BYOLHooks
from byol_core.methods.loop import StepPlan, TrainingError, run_loop
from byol_core.methods.pretraining import prepare_runtime
from byol_core.presets import get_preset

REPO = Path(__file__).resolve().parents[1]
WORLD = 2
# Measured max |difference| of any parameter after 4 steps: 3.8e-7 (float32 sums in another order); the
# training moves parameters by more than 1e-3.
TOLERANCE = 1e-5
# Each rank runs one thread (OMP_NUM_THREADS below), so the reference does too: on Xeons with AVX-512/AMX
# oneDNN picks other float32 kernels for 2 threads than for 1, which alone moved parameters by 2.9e-5.
RANK_THREADS = 1
# SGD, not the preset's Adam: the biases of the Linear layers before a BatchNorm get a gradient that is zero
# up to float noise, which Adam scales up to full-size steps of random sign in either run.
OVERRIDES = {"byol.optim.batch_size": 32, "byol.optim.epochs": 1, "byol.optim.optimizer": "sgd",
             "byol.optim.lr": 0.05, "runtime.log_every": 1, "runtime.precision": "fp32"}
SETS = [arg for key, value in OVERRIDES.items() for arg in ("--set", f"{key}={value}")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=2`` on the loopback interface; an upper bound on time, never a wait."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}", "--rdzv-backend=c10d",
               f"--rdzv-endpoint=127.0.0.1:{_free_port()}", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(RANK_THREADS)}
    done = subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _only_run(runs: Path):
    folders = [p for p in runs.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders  # rank 0 created the one folder; the other rank used it
    return RunStore(runs).get(folders[0].name)


class _PerShardForward:
    """BYOL's forward shard by shard: what DDP computes with per-rank BatchNorm.

    Laid out as the whole batch's output (view 1's rows of every shard, then view 2's), so the loss over it is
    the mean of the shard losses, as DDP's averaged gradients are.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def __call__(self, view_1: torch.Tensor, view_2: torch.Tensor) -> SimpleNamespace:
        outs = [self.model(a, b) for a, b in zip(view_1.chunk(WORLD), view_2.chunk(WORLD))]

        def whole(field: str) -> torch.Tensor:
            halves = [getattr(o, field).chunk(2) for o in outs]  # each shard: its view 1 rows, then its view 2 rows
            return torch.cat([h[0] for h in halves] + [h[1] for h in halves])

        return SimpleNamespace(predictions=whole("predictions"), targets=whole("targets"),
                               projections=whole("projections"))


def _single_process_reference(cfg) -> dict[str, torch.Tensor]:
    """The parameters one process reaches with the global batch (per-rank batch x 2) and the same seed."""
    one = with_overrides(cfg, {"byol.optim.batch_size": cfg.byol.optim.batch_size * WORLD})
    splits = load_data(one.data)
    device, _bf16 = prepare_runtime(one)
    torch.manual_seed(one.seed)  # as pretrain_byol does
    hooks = _BYOLHooks(one, splits, device, bf16=False)
    hooks.forward = _PerShardForward(hooks.model)
    initial = {k: v.detach().clone() for k, v in hooks.model.named_parameters()}
    threads = torch.get_num_threads()
    torch.set_num_threads(RANK_THREADS)
    try:
        result = run_loop(hooks, seed=one.seed, log_every=one.runtime.log_every)
    finally:
        torch.set_num_threads(threads)
    trained = {k: v.detach() for k, v in result.model.named_parameters()}
    assert _max_difference(trained, initial) > 100 * TOLERANCE  # the comparison is not between untrained models
    return trained


def _max_difference(state: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    assert reference.keys() <= state.keys()
    return max((state[k].float() - v.float()).abs().max().item() for k, v in reference.items())


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_global_batch_into_one_run_folder(tmp_path):
    _torchrun(tmp_path, "-m", "byol_core", "pretrain", "--preset", "tiny", "--runs-dir", "runs", "--no-progress",
              *SETS)
    run = _only_run(tmp_path / "runs")
    assert run.read_status()["state"] == "finished" and run.encoder_path.is_file()
    events = run.read_metrics()
    start = next(e for e in events if e["kind"] == "start")
    assert start["processes"] == WORLD and start["batch_size"] == 32 * WORLD
    assert [e["step"] for e in events if e["kind"] == "step"] == [1, 2, 3, 4]  # 128 images / 64: each step once

    cfg = with_overrides(get_preset("tiny"), OVERRIDES)
    checkpoint = run.load_checkpoint()
    assert checkpoint["step"] == 4
    difference = _max_difference(checkpoint["model"], _single_process_reference(cfg))
    print(f"max |parameter difference| between 2 ranks and 1 process: {difference:.3g}")
    assert difference < TOLERANCE


_STOP_AT_STEP_2 = textwrap.dedent("""
    import threading, sys
    from byol_core import distributed
    from byol_core.config import with_overrides
    from byol_core.lab import runner
    from byol_core.lab.plans import plan
    from byol_core.lab.run_store import RunStore
    from byol_core.presets import get_preset

    overrides = dict(arg.split("=", 1) for arg in sys.argv[1:])
    cfg = with_overrides(get_preset("tiny"), overrides)
    distributed.init()
    stop = threading.Event()
    stop_at_2 = lambda event: stop.set() if event.get("kind") == "step" and event["step"] == 2 else None
    run = runner.start(plan("byol", cfg), RunStore("runs"), callbacks=[stop_at_2], stop_event=stop)
    distributed.shutdown()
""")


@pytest.mark.slow
def test_a_stopped_distributed_run_resumes_under_torchrun_to_the_same_weights(tmp_path):
    (tmp_path / "stop_at_2.py").write_text(_STOP_AT_STEP_2)
    # The stop is asked on rank 0 only: the ranks agree on it and stop at the same step.
    _torchrun(tmp_path, "stop_at_2.py", *(f"{k}={v}" for k, v in OVERRIDES.items()))
    run = _only_run(tmp_path / "runs")
    assert run.read_status()["state"] == "stopped" and run.load_checkpoint()["step"] == 2

    _torchrun(tmp_path, "-m", "byol_core", "resume", run.id, "--runs-dir", "runs", "--no-progress")
    assert _only_run(tmp_path / "runs").id == run.id
    assert run.read_status()["state"] == "finished"
    steps = [e["step"] for e in run.read_metrics() if e["kind"] == "step"]
    assert steps == [1, 2, 3, 4]
    cfg = with_overrides(get_preset("tiny"), OVERRIDES)
    assert _max_difference(run.load_checkpoint()["model"], _single_process_reference(cfg)) < TOLERANCE


# ---------------------------------------------------------------- fast checks, one process


def test_one_process_is_a_world_of_one():
    assert distributed.world_from_env({}) == distributed.World(0, 1, 0)
    assert not distributed.current().active and distributed.current().is_main
    assert distributed.shard(64, distributed.World()) is None
    assert distributed.any_rank(True) and distributed.from_main(lambda: 7) == 7
    values = {"loss": torch.tensor(1.5)}
    assert distributed.mean_across(values) is values


def test_torchrun_environment_and_shards():
    world = distributed.world_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (world.rank, world.size, world.local_rank, world.active, world.is_main) == (3, 4, 1, True, False)
    assert distributed.shard(64, world) == slice(48, 64)
    with pytest.raises(ValueError, match="whole numbers"):
        distributed.world_from_env({"WORLD_SIZE": "two"})


def test_global_batch_is_the_per_rank_batch_times_the_world():
    optim = get_preset("tiny").byol.optim  # batch_size 64
    assert StepPlan.for_data(256, optim, world_size=2).batch == 128
    assert StepPlan.for_data(100, optim, world_size=3).batch == 99  # capped by the data, an equal share per rank
    assert StepPlan.for_data(256, optim) == StepPlan.for_data(256, optim, world_size=1)


def test_torchrun_refuses_commands_other_than_pretrain_and_resume(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert cli.main(["supervised", "--preset", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "only pretrain and resume" in err and "python -m byol_core" in err
    monkeypatch.setenv("RANK", "1")  # the other ranks refuse silently
    assert cli.main(["experiment", "--preset", "tiny"]) == 2
    assert capsys.readouterr().err == ""


def test_a_run_resumes_only_with_the_number_of_processes_that_trained_it():
    with pytest.raises(TrainingError, match="trained by 2 process.*resumed by 1.*torchrun and 2 processes"):
        loop._restore({"model": {}, "optimizer": {}, "step": 3, "processes": 2}, hooks=None)
