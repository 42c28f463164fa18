"""How an interval reads: clipped to what the value can be (raw ends kept for help), never "± 0.0" for a
spread that is not exactly zero, symmetric ones as ``±`` and asymmetric ones as ``low to high``, and what
to say when fewer than three seeds stand behind it. The numbers come from :mod:`byol_core.stats`.
"""

from __future__ import annotations

import math

from .stats import (
    ENOUGH_SEEDS,
    MAX_SEEDS_SUGGESTED,
    SEED_METHODS,
    Difference,
    Summary,
    confidence_label,
    seeds_needed,
)


def too_few_seeds_note(summary: Summary, target_half: float | None = None, percent: bool = True) -> str | None:
    """What to say of an interval over fewer than three seeds (None for three or more, or no seeds at all).

    ``target_half``: the half-width worth reaching (default: 1 point for an accuracy).
    """
    if summary.method not in {*SEED_METHODS, "exact McNemar", "wilson"}:  # e.g. a bootstrap: no seed count
        return None
    if summary.n >= ENOUGH_SEEDS:
        return None
    scale = 100.0 if percent else 1.0
    target = 0.01 if target_half is None else target_half
    if summary.n < 2 or summary.seed_std is None:
        return (f"{summary.n} seed: the interval covers the test images only, not the training seed or which "
                f"images were labelled. Run at least {ENOUGH_SEEDS} seeds to read it.")
    half = "" if summary.half_width is None else f" (±{summary.half_width * scale:.1f})"
    needed = seeds_needed(summary.seed_std, target, summary.test_half or 0.0, summary.confidence)
    goal = f"±{target * scale:.1f}" + (" points" if percent else "")
    if needed is None:
        return (f"{summary.n} seeds: too few to read this interval{half}; with the spread seen so far, more than "
                f"{MAX_SEEDS_SUGGESTED} seeds (or more test images) would be needed to narrow it to {goal}.")
    return (f"{summary.n} seeds: too few to read this interval{half}; with the spread seen so far, about {needed} "
            f"seeds would narrow it to {goal}.")


def _units(percent: bool, digits: int | None) -> tuple[float, int]:
    return (100.0, 1 if digits is None else digits) if percent else (1.0, 3 if digits is None else digits)


def _spread_label(summary: Summary) -> str:
    if summary.method == "wilson" and summary.n == summary.images:
        return f"({confidence_label(summary.confidence)}, wilson, n={summary.n} images)"
    seeds = f"{summary.n} seed{'s' if summary.n != 1 else ''}"
    what = f"{seeds} × {summary.images:,} test images" if summary.images else f"n={summary.n}, seeds only"
    return f"({confidence_label(summary.confidence)}, {what})"


def clipped_interval(summary: Summary, bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float] | None:
    """The interval inside what the value can be (an accuracy 0-1, a difference of two -1 to 1)."""
    if summary.ci is None:
        return None
    return max(summary.ci[0], bounds[0]), min(summary.ci[1], bounds[1])


def _half_text(half: float, scale: float, digits: int) -> str:
    # Never "± 0.0" for a spread that is not exactly zero: show digits until it reads as what it is.
    for more in range(digits, digits + 3):
        if round(half * scale, more) > 0:
            return f"{half * scale:.{more}f}"
    return f"{half * scale:.{digits}f}" if half == 0 else f"<{10 ** -(digits + 2):g}"


def interval_text(summary: Summary, percent: bool = True, digits: int | None = None,
                  bounds: tuple[float, float] = (0.0, 1.0), signed: bool = False) -> str:
    """``91.2% ± 1.3`` for an interval symmetric inside ``bounds``; ``100.0% (72.2 to 100.0)`` otherwise.

    Clipped to ``bounds``; :func:`raw_interval_text` gives the raw ends for a tooltip.
    """
    scale, digits = _units(percent, digits)
    sign = "+" if signed else ""
    value = f"{summary.mean * scale:{sign}.{digits}f}{'%' if percent and not signed else ''}"
    shown = clipped_interval(summary, bounds)
    if shown is None or summary.half_width is None:
        return value
    low, high = shown
    below, above = round((summary.mean - low) * scale, digits), round((high - summary.mean) * scale, digits)
    if below == above and shown == summary.ci:
        return f"{value} ± {_half_text(summary.half_width, scale, digits)}"
    return f"{value} ({low * scale:{sign}.{digits}f} to {high * scale:{sign}.{digits}f})"


def raw_interval_text(summary: Summary, percent: bool = True, digits: int | None = None) -> str:
    """The unclipped interval and how it was computed, for a tooltip."""
    scale, digits = _units(percent, digits)
    if summary.ci is None:
        return f"no interval (n={summary.n})"
    return (f"raw {confidence_label(summary.confidence)}: {summary.ci[0] * scale:.{digits}f} to "
            f"{summary.ci[1] * scale:.{digits}f} ({summary.method}; shown clipped to the possible range)")


def format_ci(summary: Summary, percent: bool = True, digits: int | None = None) -> str:
    """``91.2% ± 1.3 (95% CI, 5 seeds × 10,000 test images)``; one value reads ``91.2% (n=1, no interval)``."""
    scale, digits = _units(percent, digits)
    if summary.half_width is None:
        return f"{summary.mean * scale:.{digits}f}{'%' if percent else ''} (n={summary.n}, no interval)"
    if summary.half_width == 0 and summary.method == "t":
        return (f"{summary.mean * scale:.{digits}f}{'%' if percent else ''} (all {summary.n} seeds equal; no "
                "per-image scores, so the test-set noise is unknown)")
    bounds = (0.0, 1.0) if percent else (-math.inf, math.inf)
    return f"{interval_text(summary, percent, digits, bounds)} {_spread_label(summary)}"


def format_difference(result: Difference, percent: bool = True, digits: int | None = None) -> str:
    """``BYOL - baseline: +1.2 ± 0.8 points (95% CI, 5 seeds × 10,000 test images), p=0.031: BYOL better (...)``."""
    diff, (scale, digits) = result.difference, _units(percent, digits)
    unit = " points" if percent else ""
    head = f"{result.a_name} - {result.b_name}: "
    if diff.half_width is None:
        return f"{head}{diff.mean * scale:+.{digits}f}{unit} (n={diff.n}, no interval): {result.verdict}"
    bounds = (-1.0, 1.0) if percent else (-math.inf, math.inf)
    p_text = "" if result.p_value is None else f", p={result.p_value:.3g} ({result.test})"
    return (f"{head}{interval_text(diff, percent, digits, bounds, signed=True)}{unit} {_spread_label(diff)}"
            f"{p_text}: {result.verdict}")
