"""The colour ablation: how much BYOL and SimCLR each lose without colour augmentation, over seeds.

For every seed, method (BYOL, SimCLR) and augmentation (``full``, and ``no-colour``: colour jitter
and grayscale off on both views) one pretraining run and one linear probe from it are trained, each
a normal run folder made with :func:`~byol_core.lab.plans.plan` and :func:`~byol_core.lab.runner.start`.
The ablation is itself a stage (:mod:`byol_core.studies.common`): ``plan("ablation", cfg, options={"seeds": n})``
makes it a job like any other.
Every encoder is scored the same way on the same test set, with its seed's labelled subset (the same for
both methods and both augmentations of a seed): kNN accuracy and linear-probe accuracy. Each run's
per-image correctness is kept, so the result, one row per (method, augmentation, evaluation) with its
interval over seeds and test images, and each method's drop (full - no-colour, the ablation's own declared
comparisons) paired seed by seed and image by image (:mod:`byol_core.studies.tables`), covers every source
of noise; runs without saved predictions fall back to the seeds alone. The ablation's own run (kind
``ablation``) holds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ExperimentConfig
from ..data import load_data
from ..events import ROW, Callback
from ..lab.builtin_stages import BYOL, KNN, LINEAR, SIMCLR
from ..lab.plans import plan
from ..lab.run_store import RunStore
from ..lab.stages import Stage, StageContext
from ..stats import Difference, Summary
from ..stats_text import format_ci, format_difference
from . import tables
from .common import StudyRuns, check_known, check_seeds, correct_of, run_study, write_json

ABLATION_KIND = "ablation"  # the stage's name and its run's kind
OPTIONS = ("seeds",)
DEFAULT_SEEDS = 3
METHODS = (BYOL.name, SIMCLR.name)
FULL, NO_COLOUR = "full", "no-colour"
AUGMENTATIONS = (FULL, NO_COLOUR)
# Evaluation -> the results key that holds it: kNN in the pretraining run's results, the probe's in its own.
# How each encoder is scored: the kNN of its own run, and a linear probe from it (named by their stages).
EVALUATIONS = (KNN.name, LINEAR.name)
RUNS_PER_ARM = 2  # a pretraining and a linear probe from it


def augmentation_overrides(augmentation: str) -> dict[str, float]:
    """The ``--set`` overrides that turn the config's views into ``augmentation``'s."""
    if augmentation == FULL:
        return {}
    if augmentation == NO_COLOUR:
        return {f"augment.{view}.{name}": 0.0 for view in ("view1", "view2") for name in ("jitter_p", "grayscale_p")}
    raise ValueError(f"augmentation = {augmentation!r}; choose one of {AUGMENTATIONS}.")


def _interval(summary: Summary) -> list[float] | None:
    return None if summary.ci is None else [summary.ci[0], summary.ci[1]]


Scores = dict[str, tuple[float, str, np.ndarray | None]]  # evaluation -> (accuracy, run id, per-image correctness)


@dataclass
class AblationCell:
    """One (method, augmentation, evaluation): its value, run and per-image correctness (where saved) per seed."""

    method: str
    augmentation: str
    evaluation: str
    values: dict[int, float] = field(default_factory=dict)  # seed -> accuracy
    runs: dict[int, str] = field(default_factory=dict)      # seed -> run id that holds it
    correct: dict[int, np.ndarray] = field(default_factory=dict)  # seed -> which test images it got right

    def add(self, seed: int, value: float, run_id: str, correct: np.ndarray | None) -> None:
        self.values[seed], self.runs[seed] = (value if correct is None else tables.value_of(correct)), run_id
        if correct is not None:
            self.correct[seed] = correct

    def summary(self) -> Summary | None:
        return tables.accuracy(list(self.values.values()), [self.correct.get(s) for s in self.values])

    def by_seed(self) -> dict[int, tables.Scored]:
        return {s: (v, self.correct.get(s)) for s, v in self.values.items()}

    def to_row(self) -> dict[str, Any]:
        return {"method": self.method, "augmentation": self.augmentation, "evaluation": self.evaluation,
                **tables.accuracy_fields(list(self.values.values()), [self.correct.get(s) for s in self.values]),
                "values": list(self.values.values()), "seeds": list(self.values), "runs": list(self.runs.values())}


def colour_drop(full: AblationCell, no_colour: AblationCell) -> Difference:
    """``full - no-colour`` over the seeds both have: image by image where every run kept its correctness."""
    drop = tables.paired(full.by_seed(), no_colour.by_seed(), f"{full.method} {FULL}", f"{full.method} {NO_COLOUR}")
    if drop is None:
        raise ValueError(f"{full.method}: no seed has both the {FULL} and the {NO_COLOUR} arm")
    return drop


@dataclass
class AblationResult:
    run_id: str
    dataset: str
    seeds: list[int]
    labelled_images: int
    test_images: int
    cells: list[AblationCell] = field(default_factory=list)
    wall_seconds: float = 0.0
    config_name: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AblationResult:
        """A result back from :meth:`to_dict` (an ablation run's results); the drops are computed again."""
        result = cls(run_id=d["run_id"], dataset=d["dataset"], seeds=list(d["seeds"]),
                     labelled_images=d.get("labelled_images", 0), test_images=d.get("test_images", 0),
                     wall_seconds=d.get("wall_seconds", 0.0), config_name=d.get("config_name", ""))
        for row in d.get("rows", []):
            cell = result.cell(row["method"], row["augmentation"], row["evaluation"])
            cell.values = dict(zip(row["seeds"], row["values"], strict=True))
            cell.runs = dict(zip(row["seeds"], row["runs"], strict=True))
            correct = tables.read_correct(row, len(row["seeds"]))  # Nones in results written before it was kept
            cell.correct = {s: c for s, c in zip(row["seeds"], correct, strict=True) if c is not None}
        return result

    def write(self, json_path: str | Path) -> list[Path]:
        """The result as JSON at ``json_path``; the paths written."""
        return [write_json(json_path, self.to_dict())]

    def cell(self, method: str, augmentation: str, evaluation: str) -> AblationCell:
        for c in self.cells:
            if (c.method, c.augmentation, c.evaluation) == (method, augmentation, evaluation):
                return c
        c = AblationCell(method, augmentation, evaluation)
        self.cells.append(c)
        return c

    def rows(self) -> list[dict[str, Any]]:
        return [c.to_row() for c in self.cells if c.values]

    def drops(self) -> list[tuple[str, str, Difference]]:
        """(method, evaluation, full - no-colour) for every pair with at least one seed in both."""
        out = []
        for method in METHODS:
            for evaluation in EVALUATIONS:
                full, bare = self.cell(method, FULL, evaluation), self.cell(method, NO_COLOUR, evaluation)
                if any(s in bare.values for s in full.values):
                    out.append((method, evaluation, colour_drop(full, bare)))
        return out

    def to_dict(self) -> dict[str, Any]:
        drops = [{"method": m, "evaluation": e, "n": d.difference.n, "mean": d.difference.mean,
                  "std": d.difference.std, "ci95": _interval(d.difference), "p_value": d.p_value, "test": d.test,
                  "significant": d.significant, "verdict": d.verdict} for m, e, d in self.drops()]
        return {"run_id": self.run_id, "dataset": self.dataset, "seeds": self.seeds,
                "labelled_images": self.labelled_images, "test_images": self.test_images, "rows": self.rows(),
                "drops": drops, "wall_seconds": self.wall_seconds, "config_name": self.config_name}

    def table(self) -> str:
        """Plain text: every row with its interval over seeds, then each method's drop."""
        lines = [f"{'method':<8} {'augmentation':<12} {'evaluation':<10} accuracy",
                 f"{'-' * 8} {'-' * 12} {'-' * 10} {'-' * 30}"]
        for c in self.cells:
            if c.values:
                lines.append(f"{c.method:<8} {c.augmentation:<12} {c.evaluation:<10} {format_ci(c.summary())}")
        lines.append("colour drop (full - no-colour):")
        lines += [f"  {e:<7} {format_difference(d)}" for _m, e, d in self.drops()]
        lines.append(f"data set {self.dataset}, {self.labelled_images} labelled training images, "
                     f"{self.test_images} test images, seeds {self.seeds}; wall time {self.wall_seconds:.1f} s")
        note = tables.seed_note(c.summary() for c in self.cells if c.values)
        return "\n".join(lines + ([note] if note else []))


def ablation_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The ablation's options checked and completed: ``seeds`` >= 1."""
    check_known(options, OPTIONS, "colour ablation")
    return {"seeds": check_seeds(options.get("seeds", DEFAULT_SEEDS))}


def run_count(seeds: int) -> int:
    """The runs an ablation starts: per seed, method and augmentation a pretraining and a probe."""
    return seeds * len(METHODS) * len(AUGMENTATIONS) * RUNS_PER_ARM


def _train_arm(ctx: StageContext, runs: StudyRuns, seed: int, method: str, augmentation: str) -> Scores:
    """One (seed, method, augmentation): evaluation name -> (accuracy, run id, correctness); empty when stopped
    first. Both evaluations use the seed's labelled subset (its config's data)."""
    arm = f"seed {seed}: {method}, {augmentation} augmentation"
    overrides = {"seed": seed, **augmentation_overrides(augmentation)}
    spec = plan(method, ctx.cfg, overrides=overrides, name=f"{augmentation}-s{seed}-{ctx.cfg.name}")
    splits = load_data(spec.config.data)
    knn, pre = runs.start(spec, splits, f"{arm}, pretraining")
    if runs.stopped() or knn is None:
        runs.skip()  # no probe of an encoder that was not scored
        return {}
    scores = {KNN.name: (knn, pre.id, correct_of(pre, len(splits.test)))}
    linear, probe = runs.start(plan(LINEAR.name, pre.read_config()[0], source_run=pre.id), splits,
                               f"{arm}, linear probe")
    if linear is not None:
        scores[LINEAR.name] = (linear, probe.id, correct_of(probe, len(splits.test)))
    return scores


def ablation_body(ctx: StageContext) -> dict[str, Any]:
    """The ``ablation`` stage: every (seed, method, augmentation) into ``ctx.run``'s results."""
    seeds = ablation_options(ctx.options)["seeds"]
    t_start = time.perf_counter()
    cfg, splits = ctx.cfg, ctx.data()
    result = AblationResult(run_id=ctx.run.id, dataset=splits.name, seeds=[cfg.seed + i for i in range(seeds)],
                            labelled_images=len(splits.labelled_train), test_images=len(splits.test),
                            config_name=cfg.name)
    runs = StudyRuns(ctx, ABLATION_KIND, run_count(seeds))
    for seed in result.seeds:
        for method in METHODS:
            for augmentation in AUGMENTATIONS:
                if runs.stopped():
                    break
                for evaluation, (value, run_id, correct) in _train_arm(ctx, runs, seed, method,
                                                                       augmentation).items():
                    cell = result.cell(method, augmentation, evaluation)
                    cell.add(seed, value, run_id, correct)
                    ctx.log({"kind": ROW, "seed": seed, "method": method, "augmentation": augmentation,
                             "evaluation": evaluation, "accuracy": cell.values[seed], "run_id": run_id})
        ctx.partial_results(result.to_dict())
    result.wall_seconds = time.perf_counter() - t_start
    runs.finish()
    return {**result.to_dict(), "_stopped": runs.cut_short}


def run_ablation(cfg: ExperimentConfig, store: RunStore, *, seeds: int = DEFAULT_SEEDS,
                 callbacks: Sequence[Callback] = (), stage_callbacks: Sequence[Callback] = (),
                 stop_event: threading.Event | None = None, json_path: str | Path | None = None) -> AblationResult:
    """The ablation as a job in this thread (seeds cfg.seed, cfg.seed + 1, ...): plan, run, and its result.

    ``callbacks`` follow the ablation's progress (runs done), ``stage_callbacks`` every run it starts.
    """
    return run_study(ABLATION_KIND, cfg, store, {"seeds": seeds}, AblationResult.from_dict, callbacks=callbacks,
                     stage_callbacks=stage_callbacks, stop_event=stop_event, json_path=json_path)


ABLATION = Stage(  # registered by the package (byol_core.studies)
    name=ABLATION_KIND, title="Colour ablation (BYOL and SimCLR with and without colour augmentation, over seeds)",
    method="colour ablation", body=ablation_body, parse_options=ablation_options, metric="", metric_name="",
    resumable=False, exports_encoder=False, study=True,  # no headline: a table
)

__all__ = ["ABLATION", "ABLATION_KIND", "AUGMENTATIONS", "EVALUATIONS", "METHODS", "AblationCell", "AblationResult",
           "ablation_body", "ablation_options", "augmentation_overrides", "colour_drop", "run_ablation", "run_count"]
