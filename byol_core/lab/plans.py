"""Plans: from "what to run" to the exact job, with every change to the starting config explained.

:func:`plan` does all the config merging a person's choices imply (a preset, the data set and
views picked on the Data page, a source run's network, the form's overrides) and returns a
:class:`JobSpec`: the stage, the resolved config, the source run, and the list of fields it
changed and why. The CLI, the job manager, the worker and the dashboard all start work from a
``JobSpec``; :attr:`JobSpec.key` is the one duplicate-job rule.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import (
    DERIVED_FIELDS,
    MAX_SEED,
    AugmentConfig,
    ConfigError,
    DataConfig,
    ExperimentConfig,
    from_dict,
    to_dict,
    to_json,
    with_overrides,
)
from ..methods.loop import StepPlan, TrainingError
from ..text import markdown_text
from .stages import Stage, get_stage

# Data fields that belong to the experiment's design (the preset's), not to the data set picked.
DESIGN_DATA_FIELDS = ("max_train_images", "max_test_images", "label_fraction", "val_fraction")
# What config.json's options hold for every job; the rest are the stage's own (:attr:`JobSpec.stage_options`).
JOB_OPTION_KEYS = ("mode", "from_run")


@dataclass(frozen=True)
class Change:
    """One field the plan set, its value before and after, and why."""

    field: str
    before: Any
    after: Any
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {_show(self.before)} → {_show(self.after)} ({self.reason})"

    def markdown(self) -> str:
        """The change as one Markdown line: field in code, new value in bold, short numbers; text values (a name,
        a folder a person typed) as text, so no Markdown in them comes alive."""
        before, after = ((markdown_text(v) if isinstance(v, str) else _show(v)) for v in (self.before, self.after))
        return f"`{self.field}`: {before} → **{after}** ({self.reason})"


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to start a job; a run folder is made from it."""

    stage: str
    config: ExperimentConfig
    source_run: str | None = None
    label: str = ""
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()
    stage_options: Mapping[str, Any] = field(default_factory=dict)  # checked by the stage (a sweep's fractions)

    @property
    def key(self) -> str:
        """Two specs with the same key are the same job: a second one while the first is active is not started."""
        options = f"{json.dumps(dict(self.stage_options), sort_keys=True)}|" if self.stage_options else ""
        return f"{self.stage}|{self.source_run}|{options}{to_json(self.config)}"

    @property
    def stage_info(self) -> Stage:
        return get_stage(self.stage)

    def options(self) -> dict[str, Any]:
        """What config.json stores beside the config (``mode`` keeps older readers working)."""
        return {"mode": self.stage, "from_run": self.source_run, **self.stage_options}


def stage_options_of(options: Mapping[str, Any]) -> dict[str, Any]:
    """The stage's own options among those config.json stores (:meth:`JobSpec.options`)."""
    return {k: v for k, v in options.items() if k not in JOB_OPTION_KEYS}


