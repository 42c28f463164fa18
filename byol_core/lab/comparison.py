"""Comparing methods like with like: which runs are seeds of one comparison, what is compared first, and each
method's runs summarised once, over every source of noise.

A run's :func:`comparison_key` is its config without what only names it or only seeds it (name, seed, fields
derived from the seed) and without how it ran (runtime, where data files live, evaluation batch size): runs with
one key differ only in their seed, so they are seeds of one comparison, on the same test images.
:func:`group_runs` gathers finished runs into such :class:`Group` s; nothing of one group is ever mixed into
another's numbers.

The comparison is declared before looking at test numbers: :data:`PRIMARY` (BYOL linear probe against supervised
from scratch) unless the person declares another pair; :data:`SECONDARY` pairs are judged with Holm's correction
(:func:`declared_comparisons`). Each method's seeds are read with their per-test-image correctness
(:func:`method_results`), so intervals cover the seeds, the labelled subset drawn per seed and the test images;
runs saved before per-image scores existed fall back to the seeds alone, and say so. The Compare page's cards,
verdicts and bars all read these numbers, computed here and never regrouped by the page.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import stats
from ..config import DERIVED_FIELDS, ExperimentConfig, to_dict
from ..methods.floors import PIXEL_KNN, PIXEL_LOGISTIC
from .builtin_stages import BYOL, FINETUNE, KNN, LINEAR, SCRATCH
from .plans import config_diff
from .summary import RunSummary

# Every table and chart lists methods in this order, never sorted by a test number.
METHOD_ORDER = (FINETUNE.method, LINEAR.method, BYOL.method, SCRATCH.method, KNN.method, PIXEL_LOGISTIC, PIXEL_KNN)
# Declared before any run: does a BYOL encoder with a linear probe beat training from scratch on the same labels?
PRIMARY = (LINEAR.method, SCRATCH.method)
# Also reported, with Holm's correction over however many of them have both arms.
SECONDARY = ((FINETUNE.method, SCRATCH.method), (BYOL.method, SCRATCH.method), (BYOL.method, KNN.method),
             (BYOL.method, PIXEL_KNN), (LINEAR.method, PIXEL_LOGISTIC))
# Fields that name a run, say how it ran or where its files live, or only steer checks on validation: none of
# them changes a test number (the kNN check on validation draws no random numbers; embeddings are taken in eval
# mode, whatever the batch; a folder count cap refuses a folder, it never samples one).
NOT_COMPARED = ("name", "seed", "runtime", "data.root", "data.download", "data.max_folder_images", "eval.batch_size",
                 "byol.knn_every_epochs", *DERIVED_FIELDS)
# A sweep names its runs "<config>-s<seed>" and "<config>-s<seed>-f<fraction>": the config's name is the first part.
_STUDY_SUFFIX = re.compile(r"-s\d+(-f[0-9.e+-]+)?$")
SEEDS_ONLY = "seeds only"
CorrectLoader = Callable[[RunSummary], "np.ndarray | None"]


def comparison_settings(cfg: ExperimentConfig) -> dict:
    """The config as plain data without the fields that only name, seed or run it (dotted paths dropped)."""
    data = to_dict(cfg)
    for path in NOT_COMPARED:
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        node.pop(leaf, None)
    return data


@functools.lru_cache(maxsize=4096)  # configs are frozen: a page lists the same runs on every rerun
def comparison_key(cfg: ExperimentConfig) -> str:
    """Short stable id of :func:`comparison_settings`: runs with one key are seeds of one comparison."""
    text = json.dumps(comparison_settings(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _compared(path: str) -> bool:
    return not any(path == p or path.startswith(p + ".") for p in NOT_COMPARED)


def order_methods(methods: Iterable[str]) -> list[str]:
    """Methods in :data:`METHOD_ORDER`, any others after them by name: never by a test number."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(set(methods), key=lambda m: (rank.get(m, len(rank)), m))


# --------------------------------------------------------------------------- groups
def _usable(run: RunSummary) -> bool:
    info = run.stage_info
    return (run.state == "finished" and run.metric is not None and run.config is not None and info is not None
            and not info.study and not run.archived)


def left_out(summaries: Iterable[RunSummary]) -> list[RunSummary]:
    """Runs that may hold a result but cannot be grouped: damaged, or without a readable config (archived ones
    are left out on purpose and not listed)."""
    return [s for s in summaries if not s.archived and (s.damaged is not None or s.config is None)]


def _newest(run: RunSummary) -> float:
    return run.finished_at or run.created


