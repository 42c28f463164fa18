"""Runs with a home on disk: training and evaluation wired to the run store.

This is the API the CLI and the dashboard share. Each function creates (or
resumes) a run folder, streams metric events into it, keeps ``status.json``
current, checkpoints, and exports the encoder when done.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .config import ExperimentConfig
from .data import DataSplits, load_data
from .models import build_encoder, encoder_state_dict
from .runs import Run, RunStore, mark_active
from .training import Callback, TrainResult, knn_eval, prepare_runtime, pretrain_byol, train_supervised

ProgressFn = Callable[[str, float], None]


def _status_callback(run: Run, min_interval_s: float = 1.0) -> Callback:
    """Log every event to metrics.jsonl; refresh status.json's progress at most once a second."""
    last = [0.0]

    def callback(event: dict[str, Any]) -> None:
        run.log(event)
        now = time.monotonic()
        if event.get("kind") in ("epoch", "start") or now - last[0] >= min_interval_s:
            last[0] = now
            fields = {k: event[k] for k in ("step", "total_steps", "epoch", "loss", "img_per_s",
                                             "knn_accuracy", "test_accuracy") if k in event}
            run.set_status("running", **fields)

    return callback


def _execute(run: Run, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``body`` with the run's status kept honest: finished, stopped or failed with the reason."""
    mark_active(run.id, True)
    run.set_status("running", started=time.time(), error=None)
    try:
        results = body()
    except Exception as exc:
        run.set_status("failed", error=f"{type(exc).__name__}: {exc}",
                       traceback=traceback.format_exc(limit=8))
        raise
    finally:
        mark_active(run.id, False)
    state = "stopped" if results.pop("_stopped", False) else "finished"
    run.set_status(state, results=results, finished=time.time())
    return results


def _result_fields(result: TrainResult) -> dict[str, Any]:
    return {"_stopped": result.stopped, "step": result.step, "total_steps": result.total_steps}


def pretrain(cfg: ExperimentConfig, store: RunStore, *, splits: DataSplits | None = None,
             callbacks: Sequence[Callback] = (), stop_event: threading.Event | None = None,
             run: Run | None = None) -> Run:
    """BYOL pretraining as a run; ``run`` given: resume it from its checkpoint."""
    checkpoint = None
    if run is None:
        run = store.create("byol", cfg)
    elif run.checkpoint_path.exists():
        checkpoint = run.load_checkpoint()

    def body() -> dict[str, Any]:
        data = splits if splits is not None else load_data(cfg.data)
        result = pretrain_byol(cfg, data, callbacks=[_status_callback(run), *callbacks], stop_event=stop_event,
                               checkpoint=checkpoint, save_checkpoint=run.save_checkpoint)
        run.save_encoder(encoder_state_dict(result.model.online_encoder))
        out = _result_fields(result)
        if not result.stopped and data.labelled_train.labels.numel():
            device, _ = prepare_runtime(cfg)
            out["knn_accuracy"] = knn_eval(result.model.online_encoder, data, cfg, device)
        return out

    _execute(run, body)
    return run


def supervised(cfg: ExperimentConfig, store: RunStore, mode: str, *, from_run: str | None = None,
               splits: DataSplits | None = None, callbacks: Sequence[Callback] = (),
               stop_event: threading.Event | None = None, run: Run | None = None) -> Run:
    """Supervised training as a run: ``scratch``, ``finetune`` or ``linear`` (from ``from_run``'s encoder)."""
    encoder_state = store.get(from_run).load_encoder() if from_run else None
    checkpoint = None
    if run is None:
        run = store.create("linear" if mode == "linear" else "supervised", cfg,
                           {"mode": mode, "from_run": from_run})
    elif run.checkpoint_path.exists() and mode != "linear":
        checkpoint = run.load_checkpoint()

    def body() -> dict[str, Any]:
        data = splits if splits is not None else load_data(cfg.data)
        result = train_supervised(cfg, data, mode, encoder_state=encoder_state,
                                  callbacks=[_status_callback(run), *callbacks], stop_event=stop_event,
                                  checkpoint=checkpoint,
                                  save_checkpoint=None if mode == "linear" else run.save_checkpoint)
        run.save_encoder(encoder_state_dict(result.model.encoder))
        return {**_result_fields(result), "test_accuracy": result.test_accuracy, "mode": mode,
                "from_run": from_run}

    _execute(run, body)
    return run


def evaluate(cfg: ExperimentConfig, store: RunStore, *, from_run: str | None = None,
             splits: DataSplits | None = None, run: Run | None = None) -> Run:
    """kNN accuracy of an encoder (``from_run``'s, or a random init with cfg.seed) as a run."""
    run = run or store.create("evaluate", cfg, {"from_run": from_run})

    def body() -> dict[str, Any]:
        data = splits if splits is not None else load_data(cfg.data)
        device, _ = prepare_runtime(cfg)
        torch.manual_seed(cfg.seed)
        encoder = build_encoder(cfg.model)
        if from_run:
            encoder.model.load_state_dict(store.get(from_run).load_encoder())
        encoder = encoder.to(device)
        accuracy = knn_eval(encoder, data, cfg, device)
        run.log({"kind": "eval", "knn_accuracy": accuracy})
        return {"knn_accuracy": accuracy, "from_run": from_run, "encoder": from_run or "random-init"}

    _execute(run, body)
    return run


def resume_check(store: RunStore, run_id: str) -> Run:
    """The run, if it can be resumed; else a ValueError that says why."""
    run = store.get(run_id)
    status = run.read_status()
    if status.get("state") == "finished":
        raise ValueError(f"run {run_id} has already finished; nothing to resume.")
    if status.get("state") == "running":
        raise ValueError(f"run {run_id} is still running in process {status.get('pid')}.")
    _, kind, _ = run.read_config()
    if kind not in ("byol", "supervised", "linear"):
        raise ValueError(f"run {run_id} is of kind {kind!r}, which cannot be resumed; start it again.")
    return run


def resume(store: RunStore, run_id: str, *, callbacks: Sequence[Callback] = (),
           stop_event: threading.Event | None = None) -> Run:
    """Continue a stopped or interrupted run from its last checkpoint, with the same step count."""
    return execute(store, resume_check(store, run_id), callbacks=callbacks, stop_event=stop_event)


def execute(store: RunStore, run: Run, *, callbacks: Sequence[Callback] = (),
            stop_event: threading.Event | None = None) -> Run:
    """Carry out a run that already has a folder, from its checkpoint when it has one.

    Everything needed is in the folder (config, kind, mode and source run), so a job manager can
    hand this to a thread or to a separate worker process (:mod:`byol_core.worker`) alike.
    """
    cfg, kind, options = run.read_config()
    if kind == "byol":
        return pretrain(cfg, store, callbacks=callbacks, stop_event=stop_event, run=run)
    if kind in ("supervised", "linear"):
        return supervised(cfg, store, options["mode"], from_run=options.get("from_run"),
                          callbacks=callbacks, stop_event=stop_event, run=run)
    if kind == "evaluate":
        return evaluate(cfg, store, from_run=options.get("from_run"), run=run)
    raise ValueError(f"run {run.id} is of kind {kind!r}; a job can only carry out byol, supervised, linear "
                     "or evaluate runs.")


def run_results(run: Run) -> dict[str, Any]:
    return run.read_status().get("results", {})
