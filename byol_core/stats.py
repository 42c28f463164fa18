"""Spread and significance for reported numbers: one procedure over every source of noise.

A number without its spread is an anecdote. A test accuracy moves with the training seed, with which
images were labelled (the labelled subset is drawn per seed) and with which images happen to be in the
test set. With each run's per-image correctness on the same test images, :func:`accuracy_summary` and
:func:`difference` put all three in one interval:

- one seed: the test images alone (Wilson interval of an accuracy; exact McNemar for a difference, whose
  interval and p-value come from the same binomial test);
- two or more seeds: the seed part (per-seed values, Student t with n - 1 degrees of freedom) and the
  test-image part (per-image values averaged over seeds, normal) added in quadrature. The p-value is the
  level at which that interval just touches zero, so "better", the interval and p always agree.

"Better" is claimed only when the interval of the difference excludes zero; secondary comparisons are
judged on Holm-adjusted p-values (:func:`adjust_holm`). Without per-image scores (:func:`summarize`,
:func:`compare`) only the seeds are covered, and the text says so. Pure functions on numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import special  # scipy.stats and scipy.optimize would add ~1 s to the dashboard's first page

ArrayLike = Sequence[float] | np.ndarray
NOISE_VERDICT = "inside the noise ({label} of the difference includes 0)"
SEEDS_AND_IMAGES = "seeds and test images"
SEED_METHODS = {"t", "paired t", SEEDS_AND_IMAGES}  # n counts seeds; for "wilson" it counts test images
ENOUGH_SEEDS = 3  # below this an interval over seeds is too wide to read
MAX_SEEDS_SUGGESTED = 100


@dataclass(frozen=True)
class Summary:
    """A value with its spread.

    ``method`` says where the interval comes from: ``"t"`` (Student t over seeds), ``"paired t"`` (over paired
    seed differences), ``"wilson"`` (one run, binomial over its test images), ``"exact McNemar"`` (one seed per
    arm, over discordant test images), ``"seeds and test images"`` (two or more seeds with per-image scores)
    or ``"single"`` (one value, no interval: ``low``/``high``/``half_width`` are None). ``n`` counts seeds,
    except for a bare :func:`wilson_interval` (test images); ``images`` is the test-set size where per-image
    scores were used. ``std`` is the sample std (ddof=1) over seeds, or the standard error of one run's value.
    ``low``/``high`` are raw: the formatting functions clip them to what the value can be.
    ``seed_std``/``test_half``: the two parts of a seeds-and-images interval (what more seeds can narrow,
    and what they cannot).
    """

    n: int
    mean: float
    std: float
    low: float | None
    high: float | None
    half_width: float | None
    method: str
    confidence: float = 0.95
    images: int | None = None
    seed_std: float | None = None
    test_half: float | None = None

    @property
    def ci(self) -> tuple[float, float] | None:
        """The interval as ``(low, high)``, or None when there is none."""
        return None if self.low is None or self.high is None else (self.low, self.high)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (None, never NaN, where there is no interval)."""
        return asdict(self)


# --------------------------------------------------------------------------- input checks
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
    """Per-image correctness as a (seeds, images) bool matrix; one run's 1-D row becomes one seed."""
    array = np.asarray(correct, dtype=float)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name} must be per-image correctness, one row per seed; got shape {array.shape}")
    if not np.all((array == 0) | (array == 1)):
        raise ValueError(f"{name} must hold per-image correctness (bool or 0/1)")
    return array.astype(bool)


def _check_same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what} must be paired (same seeds, same test images): got shapes {a.shape} and {b.shape}")


def _quantiles(confidence: float, seeds: int) -> tuple[float, float]:
    """Student t (seed part, ``seeds - 1`` degrees of freedom) and normal (test-image part) quantiles."""
    q = (1.0 + confidence) / 2.0
    return float(special.stdtrit(seeds - 1, q)) if seeds > 1 else math.inf, float(special.ndtri(q))


# --------------------------------------------------------------------------- one accuracy
def wilson_interval(n_correct: float, n_test: int, confidence: float = 0.95) -> Summary:
    """Wilson score interval of an accuracy of ``n_correct`` out of ``n_test`` images (sound near 0 and 1)."""
    _check_confidence(confidence)
    if n_test <= 0:
        raise ValueError(f"n_test must be positive, got {n_test}")
    if not 0 <= n_correct <= n_test:
        raise ValueError(f"n_correct must be within 0..n_test ({n_test}), got {n_correct}")
    z = float(special.ndtri((1.0 + confidence) / 2.0))
    p = n_correct / n_test
    centre = (p + z * z / (2 * n_test)) / (1 + z * z / n_test)
    half = z * np.sqrt(p * (1 - p) / n_test + z * z / (4 * n_test**2)) / (1 + z * z / n_test)
    std = float(np.sqrt(p * (1 - p) / n_test))
    return Summary(n_test, p, std, float(centre - half), float(centre + half), float(half), "wilson", confidence,
                   images=n_test)


