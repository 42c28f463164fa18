"""The colour ablation: how much BYOL and SimCLR each lose without colour augmentation, over seeds.

For every seed, method (BYOL, SimCLR) and augmentation (``full``, and ``no-colour``: colour jitter
and grayscale off on both views) one pretraining run and one linear probe from it are trained, each
a normal run folder made with :func:`~byol_core.plans.plan` and :func:`~byol_core.runner.start`.
Every encoder is scored the same way on the same labelled subset and test set (the data split does
not depend on the training seed): kNN accuracy and linear-probe accuracy. The result, one row per
(method, augmentation, evaluation) with its t-interval over seeds and each method's drop with its
paired interval, is held by a summary run of kind ``ablation``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import runner
from .builtin_stages import BYOL, KNN, LINEAR, SIMCLR
from .config import ExperimentConfig
from .data import DataSplits, load_data
from .plans import plan
from .runs import Run, RunStore
from .stages import get_stage
from .stats import Difference, Summary, compare, format_ci, format_difference, summarize
from .training import Callback

ABLATION_KIND = "ablation"
METHODS = (BYOL.name, SIMCLR.name)
FULL, NO_COLOUR = "full", "no-colour"
AUGMENTATIONS = (FULL, NO_COLOUR)
# Evaluation -> the results key that holds it: kNN in the pretraining run's results, the probe's in its own.
# How each encoder is scored: the kNN of its own run, and a linear probe from it (named by their stages).
EVALUATIONS = (KNN.name, LINEAR.name)

CallbackFactory = Callable[[str], Sequence[Callback]]


def augmentation_overrides(augmentation: str) -> dict[str, float]:
    """The ``--set`` overrides that turn the config's views into ``augmentation``'s."""
    if augmentation == FULL:
        return {}
    if augmentation == NO_COLOUR:
        return {f"augment.{view}.{name}": 0.0 for view in ("view1", "view2") for name in ("jitter_p", "grayscale_p")}
    raise ValueError(f"augmentation = {augmentation!r}; choose one of {AUGMENTATIONS}.")


def _interval(summary: Summary) -> list[float] | None:
    return None if summary.ci is None else [summary.ci[0], summary.ci[1]]


@dataclass
class AblationCell:
    """One (method, augmentation, evaluation): its value and run per seed."""

    method: str
    augmentation: str
    evaluation: str
    values: dict[int, float] = field(default_factory=dict)  # seed -> accuracy
    runs: dict[int, str] = field(default_factory=dict)      # seed -> run id that holds it

    def summary(self) -> Summary:
        return summarize(list(self.values.values()))

    def to_row(self) -> dict[str, Any]:
        s = self.summary()
        return {"method": self.method, "augmentation": self.augmentation, "evaluation": self.evaluation,
                "n": s.n, "mean": s.mean, "std": s.std, "ci95": _interval(s), "interval": s.method,
                "values": list(self.values.values()), "seeds": list(self.values), "runs": list(self.runs.values())}


def colour_drop(full: AblationCell, no_colour: AblationCell) -> Difference:
    """``full - no-colour`` over the seeds both have, with its paired interval."""
    seeds = [s for s in full.values if s in no_colour.values]
    return compare([full.values[s] for s in seeds], [no_colour.values[s] for s in seeds],
                   a_name=f"{full.method} {FULL}", b_name=f"{full.method} {NO_COLOUR}")


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
        return "\n".join(lines)


class _Trainer:
    """Trains one (seed, method, augmentation): its pretraining run, then a linear probe from it."""

    def __init__(self, cfg: ExperimentConfig, store: RunStore, splits: DataSplits, callbacks_for: CallbackFactory,
                 stop_event: threading.Event | None) -> None:
        self.cfg, self.store, self.splits = cfg, store, splits
        self.callbacks_for, self.stop_event = callbacks_for, stop_event

    def stopped(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    def _start(self, stage: str, base: ExperimentConfig, **plan_args: Any) -> Run:
        return runner.start(plan(stage, base, **plan_args), self.store, splits=self.splits,
                            callbacks=self.callbacks_for(stage), stop_event=self.stop_event)

    def train(self, seed: int, method: str, augmentation: str) -> dict[str, tuple[float, str]]:
        """Evaluation name -> (accuracy, run id); empty when stopped before it was scored."""
        overrides = {"seed": seed, **augmentation_overrides(augmentation)}
        pre = self._start(method, self.cfg, overrides=overrides, name=f"{augmentation}-s{seed}-{self.cfg.name}")
        knn = get_stage(method).headline(runner.run_results(pre))
        if self.stopped() or knn is None:
            return {}
        scores = {KNN.name: (knn, pre.id)}
        probe = self._start(LINEAR.name, pre.read_config()[0], source_run=pre.id)
        linear = LINEAR.headline(runner.run_results(probe))
        if not self.stopped() and linear is not None:
            scores[LINEAR.name] = (linear, probe.id)
        return scores


def run_ablation(cfg: ExperimentConfig, store: RunStore, *, seeds: int = 3,
                 callbacks_for: CallbackFactory | None = None, stop_event: threading.Event | None = None,
                 json_path: str | Path | None = None,
                 progress: Callable[[str], None] | None = None) -> AblationResult:
    """Train and score every (seed, method, augmentation) on ``cfg``; seeds are cfg.seed, cfg.seed + 1, ..."""
    if seeds < 1:
        raise ValueError(f"seeds = {seeds}; the ablation needs at least 1 (3 or more for intervals worth reading).")
    t_start = time.perf_counter()
    say = progress or (lambda _msg: None)
    seed_list = [cfg.seed + i for i in range(seeds)]
    summary_run = store.create(ABLATION_KIND, cfg, {"seeds": seed_list, "methods": list(METHODS),
                                                    "augmentations": list(AUGMENTATIONS)})
    with summary_run.claim():  # its status reads "running" only while this process holds it
        summary_run.set_status("running", started=time.time())
        try:
            say("loading data")
            splits = load_data(cfg.data)
            result = AblationResult(run_id=summary_run.id, dataset=splits.name, seeds=seed_list,
                                    labelled_images=len(splits.labelled_train), test_images=len(splits.test),
                                    config_name=cfg.name)
            trainer = _Trainer(cfg, store, splits, callbacks_for or (lambda _stage: ()), stop_event)
            for seed in seed_list:
                for method in METHODS:
                    for augmentation in AUGMENTATIONS:
                        if trainer.stopped():
                            break
                        say(f"seed {seed}: {method}, {augmentation} augmentation")
                        for evaluation, (value, run_id) in trainer.train(seed, method, augmentation).items():
                            cell = result.cell(method, augmentation, evaluation)
                            cell.values[seed], cell.runs[seed] = value, run_id
                            summary_run.log({"kind": "row", "seed": seed, "method": method,
                                             "augmentation": augmentation, "evaluation": evaluation,
                                             "accuracy": value, "run_id": run_id})
        except BaseException as exc:  # a crash or Ctrl-C twice: the summary run says how it ended
            summary_run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        result.wall_seconds = time.perf_counter() - t_start
        out = result.to_dict()
        summary_run.set_status("stopped" if trainer.stopped() else "finished", results=out, finished=time.time())
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(out, indent=2) + "\n")
    return result


__all__ = ["ABLATION_KIND", "AUGMENTATIONS", "EVALUATIONS", "METHODS", "AblationCell", "AblationResult",
           "augmentation_overrides", "colour_drop", "run_ablation"]