@dataclass(frozen=True)
class Group:
    """Finished runs with one :func:`comparison_key`: every method's seeds of one comparison, newest first."""

    key: str
    runs: tuple[RunSummary, ...]

    @property
    def config(self) -> ExperimentConfig:
        """The newest run's config: every run of the group has the same one, up to name and seed."""
        assert self.runs[0].config is not None  # group_runs keeps runs with a config only
        return self.runs[0].config

    @property
    def name(self) -> str:
        """The config's name most runs carry (a sweep's stage runs without their seed and fraction suffix)."""
        names = Counter(_STUDY_SUFFIX.sub("", r.config.name) for r in self.runs if r.config is not None)
        return names.most_common(1)[0][0]

    @property
    def newest(self) -> float:
        return max(_newest(r) for r in self.runs)

    @property
    def methods(self) -> list[str]:
        return order_methods(r.method for r in self.runs)

    def short(self) -> str:
        """``digits · 5% labels · digits-quick``: what the group compares, in words."""
        data = self.config.data
        return f"{data.name} · {100 * data.label_fraction:g}% labels · {self.name}"

    def label(self) -> str:
        """``digits · 5% labels · digits-quick · 10 runs · newest 2025-01-01 12:00`` for a select box."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.newest))
        return f"{self.short()} · {len(self.runs)} run{'s' if len(self.runs) != 1 else ''} · newest {when}"

    def subset_text(self) -> str:
        """How the group's labelled subset was drawn, and what that means for its intervals."""
        if self.config.data.labelled_subset == "fixed":
            return ("Labelled subset: fixed across seeds (every seed labels the same images, so the intervals do "
                    "not cover which images happened to be labelled).")
        return ("Labelled subset: drawn per seed (each seed labels other images, so the intervals also cover which "
                "images happened to be labelled).")


def group_runs(summaries: Iterable[RunSummary]) -> list[Group]:
    """Finished, non-archived runs with a headline number and a config, grouped by :func:`comparison_key`.

    Groups with the most runs first (then the newest): the default one to show. Damaged runs and runs without a
    config are in no group (:func:`left_out` lists them); studies hold tables, not a headline, and are in none.
    """
    by_key: dict[str, list[RunSummary]] = {}
    for run in summaries:
        if _usable(run):
            assert run.config is not None
            by_key.setdefault(comparison_key(run.config), []).append(run)
    groups = [Group(key, tuple(sorted(runs, key=lambda r: (_newest(r), r.id), reverse=True)))
              for key, runs in by_key.items()]
    return sorted(groups, key=lambda g: (-len(g.runs), -g.newest, g.key))


