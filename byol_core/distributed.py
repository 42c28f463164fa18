"""Data-parallel training across processes started by ``torchrun``, with PyTorch's own DDP.

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK for each process it starts; :func:`init` joins
them into one process group (NCCL for CUDA tensors, Gloo for CPU tensors). Without torchrun (no
WORLD_SIZE, or WORLD_SIZE=1) nothing here changes a thing: :func:`current` is a world of one and
every helper is the identity, so a single process computes exactly what it always did.

Every rank builds the same global batch of indices and augments all of it with the same random
state, then keeps its own slice (:func:`shard`): a sample gets the same views whatever the world
size. Images read from an image folder's disk cache are read that way too: each rank reads only its slice of
the global batch from the shared cache (``DataSplits.pretrain_images``; augmentation is per sample, so the rows
it leaves unread change nothing in its own). Rank 0 alone writes the run folder.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")
# Heads of the BYOL module whose BatchNorm always synchronises across ranks; the backbones only on request.
HEAD_MODULES = ("online_projector", "predictor", "target_projector")
BACKBONE_MODULES = ("online_encoder", "target_encoder")
# Where torch's SyncBatchNorm runs (torch 2.x refuses it for CPU modules: see sync_batchnorm).
SYNC_BN_DEVICES = ("cuda", "xpu", "hpu")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env(environ: Mapping[str, str] = os.environ) -> World:
    """The world torchrun describes in ``environ``; a world of one without it."""
    try:
        return World(int(environ.get("RANK", "0")), int(environ.get("WORLD_SIZE", "1")),
                     int(environ.get("LOCAL_RANK", "0")))
    except ValueError as exc:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (as torchrun sets them): {exc}") \
            from None


def current() -> World:
    """The world of the initialised process group; a world of one when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def init() -> World:
    """Join the process group torchrun describes (a no-op for a world of one).

    The backend pairs Gloo for CPU tensors with NCCL for CUDA tensors when a GPU is present, so
    control messages (run ids, stop flags) go over Gloo and training tensors over NCCL.
    """
    world = world_from_env()
    if not world.active or dist.is_initialized():
        return current()
    if torch.cuda.is_available():
        if world.local_rank >= torch.cuda.device_count():
            raise ValueError(f"torchrun started {world.local_rank + 1}+ processes on a machine with "
                             f"{torch.cuda.device_count()} GPU(s); use --nproc_per_node={torch.cuda.device_count()}.")
        torch.cuda.set_device(world.local_rank)
        dist.init_process_group(backend="cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group(backend="gloo")
    return current()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """The device this rank trains on: ``cuda:LOCAL_RANK`` under torchrun on GPUs, else ``device``."""
    world = current()
    if world.active and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def shard(size: int, world: World) -> slice | None:
    """This rank's rows of a global batch of ``size`` (a multiple of the world size); None for a world of one."""
    if not world.active:
        return None
    per_rank = size // world.size
    return slice(world.rank * per_rank, (world.rank + 1) * per_rank)


def sync_batchnorm(model: nn.Module, device: torch.device, backbone: bool) -> list[str]:
    """Make BatchNorm in the BYOL heads (and the backbones when ``backbone``) compute global batch statistics.

    torch's SyncBatchNorm runs on GPUs only (DDP rejects it for CPU modules), so on the CPU every
    rank normalises over its own shard, DDP's documented behaviour; returns the converted parts.
    """
    if not current().active or device.type not in SYNC_BN_DEVICES:
        return []
    names = HEAD_MODULES + (BACKBONE_MODULES if backbone else ())
    for name in names:
        setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(getattr(model, name)))
    return list(names)


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when there are several ranks, else itself."""
    if not current().active:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def mean_across(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each value averaged over the ranks, in one all-reduce (the identity for a world of one)."""
    world = current()
    if not world.active or not values:
        return values
    stacked = torch.stack([v.detach().float().reshape(()) for v in values.values()])
    dist.all_reduce(stacked)
    return dict(zip(values, (stacked / world.size).unbind()))


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is set on any rank; every rank must call it at the same point."""
    if not current().active:
        return flag
    box = torch.tensor([int(flag)])
    dist.all_reduce(box, op=dist.ReduceOp.MAX)
    return bool(box.item())


def from_main(work: Callable[[], T]) -> T:
    """``work()`` done by rank 0 alone, its result (or its error) given to every rank.

    For steps that write shared state, such as creating the run folder: the other ranks get the
    same value, or raise the same kind of error with the same message instead of waiting forever.
    """
    world = current()
    if not world.active:
        return work()
    box: list[Any] = [None]
    if world.is_main:
        try:
            box[0] = ("ok", work())
        except Exception as exc:  # noqa: BLE001 - handed to every rank, then raised again here
            box[0] = ("error", exc)
    dist.broadcast_object_list(box, src=0)
    outcome, value = box[0]
    if outcome == "error":
        raise value
    return value


def barrier() -> None:
    if current().active:
        dist.barrier()


def stop_on_sigterm(stop: threading.Event) -> None:
    """Under torchrun, treat SIGTERM as a stop request.

    torchrun starts workers in their own session: Ctrl-C reaches only torchrun, which sends each
    worker SIGTERM and waits 30 s before killing it; enough to agree on a stop and save a checkpoint.
    """
    if current().active and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())


__all__ = ["World", "any_rank", "barrier", "current", "data_parallel", "from_main", "init", "local_device",
           "mean_across", "shard", "shutdown", "stop_on_sigterm", "sync_batchnorm", "world_from_env"]
