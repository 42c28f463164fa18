"""Comparing methods like with like: which runs are seeds of one comparison, what is compared first,
and each method's runs summarised once.

A run's :func:`comparison_key` is its config without what only names it or only seeds it (name, seed,
fields derived from the seed) and without how it ran (runtime): runs with one key differ only in their
seed, so they are seeds of one comparison. The comparison is declared before looking at test numbers:
:data:`PRIMARY` (BYOL linear probe against supervised from scratch) unless the person or the study picks
another; :data:`SECONDARY` pairs are judged with Holm's correction. The Compare page's cards, verdicts and
bars all read these numbers, computed here and never regrouped by the page.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from .. import stats
from ..config import DERIVED_FIELDS, ExperimentConfig, to_dict
from ..methods.floors import PIXEL_KNN, PIXEL_LOGISTIC
from .builtin_stages import BYOL, FINETUNE, KNN, LINEAR, SCRATCH
from .summary import RunSummary

# Every table and chart lists methods in this order, never sorted by a test number.
METHOD_ORDER = (FINETUNE.method, LINEAR.method, BYOL.method, SCRATCH.method, KNN.method, PIXEL_LOGISTIC, PIXEL_KNN)
# Declared before any run: does a BYOL encoder with a linear probe beat training from scratch on the same labels?
PRIMARY = (LINEAR.method, SCRATCH.method)
# Also reported, with Holm's correction over however many of them have both arms.
SECONDARY = ((FINETUNE.method, SCRATCH.method), (BYOL.method, SCRATCH.method), (BYOL.method, KNN.method),
             (BYOL.method, PIXEL_KNN), (LINEAR.method, PIXEL_LOGISTIC))
# Fields that name a run or say how it ran, not what it compares.
_NOT_COMPARED = ("name", "seed", "runtime", *DERIVED_FIELDS)


def comparison_settings(cfg: ExperimentConfig) -> dict:
    """The config as plain data without the fields that only name, seed or run it (dotted paths dropped)."""
    data = to_dict(cfg)
    for path in _NOT_COMPARED:
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        node.pop(leaf, None)
    return data


def comparison_key(cfg: ExperimentConfig) -> str:
    """Short stable id of :func:`comparison_settings`: runs with one key are seeds of one comparison."""
    text = json.dumps(comparison_settings(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class MethodStats:
    """One method's runs at one label share: a value per seed, the runs they came from, and their summary."""

    method: str
    seeds: tuple[int | None, ...]
    values: tuple[float, ...]   # the headline number of each seed's run, in the order of ``seeds``
    run_ids: tuple[str, ...]    # the run behind each value
    summary: stats.Summary      # mean over the seeds with its 95% t-interval

    def by_seed(self) -> dict[int | None, float]:
        return dict(zip(self.seeds, self.values, strict=True))

    def paired_with(self, other: MethodStats) -> tuple[list[int | None], stats.Difference | None]:
        """The seeds both methods ran, ascending, and this method minus ``other`` over them (None without one).

        Only shared seeds pair up: a seed run by one method alone says nothing about the difference.
        """
        mine, theirs = self.by_seed(), other.by_seed()
        seeds = sorted(set(mine) & set(theirs))
        if not seeds:
            return seeds, None
        return seeds, stats.compare([mine[s] for s in seeds], [theirs[s] for s in seeds], a_name=self.method,
                                    b_name=other.method)


def method_stats(runs: Sequence[RunSummary]) -> dict[str, MethodStats]:
    """Per method, in the order of its first run: its seeds' values and their :func:`stats.summarize`.

    ``runs``: finished runs of one data set at one label share, newest first (as ``list_summaries`` gives
    them); runs without a headline number are skipped. A seed run twice counts once, with its newest run:
    a rerun replaces a result, it is not another sample. Runs with other labels are other experiments,
    never seeds of this one, so mixing label shares (or data sets) is refused.
    """
    scored = [r for r in runs if r.metric is not None]
    shares = {(r.dataset, r.label_fraction) for r in scored}
    if len(shares) > 1:
        raise ValueError(f"runs of one data set and label share only; got {sorted(shares, key=str)}")
    by_method: dict[str, dict[int | None, RunSummary]] = {}
    for run in scored:
        by_method.setdefault(run.method, {}).setdefault(run.seed, run)
    result = {}
    for method, by_seed in by_method.items():
        values = tuple(float(r.metric) for r in by_seed.values())
        result[method] = MethodStats(method=method, seeds=tuple(by_seed), values=values,
                                     run_ids=tuple(r.id for r in by_seed.values()), summary=stats.summarize(values))
    return result
