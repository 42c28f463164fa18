"""Runs with a home on disk: a :class:`~byol_core.lab.plans.JobSpec` carried out into its run folder.

This is the API the CLI, the job manager, the worker and experiments share. :func:`create`
checks a spec's source run and makes the folder; :func:`execute` runs the folder's stage with
``status.json`` kept honest (running, then finished, stopped or failed with the reason), every
metric event in ``metrics.jsonl``, checkpoints, and the encoder exported when done.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from .. import distributed
from ..config import ConfigError, with_overrides
from ..data import DataSplits
from ..data.folder import check_folder
from ..device import resolve_device
from ..events import EPOCH, NOTE, RESUME, START, Callback
from ..files import DiskFullError, disk_full
from ..methods.networks import build_encoder
from .builtin_stages import BYOL
from .plans import JobSpec, config_diff, stage_options_of
from .run_store import Run, RunBusyError, RunStore
from .stages import Stage, StageContext, get_stage, stage_of_record

# Stages that train with DistributedDataParallel under torchrun; the others are refused there.
DISTRIBUTED_STAGES = (BYOL.name,)
ONLY_PRETRAINING_DISTRIBUTED = ("under torchrun only BYOL pretraining runs distributed (pretrain, or resume of a "
                                "pretraining run); run supervised training, probes and evaluations with plain "
                                "`python -m byol_core`.")

# Fields of a metric event that status.json keeps as the run's latest progress.
PROGRESS_FIELDS = ("step", "total_steps", "epoch", "loss", "img_per_s", "val_knn_accuracy", "val_accuracy")


class _StatusWriter:
    """Logs every event to metrics.jsonl and keeps status.json's progress at most a second behind.

    ``flush`` writes the latest progress at the end, so a summary shows the steps and epochs that
    actually ran, not the last throttled write.
    """

    def __init__(self, run: Run, min_interval_s: float = 1.0) -> None:
        self.run, self.min_interval_s = run, min_interval_s
        self.last_write = 0.0
        self.progress: dict[str, Any] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        self.run.log(event)
        self.progress.update({k: event[k] for k in PROGRESS_FIELDS if k in event})
        now = time.monotonic()
        if event.get("kind") in (EPOCH, START) or now - self.last_write >= self.min_interval_s:
            self.last_write = now
            self.run.set_status("running", **self.progress)


def check_source(store: RunStore, spec: JobSpec) -> None:
    """A ValueError/FileNotFoundError naming the problem when the spec's source run cannot serve."""
    if not spec.source_run:
        return
    source = store.get(spec.source_run)  # FileNotFoundError naming the run and recent ones
    if not source.encoder_path.is_file():
        raise ValueError(f"run {spec.source_run} has no exported encoder yet; let it finish (or stop it) first.")