def _show(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def leaves(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys: ``{"view1": {"blur_p": 1}}`` → ``{"view1.blur_p": 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(leaves(value, path + "."))
        else:
            out[path] = value
    return out


def config_diff(before: ExperimentConfig, after: ExperimentConfig, reason: str) -> list[Change]:
    """Every leaf field that differs between two configs, as changes with one reason."""
    old, new = leaves(to_dict(before)), leaves(to_dict(after))
    return [Change(k, old.get(k), v, reason) for k, v in new.items() if old.get(k) != v and k not in DERIVED_FIELDS]


def plan(stage: str, base: ExperimentConfig, *, data: DataConfig | None = None,
         augment: AugmentConfig | None = None, views: Mapping[str, Any] | None = None,
         source_config: ExperimentConfig | None = None,
         source_run: str | None = None, overrides: Mapping[str, Any] | None = None,
         name: str | None = None, label: str | None = None, num_images: int | None = None,
         options: Mapping[str, Any] | None = None) -> JobSpec:
    """The job ``stage`` on ``base`` (a preset or a saved config), with the person's choices applied.

    ``source_config``: the config of a run whose network, data and views this job must share (a
    BYOL run to fine-tune, or the run a baseline is matched to); it replaces ``base`` whole, and
    ``data`` and the views are not used. ``data``: the data set picked elsewhere (the Data page); the preset keeps
    its experiment design (caps and label fraction). ``views``: dotted ``augment`` fields the Data page sets (its
    view size and the fields the person changed), so the preset's tuned views stay where they were not changed;
    ``augment``: whole views instead (all of the preset's replaced). ``overrides``: dotted keys,
    validated together after all are applied. ``num_images``: the training images the stage will
    see, when known, to explain the step count. ``options``: the stage's own (a sweep's
    ``label_fractions`` and ``seeds``), checked here so a bad one never leaves a run folder behind.
    """
    info = get_stage(stage)
    stage_options = info.check_options(options or {})
    if info.source == "required" and not source_run:
        raise ConfigError(f"{info.title} needs a pretraining run to start from: pick one (--from <run id>).")
    if info.source == "none" and source_run:
        raise ConfigError(f"{info.title} does not start from another run; drop the source run {source_run!r}.")
    reasons: dict[str, str] = {}  # field -> why it has its final value (the last step that set it)
    kept: dict[str, Any] = {}     # design fields the preset kept over the Data page's values
    cfg = base

    def apply(step: ExperimentConfig, why: str) -> ExperimentConfig:
        reasons.update({c.field: why for c in config_diff(cfg, step, why)})
        return step

    if source_config is not None:
        why = f"same network, data and views as run {source_run}" if source_run else "same as the matched run"
        cfg = apply(source_config, why)
    else:
        if data is not None:
            design = {f: getattr(cfg.data, f) for f in DESIGN_DATA_FIELDS}
            kept = {f: (v, getattr(data, f)) for f, v in design.items() if getattr(data, f) != v}
            cfg = apply(dataclasses.replace(cfg, data=dataclasses.replace(data, **design)),
                        "the data set chosen on the Data page")
        if augment is not None and views is not None:
            raise ConfigError("Give the views either whole (augment) or as changes (views), not both.")
        if augment is not None:
            cfg = apply(dataclasses.replace(cfg, augment=augment), "the views chosen on the Data page")
        if views:
            size = {k: v for k, v in views.items() if k == "image_size"}
            if size:
                cfg = apply(dataclasses.replace(cfg, augment=with_overrides(cfg.augment, size)),
                            "the Data page's view size")
            edits = {k: v for k, v in views.items() if k != "image_size"}
            if edits:
                cfg = apply(dataclasses.replace(cfg, augment=with_overrides(cfg.augment, edits)),
                            "changed on the Data page")
    if name is not None and name != cfg.name:
        cfg = apply(dataclasses.replace(cfg, name=name), "the job's name")
    if overrides:
        cfg = apply(with_overrides(cfg, dict(overrides)), "set for this job")
    # One line per field that ends up different from the start, with the reason of the step that set it last.
    changes = [dataclasses.replace(c, reason=reasons[c.field]) for c in config_diff(base, cfg, "")]
    notes = [f"data.{f} = {_show(value)} from the preset (the Data page had {_show(page)})."
             for f, (value, page) in kept.items() if getattr(cfg.data, f) == value]
    cfg = from_dict(ExperimentConfig, to_dict(cfg))  # the whole config validated once, after everything
    seeds = stage_options.get("seeds")  # a study trains with seeds cfg.seed, cfg.seed + 1, ...
    if isinstance(seeds, int) and not isinstance(seeds, bool) and cfg.seed + seeds - 1 > MAX_SEED:
        raise ConfigError(f"seed = {cfg.seed} with {seeds} seeds runs past the largest seed, {MAX_SEED}; set seed "
                          f"to at most {MAX_SEED - seeds + 1}.")
    spec = JobSpec(stage=info.name, config=cfg, source_run=source_run, label=label or info.short_title,
                   changes=tuple(changes), notes=tuple(notes), stage_options=stage_options)
    return with_steps_note(spec, num_images)


def with_steps_note(spec: JobSpec, num_images: int | None) -> JobSpec:
    """``spec`` with a note of how its epochs turn into steps over ``num_images`` training images.

    For a caller that learns the image count from the planned job itself (the dashboard counts the
    images of the job's own data): it adds the note without planning again. No count, or a stage
    that does not train, leaves ``spec`` as it is.
    """
    optim = spec.stage_info.optim(spec.config)
    if optim is None or not num_images:
        return spec
    return dataclasses.replace(spec, notes=spec.notes + tuple(_steps_note(optim, num_images)))


def _steps_note(optim: Any, num_images: int) -> list[str]:
    try:
        p = StepPlan.for_data(num_images, optim)
        batch, steps_per_epoch, total = p.batch, p.steps_per_epoch, p.total_steps
    except TrainingError:  # too few images: training says so when it starts
        return []
    by_epochs = steps_per_epoch * optim.epochs
    if optim.min_steps and total == optim.min_steps and optim.min_steps > by_epochs:
        return [(f"{optim.epochs:g} epochs → {total} steps because min_steps = {optim.min_steps} "
                f"with {num_images} training images ({steps_per_epoch} step(s) per epoch at batch {batch}).")]
    return [(f"{total} steps: {optim.epochs:g} epochs of {steps_per_epoch} step(s) at batch {batch} "
            f"over {num_images} training images.")]
