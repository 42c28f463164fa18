"""Comparing methods at one label share: each method's runs as seeds of one result, summarised once.

The Compare page's headline cards, paired difference and bar chart all read these numbers, so they
are computed here, in one pass over the run summaries, and never regrouped by the page. Pure
functions; nothing here reads a run folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .. import stats
from .summary import RunSummary


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
