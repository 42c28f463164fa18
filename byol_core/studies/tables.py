"""What every study's table is made of: per-image correctness per seed, turned into accuracies with their
intervals, the declared comparisons (the primary one, and the secondary ones with Holm's correction) and the
text that reads them. One procedure for the sweep, the experiment and the ablation.

Each seed of a method keeps which test images it got right (:func:`pack_correct`: one bit an image, base64,
so a result stays one JSON object). With every seed's correctness an accuracy's interval covers the seeds
(their training and their labelled subset) and the test images (:func:`byol_core.stats.accuracy_summary`;
Wilson over the test images with one seed), and a comparison pairs the two methods seed by seed and image by
image (:func:`byol_core.stats.difference`; exact McNemar with one seed). Results written before studies kept
correctness fall back to the seeds alone (:func:`byol_core.stats.summarize`), and their interval's method
("t") says so.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import stats
from ..lab import comparison
from ..stats import Difference, Summary
from ..stats_text import clipped_interval, format_difference, interval_text, too_few_seeds_note

# A seed's result: its value (share of test images right) and which images it got right (None: not saved).
Scored = tuple[float, np.ndarray | None]
COVERS = {stats.SEEDS_AND_IMAGES: "over seeds (each its own training and labelled subset) and test images",
          "wilson": "over the test images only (one seed: Wilson)",
          "t": "over seeds only (no per-image scores saved: the test-set noise is left out)",
          "single": "none (one value without per-image scores)"}


def pack_correct(correct: np.ndarray) -> str:
    """Per-image correctness as text: one bit an image (numpy's packbits), base64."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode("ascii")


def unpack_correct(text: str, images: int) -> np.ndarray:
    """The bool array :func:`pack_correct` wrote for ``images`` test images; ValueError when it is not one."""
    try:
        packed = np.frombuffer(base64.b64decode(text, validate=True), dtype=np.uint8)
    except (binascii.Error, TypeError) as exc:
        raise ValueError(f"per-image correctness is not base64 text ({exc})") from None
    if packed.size != (images + 7) // 8:
        raise ValueError(f"per-image correctness holds {8 * packed.size} bits for {images} test images")
    return np.unpackbits(packed, count=images).astype(bool)


def value_of(correct: np.ndarray) -> float:
    """A seed's accuracy from its correctness: the row's value and its interval then agree exactly."""
    return float(np.mean(correct))


def accuracy(values: Sequence[float], correct: Sequence[np.ndarray | None]) -> Summary | None:
    """Mean accuracy over seeds with its 95% interval: seeds and test images when every seed kept its
    correctness (Wilson with one seed), seeds alone otherwise; None without a value."""
    if not values:
        return None
    if len(correct) == len(values) and all(c is not None for c in correct):
        return stats.accuracy_summary(np.stack(list(correct)))
    return stats.summarize(values)


def accuracy_fields(values: Sequence[float], correct: Sequence[np.ndarray | None]) -> dict[str, Any]:
    """A row's JSON: n (seeds), mean, std, the raw 95% interval (``ci95``), the one shown (``ci95_clipped``,
    inside 0-1), its half-width and method (``interval``), and each seed's packed correctness (``correct``,
    None for a seed without it; ``images`` test images each)."""
    s = accuracy(values, correct)
    images = next((len(c) for c in correct if c is not None), None)
    shown = clipped_interval(s) if s is not None else None
    return {"n": len(values), "mean": s.mean if s else None, "std": s.std if s else None,
            "ci95": list(s.ci) if s and s.ci else None, "ci95_clipped": list(shown) if shown else None,
            "half_width": s.half_width if s else None, "interval": s.method if s else None, "images": images,
            "correct": [None if c is None else pack_correct(c) for c in correct]}


def read_correct(row: Mapping[str, Any], seeds: int) -> list[np.ndarray | None]:
    """The per-seed correctness of a row :func:`accuracy_fields` wrote; Nones for a row written before
    studies kept it (or damaged: a result is never lost for it, its interval covers the seeds alone)."""
    packed, images = row.get("correct"), row.get("images")
    if not isinstance(packed, list) or len(packed) != seeds or not isinstance(images, int) or images <= 0:
        return [None] * seeds
    try:
        return [None if p is None else unpack_correct(p, images) for p in packed]
    except ValueError:
        return [None] * seeds


def row_summary(row: Mapping[str, Any]) -> Summary | None:
    """A stored row's summary, computed again from its per-seed values and correctness; a row that holds only
    its numbers (mean, std, ci95 and n, as a page may be given) is read as they are."""
    values = row.get("values")
    if not isinstance(values, list) or not values:  # an experiment's row: one accuracy
        values = [] if row.get("accuracy") is None else [row["accuracy"]]
    if values:
        return accuracy(values, read_correct(row, len(values)))
    if row.get("mean") is None:
        return None
    low, high = row.get("ci95") or (None, None)
    half = None if low is None or high is None else (high - low) / 2
    return Summary(int(row.get("n") or 1), row["mean"], row.get("std") or 0.0, low, high, half,
                   row.get("interval") or ("t" if half is not None else "single"), images=row.get("images"))


def order_key(method: str) -> int:
    """Where ``method`` goes in every table and chart (:data:`METHOD_ORDER`; others after, as they came)."""
    order = comparison.METHOD_ORDER
    return order.index(method) if method in order else len(order)


def method_result(method: str, scores: Mapping[int, Scored]) -> comparison.MethodResult:
    """A study row's seeds as the Compare page's :class:`~byol_core.lab.comparison.MethodResult`, so a study and
    the page pair and judge two methods by the one procedure (per-image rows only when every seed has one)."""
    seeds = list(scores)
    values = [scores[s][0] for s in seeds]
    correct = [scores[s][1] for s in seeds]
    rows = np.stack(correct) if seeds and all(c is not None for c in correct) else None
    summary = accuracy(values, correct)
    if summary is None:
        raise ValueError(f"{method}: no seed to compare")
    return comparison.MethodResult(method=method, seeds=tuple(seeds), values=tuple(values),
                                   run_ids=("",) * len(seeds), summary=summary, correct=rows)


def paired(a: Mapping[int, Scored], b: Mapping[int, Scored], a_name: str, b_name: str) -> Difference | None:
    """``a - b`` over the seeds both have (each seed's two runs share their labelled subset and test images):
    image by image where every seed kept its correctness, seed by seed otherwise; None without a shared seed."""
    if not a or not b:
        return None
    return comparison.paired(method_result(a_name, a), method_result(b_name, b)).difference


@dataclass(frozen=True)
class Comparison:
    """A declared comparison: the primary one (judged on its own) or a secondary one (Holm-adjusted)."""

    primary: bool
    result: Difference

    def fields(self, **where: Any) -> dict[str, Any]:
        """Its JSON: a, b, primary, n, mean, ci (raw), ci_clipped, p, adjusted_p, test, significant, verdict."""
        d = self.result.difference
        shown = clipped_interval(d, (-1.0, 1.0))
        return {"a": self.result.a_name, "b": self.result.b_name, **where, "primary": self.primary, "n": d.n,
                "mean": d.mean, "ci": list(d.ci) if d.ci else None, "ci_clipped": list(shown) if shown else None,
                "p": self.result.p_value, "adjusted_p": self.result.adjusted_p, "test": self.result.test,
                "significant": self.result.significant, "verdict": self.result.verdict}

    def line(self) -> str:
        return f"{'primary' if self.primary else 'secondary'}: {format_difference(self.result)}"


def declared(by_method: Mapping[str, Mapping[int, Scored]],
             primary: tuple[str, str] | None = comparison.PRIMARY) -> list[Comparison]:
    """The primary comparison and the secondary ones (Holm over those with both arms), declared before any
    run (:func:`byol_core.lab.comparison.declared_comparisons`); a pair missing an arm is left out."""
    results = {m: method_result(m, scores) for m, scores in by_method.items() if scores}
    main, others = comparison.declared_comparisons(results, primary)
    found = [(True, main)] if main is not None else []
    return [Comparison(first, c.difference) for first, c in found + [(False, c) for c in others]
            if c.difference is not None]


def cell(summary: Summary | None) -> str:
    """An accuracy as a table shows it: ``91.2% ± 1.3``, clipped to 0-100% (never a false ``± 0.0``)."""
    if summary is None:
        return "-"
    if summary.method == "t" and summary.half_width == 0:  # an old result: equal seeds, test-set noise unknown
        return f"{100 * summary.mean:.1f}% (seeds equal)"
    return interval_text(summary)


def coverage(summaries: Iterable[Summary | None]) -> str:
    """What the intervals of a table cover, in words (each kind once, in the order met)."""
    kinds = dict.fromkeys(s.method for s in summaries if s is not None)
    return "; ".join(COVERS.get(k, k) for k in kinds) or "no values yet"


def seed_note(summaries: Iterable[Summary | None]) -> str | None:
    """The too-few-seeds note of a table's widest interval over fewer than 3 seeds (None with 3 or more)."""
    few = [s for s in summaries if s is not None and s.n < stats.ENOUGH_SEEDS]
    if not few:
        return None
    return too_few_seeds_note(max(few, key=lambda s: s.half_width or 0.0))


def comparison_lines(comparisons: Sequence[Comparison], indent: str = "  ") -> list[str]:
    """The comparisons as text, the primary first; secondary ones say they are Holm-adjusted."""
    return [indent + c.line() for c in comparisons]
