"""Stages: every kind of job this product runs, declared once.

A :class:`Stage` says what it is (name, title, the method name its headline number goes by),
whether it needs a source run's encoder, which optimiser
section the Train page edits, how its headline metric is read and named, and how it runs. The
CLI, :mod:`~byol_core.lab.plans`, :mod:`~byol_core.lab.runner`, the job manager, the worker, run
summaries and the dashboard all look stages up here; a new stage (a contrastive baseline, a
probe) is one :func:`register` call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError, ExperimentConfig
from ..data import DataSplits, Progress, load_data
from ..events import NOTE, Callback
from .run_store import Run, RunStore

# How a source run is used: "none" (no source), "required" (fine-tune, probe) or "optional"
# (kNN of a run's encoder, else of a random init).
SOURCE_USES = ("none", "required", "optional")


@dataclass
class StageContext:
    """What a stage's body gets: the run it fills, its config, data, source and stop signal.

    ``writes`` is False on the ranks of a distributed run other than rank 0: they train alongside but
    leave the run folder to rank 0, so a body writes through :meth:`save_checkpoint`, :meth:`save_encoder`
    and :meth:`log`, never through ``run`` directly.
    """

    cfg: ExperimentConfig
    run: Run
    store: RunStore
    source_run: str | None = None
    callbacks: Sequence[Callback] = ()
    stop_event: threading.Event | None = None
    splits: DataSplits | None = None
    writes: bool = True
    options: dict[str, Any] = field(default_factory=dict)  # the stage's own options (a sweep's fractions)
    # What a stage that starts other runs (a study) gives them: a terminal's progress bars. The job's
    # own callbacks follow this run only, so a page's progress is not mixed with the inner runs'.
    inner_callbacks: Sequence[Callback] = ()

    def data(self) -> DataSplits:
        if self.splits is None:
            self.splits = load_data(self.cfg.data, progress=self._data_progress())
            if self.splits.skipped_files:
                self.note(f"{len(self.splits.skipped_files)} file(s) skipped while reading the data: "
                          f"{'; '.join(self.splits.skipped_files[:3])}"
                          f"{' ...' if len(self.splits.skipped_files) > 3 else ''} "
                          f"(all listed in {self.run.skipped_files_path})")
                if self.writes:
                    self.run.skipped_files_path.write_text("\n".join(self.splits.skipped_files) + "\n")
        return self.splits

    def _data_progress(self) -> Progress:
        """An image folder's first pass into its cache takes minutes: its plan, then each tenth of it, as notes."""
        tenths_said: set[int] = set()

        def say(message: str, fraction: float) -> None:
            tenth = int(fraction * 10)
            if "into the cache" in message and tenth not in tenths_said:
                tenths_said.add(tenth)
                self.note(message)
        return say

    def note(self, message: str) -> None:
        """Tell the person (CLI, metrics.jsonl, the dashboard's log) something they must know."""
        for callback in self.callbacks:
            callback({"kind": NOTE, "message": message})

    @property
    def save_checkpoint(self) -> Callable[[dict[str, Any]], None] | None:
        """What a training loop saves its checkpoints with (None where this process does not write)."""
        return self.run.save_checkpoint if self.writes else None

    def save_encoder(self, state_dict: dict[str, Any]) -> None:
        if self.writes:
            self.run.save_encoder(state_dict)

    def save_predictions(self, predicted: Any, labels: Any, classes: list[str]) -> None:
        if self.writes:
            self.run.save_predictions(predicted, labels, classes)

    def log(self, event: dict[str, Any]) -> None:
        if self.writes:
            self.run.log(event)

    def partial_results(self, results: dict[str, Any]) -> None:
        """Results so far, in status.json while the run goes on: a page can draw a study's table as it fills."""
        if self.writes:
            self.run.set_status("running", results=results)

    def checkpoint(self) -> dict[str, Any] | None:
        """The run's own checkpoint when it is being resumed, else None (a fresh start)."""
        return self.run.load_checkpoint() if self.run.checkpoint_path.exists() else None

    def source_encoder(self) -> dict[str, Any] | None:
        return self.store.get(self.source_run).load_encoder() if self.source_run else None


