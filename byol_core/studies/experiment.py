"""The seed experiment: supervised from scratch vs BYOL-pretrained, on the same split.

Rows: supervised from scratch, BYOL fine-tuned, BYOL linear probe, BYOL kNN,
random-init kNN and raw-pixel kNN, all scored on the same test set with the
same labelled training subset.

The experiment is a stage (:mod:`byol_core.studies.common`): ``plan("experiment", cfg)`` makes it a job
like any other, and its run (kind ``"experiment"``) holds the table in its status. Every stage run it
starts is an ordinary run folder. Runs written before it was a stage (kind ``"experiment"``, no stage
in config.json) read the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig
from ..events import ROW, Callback
from ..lab import runner
from ..lab.builtin_stages import BYOL, FINETUNE, KNN, LINEAR, SCRATCH
from ..lab.plans import plan
from ..lab.run_store import RunStore
from ..lab.stages import Stage, StageContext
from ..methods.floors import PIXEL_KNN, pixel_knn_accuracy
from .common import StudyRuns, run_study, write_json

EXPERIMENT_KIND = "experiment"  # the stage's name and its run's kind
# The stage runs it starts: BYOL pretraining, a linear probe and a fine-tune from it, supervised from
# scratch and random-init kNN (the raw-pixel floor is computed, not a run).
RUN_COUNT = 5


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

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExperimentResult:
        """A result back from :meth:`to_dict` (an experiment run's results)."""
        rows = [ExperimentRow(r["method"], r.get("accuracy"), r.get("run_id"), r.get("seconds", 0.0))
                for r in d.get("rows", [])]
        return cls(run_id=d["run_id"], dataset=d["dataset"], label_fraction=d["label_fraction"],
                   labelled_images=d.get("labelled_images", 0), test_images=d.get("test_images", 0), rows=rows,
                   wall_seconds=d.get("wall_seconds", 0.0), config_name=d.get("config_name", ""))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, json_path: str | Path) -> list[Path]:
        """The result as JSON at ``json_path``; the paths written."""
        return [write_json(json_path, self.to_dict())]

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


def experiment_body(ctx: StageContext) -> dict[str, Any]:
    """The ``experiment`` stage: every method in turn, each row into ``ctx.run``'s results."""
    t_start = time.perf_counter()
    cfg, splits = ctx.cfg, ctx.data()
    result = ExperimentResult(run_id=ctx.run.id, dataset=splits.name, label_fraction=cfg.data.label_fraction,
                              labelled_images=len(splits.labelled_train), test_images=len(splits.test),
                              config_name=cfg.name)
    runs = StudyRuns(ctx, EXPERIMENT_KIND, RUN_COUNT)

    def timed(method: str, fn: Callable[[], tuple[float | None, str | None]]) -> None:
        if runs.stopped():
            return
        t0 = time.perf_counter()
        accuracy, run_id = fn()
        row = ExperimentRow(method, accuracy, run_id, time.perf_counter() - t0)
        result.rows.append(row)
        ctx.log({"kind": ROW, **asdict(row)})

    def stage_run(stage: Stage, source_run: str | None = None) -> tuple[float | None, str | None]:
        _, run = runs.start(plan(stage.name, cfg, source_run=source_run), splits, stage.method)
        return stage.headline(runner.run_results(run)), run.id  # a stopped run's number too, as its row

    byol_runs: list[str] = []

    def byol_knn() -> tuple[float | None, str | None]:  # its time is BYOL pretraining's
        accuracy, run_id = stage_run(BYOL)
        byol_runs.append(run_id)
        return accuracy, run_id

    timed(BYOL.method, byol_knn)
    if not byol_runs:
        raise RuntimeError("stopped before BYOL pretraining started")
    for stage in (LINEAR, FINETUNE):
        timed(stage.method, lambda stage=stage: stage_run(stage, byol_runs[0]))
    timed(SCRATCH.method, lambda: stage_run(SCRATCH))
    timed(KNN.method, lambda: stage_run(KNN))
    timed(PIXEL_KNN, lambda: (pixel_knn_accuracy(splits, cfg), None))
    result.wall_seconds = time.perf_counter() - t_start
    runs.finish()
    return {**result.to_dict(), "_stopped": runs.stopped()}


def run_experiment(cfg: ExperimentConfig, store: RunStore, *, callbacks: Sequence[Callback] = (),
                   stage_callbacks: Sequence[Callback] = (), stop_event: threading.Event | None = None,
                   json_path: str | Path | None = None) -> ExperimentResult:
    """The experiment as a job in this thread: plan, run, and its table (:func:`~.common.run_study`)."""
    return run_study(EXPERIMENT_KIND, cfg, store, {}, ExperimentResult.from_dict, callbacks=callbacks,
                     stage_callbacks=stage_callbacks, stop_event=stop_event, json_path=json_path)


EXPERIMENT = Stage(  # registered by the package (byol_core.studies)
    name=EXPERIMENT_KIND,
    title="Experiment (supervised from scratch vs BYOL fine-tuned, linear probe and kNN, on one split)",
    method=EXPERIMENT_KIND, body=experiment_body, metric="", metric_name="", resumable=False,
    exports_encoder=False, study=True,  # no headline: a table
)