def binomial_half_width(n_test: int, accuracy: float = 0.5, confidence: float = 0.95) -> float:
    """Half-width of the interval that a test set of ``n_test`` images implies at ``accuracy`` (normal approx).

    Differences smaller than this between two single runs cannot be told apart from test-set noise.
    """
    _check_confidence(confidence)
    if n_test <= 0:
        raise ValueError(f"n_test must be positive, got {n_test}")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be within [0, 1], got {accuracy}")
    return float(special.ndtri((1.0 + confidence) / 2.0) * np.sqrt(accuracy * (1 - accuracy) / n_test))


def accuracy_summary(correct: ArrayLike, confidence: float = 0.95) -> Summary:
    """Mean accuracy of one method over seeds, with an interval covering the seeds and the test images.

    ``correct``: per-image correctness, one row per seed, every row on the same test images. One seed gives
    the Wilson interval of its test images. More add the seed part (t over the per-seed accuracies) to each
    side of the Wilson interval at the mean, in quadrature: the test set is shared by every seed, so its
    noise never averages out, however many seeds run.
    """
    _check_confidence(confidence)
    hits = _as_correct(correct)
    seeds, images = hits.shape
    per_seed = hits.mean(axis=1)
    mean = float(per_seed.mean())
    wilson = wilson_interval(mean * images, images, confidence)
    if seeds == 1:
        return replace(wilson, n=1, test_half=wilson.half_width)
    t_q, _ = _quantiles(confidence, seeds)
    seed_std = float(per_seed.std(ddof=1))
    seed_half = t_q * seed_std / math.sqrt(seeds)
    low = mean - math.hypot(mean - wilson.low, seed_half)
    high = mean + math.hypot(wilson.high - mean, seed_half)
    return Summary(seeds, mean, seed_std, low, high, (high - low) / 2.0, SEEDS_AND_IMAGES, confidence,
                   images=images, seed_std=seed_std, test_half=wilson.half_width)


def _t_summary(values: np.ndarray, confidence: float, method: str) -> Summary:
    n, mean = values.size, float(values.mean())
    if n == 1:
        return Summary(1, mean, 0.0, None, None, None, "single", confidence)
    std = float(values.std(ddof=1))
    half = float(special.stdtrit(n - 1, (1.0 + confidence) / 2.0) * std / np.sqrt(n))
    return Summary(n, mean, std, mean - half, mean + half, half, method, confidence, seed_std=std)


def summarize(values: ArrayLike, confidence: float = 0.95) -> Summary:
    """Mean of per-seed values with a t-interval over the seeds alone (n >= 2; one value: no interval).

    For accuracies prefer :func:`accuracy_summary`: this leaves out test-set noise.
    """
    _check_confidence(confidence)
    return _t_summary(_as_values(values), confidence, "t")