def check_buildable(spec: JobSpec) -> None:
    """A ValueError when the config names a backbone, hidden layer or device that cannot be had, or a DataError
    when its image folder cannot serve (:func:`~byol_core.data.folder.folder_problem`).

    Checked before a run folder exists, so a typo never leaves a failed run behind.
    """
    build_encoder(spec.config.model)
    name = spec.config.runtime.device
    device = resolve_device(name)
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and (device.index or 0) >= gpus:
        raise ValueError(f"runtime.device = {name!r}, but this machine has {gpus} CUDA GPU(s) (cuda:0 to "
                         f"cuda:{gpus - 1}); pick one of those, or 'auto'.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("runtime.device = 'mps', but Apple's MPS is not available here; use 'auto' or 'cpu'.")
    check_folder(spec.config.data)


def create(store: RunStore, spec: JobSpec) -> Run:
    """The run folder for ``spec`` (config, stage, source, options), queued; nothing is trained yet.

    Everything that can be known wrong beforehand is refused first, with one line, and no folder is made.
    """
    stage = spec.stage_info
    stage.check_options(spec.stage_options)  # a spec made without plan() is checked too
    check_source(store, spec)
    check_buildable(spec)
    return store.create(stage.run_kind, spec.config, spec.options(), stage=stage.name)


def execute(store: RunStore, run: Run, *, splits: DataSplits | None = None, callbacks: Sequence[Callback] = (),
            stop_event: threading.Event | None = None, inner_callbacks: Sequence[Callback] = ()) -> Run:
    """Carry out a run that has a folder, from its checkpoint when it has one.

    ``callbacks`` get this run's events; ``inner_callbacks`` those of the runs a study (a sweep) starts.

    Everything needed is in the folder (config, stage, source run), so a job manager can hand
    this to a thread or to a worker process (:mod:`byol_core.lab.worker`) alike. Under torchrun every
    rank calls this with the same run: rank 0 claims it and writes the folder, the others only train.
    """
    cfg, _kind, options = run.read_config()
    stage = _stage_to_execute(run)
    writes = distributed.current().is_main
    with contextlib.ExitStack() as held:
        # RunBusyError (on every rank), before anything is written, when another process trains it.
        distributed.from_main(lambda: held.enter_context(run.claim()))
        status = _StatusWriter(run)
        ctx = StageContext(cfg=cfg, run=run, store=store, source_run=options.get("from_run"),
                           callbacks=[status, *callbacks] if writes else [], stop_event=stop_event, splits=splits,
                           writes=writes, options=stage_options_of(options), inner_callbacks=inner_callbacks)
        if not writes:
            stage.body(_data_read_by_main_first(ctx))
            return run
        with _stopped_when_disk_full(run, status):
            _rewind_metrics(run, ctx.callbacks)
            _execute(run, lambda: stage.body(_data_read_by_main_first(ctx)), status)
    return run


def _stage_to_execute(run: Run) -> Stage:
    """The run's stage; a ValueError when it cannot be carried out (here, or under torchrun)."""
    stage_name = stage_of_record(run.read_record())
    if stage_name is None:
        raise ValueError(f"run {run.id} is not of a stage that can be carried out (its kind is no known stage); "
                         "start a new run instead.")
    stage = get_stage(stage_name)
    if distributed.current().active and stage.name not in DISTRIBUTED_STAGES:
        raise ValueError(ONLY_PRETRAINING_DISTRIBUTED)
    return stage


def _data_read_by_main_first(ctx: StageContext) -> StageContext:
    """Under torchrun rank 0 reads (and, if need be, downloads) the data before the other ranks do."""
    world = distributed.current()
    if world.active:
        if world.is_main:
            ctx.data()
        distributed.barrier()
        ctx.data()
    return ctx


def _rewind_metrics(run: Run, callbacks: Sequence[Callback]) -> None:
    """On a resume, cut metrics.jsonl back to the checkpoint so every step is logged once, and say so.

    Steps after the last checkpoint were lost with the process that ran them; they are trained (and
    logged) again. Without a usable checkpoint the run starts again from step 0, which is said too.
    """
    if not run.metrics_path.exists():
        return  # a fresh run
    step = run.load_checkpoint()["step"] if run.checkpoint_path.exists() else 0
    dropped = run.keep_metrics_up_to(step)
    if step:
        message = f"resuming from the checkpoint at step {step}"
    else:
        message = "no checkpoint was saved before this run stopped: training starts again from step 0"
    if dropped:
        message += f"; {dropped} event(s) logged after it were removed and will be logged again"
    event = {"kind": RESUME, "step": step, "message": message}
    for callback in callbacks:
        callback(event)


def start(spec: JobSpec, store: RunStore, **kwargs: Any) -> Run:
    """Create and carry out ``spec``'s run in this thread (``execute``'s keyword arguments apply).

    Under torchrun rank 0 creates the one run folder and every rank trains that run.
    """
    return execute(store, store.get(distributed.from_main(lambda: create(store, spec).id)), **kwargs)


def _execute(run: Run, body: Callable[[], dict[str, Any]], status: _StatusWriter) -> dict[str, Any]:
    """Run ``body`` with the run's status kept honest: finished, stopped or failed with the reason.

    A full disk is no failure of the run: :func:`_stopped_when_disk_full` records it as stopped.
    """
    run.set_status("running", started=time.time(), error=None)
    try:
        results = body()
    except Exception as exc:
        if disk_full(exc, run.path) is None:
            run.set_status("failed", error=f"{type(exc).__name__}: {exc}",
                           traceback=traceback.format_exc(limit=8), **status.progress)
        raise
    state = "stopped" if results.pop("_stopped", False) else "finished"
    run.set_status(state, results=results, finished=time.time(), **status.progress)
    return results


@contextlib.contextmanager
def _stopped_when_disk_full(run: Run, status: _StatusWriter) -> Iterator[None]:
    """Turn a full disk (torch's "unexpected pos" included) into a run stopped with one line that names the
    disk's folder and free space; the checkpoint it had is kept, so it resumes once there is room.

    Called while the run is still claimed: the space it held back (:meth:`Run.release_space`) is given up
    so that status.json can still say so.
    """
    try:
        yield
    except Exception as exc:
        full = disk_full(exc, run.path)
        if full is None:
            raise
        message = f"{full}, then resume the run from its last checkpoint: python -m byol_core resume {run.id}"
        run.release_space()
        with contextlib.suppress(OSError):  # nothing more can be written; the old status.json stays whole
            run.set_status("stopped", error=message, **status.progress)
        raise DiskFullError(message) from exc


def resume_check(store: RunStore, run_id: str) -> Run:
    """The run, if it can be resumed; else a ValueError that says why."""
    run = store.get(run_id)
    status = run.read_status()
    if status.get("state") == "finished":
        raise ValueError(f"run {run_id} has already finished; nothing to resume.")
    if status.get("state") == "running" or run.claimed():
        raise RunBusyError(f"run {run_id} is still running in process {status.get('pid')}; stop it first.")
    stage_name = stage_of_record(run.read_record())
    if stage_name is None or not get_stage(stage_name).resumable:
        what = get_stage(stage_name).title if stage_name else "this kind of run"
        raise ValueError(f"run {run_id} ({what}) cannot be resumed; start it again.")
    return run


# Fields a resumed run may change: they steer the remaining steps without changing what a step is
# (the model, the data, the schedule's length and the batch stay as the checkpoint expects).
RESUME_SAFE_FIELDS = re.compile(r"(byol\.optim|supervised\.optim|supervised\.linear_optim)\.(lr|weight_decay)"
                                r"|runtime\.(device|precision|num_threads|log_every|checkpoint_every_epochs|compile)"
                                r"|byol\.knn_every_epochs|eval\.batch_size")


def change_for_resume(run: Run, overrides: dict[str, Any]) -> list[str]:
    """Apply ``--set`` overrides to a stopped run's config; a ConfigError names fields that are not safe."""
    unsafe = [k for k in overrides if not RESUME_SAFE_FIELDS.fullmatch(k)]
    if unsafe:
        raise ConfigError(f"--set {unsafe[0]} cannot change on resume (the checkpoint was trained with it); "
                          "fields that can: learning rates and weight decay, runtime.*, byol.knn_every_epochs, "
                          "eval.batch_size. Start a new run to change the others.")
    cfg, kind, options = run.read_config()
    new = with_overrides(cfg, overrides)
    changes = [str(c) for c in config_diff(cfg, new, "set on resume")]
    if changes:
        run.write_config(new, kind, options, run.read_record().get("stage"))
        run.log({"kind": NOTE, "message": "; ".join(changes)})
    return changes


def resume(store: RunStore, run_id: str, *, callbacks: Sequence[Callback] = (),
           stop_event: threading.Event | None = None, overrides: dict[str, Any] | None = None) -> Run:
    """Continue a stopped or interrupted run from its last checkpoint, with the same step count.

    ``overrides``: fields that are safe to change mid-run (:data:`RESUME_SAFE_FIELDS`), e.g. a lower
    learning rate after the loss became NaN.
    """
    def check_and_change() -> str:
        run = resume_check(store, run_id)
        if overrides:
            with run.claim():  # nobody may start it while its config changes
                change_for_resume(run, overrides)
        return run.id

    # Under torchrun rank 0 checks and changes the run; every rank then resumes it from the same checkpoint.
    run = store.get(distributed.from_main(check_and_change))
    return execute(store, run, callbacks=callbacks, stop_event=stop_event)


def run_results(run: Run) -> dict[str, Any]:
    return run.read_status().get("results", {})
