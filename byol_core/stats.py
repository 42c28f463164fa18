"""Spread and significance for reported numbers: t-intervals over seeds, intervals over test images, comparisons.

A number without its spread is an anecdote: accuracies go out with n and a confidence interval, and "better"
is only claimed when the interval of the difference excludes zero. Pure functions on numpy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

ArrayLike = Sequence[float] | np.ndarray
NOISE_VERDICT = "inside the noise ({label} of the difference includes 0)"
SEED_METHODS = {"t", "paired t"}  # n counts seeds; for the other methods it counts test images


@dataclass(frozen=True)
class Summary:
    """A value with its spread.

    ``method`` says where the interval comes from: ``"t"`` (Student t over seeds), ``"paired t"`` (over paired
    seed differences), ``"bootstrap"`` / ``"paired bootstrap"`` (over test images), ``"wilson"`` (binomial over
    test images) or ``"single"`` (one value, no interval: ``low``/``high``/``half_width`` are None).
    ``n`` counts seeds for t methods and test images otherwise. ``std`` is the sample std (ddof=1) over seeds,
    or the standard error of the accuracy for the per-image methods.
    """

    n: int
    mean: float
    std: float
    low: float | None
    high: float | None
    half_width: float | None
    method: str
    confidence: float = 0.95

    @property
    def ci(self) -> tuple[float, float] | None:
        """The interval as ``(low, high)``, or None when there is none."""
        return None if self.low is None or self.high is None else (self.low, self.high)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (None, never NaN, where there is no interval)."""
        return asdict(self)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")


def _as_values(values: ArrayLike, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: need at least one value to summarize")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinity")
    return array


def _as_correct(correct: ArrayLike, name: str = "correct") -> np.ndarray:
    array = _as_values(correct, name)
    if not np.all((array == 0) | (array == 1)):
        raise ValueError(f"{name} must hold per-image correctness (bool or 0/1)")
    return array.astype(bool)