# --------------------------------------------------------------------------- differences
@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test: ``b`` images only A got right, ``c`` only B; p is two-sided (central)."""

    b: int
    c: int
    p_value: float


def _binomial_p(successes: int, trials: int) -> float:
    """Two-sided exact p of ``successes`` in ``trials`` at 1/2: twice the smaller tail (the Clopper-Pearson rule)."""
    if trials == 0:
        return 1.0
    # The binomial's lower tail P(X <= k) and upper tail P(X >= k).
    tail = min(special.bdtr(successes, trials, 0.5), special.bdtrc(successes - 1, trials, 0.5))
    return float(min(1.0, 2.0 * tail))


def mcnemar(correct_a: ArrayLike, correct_b: ArrayLike) -> McNemar:
    """Exact (binomial) McNemar test for two classifiers scored on the same test images."""
    a, b = _as_correct(correct_a, "correct_a"), _as_correct(correct_b, "correct_b")
    _check_same_shape(a, b, "correct_a and correct_b")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    return McNemar(only_a, only_b, _binomial_p(only_a, only_a + only_b))


def _mcnemar_summary(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[Summary, float]:
    """One seed a side: the difference's interval from the Clopper-Pearson interval of the discordant share.

    Given d discordant images, of which A alone got ``only_a`` right, a - b = d / n * (2 pi - 1); the interval
    of pi excludes 1/2 exactly when the exact test's p is below 1 - confidence.
    """
    test = mcnemar(a, b)
    n, discordant = a.size, test.b + test.c
    mean = (test.b - test.c) / n
    std = math.sqrt(discordant) / n  # the normal-approximation standard error of (b - c) / n
    if discordant == 0:
        return Summary(1, 0.0, 0.0, 0.0, 0.0, 0.0, "exact McNemar", confidence, images=n, test_half=0.0), 1.0
    alpha = 1.0 - confidence
    # Beta quantiles (the inverse regularised incomplete beta function).
    low_pi = float(special.betaincinv(test.b, test.c + 1, alpha / 2)) if test.b > 0 else 0.0
    high_pi = float(special.betaincinv(test.b + 1, test.c, 1 - alpha / 2)) if test.c > 0 else 1.0
    low, high = discordant / n * (2 * low_pi - 1), discordant / n * (2 * high_pi - 1)
    return Summary(1, mean, std, low, high, (high - low) / 2, "exact McNemar", confidence, images=n,
                   test_half=(high - low) / 2), test.p_value


def _two_part_half(alpha: float, seeds: int, seed_se: float, image_se: float) -> float:
    q = 1.0 - alpha / 2.0
    return math.hypot(float(special.stdtrit(seeds - 1, q)) * seed_se, float(special.ndtri(q)) * image_se)


def _two_part_p(mean: float, seeds: int, seed_se: float, image_se: float) -> float:
    """The level at which the two-part interval just reaches zero (its half-width falls as alpha grows)."""
    if mean == 0.0:
        return 1.0
    gap = abs(mean)

    def excess(log_alpha: float) -> float:
        return _two_part_half(math.exp(log_alpha), seeds, seed_se, image_se) - gap

    if excess(math.log(1e-300)) <= 0:
        return 1e-300  # beyond what a float p can say
    if excess(-1e-12) >= 0:
        return 1.0
    low, high = math.log(1e-300), -1e-12  # excess falls as log alpha grows: bisect to 1e-10 (~43 halvings)
    while high - low > 1e-10:
        middle = (low + high) / 2.0
        low, high = (middle, high) if excess(middle) > 0 else (low, middle)
    return math.exp((low + high) / 2.0)


def _seeds_and_images_summary(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[Summary, float]:
    diff = a.astype(np.int8) - b.astype(np.int8)  # (seeds, images), each -1, 0 or 1
    seeds, images = diff.shape
    per_seed, per_image = diff.mean(axis=1), diff.mean(axis=0)
    mean = float(per_seed.mean())
    seed_std = float(per_seed.std(ddof=1))
    seed_se, image_se = seed_std / math.sqrt(seeds), float(per_image.std(ddof=1)) / math.sqrt(images)
    half = _two_part_half(1.0 - confidence, seeds, seed_se, image_se)
    test_half = float(special.ndtri((1.0 + confidence) / 2.0)) * image_se
    p_value = _two_part_p(mean, seeds, seed_se, image_se) if half > 0 else (1.0 if mean == 0 else 0.0)
    summary = Summary(seeds, mean, seed_std, mean - half, mean + half, half, SEEDS_AND_IMAGES, confidence,
                      images=images, seed_std=seed_std, test_half=test_half)
    return summary, p_value


@dataclass(frozen=True)
class Difference:
    """``a - b`` with its interval, the p-value of the same procedure, and the verdict in words.

    ``adjusted_p``: Holm-adjusted p of a secondary comparison (:func:`adjust_holm`); when set, it decides.
    """

    a_name: str
    b_name: str
    difference: Summary
    p_value: float | None
    test: str
    verdict: str
    adjusted_p: float | None = None
    correction: str = ""

    @property
    def significant(self) -> bool:
        """True only when the difference is told from zero: interval excludes it (Holm-adjusted p, if any)."""
        if self.adjusted_p is not None:
            return self.adjusted_p < 1.0 - self.difference.confidence
        ci = self.difference.ci
        return ci is not None and (ci[0] > 0 or ci[1] < 0)

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant}


def confidence_label(confidence: float) -> str:
    return f"{confidence * 100:g}% CI"


def _verdict(diff: Summary, a_name: str, b_name: str, p_value: float | None, adjusted: float | None = None,
             correction: str = "") -> str:
    label = confidence_label(diff.confidence)
    if diff.ci is None or p_value is None:
        if diff.std == 0 and diff.n > 1:
            return ("undetermined: every seed gave the same difference and no per-image scores were given, "
                    "so the test-set noise is unknown")
        return "undetermined (n=1, no interval: run more seeds or score per image)"
    if diff.half_width == 0 and diff.mean == 0:
        return "no difference: both got exactly the same test images right"
    alpha = 1.0 - diff.confidence
    winner = a_name if diff.mean > 0 else b_name
    if adjusted is not None:
        if adjusted < alpha:
            return f"{winner} better ({correction}-adjusted p = {adjusted:.3g} < {alpha:g})"
        return f"inside the noise ({correction}-adjusted p = {adjusted:.3g})"
    if diff.ci[0] > 0 or diff.ci[1] < 0:
        return f"{winner} better ({label} of the difference excludes 0)"
    return NOISE_VERDICT.format(label=label)


def difference(correct_a: ArrayLike, correct_b: ArrayLike, a_name: str = "BYOL", b_name: str = "baseline",
               confidence: float = 0.95) -> Difference:
    """A minus B from per-image correctness, one row per seed (row i of both from the same seed, so the
    same labelled subset), every row on the same test images.

    One seed: exact McNemar gives the interval and p. Two or more: seeds and test images in one interval
    (module docstring), p where that interval reaches zero.
    """
    _check_confidence(confidence)
    a, b = _as_correct(correct_a, "correct_a"), _as_correct(correct_b, "correct_b")
    _check_same_shape(a, b, "correct_a and correct_b")
    if a.shape[0] == 1:
        summary, p_value = _mcnemar_summary(a[0], b[0], confidence)
        test = "exact McNemar"
    else:
        summary, p_value = _seeds_and_images_summary(a, b, confidence)
        test = SEEDS_AND_IMAGES
    return Difference(a_name, b_name, summary, p_value, test, _verdict(summary, a_name, b_name, p_value))


def paired_difference(a_values: ArrayLike, b_values: ArrayLike, confidence: float = 0.95) -> Summary:
    """Mean of ``a - b`` over paired seeds (same seed for both arms) with its t-interval (seeds only)."""
    _check_confidence(confidence)
    a, b = _as_values(a_values, "a_values"), _as_values(b_values, "b_values")
    _check_same_shape(a, b, "a_values and b_values")
    return _t_summary(a - b, confidence, "paired t")


def compare(a_values: ArrayLike, b_values: ArrayLike, a_name: str = "BYOL", b_name: str = "baseline",
            correct_a: ArrayLike | None = None, correct_b: ArrayLike | None = None,
            confidence: float = 0.95) -> Difference:
    """Compare A against B run on the same seeds.

    With per-image correctness (one row per seed) this is :func:`difference`. With per-seed values alone the
    interval is the paired t over seeds, which leaves out the test images; when every seed gave the same
    difference that interval is zero wide and says nothing, so there is no verdict.
    """
    if correct_a is not None and correct_b is not None:
        return difference(correct_a, correct_b, a_name, b_name, confidence)  # the values follow from these
    diff = paired_difference(a_values, b_values, confidence)
    p_value = None
    if diff.n >= 2 and diff.std > 0:
        t = diff.mean / (diff.std / math.sqrt(diff.n))  # the paired t statistic, n - 1 degrees of freedom
        p_value = float(2.0 * special.stdtr(diff.n - 1, -abs(t)))
    else:
        diff = replace(diff, low=None, high=None, half_width=None)
    return Difference(a_name, b_name, diff, p_value, "paired t" if p_value is not None else "none",
                      _verdict(diff, a_name, b_name, p_value))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: p-values that keep the family-wise error rate across the comparisons."""
    order = np.argsort(p_values, kind="stable")
    m, running, adjusted = len(p_values), 0.0, [0.0] * len(p_values)
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[index])))
        adjusted[index] = running
    return adjusted


