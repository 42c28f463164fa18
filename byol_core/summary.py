"""Run summaries: what one run folder holds, read once, for the CLI and every dashboard page.

:func:`summarize` never raises: a folder whose ``config.json`` or ``status.json`` cannot be used
is summarised with a ``damaged`` reason, so one damaged run never hides the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, ExperimentConfig, from_dict
from .files import read_json_object
from .runs import Run, RunStore
from .stages import Stage, get_stage, stage_of_record

RESUMABLE_STATES = ("stopped", "interrupted")


@dataclass(frozen=True)
class RunSummary:
    """One run, as the pages and the CLI show it."""

    id: str
    path: Path
    stage: str | None                 # None for composite runs (experiments) and damaged folders
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
        """A label for select boxes: 'BYOL kNN · digits · 92.8% · 20250101-120000-byol-…'."""
        acc = f" · {self.metric_name} {100 * self.metric:.1f}%" if self.metric is not None else ""
        return f"{self.method} · {self.dataset or '?'}{acc} · {self.id}"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def summarize(run: Run) -> RunSummary:
    """The summary of one run folder; damaged files give a ``damaged`` reason, never an exception."""
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
    return RunSummary(
        id=run.id, path=run.path, stage=stage_name, kind=kind,
        method=info.method_for(source, _family_of(run, source)) if info else kind,
        name=cfg.name if cfg else run.id, dataset=cfg.data.name if cfg else None,
        label_fraction=cfg.data.label_fraction if cfg else None, seed=cfg.seed if cfg else None,
        source_run=source, state=state,
        metric=info.headline(results) if info else None,
        metric_name=info.metric_name if info else "",
        epochs_run=_number(status.get("epoch")), steps_run=_int(status.get("step")),
        total_steps=_int(status.get("total_steps")), error=error, damaged=damaged, config=cfg, status=status,
        has_encoder=run.encoder_path.is_file(),
    )


def _family_of(run: Run, source: str | None) -> str | None:
    """The method family ("BYOL", "SimCLR") of a run's source run, read from the source's config.json."""
    if not source or "/" in source or source.startswith("."):
        return None
    record, _ = read_json_object(run.path.parent / source / "config.json")
    name = stage_of_record(record) if record else None
    return get_stage(name).family or None if name else None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def list_summaries(store: RunStore) -> list[RunSummary]:
    """Every run folder under the store, newest first, damaged ones included (with their reason)."""
    return [summarize(run) for run in store.list()]


def summary_of(store: RunStore, run_id: str) -> RunSummary:
    return summarize(store.get(run_id))