StageBody = Callable[[StageContext], dict[str, Any]]
OptionsCheck = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Stage:
    """One kind of job. ``body`` trains or evaluates and returns the run's results."""

    name: str
    title: str                       # what the Train page offers
    method: str                      # the row name of its headline number ("BYOL kNN")
    body: StageBody = field(repr=False)
    run_kind: str = ""               # the word in run ids and config.json's "kind" (old runs keep theirs)
    optim_section: str | None = None  # e.g. "byol.optim": the epochs / lr / batch the form edits
    source: str = "none"
    source_method: str | None = None  # method name when a source run is given (source="optional")
    family_method: str | None = None  # ... and when that source has a family: "{family} kNN" -> "BYOL kNN"
    metric: str = "test_accuracy"    # key of the headline number in the run's results
    metric_name: str = "test accuracy"
    curve_metric: str = "val_accuracy"  # the per-epoch score while training, on the validation split
    pretraining: bool = False        # learns without labels; its encoder is a source for other stages
    resumable: bool = True           # continues from a checkpoint after a stop
    needs_labels: bool = True        # trains or scores with class labels
    exports_encoder: bool = True     # leaves an encoder.pt that can be embedded, probed or fine-tuned
    family: str = ""                 # the method family its name starts with ("BYOL", "SimCLR")
    # Checks and completes the stage's own options (a sweep's label fractions and seeds); a ConfigError
    # names a bad one. None: the stage takes no options.
    parse_options: OptionsCheck | None = field(default=None, repr=False)
    study: bool = False              # runs other stages many times; its results are a table of rows

    def __post_init__(self) -> None:
        if self.source not in SOURCE_USES:
            raise ValueError(f"stage {self.name!r}: source = {self.source!r}; choose one of {SOURCE_USES}.")
        if not self.run_kind:
            object.__setattr__(self, "run_kind", self.name)

    @property
    def short_title(self) -> str:
        """The title without its explanation in brackets: 'BYOL pretraining'."""
        return self.title.split(" (")[0]

    def method_for(self, source_run: str | None, source_family: str | None = None) -> str:
        """The method name of a run of this stage: from a SimCLR run, "SimCLR fine-tuned", not "BYOL ..."."""
        if source_run and source_family and self.family_method:
            return self.family_method.format(family=source_family)
        if source_run and self.source_method:
            return self.source_method
        if source_family and self.family and self.source != "none" and self.method.startswith(self.family):
            return source_family + self.method[len(self.family):]
        return self.method

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The stage's options, checked and completed with its defaults; a ConfigError says what is wrong."""
        if self.parse_options is None:
            if options:
                raise ConfigError(f"{self.short_title} takes no options; drop {', '.join(sorted(options))}.")
            return {}
        return self.parse_options(options)

    def headline(self, results: dict[str, Any]) -> float | None:
        value = results.get(self.metric) if isinstance(results, dict) else None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def optim(self, cfg: ExperimentConfig) -> Any:
        """The config's optimiser section this stage trains with (None for stages without one)."""
        if self.optim_section is None:
            return None
        obj: Any = cfg
        for part in self.optim_section.split("."):
            obj = getattr(obj, part)
        return obj


_REGISTRY: dict[str, Stage] = {}
# Run folders written before stages existed name a store kind and, for jobs, a mode.
_LEGACY_NAMES: dict[str, str] = {}


def register(stage: Stage, *, legacy_names: Sequence[str] = ()) -> Stage:
    """Add (or replace) a stage; ``legacy_names`` are older names that still resolve to it."""
    _REGISTRY[stage.name] = stage
    for old in legacy_names:
        _LEGACY_NAMES[old] = stage.name
    return stage


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)
    for old in [k for k, v in _LEGACY_NAMES.items() if v == name]:
        del _LEGACY_NAMES[old]


def get_stage(name: str) -> Stage:
    """The stage called ``name`` (or an older name of it); a ValueError lists the known ones."""
    stage = _REGISTRY.get(_LEGACY_NAMES.get(name, name))
    if stage is None:
        raise ValueError(f"unknown stage {name!r}; choose one of {stage_names()}.")
    return stage


def stage_names() -> list[str]:
    return list(_REGISTRY)


def stages() -> list[Stage]:
    return list(_REGISTRY.values())


def stage_of_record(record: dict[str, Any]) -> str | None:
    """The stage a config.json record belongs to; new runs store it, older ones store kind and mode."""
    options = record.get("options") if isinstance(record.get("options"), dict) else {}
    for candidate in (record.get("stage"), options.get("mode"), record.get("kind")):
        if isinstance(candidate, str):
            name = _LEGACY_NAMES.get(candidate, candidate)
            if name in _REGISTRY:
                return name
    return None

