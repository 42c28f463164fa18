"""Guard rails: say before a job starts that it cannot work on this data, or that its number will mislead.

:func:`check_job` looks at a stage, its config and a few facts about the data it would load
(:class:`DataFacts`, from :func:`data_facts`) and returns :class:`Guard` s: ``"block"`` for a job
that would fail (supervised training on images without labels), ``"warn"`` for one whose number
would be hard to read (kNN voting with more neighbours than a class has labels, a test set too small
to tell a few points apart). :func:`chance_note` says in words when a finished accuracy cannot be
told from guessing. :func:`~byol_core.data.folder.folder_problem` says why an image folder cannot serve at all (missing, not a
folder, unreadable, a system folder such as /proc, no images), before any run folder is made. Pure
functions, except those that look at the disk: :func:`check_spec` (which loads the data) and the folder checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from ..config import ExperimentConfig
from ..data import DataError, DataSplits, load_data
from ..data.folder import folder_problem
from ..stats import wilson_interval
from .stages import Stage, get_stage

if TYPE_CHECKING:
    from .plans import JobSpec

NOISY_HALF_WIDTH = 0.05  # a test set whose 95% interval at 50% is wider than ±5 points hides the usual gains
# Kernel file systems: endless or special files, never images; walking them stalls or fails (/proc/1/cwd).
NO_LABELS = ("This data set has no class labels (a flat folder or unlabelled upload): supervised training, probes "
             "and kNN need one subfolder per class. Use BYOL pretraining, or label the images on the Data page.")


@dataclass(frozen=True)
class Guard:
    """One finding about a job: ``"block"`` (it cannot work; do not start it) or ``"warn"`` (it runs, read it with care)."""

    level: Literal["block", "warn"]
    message: str


@dataclass(frozen=True)
class DataFacts:
    """What the guards need to know about a loaded data set, as a job would split it."""

    classes: tuple[str, ...]
    labelled_per_class: tuple[int, ...]  # labelled training images of each class, after label_fraction and validation
    test_images: int

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def data_facts(splits: DataSplits) -> DataFacts:
    """The facts of ``splits`` (loaded with the job's own ``data`` config, so its label share and caps apply)."""
    labels = splits.labelled_train.labels
    counts = torch.bincount(labels[labels >= 0], minlength=splits.num_classes) if splits.num_classes else labels[:0]
    return DataFacts(classes=tuple(splits.classes), labelled_per_class=tuple(int(c) for c in counts),
                     test_images=len(splits.test))


def noise_half_width(n_test: int) -> float:
    """Half-width of the 95% Wilson interval of an accuracy near 50% on ``n_test`` images (the widest it gets)."""
    return wilson_interval(n_test // 2, n_test).half_width or 0.0


def _points(fraction: float) -> str:
    return f"{100 * fraction:.1f}"


def check_job(stage: Stage | str, cfg: ExperimentConfig, facts: DataFacts) -> list[Guard]:
    """Blocks and warnings for running ``stage`` with ``cfg`` on data with these ``facts``; blocks first."""
    info = get_stage(stage) if isinstance(stage, str) else stage
    scores_with_knn = info.metric == "knn_accuracy"  # kNN evaluation, and pretraining's final kNN score
    if info.needs_labels and facts.num_classes == 0:
        return [Guard("block", NO_LABELS)]
    if info.needs_labels and facts.num_classes == 1:
        return [Guard("block", f"This data set has one class only ({facts.classes[0]!r}): an accuracy needs at "
                               "least two classes to tell apart. Add a subfolder (or an upload) per class on the "
                               "Data page, or use BYOL pretraining.")]
    if info.needs_labels and facts.test_images == 0:
        return [Guard("block", "This data set has no test images: every class needs at least two images, so one "
                               "can be held out to measure the accuracy. Add images on the Data page.")]
    if facts.num_classes < 2 or not (info.needs_labels or scores_with_knn):
        return []  # pretraining on unlabelled images: nothing is scored, nothing to warn about
    guards = []
    k = cfg.eval.knn_k
    fewest = min(facts.labelled_per_class)
    if scores_with_knn and fewest < k:
        short = [(name, n) for name, n in zip(facts.classes, facts.labelled_per_class, strict=True) if n < k]
        if len(short) == facts.num_classes:
            who = f"every class has {max(n for _, n in short)} or fewer labelled images"
        else:
            named = ", ".join(repr(c) for c, _ in short[:3]) + (f" and {len(short) - 3} more" if len(short) > 3 else "")
            who = f"{named} {'has' if len(short) == 1 else 'have'} as few as {fewest} labelled image(s)"
        guards.append(Guard("warn", f"kNN votes with the k = {k} nearest labelled images, but {who} "
                                    f"(after keeping {100 * cfg.data.label_fraction:g}% of the labels and holding out "
                                    "the validation split), so kNN will vote with images of other classes. Use a "
                                    f"smaller k (eval.knn_k ≤ {fewest}) or keep more labels."))
    half = noise_half_width(facts.test_images)
    if half > NOISY_HALF_WIDTH:
        guards.append(Guard("warn", f"With {facts.test_images} test images a 95% interval is about ±{_points(half)} "
                                    f"points: differences smaller than that cannot be told from noise. Use more test "
                                    "images, or compare several seeds on the Compare page."))
    return guards


def _offline_splits(spec: JobSpec) -> DataSplits | None:
    """The job's own data, loaded without downloading (cached in-process); None when it is not here yet."""
    try:
        return load_data(dataclasses.replace(spec.config.data, download=False))
    except (DataError, ValueError, OSError):
        return None


def check_spec(spec: JobSpec) -> list[Guard]:
    """:func:`check_job` for a planned job, on its own data; an image folder that cannot serve blocks it.

    Data that cannot be loaded without a download gives no guards: the job says what is missing when it starts.
    """
    problem = folder_problem(spec.config.data)
    if problem:
        return [Guard("block", problem)]
    splits = _offline_splits(spec)
    return [] if splits is None else check_job(spec.stage_info, spec.config, data_facts(splits))


def training_images(spec: JobSpec) -> int | None:
    """Images one epoch of the job's stage goes through (the labelled ones for stages that need labels), so
    the plan can say how epochs turn into steps; None when the data is not here or the stage does not train."""
    splits = _offline_splits(spec)
    if splits is None or spec.stage_info.optim_section is None:
        return None
    if spec.stage_info.needs_labels:
        return len(splits.labelled_train)
    return len(splits.pretrain_images())


def chance_note(accuracy: float | None, n_test: int | None, num_classes: int | None) -> str | None:
    """A sentence when ``accuracy`` on ``n_test`` images cannot be told from guessing among ``num_classes``.

    "50.0% on 32 test images (95% CI 34–66%) cannot be told from chance (50%)"; None when the 95% Wilson
    interval excludes chance, or when there is nothing to judge (no accuracy, test images or classes).
    """
    if accuracy is None or not n_test or not num_classes or num_classes < 2:
        return None
    chance = 1.0 / num_classes
    interval = wilson_interval(min(max(round(accuracy * n_test), 0), n_test), n_test)
    low, high = interval.low or 0.0, interval.high or 1.0
    if not low <= chance <= high:
        return None
    return (f"{100 * accuracy:.1f}% on {n_test} test images (95% CI {100 * low:.0f}–{100 * high:.0f}%) "
            f"cannot be told from chance ({100 * chance:.3g}%)")
