"""Run summaries: what one run folder holds, read once, for the CLI and every dashboard page.

:func:`summarize_run` never raises: a folder whose ``config.json`` or ``status.json`` cannot be used
is summarised with a ``damaged`` reason, so one damaged run never hides the others. Also here: the
one-line description of a run's augmentations and the field-by-field difference of two runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import AugmentConfig, ConfigError, ExperimentConfig, ViewAugmentConfig, from_dict
from ..files import read_json_object
from .annotations import read_annotations
from .plans import Change, config_diff
from .run_store import Run, RunStore
from .stages import Stage, get_stage, stage_of_record

RESUMABLE_STATES = ("stopped", "interrupted")


@dataclass(frozen=True)
class RunSummary:
    """One run, as the pages and the CLI show it."""

    id: str
    path: Path
    stage: str | None                 # None for folders of no known stage and damaged folders
    kind: str                         # the word in the run id: byol, supervised, linear, evaluate, experiment
    method: str                       # "BYOL kNN", "supervised from scratch", ...
    name: str
    dataset: str | None
    label_fraction: float | None
    seed: int | None
    source_run: str | None
    state: str
    metric: float | None              # the headline number (test or kNN accuracy)
    metric_name: str
    epochs_run: float | None          # what actually ran, from the run's progress
    steps_run: int | None
    total_steps: int | None
    error: str | None
    damaged: str | None
    config: ExperimentConfig | None = field(default=None, repr=False)
    status: dict[str, Any] = field(default_factory=dict, repr=False)
    has_encoder: bool = False
    display_name: str = ""            # the name a person gave the run ("" when none; ``name`` is the config's)
    note: str = ""
    archived: bool = False            # hidden from lists by default, still readable

    @property
    def lr(self) -> float | None:
        """The peak learning rate of the stage's optimiser (None for stages without one, and damaged runs)."""
        info = self.stage_info
        optim = info.optim(self.config) if info is not None and self.config is not None else None
        return optim.lr if optim is not None else None

    @property
    def augmentation(self) -> str:
        return augmentation_summary(self.config.augment) if self.config is not None else ""

    @property
    def stage_info(self) -> Stage | None:
        return get_stage(self.stage) if self.stage else None

    @property
    def results(self) -> dict[str, Any]:
        results = self.status.get("results")
        return results if isinstance(results, dict) else {}

    @property
    def created(self) -> float:
        return _number(self.status.get("created")) or 0.0

    @property
    def finished_at(self) -> float | None:
        return _number(self.status.get("finished"))

    @property
    def resumable(self) -> bool:
        info = self.stage_info
        return self.damaged is None and info is not None and info.resumable and self.state in RESUMABLE_STATES

    @property
    def usable_encoder(self) -> bool:
        """Its encoder can be embedded, probed or fine-tuned: exported and no longer training."""
        return self.damaged is None and self.has_encoder and self.state not in ("running", "queued")

    @property
    def pretrained(self) -> bool:
        """A finished pretraining run: what fine-tuning, probes and kNN start from."""
        info = self.stage_info
        return bool(info and info.pretraining and self.has_encoder and self.state == "finished")

    def short(self) -> str:
        """A label for select boxes: '[my name · ]BYOL kNN · digits · 92.8% · 20250101-120000-byol-…'."""
        acc = f" · {self.metric_name} {100 * self.metric:.1f}%" if self.metric is not None else ""
        named = f"{self.display_name} · " if self.display_name else ""
        return f"{named}{self.method} · {self.dataset or '?'}{acc} · {self.id}"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def summarize_run(run: Run, store: RunStore | None = None) -> RunSummary:
    """The summary of one run folder; damaged files give a ``damaged`` reason, never an exception.

    ``store``: where its source run is looked up (by default the store the run's folder is in).
    """
    record, problem = read_json_object(run.config_path)
    cfg: ExperimentConfig | None = None
    if record is not None:
        try:
            cfg = from_dict(ExperimentConfig, record.get("config"))
        except ConfigError as exc:
            problem = f"config.json does not hold a valid config ({exc})"
    status, status_problem = run.read_status_checked()  # one read of status.json per summary
    damaged = problem or status_problem
    record = record or {}
    options = record.get("options") if isinstance(record.get("options"), dict) else {}
    stage_name = stage_of_record(record)
    info = get_stage(stage_name) if stage_name else None
    source = options.get("from_run") if isinstance(options.get("from_run"), str) else None
    kind = str(record.get("kind") or "unknown")
    state = "damaged" if damaged else str(status.get("state", "unknown"))
    error = status.get("error") if isinstance(status.get("error"), str) else None
    results = status.get("results") if isinstance(status.get("results"), dict) else {}
    notes = read_annotations(run)
    return RunSummary(
        id=run.id, path=run.path, stage=stage_name, kind=kind,
        method=info.method_for(source, _family_of(store or RunStore(run.path.parent), source)) if info else kind,
        name=cfg.name if cfg else run.id, dataset=cfg.data.name if cfg else None,
        label_fraction=cfg.data.label_fraction if cfg else None, seed=cfg.seed if cfg else None,
        source_run=source, state=state,
        metric=info.headline(results) if info else None,
        metric_name=info.metric_name if info else "",
        epochs_run=_number(status.get("epoch")), steps_run=_int(status.get("step")),
        total_steps=_int(status.get("total_steps")), error=error, damaged=damaged, config=cfg, status=status,
        has_encoder=run.encoder_path.is_file(), display_name=notes.name, note=notes.note, archived=notes.archived,
    )


