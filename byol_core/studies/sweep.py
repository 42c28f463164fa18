"""The label-efficiency sweep: every method at several label fractions, over several seeds, with intervals.

For each seed one BYOL pretraining runs (it never looks at labels, so every fraction reuses it);
then, at each label fraction: supervised from scratch, BYOL fine-tuned, BYOL linear probe, BYOL
kNN, random-init kNN, and the raw-pixel floors (logistic regression and kNN). Seed ``i`` trains
with ``cfg.seed + i``; ``data.split_seed`` stays, so the test, validation and labelled subsets are
the same for every seed and the methods' values are paired by seed.

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

from ..config import ConfigError, ExperimentConfig, with_overrides
from ..data import load_data
from ..events import ROW, Callback
from ..lab.builtin_stages import BYOL, FINETUNE, KNN, LINEAR, SCRATCH
from ..lab.plans import plan
from ..lab.run_store import RunStore
from ..lab.stages import Stage, StageContext
from ..methods.floors import PIXEL_KNN, PIXEL_LOGISTIC, pixel_knn_accuracy, pixel_logistic_accuracy
from ..stats import Summary, summarize
from .common import StudyRuns, check_fractions, check_known, check_seeds, run_study, write_json

SWEEP_KIND = "sweep"  # the stage's name and its run's kind
OPTIONS = ("label_fractions", "seeds")
DEFAULT_FRACTIONS = (0.01, 0.1, 1.0)
DEFAULT_SEEDS = 3
BYOL_KNN = BYOL.method  # kNN of the seed's BYOL encoder, scored at each fraction
# Table order: the learned methods, then the baselines and floors they must beat.
METHODS = (FINETUNE.method, LINEAR.method, BYOL_KNN, SCRATCH.method, KNN.method, PIXEL_LOGISTIC, PIXEL_KNN)


@dataclass
class SweepRow:
    """One method at one label fraction: a value per seed (seeds that gave none are left out)."""

    method: str
    label_fraction: float
    labelled_images: int = 0
    seeds: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    run_ids: list[str | None] = field(default_factory=list)

    def add(self, seed: int, value: float | None, run_id: str | None) -> None:
        if value is not None:
            self.seeds.append(seed)
            self.values.append(value)
            self.run_ids.append(run_id)

    def summary(self) -> Summary | None:
        return summarize(self.values) if self.values else None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepRow:
        return cls(d["method"], d["label_fraction"], d.get("labelled_images", 0), list(d.get("seeds", [])),
                   list(d.get("values", [])), list(d.get("run_ids", [])))

    def to_dict(self) -> dict[str, Any]:
        s = self.summary()
        return {"method": self.method, "label_fraction": self.label_fraction, "labelled_images": self.labelled_images,
                "n": len(self.values), "mean": s.mean if s else None, "std": s.std if s else None,
                "ci95": list(s.ci) if s and s.ci else None, "values": list(self.values), "seeds": list(self.seeds),
                "run_ids": list(self.run_ids)}


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
        """A result back from :meth:`to_dict` (a sweep run's results)."""
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
            order = {m: i for i, m in enumerate(METHODS)}
            self.rows.sort(key=lambda x: (order.get(x.method, len(order)), x.label_fraction))
        return r

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dataset": self.dataset, "config_name": self.config_name,
                "label_fractions": self.label_fractions, "seeds": self.seeds, "test_images": self.test_images,
                "val_images": self.val_images, "byol_runs": self.byol_runs, "wall_seconds": self.wall_seconds,
                "confidence": 0.95, "rows": [r.to_dict() for r in self.rows]}

    def csv_text(self) -> str:
        """One line per (method, label fraction); per-seed values and run ids joined with ';'."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["method", "label_fraction", "labelled_images", "n", "mean", "std", "ci95_low",
                         "ci95_high", "values", "seeds", "run_ids"])
        for d in (r.to_dict() for r in self.rows):
            low, high = d["ci95"] or ("", "")
            writer.writerow([d["method"], d["label_fraction"], d["labelled_images"], d["n"], _blank(d["mean"]),
                             _blank(d["std"]), low, high, ";".join(map(str, d["values"])),
                             ";".join(map(str, d["seeds"])), ";".join(r or "" for r in d["run_ids"])])
        return out.getvalue()

    def write(self, json_path: str | Path) -> list[Path]:
        """The result as JSON at ``json_path`` and as CSV beside it (same name, ``.csv``); both paths."""
        json_file = write_json(json_path, self.to_dict())
        csv_file = json_file.with_suffix(".csv")
        csv_file.write_text(self.csv_text())
        return [json_file, csv_file]

    def table(self) -> str:
        """Test accuracy in %, method by label fraction: ``mean ± half-width of the 95% CI (n seeds)``."""
        head = [f"{'method':<30}"] + [f"{f'{100 * f:g}% labels':>20}" for f in self.label_fractions]
        lines = [" ".join(head), " ".join(["-" * 30] + ["-" * 20] * len(self.label_fractions))]
        for method in METHODS:
            cells = [_cell(r.summary() if (r := self.find(method, f)) else None) for f in self.label_fractions]
            lines.append(" ".join([f"{method:<30}"] + [f"{c:>20}" for c in cells]))
        lines.append(f"test accuracy (%) on {self.test_images} {self.dataset} test images, mean ± half-width of "
                     f"the 95% t-interval over seeds (n); seeds {self.seeds}; wall time {self.wall_seconds:.1f} s")
        return "\n".join(lines)


def _blank(value: float | None) -> Any:
    return "" if value is None else value


def _cell(s: Summary | None) -> str:
    if s is None:
        return "-"
    if s.half_width is None:
        return f"{100 * s.mean:.1f} ({s.n})"
    return f"{100 * s.mean:.1f} ± {100 * s.half_width:.1f} ({s.n})"


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
    """Runs one sweep's stages into the store and records each headline number in the result."""

    def __init__(self, ctx: StageContext, result: SweepResult, runs: StudyRuns) -> None:
        self.ctx, self.result, self.runs = ctx, result, runs
        self.floors: dict[tuple[str, float], float | None] = {}  # floors do not depend on the seed

    def record(self, method: str, fraction: float, seed: int, labelled: int, value: float | None,
               run_id: str | None) -> None:
        row = self.result.row(method, fraction)
        row.labelled_images = labelled
        row.add(seed, value, run_id)
        self.ctx.log({"kind": ROW, "method": method, "label_fraction": fraction, "seed": seed,
                      "accuracy": value, "run_id": run_id})

    def seed(self, seed: int) -> None:
        cfg = dataclasses.replace(self.ctx.cfg, seed=seed)
        base_name = f"{self.ctx.cfg.name}-s{seed}"
        _, byol_run = self.runs.start(plan(BYOL.name, cfg, name=base_name), self.ctx.data(),
                                      f"seed {seed}: BYOL pretraining")
        self.result.byol_runs.append(byol_run.id)
        for fraction in self.result.label_fractions:
            if self.runs.stopped():
                return
            fraction_cfg = with_overrides(cfg, {"data.label_fraction": fraction})
            splits = load_data(fraction_cfg.data)
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
                self.record(method, fraction, seed, labelled, value, run.id)
            for method, floor in ((PIXEL_LOGISTIC, pixel_logistic_accuracy), (PIXEL_KNN, pixel_knn_accuracy)):
                if (method, fraction) not in self.floors:
                    self.floors[(method, fraction)] = floor(splits, fraction_cfg)
                self.record(method, fraction, seed, labelled, self.floors[(method, fraction)], None)


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
