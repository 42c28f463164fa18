"""Statistics for reported numbers: intervals checked against hand-computed values, verdicts, formats, errors."""

import json

import numpy as np
import pytest

from byol_core.stats import (
    accuracy_summary,
    binomial_half_width,
    compare,
    mcnemar,
    paired_difference,
    summarize,
    wilson_interval,
)
from byol_core.stats_text import format_ci, format_difference


def _correct(n: int, accuracy: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < accuracy


def test_t_interval_matches_hand_computed_value():
    # mean 0.89333, sample std 0.015275, half-width t(0.975, 2) * std / sqrt(3) = 4.3027 * 0.0088192 = 0.037946
    summary = summarize([0.88, 0.89, 0.91])
    assert summary.method == "t" and summary.n == 3
    assert summary.mean == pytest.approx(0.893333, abs=1e-6)
    assert summary.std == pytest.approx(0.015275, abs=1e-6)
    assert summary.half_width == pytest.approx(0.037946, abs=1e-5)
    assert summary.ci == pytest.approx((0.893333 - 0.037946, 0.893333 + 0.037946), abs=1e-5)


def test_single_value_has_no_interval_and_stays_json_clean():
    summary = summarize([0.912])
    assert summary.method == "single" and summary.std == 0.0
    assert summary.ci is None and summary.half_width is None
    assert json.loads(json.dumps(summary.to_dict(), allow_nan=False))["low"] is None


def test_one_run_with_per_image_correctness_gets_the_wilson_interval_of_its_test_images():
    correct = _correct(400, 0.9)
    summary = accuracy_summary(correct)
    wilson = wilson_interval(int(correct.sum()), 400)
    assert summary.method == "wilson" and summary.n == 1 and summary.images == 400
    assert summary.ci == pytest.approx(wilson.ci)
    # Shrinks with more images: ~sqrt(20000/400) = 7x narrower.
    assert accuracy_summary(_correct(20_000, 0.9, seed=2)).half_width < summary.half_width / 5


def test_binomial_half_width_for_a_small_test_set_is_about_three_points():
    assert binomial_half_width(359, 0.9) == pytest.approx(0.0310, abs=5e-4)
    assert binomial_half_width(359) > binomial_half_width(359, 0.9)  # widest at 50%
    assert binomial_half_width(4 * 359, 0.9) == pytest.approx(binomial_half_width(359, 0.9) / 2)


def test_wilson_interval_hand_values_and_edges():
    # 0 of 10: low 0, high z^2 / (n + z^2) = 3.8415 / 13.8415 = 0.27753
    none_right = wilson_interval(0, 10)
    assert none_right.low == pytest.approx(0.0, abs=1e-12) and none_right.high == pytest.approx(0.27753, abs=1e-4)
    typical = wilson_interval(323, 359)
    assert typical.method == "wilson" and typical.low < 323 / 359 < typical.high
    assert typical.half_width == pytest.approx(0.031, abs=0.002)
    with pytest.raises(ValueError, match="n_correct"):
        wilson_interval(11, 10)


def test_mcnemar_exact_p_value_on_a_known_table():
    # 10 images only A gets right, 2 only B, 88 both: p = 2 * P(X <= 2 | X ~ Bin(12, 0.5)) = 2 * 79 / 4096
    a = np.array([True] * 10 + [False] * 2 + [True] * 88)
    b = np.array([False] * 10 + [True] * 2 + [True] * 88)
    result = mcnemar(a, b)
    assert (result.b, result.c) == (10, 2)
    assert result.p_value == pytest.approx(2 * 79 / 4096) and round(result.p_value, 4) == 0.0386
    assert mcnemar(b, a).p_value == result.p_value
    assert mcnemar(a, a).p_value == 1.0


def test_paired_difference_removes_what_seeds_share():
    # Each seed shifts both arms alike; pairing sees the steady +2 points that unpaired spreads would hide.
    byol, baseline = [0.80, 0.90, 0.85], [0.78, 0.885, 0.825]
    diff = paired_difference(byol, baseline)
    assert diff.method == "paired t" and diff.mean == pytest.approx(0.02)
    assert diff.low > 0
    assert summarize(byol).half_width > 5 * diff.half_width


def test_verdict_flips_when_the_interval_crosses_zero():
    clear = compare([0.90, 0.91, 0.92], [0.85, 0.85, 0.88])  # differences 5, 6, 4 points
    assert clear.verdict.startswith("BYOL better") and clear.significant and clear.test == "paired t"
    assert clear.p_value < 0.05
    noisy = compare([0.90, 0.91, 0.92], [0.88, 0.88, 0.91])  # differences 2, 3, 1 points: CI ~ [-0.5, 4.5]
    assert noisy.verdict == "inside the noise (95% CI of the difference includes 0)" and not noisy.significant
    assert noisy.difference.low < 0 < noisy.difference.high
    worse = compare([0.85, 0.85, 0.88], [0.90, 0.91, 0.92], a_name="BYOL", b_name="supervised")
    assert worse.verdict.startswith("supervised better")


def test_single_seed_comparison_needs_per_image_correctness():
    alone = compare([0.91], [0.89])
    assert alone.verdict.startswith("undetermined") and alone.p_value is None and not alone.significant
    a = np.array([True] * 60 + [False] * 5 + [True] * 300 + [False] * 35)
    b = np.array([False] * 60 + [True] * 5 + [True] * 300 + [False] * 35)
    scored = compare([a.mean()], [b.mean()], correct_a=a, correct_b=b)
    assert scored.test == "exact McNemar" and scored.p_value < 1e-6
    assert scored.difference.method == "exact McNemar" and scored.difference.low > 0
    assert scored.verdict.startswith("BYOL better")
    json.dumps(scored.to_dict(), allow_nan=False)


def test_format_strings():
    assert format_ci(summarize([0.88, 0.89, 0.91])) == "89.3% ± 3.8 (95% CI, n=3, seeds only)"
    assert format_ci(summarize([0.912])) == "91.2% (n=1, no interval)"
    assert format_ci(summarize([0.88, 0.89, 0.91]), percent=False) == "0.893 ± 0.038 (95% CI, n=3, seeds only)"
    assert format_ci(wilson_interval(323, 359)).endswith("(95% CI, wilson, n=359 images)")
    line = format_difference(compare([0.90, 0.91, 0.92], [0.85, 0.85, 0.88]))
    assert line.startswith("BYOL - baseline: +5.0 ± 2.5 points (95% CI, n=3, seeds only), p=0.")
    assert line.endswith("BYOL better (95% CI of the difference excludes 0)")
    assert format_difference(compare([0.91], [0.89])).startswith("BYOL - baseline: +2.0 points (n=1, no interval)")


@pytest.mark.parametrize("call, message", [
    (lambda: summarize([]), "values is empty"),
    (lambda: summarize([0.9, float("nan")]), "NaN"),
    (lambda: summarize([0.9, 0.8], confidence=95), "confidence"),
    (lambda: paired_difference([0.9, 0.8], [0.9]), r"must be paired \(same seeds, same test images\): got shapes"),
    (lambda: compare([0.9, 0.8, 0.7], [0.9, 0.8]), "must be paired"),
    (lambda: mcnemar([True, False], [True]), "must be paired"),
    (lambda: accuracy_summary([0.2, 1.0]), "bool or 0/1"),
    (lambda: accuracy_summary([]), "per-image correctness, one row per seed"),
    (lambda: binomial_half_width(0), "n_test must be positive"),
])
def test_bad_input_raises_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_p_values_and_exact_bounds_agree_with_scipy_stats():
    """byol_core.stats uses scipy.special alone (scipy.stats costs the dashboard's first page ~1 s to import);
    each p-value and exact bound must still be scipy.stats' own."""
    from scipy import stats as sps

    a, b = _correct(400, 0.8, seed=1), _correct(400, 0.75, seed=2)
    test = mcnemar(a, b)
    assert test.p_value == pytest.approx(sps.binomtest(test.b, test.b + test.c, 0.5).pvalue, rel=1e-12)
    one_seed = compare([a.mean()], [b.mean()], correct_a=a[None], correct_b=b[None])
    discordant, n = test.b + test.c, a.size
    low_pi, high_pi = sps.beta.ppf(0.025, test.b, test.c + 1), sps.beta.ppf(0.975, test.b + 1, test.c)
    assert one_seed.difference.low == pytest.approx(discordant / n * (2 * low_pi - 1), rel=1e-12)
    assert one_seed.difference.high == pytest.approx(discordant / n * (2 * high_pi - 1), rel=1e-12)

    values_a, values_b = [0.81, 0.84, 0.80, 0.83], [0.80, 0.81, 0.80, 0.80]
    paired = compare(values_a, values_b)
    assert paired.p_value == pytest.approx(sps.ttest_rel(values_a, values_b).pvalue, rel=1e-12)

    # Several seeds with per-image scores: the p is the level at which the interval just reaches zero.
    rows_a = np.stack([_correct(2000, 0.80 + 0.01 * s, seed=s) for s in range(3)])
    rows_b = np.stack([_correct(2000, 0.78, seed=10 + s) for s in range(3)])
    several = compare(rows_a.mean(axis=1), rows_b.mean(axis=1), correct_a=rows_a, correct_b=rows_b)
    assert 1e-6 < several.p_value < 1.0
    at_p = compare(rows_a.mean(axis=1), rows_b.mean(axis=1), correct_a=rows_a, correct_b=rows_b,
                   confidence=1.0 - several.p_value)
    assert at_p.difference.low == pytest.approx(0.0, abs=1e-9)