def adjust_holm(results: Sequence[Difference]) -> list[Difference]:
    """Secondary comparisons with Holm-adjusted p-values deciding their verdicts (those without p unchanged)."""
    tested = [i for i, r in enumerate(results) if r.p_value is not None]
    adjusted = holm([results[i].p_value for i in tested])
    out = list(results)
    correction = "Holm"
    for i, p in zip(tested, adjusted, strict=True):
        r = results[i]
        out[i] = replace(r, adjusted_p=p, correction=f"{correction} over {len(tested)}",
                         verdict=_verdict(r.difference, r.a_name, r.b_name, r.p_value, p, correction))
    return out


# --------------------------------------------------------------------------- how many seeds
def seeds_needed(seed_std: float, target_half: float, test_half: float = 0.0, confidence: float = 0.95) -> int | None:
    """The fewest seeds (>= 3) whose interval, with this seed spread and test-set part, is at most ``target_half``.

    None when no number of seeds up to 100 gets there (e.g. the test set's own noise is wider than the target).
    """
    if test_half >= target_half:
        return None
    q = (1.0 + confidence) / 2.0
    for n in range(ENOUGH_SEEDS, MAX_SEEDS_SUGGESTED + 1):
        if math.hypot(float(special.stdtrit(n - 1, q)) * seed_std / math.sqrt(n), test_half) <= target_half:
            return n
    return None
