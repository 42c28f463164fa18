"""The seed experiment: supervised from scratch vs BYOL-pretrained, on the same split.

Rows: BYOL fine-tuned, BYOL linear probe, BYOL kNN, supervised from scratch,
random-init kNN and the raw-pixel floors (logistic regression and kNN), all scored
on the same test set with the same labelled training subset, and listed in that
fixed order. One seed: each accuracy's interval is Wilson over the test images, the
declared comparisons (:mod:`byol_core.lab.comparison`) are exact McNemar tests on the
per-image correctness (:mod:`byol_core.studies.tables`), the secondary ones Holm-adjusted.

The experiment is a stage (:mod:`byol_core.studies.common`): ``plan("experiment", cfg)`` makes it a job
like any other, and its run (kind ``"experiment"``) holds the table in its status. Every stage run it
starts is an ordinary run folder. Runs written before it was a stage (kind ``"experiment"``, no stage
in config.json) read the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ExperimentConfig
from ..data import DataSplits
from ..events import ROW, Callback
from ..lab import runner
from ..lab.builtin_stages import BYOL, FINETUNE, KNN, LINEAR, SCRATCH
from ..lab.plans import plan
from ..lab.run_store import RunStore
from ..lab.stages import Stage, StageContext
from ..methods.floors import PIXEL_KNN, PIXEL_LOGISTIC, pixel_knn_predictions, pixel_logistic_predictions
from ..stats import Summary
from . import tables
from .common import StudyRuns, correct_of, run_study, write_json

EXPERIMENT_KIND = "experiment"  # the stage's name and its run's kind
# The stage runs it starts: BYOL pretraining, a linear probe and a fine-tune from it, supervised from
# scratch and random-init kNN (the raw-pixel floors are computed, not runs).
RUN_COUNT = 5
Outcome = tuple[float | None, str | None, np.ndarray | None]  # a row's accuracy, its run, its per-image correctness


@dataclass
class ExperimentRow:
    """One method's test accuracy, with which test images it got right where that was saved."""

    method: str
    accuracy: float | None
    run_id: str | None
    seconds: float
    correct: np.ndarray | None = None

    def summary(self) -> Summary | None:
        """Its accuracy with the Wilson interval of its test images (one seed); None without an accuracy."""
        return tables.accuracy([] if self.accuracy is None else [self.accuracy], [self.correct])

    def to_dict(self) -> dict[str, Any]:
        scored = self.accuracy is not None
        return {"method": self.method, "accuracy": self.accuracy, "run_id": self.run_id, "seconds": self.seconds,
                **tables.accuracy_fields([self.accuracy] if scored else [], [self.correct] if scored else [])}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExperimentRow:
        """A row back from :meth:`to_dict`; an older row (an accuracy, no correctness) reads without interval."""
        accuracy = d.get("accuracy")
        correct = tables.read_correct(d, 1)[0] if accuracy is not None else None
        return cls(d["method"], accuracy, d.get("run_id"), d.get("seconds", 0.0), correct)


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
        """A result back from :meth:`to_dict` (an experiment run's results); its comparisons are computed again."""
        return cls(run_id=d["run_id"], dataset=d["dataset"], label_fraction=d["label_fraction"],
                   labelled_images=d.get("labelled_images", 0), test_images=d.get("test_images", 0),
                   rows=[ExperimentRow.from_dict(r) for r in d.get("rows", [])],
                   wall_seconds=d.get("wall_seconds", 0.0), config_name=d.get("config_name", ""))

    def ordered_rows(self) -> list[ExperimentRow]:
        """The rows in the fixed method order (:data:`~byol_core.lab.comparison.METHOD_ORDER`), never best first."""
        return sorted(self.rows, key=lambda r: tables.order_key(r.method))

    def comparisons(self) -> list[tables.Comparison]:
        """The declared primary comparison (exact McNemar: one seed) and the secondary ones, Holm-adjusted."""
        return tables.declared({r.method: {0: (r.accuracy, r.correct)} for r in self.rows if r.accuracy is not None})

    def to_dict(self) -> dict[str, Any]:
        summaries = [r.summary() for r in self.rows]
        return {"run_id": self.run_id, "dataset": self.dataset, "label_fraction": self.label_fraction,
                "labelled_images": self.labelled_images, "test_images": self.test_images,
                "rows": [r.to_dict() for r in self.ordered_rows()], "wall_seconds": self.wall_seconds,
                "config_name": self.config_name, "confidence": 0.95, "intervals": tables.coverage(summaries),
                "seed_note": tables.seed_note(summaries), "comparisons": [c.fields() for c in self.comparisons()]}

    def write(self, json_path: str | Path) -> list[Path]:
        """The result as JSON at ``json_path``; the paths written."""
        return [write_json(json_path, self.to_dict())]

    def table(self) -> str:
        """A plain-text table: each method's accuracy with its 95% interval, in the fixed method order, then the
        declared comparisons and what one seed's intervals cover."""
        lines = [f"{'method':<30} {'test accuracy (95% CI)':>24} {'seconds':>8}  run",
                 f"{'-' * 30} {'-' * 24} {'-' * 8}  {'-' * 20}"]
        for r in self.ordered_rows():
            lines.append(f"{r.method:<30} {tables.cell(r.summary()):>24} {r.seconds:8.1f}  {r.run_id or ''}")
        summaries = [r.summary() for r in self.rows]
        comparisons = self.comparisons()
        if comparisons:
            lines.append("declared comparisons (secondary ones Holm-adjusted):")
            lines += tables.comparison_lines(comparisons)
        lines.append(f"data set {self.dataset}, {self.labelled_images} labelled training images "
                     f"({100 * self.label_fraction:g}% of labels), {self.test_images} test images; 95% intervals "
                     f"{tables.coverage(summaries)}; wall time {self.wall_seconds:.1f} s")
        note = tables.seed_note(summaries)
        return "\n".join(lines + ([note] if note else []))


