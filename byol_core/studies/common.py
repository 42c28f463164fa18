"""Studies: stages that run other stages many times (the seed experiment, the label-efficiency sweep, the
colour ablation).

A study is a job like any other: planned with :func:`~byol_core.lab.plans.plan` (its options checked
there), carried out by :func:`~byol_core.lab.runner.execute` in its own run, which holds its table as
results. Each stage it starts is an ordinary run folder. :class:`StudyRuns` starts them and counts
them: the study's progress events say how many of its runs are done (``step`` of ``total_steps``)
and what it is doing now (``doing``), so a job card shows a study like a training, and a stop
request ends it between runs (the run under way stops with a checkpoint). :func:`run_study` runs a
study as a job in this thread and reads its table back.
"""

from __future__ import annotations

import json
import numbers
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from ..config import ConfigError, ExperimentConfig
from ..data import DataSplits
from ..events import START, STEP, Callback
from ..lab import runner
from ..lab.plans import JobSpec, plan
from ..lab.run_store import Run, RunStore
from ..lab.stages import StageContext


def check_seeds(value: Any) -> int:
    """A study's number of seeds: a whole number >= 1; a ConfigError says what to give instead."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise ConfigError(f"seeds = {value!r}; give a whole number of seeds (3 or more for intervals worth reading).")
    if value < 1:
        raise ConfigError(f"seeds = {int(value)}; run at least 1 seed (3 or more for intervals worth reading).")
    return int(value)


def check_fractions(values: Any) -> list[float]:
    """Label fractions in (0, 1], sorted and distinct; a ConfigError names a bad one."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(f"label_fractions = {values!r}; give a list of fractions such as [0.01, 0.1, 1].")
    out = set()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"label fraction {value!r} is not a number; give fractions such as 0.01, 0.1, 1.")
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"label fraction {value:g} is outside (0, 1]: it is the share of training labels kept "
                              "(1 = all of them).")
        out.add(float(value))
    if not out:
        raise ConfigError("label_fractions is empty; give at least one, e.g. 0.01, 0.1, 1.")
    return sorted(out)


def check_known(options: Mapping[str, Any], known: Sequence[str], study: str) -> None:
    """A ConfigError naming an option the study does not have (a typo would otherwise be ignored)."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"the {study} has no option {', '.join(map(repr, unknown))}; its options are "
                          f"{', '.join(known)}.")


class StudyRuns:
    """Starts a study's stage runs one after another and reports how many of ``total`` are done."""

    def __init__(self, ctx: StageContext, study: str, total: int) -> None:
        self.ctx, self.study, self.total = ctx, study, total
        self.done = 0
        self.doing = "starting"
        self._emit({"kind": START})

    def stopped(self) -> bool:
        return self.ctx.stop_event is not None and self.ctx.stop_event.is_set()

    @property
    def cut_short(self) -> bool:
        """Stopped with runs left to do (a stop that came after the last run leaves a complete study)."""
        return self.stopped() and self.done < self.total

    def start(self, spec: JobSpec, splits: DataSplits, doing: str) -> tuple[float | None, Run]:
        """Carry out ``spec`` as its own run; its headline number (None unless it finished) and the run."""
        self.doing = doing
        self._emit({"kind": STEP})
        run = runner.start(spec, self.ctx.store, splits=splits, callbacks=self.ctx.inner_callbacks,
                           stop_event=self.ctx.stop_event)
        self.done += 1
        status = run.read_status()
        finished = status.get("state") == "finished"  # a stopped run's number is not a result
        return (spec.stage_info.headline(status.get("results") or {}) if finished else None), run

    def skip(self, runs: int = 1) -> None:
        """Count runs that will not be started (a probe of an encoder that could not be scored)."""
        self.done += runs

    def finish(self) -> None:
        self.doing = "stopped" if self.cut_short else "done"
        self._emit({"kind": STEP})

    def _emit(self, event: dict[str, Any]) -> None:
        event = {**event, "stage": self.study, "step": self.done, "total_steps": self.total, "doing": self.doing}
        for callback in self.ctx.callbacks:
            callback(event)


def correct_of(run: Run, test_images: int) -> np.ndarray | None:
    """Which test images ``run`` got right (its predictions.npz), or None when it saved none for this test set
    (an older run, a stopped one): its value then still counts, its interval covers the seeds alone."""
    correct = run.load_correct()
    return correct if correct is not None and len(correct) == test_images else None


def write_json(path: str | Path, data: Mapping[str, Any]) -> Path:
    """``data`` as indented JSON at ``path`` (its folder made when missing); the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


class StudyResult(Protocol):
    """What a study's table is read back as (an experiment's, a sweep's, an ablation's result)."""

    def write(self, json_path: str | Path) -> list[Path]: ...


ResultT = TypeVar("ResultT", bound=StudyResult)


def run_study(stage: str, cfg: ExperimentConfig, store: RunStore, options: Mapping[str, Any],
              result_of: Callable[[dict[str, Any]], ResultT], *, callbacks: Sequence[Callback] = (),
              stage_callbacks: Sequence[Callback] = (), stop_event: threading.Event | None = None,
              json_path: str | Path | None = None) -> ResultT:
    """The study ``stage`` as a job in this thread: plan it with ``options``, run it, and its table.

    ``result_of`` reads the table back from the run's results. ``callbacks`` follow the study's progress
    (runs done), ``stage_callbacks`` every run it starts. ``json_path``: also write the table there
    (the result's ``write``).
    """
    spec = plan(stage, cfg, options=options)
    run = runner.create(store, spec)
    runner.execute(store, run, callbacks=callbacks, inner_callbacks=stage_callbacks, stop_event=stop_event)
    result = result_of(runner.run_results(run))
    if json_path is not None:
        result.write(json_path)
    return result
