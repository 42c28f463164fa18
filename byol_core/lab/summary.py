"""Run summaries: what one run folder holds, read once, for the CLI and every dashboard page.

:func:`summarize_run` never raises: a folder whose ``config.json`` or ``status.json`` cannot be used
is summarised with a ``damaged`` reason, so one damaged run never hides the others. Values read from
disk are checked like any input, here and only here (:func:`check_fields`): a number of the wrong type
or out of range (a step of 1e20, a NaN accuracy, text where a count goes) marks its run damaged, naming
the field and the value, and never reaches a table or a chart. Metric events on their way to a chart
keep only their usable fields (:func:`checked_event`). Also here: the one-line description of a run's
augmentations and the field-by-field difference of two runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import AugmentConfig, ConfigError, ExperimentConfig, ViewAugmentConfig, from_dict
from ..files import read_json_object
from .annotations import read_annotations
from .plans import Change, config_diff
from .run_store import STATES, Run, RunStore
from .stages import Stage, get_stage, stage_of_record

RESUMABLE_STATES = ("stopped", "interrupted")


# --------------------------------------------------------------------------- values read from disk
MAX_COUNT = 10**12      # steps, images, classes: far beyond any run, far inside a table's 64-bit integers
MAX_SEED = 2**63 - 1    # the largest seed a table (and torch) can hold
MAX_TIME = 1e11         # seconds since 1970 (the year 5138)


def _real(value: Any) -> float | None:
    """``value`` as a float when it is a JSON number (not a bool, not an int too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _rule(expects: str, test: Callable[[float], bool], whole: bool = False) -> Callable[[Any], str | None]:
    """A check of one value: None when it is fine, else what was expected instead."""
    def check(value: Any) -> str | None:
        number = _real(value)
        ok = number is not None and math.isfinite(number) and test(number) and (not whole or number.is_integer())
        return None if ok else expects
    return check


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "text"


def _state(value: Any) -> str | None:
    return None if value in STATES else f"one of the states {', '.join(STATES)}"


def _number(value: Any) -> str | None:  # a loss or a learning rate: any number (a diverged loss may be inf)
    return None if _real(value) is not None else "a number"


def _interval(value: Any) -> str | None:
    ok = isinstance(value, list) and len(value) == 2 and all(_finite(v) is None for v in value)
    return None if ok else "a list of two numbers (the interval's ends)"


_count = _rule("a whole number from 0 to 10^12", lambda v: 0 <= v < MAX_COUNT, whole=True)
_fraction = _rule("a number from 0 to 1", lambda v: 0 <= v <= 1)
_nonnegative = _rule("a number from 0 to 10^12", lambda v: 0 <= v < MAX_COUNT)
_time = _rule("a time in seconds (from 0 to 10^11)", lambda v: 0 <= v < MAX_TIME)
_finite = _rule("a finite number", lambda v: True)
_seed = _rule("a whole number from 0 to 2^63-1", lambda v: 0 <= v <= MAX_SEED, whole=True)

# What every field a run folder's JSON may hold must be; a field not named here is not shown as a number.
FIELD_RULES: dict[str, Callable[[Any], str | None]] = {
    **dict.fromkeys(("step", "total_steps", "steps_per_epoch", "batch_size", "num_images", "processes", "pid",
                     "test_images", "num_classes", "labelled_images", "val_images", "n"), _count),
    **dict.fromkeys(("epoch", "img_per_s", "std"), _nonnegative),
    **dict.fromkeys(("created", "started", "finished", "updated", "wall_seconds"), _time),
    **dict.fromkeys(("label_fraction", "p_value", "confidence"), _fraction),
    **dict.fromkeys(("loss", "lr", "tau", "collapse_std", "collapse_reference", "weight_decay"), _number),
    **dict.fromkeys(("kind", "stage", "name", "error", "traceback", "doing", "message", "mode", "from_run",
                     "encoder", "dataset", "config_name", "run_id", "method", "evaluation", "augmentation"), _text),
    "mean": _finite, "ci95": _interval, "state": _state, "seed": _seed,
}
_TABLES = ("rows", "drops")  # lists of objects in a study's results, each checked field by field


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_fields(values: Mapping[str, Any], where: str = "") -> tuple[dict[str, Any], list[str]]:
    """``values`` without the fields that break :data:`FIELD_RULES`, and one line per field dropped.

    A field ending in ``accuracy`` is a number from 0 to 1; None stands for a value not known (always fine).
    ``where`` prefixes the field names in the lines (``results.``).
    """
    clean: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in values.items():
        rule = _fraction if key.endswith("accuracy") else FIELD_RULES.get(key)
        if key in _TABLES and value is not None:
            value, expects = _check_table(value, f"{where}{key}", problems)
        else:
            expects = rule(value) if rule is not None and value is not None else None
        if expects:
            problems.append(f"{where}{key} = {_show(value)}, not {expects}")
        else:
            clean[key] = value
    return clean, problems


def _check_table(rows: Any, where: str, problems: list[str]) -> tuple[Any, str | None]:
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return rows, "a list of objects"
    checked = []
    for i, row in enumerate(rows):
        clean, found = check_fields(row, f"{where}[{i}].")
        checked.append(clean)
        problems += found
    return checked, None


def checked_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """A metric event with only its usable fields, for charts and progress lines (a bad field is left out)."""
    return check_fields(event)[0]


def _checked_status(status: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """status.json with its bad fields left out, and the reason the run is damaged (None when none is bad)."""
    clean, problems = check_fields(status)
    results = clean.get("results")
    if results is not None and not isinstance(results, dict):
        problems.append(f"results = {_show(results)}, not an object")
        clean.pop("results")
    elif results is not None:
        clean["results"], found = check_fields(results, "results.")
        problems += found
    return clean, _damage("status.json", problems)


def _checked_record(record: dict[str, Any], cfg: ExperimentConfig | None) -> str | None:
    """Why config.json's own fields (kind, stage, options, the config's seed) cannot be used; None when fine."""
    _clean, problems = check_fields({k: record.get(k) for k in ("kind", "stage")})
    options = record.get("options")
    if options is not None and not isinstance(options, dict):
        problems.append(f"options = {_show(options)}, not an object")
    elif options:
        problems += check_fields({k: options.get(k) for k in ("mode", "from_run")}, "options.")[1]
    if cfg is not None:
        problems += check_fields({"seed": cfg.seed}, "config.")[1]
    return _damage("config.json", problems)


def _damage(file: str, problems: list[str]) -> str | None:
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return (f"{file} has {problems[0]}{more}: the file was damaged or edited by hand; fix the value in "
            f"{file} or delete the run")


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
        return _as_float(self.status.get("created")) or 0.0

    @property
    def finished_at(self) -> float | None:
        return _as_float(self.status.get("finished"))

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


def _as_float(value: Any) -> float | None:
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
    status, bad_value = _checked_status(status)  # a bad field is left out, and named as the damage
    record = record or {}
    damaged = problem or status_problem or _checked_record(record, cfg) or bad_value
    options = record.get("options") if isinstance(record.get("options"), dict) else {}
    stage_name = stage_of_record(record)
    info = get_stage(stage_name) if stage_name else None
    source = options.get("from_run") if isinstance(options.get("from_run"), str) else None
    kind = record.get("kind") if isinstance(record.get("kind"), str) and record.get("kind") else "unknown"
    state = "damaged" if damaged else str(status.get("state", "unknown"))
    error = status.get("error") if isinstance(status.get("error"), str) else None
    results = status.get("results") if isinstance(status.get("results"), dict) else {}
    notes = read_annotations(run)
    return RunSummary(
        id=run.id, path=run.path, stage=stage_name, kind=kind,
        method=info.method_for(source, _family_of(store or RunStore(run.path.parent), source)) if info else kind,
        name=cfg.name if cfg else run.id, dataset=cfg.data.name if cfg else None,
        label_fraction=cfg.data.label_fraction if cfg else None,
        seed=cfg.seed if cfg and _seed(cfg.seed) is None else None,
        source_run=source, state=state,
        metric=info.headline(results) if info else None,
        metric_name=info.metric_name if info else "",
        epochs_run=_as_float(status.get("epoch")), steps_run=_int(status.get("step")),
        total_steps=_int(status.get("total_steps")), error=error, damaged=damaged, config=cfg, status=status,
        has_encoder=run.encoder_path.is_file(), display_name=notes.name, note=notes.note, archived=notes.archived,
    )


def _family_of(store: RunStore, source: str | None) -> str | None:
    """The method family ("BYOL", "SimCLR") of a run's source run, read from the source's config.json."""
    if not source:
        return None
    source_run = store.find(source)  # None: not a run id, or no such run in the store
    if source_run is None:
        return None
    record, _ = read_json_object(source_run.config_path)
    name = stage_of_record(record) if record else None
    return get_stage(name).family or None if name else None


def _int(value: Any) -> int | None:
    number = _as_float(value)
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
