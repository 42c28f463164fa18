"""One procedure over every source of noise: seeds (training and labelled subset) and test images."""

import numpy as np
import pytest

from byol_core.stats import (
    accuracy_summary,
    adjust_holm,
    compare,
    difference,
    holm,
    summarize,
)
from byol_core.stats_text import format_ci, format_difference, interval_text, raw_interval_text, too_few_seeds_note

N_TEST = 10_000


def _arms(gap: float, seeds: int = 5, seed: int = 0, disagree: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """Two classifiers on the same test images over seeds: they disagree on ``disagree`` of the images, A
    right on ``gap`` more of them; each seed moves both a little (its labelled subset) and where they differ."""
    rng = np.random.default_rng(seed)
    hard = rng.random(N_TEST)  # how hard each test image is, shared by every seed
    k = round(disagree * N_TEST)
    a_rows, b_rows = [], []
    for _ in range(seeds):
        b = hard < 0.85 + rng.normal(0, 0.003)
        a = b.copy()
        discordant = rng.choice(N_TEST, k, replace=False)
        only_a = round(k * (0.5 + gap / (2 * disagree))) + int(rng.integers(-2, 3))
        a[discordant[:only_a]], b[discordant[:only_a]] = True, False
        a[discordant[only_a:]], b[discordant[only_a:]] = False, True
        a_rows.append(a)
        b_rows.append(b)
    return np.array(a_rows), np.array(b_rows)


def test_a_tenth_of_a_point_on_ten_thousand_test_images_is_inside_the_noise_while_a_real_gap_is_not():
    # cpu-quick's old claim: BYOL kNN beat raw-pixel kNN by "+0.1 ± 0.0, p = 0.007" (9-12 of 10,000 images).
    a, b = _arms(0.001)
    small = difference(a, b, "BYOL kNN", "raw-pixel kNN")
    assert 0 < small.difference.mean < 0.003
    assert not small.significant and small.p_value > 0.05 and "inside the noise" in small.verdict
    assert small.difference.test_half > 0.001  # the test images alone are wider than the gap
    a, b = _arms(0.02)
    real = difference(a, b, "BYOL kNN", "raw-pixel kNN")
    assert real.significant and real.p_value < 0.001 and real.verdict.startswith("BYOL kNN better")
    # Per-seed values alone would have called the small gap: seeds see the same test images.
    a, b = _arms(0.001)
    seeds_only = compare(a.mean(1), b.mean(1))
    assert seeds_only.difference.half_width < small.difference.half_width


def test_the_seed_only_case_with_no_spread_gives_no_verdict():
    result = compare([0.8001] * 3, [0.8] * 3)
    assert result.p_value is None and not result.significant
    assert "undetermined" in format_difference(result) and "p=0" not in format_difference(result)


@pytest.mark.parametrize("seeds", [1, 2, 3, 5])
def test_verdict_interval_and_p_value_always_agree(seeds):
    for trial in range(40):
        gap = [0.0, 0.002, 0.005, 0.01, -0.01][trial % 5]
        a, b = _arms(gap, seeds=seeds, seed=100 + trial, disagree=0.02)
        result = difference(a[:, :800], b[:, :800])
        excludes = result.difference.low > 0 or result.difference.high < 0
        assert excludes == result.significant == (result.p_value < 0.05), (trial, result)


def test_one_seed_uses_exact_mcnemar_for_both_interval_and_p():
    for only_a in range(16):
        for only_b in range(16):
            a = np.array([True] * only_a + [False] * only_b + [True] * 50)
            b = np.array([False] * only_a + [True] * only_b + [True] * 50)
            result = difference(a, b)
            assert result.test == "exact McNemar"
            assert result.significant == (result.p_value < 0.05)
    five_to_none = difference(np.array([True] * 5 + [True] * 95), np.array([False] * 5 + [True] * 95))
    assert five_to_none.p_value == pytest.approx(0.0625) and not five_to_none.significant  # they disagreed before


def test_two_part_interval_covers_the_true_difference_about_as_often_as_it_says():
    # True difference: the expected gap over seeds and test sets. Simulate 300 experiments of 5 seeds.
    rng, covered, trials = np.random.default_rng(1), 0, 300
    for _ in range(trials):
        seed_shift = rng.normal(0, 0.01, size=5)            # the seed moves A's accuracy (labelled subset)
        p_a = np.clip(0.80 + seed_shift[:, None], 0, 1)
        a = rng.random((5, 2000)) < p_a
        b = rng.random((5, 2000)) < 0.80
        result = difference(a, b)
        covered += result.difference.low <= 0.0 <= result.difference.high
    assert covered / trials > 0.9


def test_accuracy_interval_adds_seed_spread_to_the_test_images_wilson_interval():
    a, _ = _arms(0.0)
    one, five = accuracy_summary(a[:1]), accuracy_summary(a)
    assert one.method == "wilson" and five.method == "seeds and test images" and five.n == 5
    assert five.test_half == pytest.approx(one.half_width, rel=0.05)  # the test set's part does not shrink
    assert five.half_width >= five.test_half
    assert five.low < five.mean < five.high


def test_holm_adjusts_step_down_and_decides_secondary_verdicts():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    a, b = _arms(0.02)
    clear = difference(a, b, "A", "B")
    c, d = _arms(0.004, seed=3)
    marginal = difference(c, d, "C", "D")
    adjusted = adjust_holm([clear, marginal, compare([0.9], [0.8])])
    smaller = min(clear.p_value, marginal.p_value)
    assert min(adjusted[0].adjusted_p, adjusted[1].adjusted_p) == pytest.approx(min(1.0, 2 * smaller))
    assert adjusted[0].significant and "Holm-adjusted p" in adjusted[0].verdict
    assert adjusted[2].adjusted_p is None  # no p, not counted
    assert all(r.adjusted_p is None or r.adjusted_p >= r.p_value for r in adjusted)


def test_no_spread_shows_as_zero_unless_it_is_exactly_zero():
    tiny = summarize([0.80001, 0.80003, 0.80002])
    assert "± 0.0 " not in format_ci(tiny)
    same = difference(np.ones((3, 50), bool), np.ones((3, 50), bool))
    assert same.verdict.startswith("no difference")
    perfect = accuracy_summary(np.ones((1, 10), bool))
    assert interval_text(perfect) == "100.0% (72.2 to 100.0)"  # asymmetric: never "± 13.9"


def test_intervals_are_clipped_with_the_raw_ends_kept_for_help():
    wide = summarize([0.157, 0.757])  # "45.7% ± 84.4" before
    text = interval_text(wide)
    assert text.startswith("45.7% (") and "-" not in text.split("(")[1] and "100.0)" in text
    assert "raw 95% CI: -" in raw_interval_text(wide)


def test_fewer_than_three_seeds_say_so_and_how_many_would_narrow_the_interval():
    a, _ = _arms(0.0)
    two = too_few_seeds_note(accuracy_summary(a[:2]))
    assert two.startswith("2 seeds: too few to read this interval") and "seeds would narrow it" in two
    assert too_few_seeds_note(accuracy_summary(a[:1])).startswith("1 seed: the interval covers the test images only")
    assert too_few_seeds_note(accuracy_summary(a[:3])) is None
