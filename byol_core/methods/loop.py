"""The one training loop, shared by BYOL pretraining, supervised training and the linear probe.

A :class:`LoopHooks` says what differs: its model and optimiser, one update step, whether an epoch
end evaluates and checkpoints, and what the result's model is. :func:`run_loop` does the rest the
same way for every stage: batch order, learning-rate plan, metric events to callbacks, stopping
from another thread through a ``threading.Event``, and checkpoints that resume with the same step.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import distributed
from ..config import OptimConfig
from ..events import EPOCH, START, STEP, Callback
from .schedules import learning_rate


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message says what to change."""


@dataclass
class TrainResult:
    """What a loop returns: the trained model and how training ended."""

    model: nn.Module
    step: int
    total_steps: int
    stopped: bool
    test_accuracy: float | None = None
    test_predictions: torch.Tensor | None = None  # the final model's class for each test image

    @property
    def finished(self) -> bool:
        return not self.stopped and self.step >= self.total_steps


@dataclass(frozen=True)
class StepPlan:
    """How long a stage trains on ``num_items`` items: batch size, epoch length and schedule lengths, in steps.

    ``batch`` is the global batch: ``cfg.batch_size`` per rank times the number of ranks.
    """

    num_items: int
    batch: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int

    @classmethod
    def for_data(cls, num_items: int, cfg: OptimConfig, world_size: int = 1) -> StepPlan:
        if num_items < 2 * world_size:
            raise TrainingError(f"only {num_items} training image(s); at least {2 * world_size} are needed for a "
                                f"batch of at least 2 on each of {world_size} process(es).")
        # Every rank gets the same share of a global batch (BatchNorm needs at least 2 per rank).
        batch = min(cfg.batch_size * world_size, num_items) // world_size * world_size
        steps_per_epoch = max(num_items // batch, 1)
        total = max(math.ceil(cfg.epochs * steps_per_epoch), cfg.min_steps, 1)
        return cls(num_items, batch, steps_per_epoch, total, round(cfg.warmup_epochs * steps_per_epoch))

    def ends_epoch(self, step: int) -> bool:
        """Whether ``step`` steps done close an epoch (the last, partial epoch included)."""
        return step % self.steps_per_epoch == 0 or step == self.total_steps

    def epochs_done(self, step: int) -> int:
        return math.ceil(step / self.steps_per_epoch)


class EpochSampler:
    """Batch indices for a global step: each epoch's order is a pure function of (seed, epoch),
    so a run resumed at step k sees exactly the batches it would have seen."""

    def __init__(self, plan: StepPlan, seed: int, device: torch.device) -> None:
        self.plan, self.seed, self.device = plan, seed, device
        self._epoch = -1
        self._order = torch.empty(0)

    def indices(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.plan.steps_per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._order = torch.randperm(self.plan.num_items, generator=gen).to(self.device)
            self._epoch = epoch
        batch = self.plan.batch
        return self._order[pos * batch:(pos + 1) * batch]


class _Throughput:
    """Images per second between two reads, measured on the host clock."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.n = 0

    def add(self, n: int) -> None:
        self.n += n

    def read(self) -> float:
        now = time.perf_counter()
        rate = self.n / max(now - self.t0, 1e-9)
        self.t0, self.n = now, 0
        return rate


class _MetricWindow:
    """Sums step metrics on the device; reading them forces a host sync, so it happens only on flush."""

    def __init__(self, log_every: int) -> None:
        self.log_every = log_every
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.speed = _Throughput()

    def add(self, images: int, **values: torch.Tensor) -> None:
        if not values:  # a stage that reports only at epoch ends
            return
        for key, value in values.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += 1
        self.speed.add(images)

    def due(self, end_of_epoch: bool) -> bool:
        return self.count >= self.log_every or (end_of_epoch and self.count > 0)

    def flush(self) -> dict[str, float]:
        """The window's means (over all ranks when distributed) and the throughput since the last read."""
        means = distributed.mean_across({key: total / self.count for key, total in self.sums.items()})
        out = {key: mean.item() for key, mean in means.items()}
        out["img_per_s"] = self.speed.read()
        self.sums, self.count = {}, 0
        return out

    def pause(self) -> None:
        """Forget the time since the last read (evaluation is not training throughput)."""
        self.speed.read()


class LoopHooks:
    """One kind of training as hooks for :func:`run_loop`; subclasses build their model, optimiser and data.

    ``model`` is what is checkpointed and switched to eval mode around evaluations; ``data_device``
    is where the data set, hence the batch indices, lives.
    """

    name: str = "stage"  # the ``stage`` field of every event
    loss_name: str = "training"  # names the loss in the NaN error
    optim_section: str = "byol.optim"  # where its learning rate is set, for the NaN advice
    test_accuracy: float | None = None  # latest evaluation, for the result

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, plan: StepPlan, optim_cfg: OptimConfig,
                 device: torch.device, data_device: torch.device) -> None:
        self.model, self.optimizer, self.plan, self.optim_cfg = model, optimizer, plan, optim_cfg
        self.device, self.data_device = device, data_device
        self.lr = optim_cfg.lr

    def learning_rate(self, step: int) -> float:
        return learning_rate(step, self.plan.total_steps, self.optim_cfg.lr, self.plan.warmup_steps,
                             self.optim_cfg.schedule)

    def step(self, step: int, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update on the batch ``idx``; returns device scalars averaged into step events ({}: none)."""
        raise NotImplementedError

    def step_fields(self, metrics: dict[str, float]) -> dict[str, Any]:
        """A step event's stage-specific fields, given the averaged metrics of the window."""
        return {"lr": self.lr, **metrics}

    def evaluation_due(self, step: int, epoch: int) -> bool:
        return False

    def evaluate(self) -> dict[str, Any]:
        """Fields added to the epoch event; the model is in eval mode meanwhile."""
        return {}

    def checkpoint_due(self, step: int, epoch: int) -> bool:
        return False

    def result_model(self) -> nn.Module:
        return self.model


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _restore_rng(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


def _checkpoint(hooks: LoopHooks, step: int) -> dict[str, Any]:
    """Everything a resume needs to replay the same run from ``step``: weights, optimiser, RNG."""
    return {"model": hooks.model.state_dict(), "optimizer": hooks.optimizer.state_dict(), "step": step,
            "total_steps": hooks.plan.total_steps, "rng": _rng_state(), **_world_fields()}


def _restore(checkpoint: dict[str, Any] | None, hooks: LoopHooks) -> int:
    """Load a checkpoint made by :func:`_checkpoint`; returns the step to continue from (0 without one)."""
    if checkpoint is None:
        return 0
    trained_by, processes = int(checkpoint.get("processes", 1)), distributed.current().size
    if trained_by != processes:  # another global batch would silently change every remaining step
        how = "plain `python -m byol_core resume`" if trained_by == 1 else f"torchrun and {trained_by} processes"
        raise TrainingError(f"this run was trained by {trained_by} process(es) and is resumed by {processes}; "
                            f"resume it with {how}, which keeps the global batch its checkpoint was trained with.")
    hooks.model.load_state_dict(checkpoint["model"])
    hooks.optimizer.load_state_dict(checkpoint["optimizer"])
    _restore_rng(checkpoint["rng"])
    return int(checkpoint["step"])


def _check_finite(loss_value: float, step: int, hooks: LoopHooks) -> None:
    if not math.isfinite(loss_value):
        lower = f"{hooks.optim_cfg.lr / 10:g}"
        raise TrainingError(f"{hooks.loss_name} loss became {loss_value} at step {step}; resume the run with a "
                            f"lower learning rate (python -m byol_core resume <run id> --set "
                            f"{hooks.optim_section}.lr={lower}) or in full precision (--set runtime.precision=fp32).")


def _world_fields() -> dict[str, int]:
    """The start event's word on the processes training together (nothing for one process)."""
    world = distributed.current()
    return {"processes": world.size} if world.active else {}


def _stop_agreed(stop_event: threading.Event | None, step: int, log_every: int) -> bool:
    """Whether to stop before ``step``: at once for one process; with several, all ranks stop at the same
    step, agreed every ``log_every`` steps (a collective each step would stall the GPUs)."""
    asked = stop_event is not None and stop_event.is_set()
    if not distributed.current().active:
        return asked
    return step % log_every == 0 and distributed.any_rank(asked)


def run_loop(hooks: LoopHooks, *, seed: int, log_every: int, callbacks: Sequence[Callback] = (),
             stop_event: threading.Event | None = None, checkpoint: dict[str, Any] | None = None,
             save_checkpoint: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train with ``hooks`` to its planned step count, from ``checkpoint``'s step when given.

    Events: one ``start``; a ``step`` event per ``log_every`` steps and at each epoch end; an
    ``epoch`` event per epoch with the evaluation's fields. At an epoch end the epoch event goes out
    before the checkpoint (when due) is saved, and a stopped run saves one where it stopped: a resume
    that drops the events after its checkpoint's step and replays from it logs every event once.
    """
    plan, model = hooks.plan, hooks.model

    def emit(event: dict[str, Any]) -> None:
        for callback in callbacks:
            callback(event)

    step = _restore(checkpoint, hooks)
    emit({"kind": START, "stage": hooks.name, "step": step, "total_steps": plan.total_steps,
          "steps_per_epoch": plan.steps_per_epoch, "batch_size": plan.batch, "device": str(hooks.device),
          "num_images": plan.num_items, **_world_fields()})
    model.train()
    window = _MetricWindow(log_every)
    sampler = EpochSampler(plan, seed, hooks.data_device)
    stopped = False
    while step < plan.total_steps:
        if _stop_agreed(stop_event, step, log_every):
            stopped = True
            break
        idx = sampler.indices(step)
        window.add(len(idx), **hooks.step(step, idx))
        step += 1
        end_of_epoch = plan.ends_epoch(step)
        if window.due(end_of_epoch):
            metrics = window.flush()
            _check_finite(metrics["loss"], step, hooks)
            emit({"kind": STEP, "stage": hooks.name, "step": step, "total_steps": plan.total_steps,
                  "epoch": step / plan.steps_per_epoch, **hooks.step_fields(metrics)})
        if end_of_epoch:
            epoch = plan.epochs_done(step)
            event: dict[str, Any] = {"kind": EPOCH, "stage": hooks.name, "epoch": epoch, "step": step,
                                     "total_steps": plan.total_steps}
            if hooks.evaluation_due(step, epoch):
                model.eval()
                event.update(hooks.evaluate())
                model.train()
                window.pause()
            # The event goes out before the checkpoint: a process killed between the two resumes from the
            # previous checkpoint, which drops the event with the steps after it and replays them. The other
            # order would lose the event for good (kept checkpoint, never-written event, nothing replayed).
            emit(event)
            if save_checkpoint is not None and hooks.checkpoint_due(step, epoch):
                save_checkpoint(_checkpoint(hooks, step))
    if stopped and save_checkpoint is not None:
        save_checkpoint(_checkpoint(hooks, step))
    model.eval()
    return TrainResult(model=hooks.result_model(), step=step, total_steps=plan.total_steps, stopped=stopped,
                       test_accuracy=hooks.test_accuracy)


__all__ = ["EpochSampler", "LoopHooks", "StepPlan", "TrainResult", "TrainingError", "run_loop"]
