"""The seed experiment: supervised from scratch vs BYOL-pretrained, on the same split.

Rows: supervised from scratch, BYOL fine-tuned, BYOL linear probe, BYOL kNN,
random-init kNN and raw-pixel kNN, all scored on the same test set with the
same labelled training subset.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig
from ..data import load_data
from ..lab import runner
from ..lab.builtin_stages import BYOL, FINETUNE, KNN, LINEAR, SCRATCH
from ..lab.plans import plan
from ..lab.run_store import RunStore
from ..lab.stages import get_stage
from ..methods.floors import PIXEL_KNN, pixel_knn_accuracy
from ..methods.training import Callback

CallbackFactory = Callable[[str], Sequence[Callback]]


@dataclass
class ExperimentRow:
    method: str
    accuracy: float | None
    run_id: str | None
    seconds: float


@dataclass
class ExperimentResult:
    run_id: str
    dataset: str
    label_fraction: float
    labelled_images: int
    test_images: int
    rows: list[ExperimentRow] = field(default_factory=list)
    wall_seconds: float = 0.0
    config_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A plain-text table of the accuracies, best first."""
        lines = [f"{'method':<26} {'test accuracy':>13} {'seconds':>8}  run",
                 f"{'-' * 26} {'-' * 13} {'-' * 8}  {'-' * 20}"]
        for r in sorted(self.rows, key=lambda r: -(r.accuracy or 0.0)):
            acc = "-" if r.accuracy is None else f"{100 * r.accuracy:12.2f}%"
            lines.append(f"{r.method:<26} {acc:>13} {r.seconds:8.1f}  {r.run_id or ''}")
        lines.append(f"data set {self.dataset}, {self.labelled_images} labelled training images "
                     f"({100 * self.label_fraction:g}% of labels), {self.test_images} test images; "
                     f"wall time {self.wall_seconds:.1f} s")
        return "\n".join(lines)


def run_experiment(cfg: ExperimentConfig, store: RunStore, *, callbacks_for: CallbackFactory | None = None,
                   stop_event: threading.Event | None = None, json_path: str | Path | None = None,
                   progress: Callable[[str], None] | None = None) -> ExperimentResult:
    """Run every stage in turn and return (and store) the accuracy table."""
    t_start = time.perf_counter()
    callbacks_for = callbacks_for or (lambda _stage: ())
    say = progress or (lambda _msg: None)
    exp_run = store.create("experiment", cfg)
    with exp_run.claim():  # its status reads "running" only while this process holds it
        exp_run.set_status("running", started=time.time())
        try:
            say("loading data")
            splits = load_data(cfg.data)
        except BaseException as exc:  # not left 'running' forever: say why it ended
            exp_run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        if splits.skipped_files:
            exp_run.skipped_files_path.write_text("\n".join(splits.skipped_files) + "\n")
            say(f"{len(splits.skipped_files)} file(s) could not be read and were skipped (listed in "
                f"{exp_run.skipped_files_path})")
        result = ExperimentResult(run_id=exp_run.id, dataset=splits.name, label_fraction=cfg.data.label_fraction,
                                  labelled_images=len(splits.labelled_train), test_images=len(splits.test),
                                  config_name=cfg.name)

        def timed(method: str, fn: Callable[[], tuple[float | None, str | None]]) -> None:
            if stop_event is not None and stop_event.is_set():
                return
            say(method)
            t0 = time.perf_counter()
            accuracy, run_id = fn()
            row = ExperimentRow(method, accuracy, run_id, time.perf_counter() - t0)
            result.rows.append(row)
            exp_run.log({"kind": "row", **asdict(row)})

        def stage_run(stage: str, source_run: str | None = None) -> tuple[float | None, str | None]:
            run = runner.start(plan(stage, cfg, source_run=source_run), store, splits=splits,
                               callbacks=callbacks_for(stage), stop_event=stop_event)
            return get_stage(stage).headline(runner.run_results(run)), run.id

        try:
            byol_runs: list[str] = []

            def byol_knn():  # its time is BYOL pretraining's
                accuracy, run_id = stage_run(BYOL.name)
                byol_runs.append(run_id)
                return accuracy, run_id

            timed(BYOL.method, byol_knn)
            if not byol_runs:
                raise RuntimeError("stopped before BYOL pretraining started")
            for stage in (LINEAR, FINETUNE):
                timed(stage.method, lambda stage=stage: stage_run(stage.name, byol_runs[0]))
            timed(SCRATCH.method, lambda: stage_run(SCRATCH.name))
            timed(KNN.method, lambda: stage_run(KNN.name))
            timed(PIXEL_KNN, lambda: (pixel_knn_accuracy(splits, cfg), None))
        except BaseException as exc:  # a crash or Ctrl-C twice: the experiment run says how it ended
            exp_run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        result.wall_seconds = time.perf_counter() - t_start
        stopped = stop_event is not None and stop_event.is_set()
        exp_run.set_status("stopped" if stopped else "finished", results=result.to_dict(), finished=time.time())
        if json_path is not None:
            Path(json_path).parent.mkdir(parents=True, exist_ok=True)
            Path(json_path).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        return result