def _value_text(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def group_differences(chosen: Group, groups: Sequence[Group], fields: int = 3, most: int = 4) -> list[str]:
    """How ``chosen`` differs from each other group, one line each: the first ``fields`` compared fields (the
    chosen group's value → the other's), then how many more; at most ``most`` groups, then how many more."""
    lines = []
    others = [g for g in groups if g.key != chosen.key]
    for other in others[:most]:
        changes = [c for c in config_diff(chosen.config, other.config, "") if _compared(c.field)]
        shown = ", ".join(f"{c.field} {_value_text(c.before)} → {_value_text(c.after)}" for c in changes[:fields])
        more = f" and {len(changes) - fields} more" if len(changes) > fields else ""
        lines.append(f"vs {other.short()} ({len(other.runs)} runs): {shown or 'no compared field'}{more}")
    if len(others) > most:
        lines.append(f"and {len(others) - most} more groups")
    return lines


# --------------------------------------------------------------------------- one method's seeds
@dataclass(frozen=True)
class MethodResult:
    """One method's seeds in one group: a value per seed, the runs behind them, and their summary.

    ``correct``: per-image correctness, one row per seed in the order of ``seeds`` (None when the seeds alone are
    covered, and ``note`` says why). ``summary`` covers the seeds and the test images when ``correct`` is there.
    """

    method: str
    seeds: tuple[int | None, ...]
    values: tuple[float, ...]
    run_ids: tuple[str, ...]
    summary: stats.Summary
    correct: np.ndarray | None = field(default=None, repr=False, compare=False)
    note: str = ""

    @property
    def per_image(self) -> bool:
        return self.correct is not None

    def by_seed(self) -> dict[int | None, float]:
        return dict(zip(self.seeds, self.values, strict=True))

    def rows(self, seeds: Sequence[int | None]) -> np.ndarray:
        """The per-image rows of ``seeds`` (each one of this method's), in that order."""
        assert self.correct is not None
        return self.correct[[self.seeds.index(s) for s in seeds]]


def _seed_order(seed: int | None) -> tuple[bool, int]:
    return seed is None, seed or 0


def _correct_rows(runs: Sequence[RunSummary], load_correct: CorrectLoader) -> tuple[np.ndarray | None, str]:
    """The runs' per-image rows stacked, or None and why they cannot stand for the runs' values."""
    rows, missing = [], []
    for run in runs:
        row = load_correct(run)
        if row is None or row.ndim != 1 or row.size == 0:
            missing.append(run.id)
        else:
            rows.append(row.astype(bool))
    if missing:
        who = "this run has" if len(runs) == 1 else f"{len(missing)} of its {len(runs)} runs have"
        return None, f"{SEEDS_ONLY}: {who} no per-image scores (saved before they were kept: {', '.join(missing)})"
    sizes = {row.size for row in rows} | {n for r in runs if isinstance(n := r.results.get("test_images"), int)}
    if len(sizes) > 1:
        return None, (f"{SEEDS_ONLY}: its runs' per-image scores cover different numbers of test images "
                      f"({', '.join(map(str, sorted(sizes)))})")
    for run, row in zip(runs, rows, strict=True):
        # One image either way is the most rounding can move an accuracy; more means another evaluation's scores.
        if abs(float(row.mean()) - float(run.metric or 0.0)) > 1.0 / row.size:
            return None, (f"{SEEDS_ONLY}: the per-image scores of run {run.id} do not give its accuracy "
                          f"({100 * row.mean():.1f}% against {100 * (run.metric or 0.0):.1f}%)")
    return np.stack(rows), ""


def method_results(group: Group, load_correct: CorrectLoader) -> dict[str, MethodResult]:
    """Per method of ``group``, in :data:`METHOD_ORDER`: its seeds (ascending) and their summary.

    A seed run twice counts once, with its newest run: a rerun replaces a result, it is not another sample.
    With every run's per-image correctness (``load_correct``: a run's bool row per test image, or None) the
    summary is :func:`stats.accuracy_summary` over seeds and test images; otherwise :func:`stats.summarize` over
    the seeds alone, with a note naming the runs without per-image scores.
    """
    by_method: dict[str, dict[int | None, RunSummary]] = {}
    for run in group.runs:  # newest first: the first run of a seed is its newest
        by_method.setdefault(run.method, {}).setdefault(run.seed, run)
    results = {}
    for method in order_methods(by_method):
        seeds = sorted(by_method[method], key=_seed_order)
        runs = [by_method[method][s] for s in seeds]
        values = tuple(float(r.metric or 0.0) for r in runs)
        correct, note = _correct_rows(runs, load_correct)
        summary = stats.accuracy_summary(correct) if correct is not None else stats.summarize(values)
        results[method] = MethodResult(method=method, seeds=tuple(seeds), values=values,
                                       run_ids=tuple(r.id for r in runs), summary=summary, correct=correct, note=note)
    return results


# --------------------------------------------------------------------------- differences
@dataclass(frozen=True)
class Comparison:
    """``a`` minus ``b`` over the seeds both ran (None without a shared seed), and how it was computed."""

    a: str
    b: str
    seeds: tuple[int | None, ...]
    difference: stats.Difference | None
    per_image: bool
    note: str = ""


def paired(a: MethodResult, b: MethodResult) -> Comparison:
    """A minus B, paired on the seeds both ran: per-image rows of the same test images when both have them
    (:func:`stats.difference`), else the values over the seeds alone (:func:`stats.compare`), saying so.

    Only shared seeds pair up: a seed run by one method alone says nothing about the difference.
    """
    mine, theirs = a.by_seed(), b.by_seed()
    seeds = tuple(sorted(set(mine) & set(theirs), key=_seed_order))
    if not seeds:
        return Comparison(a.method, b.method, seeds, None, False,
                          f"{a.method} and {b.method} share no seed yet: run both with the same seed to compare them.")
    if a.correct is not None and b.correct is not None and a.correct.shape[1] == b.correct.shape[1]:
        diff = stats.difference(a.rows(seeds), b.rows(seeds), a.method, b.method)
        return Comparison(a.method, b.method, seeds, diff, True)
    note = a.note or b.note or (f"{SEEDS_ONLY}: the two methods were scored on different numbers of test images")
    diff = stats.compare([mine[s] for s in seeds], [theirs[s] for s in seeds], a_name=a.method, b_name=b.method)
    return Comparison(a.method, b.method, seeds, diff, False, note)


def default_pair(methods: Iterable[str]) -> tuple[str, str] | None:
    """The comparison declared in advance for these methods: :data:`PRIMARY`, else the first :data:`SECONDARY`
    pair with both arms (a fixed order, never the test numbers); None when no declared pair is there."""
    present = set(methods)
    return next((pair for pair in (PRIMARY, *SECONDARY) if set(pair) <= present), None)


def declared_comparisons(results: Mapping[str, MethodResult], primary: tuple[str, str] | None = PRIMARY
                         ) -> tuple[Comparison | None, list[Comparison]]:
    """The declared comparison (None when ``primary`` is None or one of its methods has no run here) and the
    :data:`SECONDARY` pairs with both arms (the declared pair left out), their verdicts Holm-adjusted over those
    with a p-value. Which pair is primary never depends on the test numbers."""
    main = paired(results[primary[0]], results[primary[1]]) if primary and set(primary) <= set(results) else None
    chosen = {frozenset(primary)} if primary else set()
    others = [paired(results[x], results[y]) for x, y in SECONDARY
              if {x, y} <= set(results) and frozenset((x, y)) not in chosen]
    tested = [i for i, c in enumerate(others) if c.difference is not None]
    adjusted = stats.adjust_holm([others[i].difference for i in tested])  # type: ignore[misc]
    for i, diff in zip(tested, adjusted, strict=True):
        c = others[i]
        others[i] = Comparison(c.a, c.b, c.seeds, diff, c.per_image, c.note)
    return main, others