def _family_of(store: RunStore, source: str | None) -> str | None:
    """The method family ("BYOL", "SimCLR") of a run's source run, read from the source's config.json."""
    if not source:
        return None
    try:
        source_run = store.get(source)
    except FileNotFoundError:  # not a run id, or no such run in the store
        return None
    record, _ = read_json_object(source_run.config_path)
    name = stage_of_record(record) if record else None
    return get_stage(name).family or None if name else None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def list_summaries(store: RunStore) -> list[RunSummary]:
    """Every run folder under the store, newest first, damaged ones included (with their reason)."""
    return [summarize_run(run, store) for run in store.list()]


# --------------------------------------------------------------------------- describing and comparing runs
# (label, probability field) of each optional op, in the order a view applies them.
_OPS = (("flip", "flip_p"), ("jitter", "jitter_p"), ("gray", "grayscale_p"), ("blur", "blur_p"),
        ("solarize", "solarize_p"))


def _both_views(view1: ViewAugmentConfig, view2: ViewAugmentConfig, show: Callable[[ViewAugmentConfig], str]) -> str:
    """One value when both views agree, else 'view 1/view 2'."""
    a, b = show(view1), show(view2)
    return a if a == b else f"{a}/{b}"


def augmentation_summary(augment: AugmentConfig) -> str:
    """The views' size and random ops on one line, e.g. '16 px · crop 0.4–1 · no flip · jitter 0.8 · gray 0.2 ·
    blur 1/0.1 · solarize 0/0.2': an op's probability, both views' values (view 1 first) where they differ.
    Strengths and ranges beyond the crop area are left out; :func:`run_config_diff` names every field."""
    v1, v2 = augment.view1, augment.view2
    parts = [f"{augment.image_size} px",
             "crop " + _both_views(v1, v2, lambda v: f"{v.crop_scale_min:g}–{v.crop_scale_max:g}")]
    for label, prob in _OPS:
        if getattr(v1, prob) == 0 and getattr(v2, prob) == 0:
            parts.append(f"no {label}")
        else:
            parts.append(f"{label} " + _both_views(v1, v2, lambda v, p=prob: f"{getattr(v, p):g}"))
    return " · ".join(parts)


def run_config_diff(this: RunSummary, other: RunSummary) -> list[Change]:
    """Every field that differs between two runs: the stage and source run, then each config field.

    ``before`` is this run's value, ``after`` the other run's. A ValueError when either run's config
    cannot be read (a damaged run has nothing to compare).
    """
    for run in (this, other):
        if run.config is None:
            raise ValueError(f"run {run.id} has no readable config ({run.damaged or 'unknown reason'}); "
                             "pick another run to compare with.")
    reason = f"differs from run {other.id}"
    changes = [Change(name, a, b, reason) for name, a, b in (("stage", this.stage, other.stage),
                                                             ("source_run", this.source_run, other.source_run))
               if a != b]
    return changes + config_diff(this.config, other.config, reason)