def _check_same_length(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.size != b.size:
        raise ValueError(f"{what} must be paired: got {a.size} and {b.size} values")


def _t_summary(values: np.ndarray, confidence: float, method: str) -> Summary:
    n, mean = values.size, float(values.mean())
    if n == 1:
        return Summary(1, mean, 0.0, None, None, None, "single", confidence)
    std = float(values.std(ddof=1))
    half = float(sps.t.ppf((1.0 + confidence) / 2.0, n - 1) * std / np.sqrt(n))
    return Summary(n, mean, std, mean - half, mean + half, half, method, confidence)


def _percentile_summary(n: int, mean: float, draws: np.ndarray, confidence: float, method: str) -> Summary:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = (float(x) for x in np.percentile(draws, [tail, 100.0 - tail]))
    return Summary(n, mean, float(draws.std(ddof=1)), low, high, (high - low) / 2.0, method, confidence)


def bootstrap_accuracy_ci(correct: ArrayLike, n_boot: int = 2000, seed: int = 0,
                          confidence: float = 0.95) -> Summary:
    """Percentile-bootstrap interval of one run's accuracy, resampling its test images.

    Resampling n images with replacement and averaging correctness is exactly a Binomial(n, acc)/n draw, so
    we draw that directly: same distribution, no n_boot x n index matrix.
    """
    _check_confidence(confidence)
    hits = _as_correct(correct)
    accuracy = float(hits.mean())
    draws = np.random.default_rng(seed).binomial(hits.size, accuracy, size=n_boot) / hits.size
    return _percentile_summary(hits.size, accuracy, draws, confidence, "bootstrap")


def wilson_interval(n_correct: int, n_test: int, confidence: float = 0.95) -> Summary:
    """Wilson score interval of an accuracy of ``n_correct`` out of ``n_test`` images (sound near 0 and 1)."""
    _check_confidence(confidence)
    if n_test <= 0:
        raise ValueError(f"n_test must be positive, got {n_test}")
    if not 0 <= n_correct <= n_test:
        raise ValueError(f"n_correct must be within 0..n_test ({n_test}), got {n_correct}")
    z = float(sps.norm.ppf((1.0 + confidence) / 2.0))
    p = n_correct / n_test
    centre = (p + z * z / (2 * n_test)) / (1 + z * z / n_test)
    half = z * np.sqrt(p * (1 - p) / n_test + z * z / (4 * n_test**2)) / (1 + z * z / n_test)
    std = float(np.sqrt(p * (1 - p) / n_test))
    return Summary(n_test, p, std, float(centre - half), float(centre + half), float(half), "wilson", confidence)


def binomial_half_width(n_test: int, accuracy: float = 0.5, confidence: float = 0.95) -> float:
    """Half-width of the interval that a test set of ``n_test`` images implies at ``accuracy`` (normal approx).

    Differences smaller than this between two single runs cannot be told apart from test-set noise.
    """
    _check_confidence(confidence)
    if n_test <= 0:
        raise ValueError(f"n_test must be positive, got {n_test}")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be within [0, 1], got {accuracy}")
    return float(sps.norm.ppf((1.0 + confidence) / 2.0) * np.sqrt(accuracy * (1 - accuracy) / n_test))


def summarize(values: ArrayLike, confidence: float = 0.95, correct: ArrayLike | None = None) -> Summary:
    """Mean of per-seed values with a t-interval (n >= 2).

    With one value the interval is undefined (method ``"single"``) unless ``correct``, that run's per-image
    correctness, is given: then the interval is bootstrapped over its test images.
    """
    _check_confidence(confidence)
    array = _as_values(values)
    if array.size == 1 and correct is not None:
        result = bootstrap_accuracy_ci(correct, confidence=confidence)
        if abs(result.mean - array[0]) > 1e-6:
            raise ValueError(f"correct gives accuracy {result.mean:.6f} but the value is {array[0]:.6f}")
        return result
    return _t_summary(array, confidence, "t")


def paired_difference(a_values: ArrayLike, b_values: ArrayLike, confidence: float = 0.95) -> Summary:
    """Mean of ``a - b`` over paired seeds (same seed for both arms) with its t-interval."""
    _check_confidence(confidence)
    a, b = _as_values(a_values, "a_values"), _as_values(b_values, "b_values")
    _check_same_length(a, b, "a_values and b_values")
    return _t_summary(a - b, confidence, "paired t")


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test: ``b`` images only A got right, ``c`` only B; p is two-sided."""

    b: int
    c: int
    p_value: float


def mcnemar(correct_a: ArrayLike, correct_b: ArrayLike) -> McNemar:
    """Exact (binomial) McNemar test for two classifiers scored on the same test images."""
    a, b = _as_correct(correct_a, "correct_a"), _as_correct(correct_b, "correct_b")
    _check_same_length(a, b, "correct_a and correct_b")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return McNemar(0, 0, 1.0)
    return McNemar(only_a, only_b, float(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue))


def _paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int, confidence: float) -> Summary:
    # Only discordant images move a - b, so resampling images is a multinomial draw over (only A, only B, rest).
    n = a.size
    cells = np.array([np.sum(a & ~b), np.sum(~a & b), 0.0])
    cells[2] = n - cells[0] - cells[1]
    counts = np.random.default_rng(seed).multinomial(n, cells / n, size=n_boot)
    draws = (counts[:, 0] - counts[:, 1]) / n
    return _percentile_summary(n, float(a.mean() - b.mean()), draws, confidence, "paired bootstrap")


@dataclass(frozen=True)
class Difference:
    """``a - b`` with its interval, a p-value where a test applies, and the verdict in words."""

    a_name: str
    b_name: str
    difference: Summary
    p_value: float | None
    test: str
    verdict: str

    @property
    def significant(self) -> bool:
        """True only when the interval of the difference excludes zero."""
        ci = self.difference.ci
        return ci is not None and (ci[0] > 0 or ci[1] < 0)

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant}


def _confidence_label(confidence: float) -> str:
    return f"{confidence * 100:g}% CI"


def _verdict(diff: Summary, a_name: str, b_name: str) -> str:
    label = _confidence_label(diff.confidence)
    if diff.ci is None:
        return "undetermined (n=1, no interval: run more seeds or score per image)"
    if diff.ci[0] > 0:
        return f"{a_name} better ({label} of the difference excludes 0)"
    if diff.ci[1] < 0:
        return f"{b_name} better ({label} of the difference excludes 0)"
    return NOISE_VERDICT.format(label=label)


def compare(a_values: ArrayLike, b_values: ArrayLike, a_name: str = "BYOL", b_name: str = "baseline",
            correct_a: ArrayLike | None = None, correct_b: ArrayLike | None = None,
            confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Difference:
    """Compare A against B run on the same seeds.

    Two or more paired seeds: paired t-interval and paired t-test. A single seed each: with per-image correctness
    on the same test images, a paired bootstrap interval and the exact McNemar test; without it, no interval.
    """
    _check_confidence(confidence)
    diff = paired_difference(a_values, b_values, confidence)
    p_value, test = None, "none"
    if diff.n >= 2:
        a, b = _as_values(a_values), _as_values(b_values)
        # Identical differences on every seed leave t undefined (0/0); report the limit instead of NaN.
        p_value = float(sps.ttest_rel(a, b).pvalue) if diff.std > 0 else (1.0 if diff.mean == 0 else 0.0)
        test = "paired t"
    elif correct_a is not None and correct_b is not None:
        hits_a, hits_b = _as_correct(correct_a, "correct_a"), _as_correct(correct_b, "correct_b")
        p_value, test = mcnemar(hits_a, hits_b).p_value, "exact McNemar"
        diff = _paired_bootstrap(hits_a, hits_b, n_boot, seed, confidence)
    return Difference(a_name, b_name, diff, p_value, test, _verdict(diff, a_name, b_name))


def _units(percent: bool, digits: int | None) -> tuple[float, int]:
    return (100.0, 1 if digits is None else digits) if percent else (1.0, 3 if digits is None else digits)


def _spread_label(summary: Summary) -> str:
    count = f"n={summary.n}" if summary.method in SEED_METHODS else f"{summary.method}, n={summary.n} images"
    return f"({_confidence_label(summary.confidence)}, {count})"


def format_ci(summary: Summary, percent: bool = True, digits: int | None = None) -> str:
    """``91.2% ± 1.4 (95% CI, n=3)``: the half-width is in points; one value reads ``91.2% (n=1, no interval)``."""
    scale, digits = _units(percent, digits)
    value = f"{summary.mean * scale:.{digits}f}{'%' if percent else ''}"
    if summary.half_width is None:
        return f"{value} (n={summary.n}, no interval)"
    return f"{value} ± {summary.half_width * scale:.{digits}f} {_spread_label(summary)}"


def format_difference(result: Difference, percent: bool = True, digits: int | None = None) -> str:
    """``BYOL - baseline: +1.2 ± 0.8 points (95% CI, n=3), p=0.031 (paired t): BYOL better (...)``."""
    diff, (scale, digits) = result.difference, _units(percent, digits)
    unit = " points" if percent else ""
    head = f"{result.a_name} - {result.b_name}: {diff.mean * scale:+.{digits}f}"
    if diff.half_width is None:
        return f"{head}{unit} (n={diff.n}, no interval): {result.verdict}"
    p_text = "" if result.p_value is None else f", p={result.p_value:.3g} ({result.test})"
    return f"{head} ± {diff.half_width * scale:.{digits}f}{unit} {_spread_label(diff)}{p_text}: {result.verdict}"
