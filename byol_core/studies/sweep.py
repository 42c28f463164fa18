"""The label-efficiency sweep: every method at several label fractions, over several seeds, with intervals.

For each seed one BYOL pretraining runs (it never looks at labels, so every fraction reuses it);
then, at each label fraction: supervised from scratch, BYOL fine-tuned, BYOL linear probe, BYOL
kNN, random-init kNN, and the raw-pixel floors (logistic regression and kNN). Seed ``i`` trains
with ``cfg.seed + i`` and (with ``data.labelled_subset = "per seed"``) draws its own labelled subset, the
floors' included; ``data.split_seed`` stays, so every seed and method is scored on the same test images.
Each run's per-image correctness is kept, so an interval covers the seeds and the test images, and the
declared comparisons (:mod:`byol_core.lab.comparison`) pair two methods seed by seed and image by image
(:mod:`byol_core.studies.tables`).

The sweep is a stage (:mod:`byol_core.studies.common`): ``plan("sweep", cfg, options={"label_fractions":
[...], "seeds": n})`` makes it a job like any other, and its run (kind ``"sweep"``) holds the table in
its status. Every stage run it starts is an ordinary run folder.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError, ExperimentConfig, with_overrides
from ..data import load_data
from ..events import ROW, Callback
from ..lab.builtin_stages import BYOL, FINETUNE, KNN, LINEAR, SCRATCH
from ..lab.comparison import METHOD_ORDER
from ..lab.plans import plan
from ..lab.run_store import RunStore
from ..lab.stages import Stage, StageContext
from ..methods.floors import PIXEL_KNN, PIXEL_LOGISTIC, pixel_knn_predictions, pixel_logistic_predictions
from ..stats import Summary
from . import tables
from .common import StudyRuns, check_fractions, check_known, check_seeds, correct_of, run_study, write_json

SWEEP_KIND = "sweep"  # the stage's name and its run's kind
OPTIONS = ("label_fractions", "seeds")
DEFAULT_FRACTIONS = (0.01, 0.1, 1.0)
DEFAULT_SEEDS = 3
BYOL_KNN = BYOL.method  # kNN of the seed's BYOL encoder, scored at each fraction
# Table order, fixed (never by a test number): the learned methods, then the baselines and floors they must beat.
METHODS = METHOD_ORDER


@dataclass
class SweepRow:
    """One method at one label fraction: a value per seed (seeds that gave none are left out), with the
    per-image correctness behind each where it was saved (:mod:`~byol_core.studies.tables`)."""

    method: str
    label_fraction: float
    labelled_images: int = 0
    seeds: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    run_ids: list[str | None] = field(default_factory=list)
    correct: list[np.ndarray | None] = field(default_factory=list)

    def add(self, seed: int, value: float | None, run_id: str | None, correct: np.ndarray | None = None) -> None:
        if value is None:  # a run that did not finish gave no result
            return
        self.seeds.append(seed)
        self.values.append(value if correct is None else tables.value_of(correct))
        self.run_ids.append(run_id)
        self.correct.append(correct)

    def summary(self) -> Summary | None:
        return tables.accuracy(self.values, self.correct)

    def by_seed(self) -> dict[int, tables.Scored]:
        return dict(zip(self.seeds, zip(self.values, self.correct, strict=True), strict=True))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepRow:
        values = list(d.get("values", []))
        return cls(d["method"], d["label_fraction"], d.get("labelled_images", 0), list(d.get("seeds", [])),
                   values, list(d.get("run_ids", [])), tables.read_correct(d, len(values)))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "label_fraction": self.label_fraction, "labelled_images": self.labelled_images,
                **tables.accuracy_fields(self.values, self.correct), "values": list(self.values),
                "seeds": list(self.seeds), "run_ids": list(self.run_ids)}


@dataclass
class SweepResult:
    run_id: str
    dataset: str
    config_name: str
    label_fractions: list[float]
    seeds: list[int]
    test_images: int = 0
    val_images: int = 0
    byol_runs: list[str] = field(default_factory=list)
    rows: list[SweepRow] = field(default_factory=list)
    wall_seconds: float = 0.0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepResult:
        """A result back from :meth:`to_dict` (a sweep run's results); its comparisons are computed again."""
        return cls(run_id=d["run_id"], dataset=d["dataset"], config_name=d["config_name"],
                   label_fractions=list(d["label_fractions"]), seeds=list(d["seeds"]),
                   test_images=d.get("test_images", 0), val_images=d.get("val_images", 0),
                   byol_runs=list(d.get("byol_runs", [])), rows=[SweepRow.from_dict(r) for r in d.get("rows", [])],
                   wall_seconds=d.get("wall_seconds", 0.0))

    def find(self, method: str, label_fraction: float) -> SweepRow | None:
        return next((r for r in self.rows if r.method == method and r.label_fraction == label_fraction), None)

    def row(self, method: str, label_fraction: float) -> SweepRow:
        """The row of ``method`` at ``label_fraction``, added (in table order) when it is new."""
        r = self.find(method, label_fraction)
        if r is None:
            r = SweepRow(method, label_fraction)
            self.rows.append(r)
            self.rows.sort(key=lambda x: (tables.order_key(x.method), x.label_fraction))
        return r

    def comparisons(self, label_fraction: float) -> list[tables.Comparison]:
        """The declared comparisons at one label fraction: the primary, then the secondary ones (Holm)."""
        return tables.declared({r.method: r.by_seed() for r in self.rows if r.label_fraction == label_fraction})

    def summaries(self) -> list[Summary | None]:
        return [r.summary() for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        comparisons = [c.fields(label_fraction=f) for f in self.label_fractions for c in self.comparisons(f)]
        return {"run_id": self.run_id, "dataset": self.dataset, "config_name": self.config_name,
                "label_fractions": self.label_fractions, "seeds": self.seeds, "test_images": self.test_images,
                "val_images": self.val_images, "byol_runs": self.byol_runs, "wall_seconds": self.wall_seconds,
                "confidence": 0.95, "intervals": tables.coverage(self.summaries()),
                "seed_note": tables.seed_note(self.summaries()), "rows": [r.to_dict() for r in self.rows],
                "comparisons": comparisons}

    def csv_text(self) -> str:
        """One line per (method, label fraction); per-seed values and run ids joined with ';'."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["method", "label_fraction", "labelled_images", "n", "mean", "std", "ci95_low",
                         "ci95_high", "shown_low", "shown_high", "interval", "values", "seeds", "run_ids"])
        for d in (r.to_dict() for r in self.rows):
            low, high = d["ci95"] or ("", "")
            shown_low, shown_high = d["ci95_clipped"] or ("", "")
            writer.writerow([d["method"], d["label_fraction"], d["labelled_images"], d["n"], _blank(d["mean"]),
                             _blank(d["std"]), low, high, shown_low, shown_high, _blank(d["interval"]),
                             ";".join(map(str, d["values"])), ";".join(map(str, d["seeds"])),
                             ";".join(r or "" for r in d["run_ids"])])
        return out.getvalue()

    def write(self, json_path: str | Path) -> list[Path]:
        """The result as JSON at ``json_path`` and as CSV beside it (same name, ``.csv``); both paths."""
        json_file = write_json(json_path, self.to_dict())
        csv_file = json_file.with_suffix(".csv")
        csv_file.write_text(self.csv_text())
        return [json_file, csv_file]

    def table(self) -> str:
        """Test accuracy, method by label fraction (``mean ± half-width`` of the 95% interval, clipped to
        0-100%), then each fraction's declared comparisons and, under 3 seeds, what that means."""
        width = 24
        head = [f"{'method':<30}"] + [f"{f'{100 * f:g}% labels':>{width}}" for f in self.label_fractions]
        lines = [" ".join(head), " ".join(["-" * 30] + ["-" * width] * len(self.label_fractions))]
        for method in METHODS:
            cells = [self._cell(self.find(method, f)) for f in self.label_fractions]
            lines.append(" ".join([f"{method:<30}"] + [f"{c:>{width}}" for c in cells]))
        lines.append(f"test accuracy on {self.test_images} {self.dataset} test images, seeds {self.seeds}: mean and "
                     f"95% interval {tables.coverage(self.summaries())}; wall time {self.wall_seconds:.1f} s")
        for fraction in self.label_fractions:
            comparisons = self.comparisons(fraction)
            if comparisons:
                lines.append(f"{100 * fraction:g}% labels, declared comparisons (secondary ones Holm-adjusted):")
                lines += tables.comparison_lines(comparisons)
        note = tables.seed_note(self.summaries())
        return "\n".join(lines + ([note] if note else []))

    def _cell(self, row: SweepRow | None) -> str:
        if row is None:
            return "-"
        text = tables.cell(row.summary())
        return text if len(row.values) == len(self.seeds) else f"{text} n={len(row.values)}"  # a seed gave none


def _blank(value: Any) -> Any:
    return "" if value is None else value


def parse_fractions(text: str) -> list[float]:
    """``"0.01,0.1,1"`` as sorted distinct fractions; a ConfigError names a bad one."""
    values: list[float] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            values.append(float(part))
        except ValueError:
            raise ConfigError(f"--label-fractions: {part!r} is not a number (e.g. 0.01,0.1,1).") from None
    return check_fractions(values)


def sweep_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The sweep's options checked and completed: ``label_fractions`` in (0, 1] and ``seeds`` >= 1."""
    check_known(options, OPTIONS, "label-efficiency sweep")
    return {"label_fractions": check_fractions(options.get("label_fractions", DEFAULT_FRACTIONS)),
            "seeds": check_seeds(options.get("seeds", DEFAULT_SEEDS))}


def run_counts(num_fractions: int, seeds: int) -> dict[str, int]:
    """The runs a sweep starts, by what they are: per seed one pretraining, per fraction five more."""
    per_fraction = seeds * num_fractions
    return {"BYOL pretrainings": seeds, "supervised trainings and linear probes": 3 * per_fraction,
            "kNN evaluations": 2 * per_fraction}


class _Sweeper:
    """Runs one sweep's stages into the store and records each result (with its per-image correctness)."""

    def __init__(self, ctx: StageContext, result: SweepResult, runs: StudyRuns) -> None:
        self.ctx, self.result, self.runs = ctx, result, runs

    def record(self, method: str, fraction: float, seed: int, labelled: int, value: float | None,
               run_id: str | None, correct: np.ndarray | None) -> None:
        row = self.result.row(method, fraction)
        row.labelled_images = labelled
        row.add(seed, value, run_id, correct)
        self.ctx.log({"kind": ROW, "method": method, "label_fraction": fraction, "seed": seed,
                      "accuracy": row.values[-1] if value is not None else None, "run_id": run_id})

    def seed(self, seed: int) -> None:
        cfg = dataclasses.replace(self.ctx.cfg, seed=seed)  # its labelled subset too ("per seed")
        base_name = f"{self.ctx.cfg.name}-s{seed}"
        _, byol_run = self.runs.start(plan(BYOL.name, cfg, name=base_name), load_data(cfg.data),
                                      f"seed {seed}: BYOL pretraining")
        self.result.byol_runs.append(byol_run.id)
        for fraction in self.result.label_fractions:
            if self.runs.stopped():
                return
            fraction_cfg = with_overrides(cfg, {"data.label_fraction": fraction})
            splits = load_data(fraction_cfg.data)  # this seed's labelled subset at this fraction
            labelled = len(splits.labelled_train)
            name = f"{base_name}-f{fraction:g}"
            steps = ((FINETUNE.method, FINETUNE.name, byol_run.id), (LINEAR.method, LINEAR.name, byol_run.id),
                     (BYOL_KNN, KNN.name, byol_run.id), (SCRATCH.method, SCRATCH.name, None),
                     (KNN.method, KNN.name, None))
            for method, stage, source in steps:
                if self.runs.stopped():
                    return
                spec = plan(stage, fraction_cfg, source_run=source, name=name)
                value, run = self.runs.start(spec, splits, f"seed {seed}, {100 * fraction:g}% labels "
                                                           f"({labelled} images): {method}")
                self.record(method, fraction, seed, labelled, value, run.id, correct_of(run, len(splits.test)))
            # The floors are fit on this seed's labelled subset, so they move with the seed like the rest.
            labels = splits.test.labels.numpy()
            for method, floor in ((PIXEL_LOGISTIC, pixel_logistic_predictions), (PIXEL_KNN, pixel_knn_predictions)):
                predicted = floor(splits, fraction_cfg)
                correct = None if predicted is None else predicted == labels
                self.record(method, fraction, seed, labelled, None if correct is None else tables.value_of(correct),
                            None, correct)


def sweep_body(ctx: StageContext) -> dict[str, Any]:
    """The ``sweep`` stage: every seed and fraction into ``ctx.run``'s results (partial ones as it goes)."""
    options = sweep_options(ctx.options)
    fractions, seeds = options["label_fractions"], options["seeds"]
    t_start = time.perf_counter()
    splits = ctx.data()
    cfg = ctx.cfg
    result = SweepResult(run_id=ctx.run.id, dataset=splits.name, config_name=cfg.name, label_fractions=fractions,
                         seeds=[cfg.seed + i for i in range(seeds)], test_images=len(splits.test),
                         val_images=len(splits.val))
    runs = StudyRuns(ctx, SWEEP_KIND, sum(run_counts(len(fractions), seeds).values()))
    sweeper = _Sweeper(ctx, result, runs)
    for seed in result.seeds:
        if runs.stopped():
            break
        sweeper.seed(seed)
        ctx.partial_results(result.to_dict())  # the table so far, for the dashboard
    result.wall_seconds = time.perf_counter() - t_start
    runs.finish()
    return {**result.to_dict(), "_stopped": runs.cut_short}


def run_sweep(cfg: ExperimentConfig, store: RunStore, label_fractions: Sequence[float], seeds: int, *,
              callbacks: Sequence[Callback] = (), stage_callbacks: Sequence[Callback] = (),
              stop_event: threading.Event | None = None, json_path: str | Path | None = None) -> SweepResult:
    """The sweep as a job in this thread (``seeds`` seeds from ``cfg.seed``): plan, run, and its table.

    ``callbacks`` follow the sweep's progress (runs done), ``stage_callbacks`` every run it starts.
    ``json_path``: also write the result as JSON there and as CSV beside it (same path, ``.csv``).
    """
    return run_study(SWEEP_KIND, cfg, store, {"label_fractions": list(label_fractions), "seeds": seeds},
                     SweepResult.from_dict, callbacks=callbacks, stage_callbacks=stage_callbacks,
                     stop_event=stop_event, json_path=json_path)


SWEEP = Stage(  # registered by the package (byol_core.studies)
    name=SWEEP_KIND, title="Label-efficiency sweep (every method at several label fractions, over seeds)",
    method="label-efficiency sweep", body=sweep_body, parse_options=sweep_options, metric="", metric_name="",
    resumable=False, exports_encoder=False, study=True,  # no headline: a table
)