def experiment_body(ctx: StageContext) -> dict[str, Any]:
    """The ``experiment`` stage: every method in turn, each row into ``ctx.run``'s results."""
    t_start = time.perf_counter()
    cfg, splits = ctx.cfg, ctx.data()
    result = ExperimentResult(run_id=ctx.run.id, dataset=splits.name, label_fraction=cfg.data.label_fraction,
                              labelled_images=len(splits.labelled_train), test_images=len(splits.test),
                              config_name=cfg.name)
    runs = StudyRuns(ctx, EXPERIMENT_KIND, RUN_COUNT)
    labels = splits.test.labels.numpy()

    def timed(method: str, fn: Callable[[], Outcome]) -> None:
        if runs.stopped():
            return
        t0 = time.perf_counter()
        accuracy, run_id, correct = fn()
        if correct is not None:
            accuracy = tables.value_of(correct)  # the row's value and its interval agree exactly
        row = ExperimentRow(method, accuracy, run_id, time.perf_counter() - t0, correct)
        result.rows.append(row)
        ctx.log({"kind": ROW, "method": method, "accuracy": accuracy, "run_id": run_id, "seconds": row.seconds})

    def stage_run(stage: Stage, source_run: str | None = None) -> Outcome:
        _, run = runs.start(plan(stage.name, cfg, source_run=source_run), splits, stage.method)
        # a stopped run's number too, as its row
        return stage.headline(runner.run_results(run)), run.id, correct_of(run, len(splits.test))

    def floor(predict: Callable[[DataSplits, ExperimentConfig], np.ndarray | None]) -> Outcome:
        predicted = predict(splits, cfg)
        return None, None, None if predicted is None else predicted == labels

    byol_runs: list[str] = []

    def byol_knn() -> Outcome:  # its time is BYOL pretraining's
        outcome = stage_run(BYOL)
        byol_runs.append(outcome[1])
        return outcome

    timed(BYOL.method, byol_knn)
    if not byol_runs:
        raise RuntimeError("stopped before BYOL pretraining started")
    for stage in (LINEAR, FINETUNE):
        timed(stage.method, lambda stage=stage: stage_run(stage, byol_runs[0]))
    timed(SCRATCH.method, lambda: stage_run(SCRATCH))
    timed(KNN.method, lambda: stage_run(KNN))
    timed(PIXEL_KNN, lambda: floor(pixel_knn_predictions))
    timed(PIXEL_LOGISTIC, lambda: floor(pixel_logistic_predictions))
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
