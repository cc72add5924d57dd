"""bench.analysis.statistics: small-n intervals whose stated coverage is their real coverage."""

import math
import warnings
from fractions import Fraction
from math import comb

import numpy as np
import pytest
from scipy import stats

from bench.analysis.statistics import (
    VERDICTS,
    Interval,
    Ratio,
    contrast_interval,
    decide,
    median_interval,
    ratio_interval,
)

T_975_DF2 = 0.95 * math.sqrt(2 / (4 * 0.975 * 0.025))   # closed form of Student's t quantile at df = 2


def _exact_coverage(n: int, k: int) -> float:
    """1 - 2 * P(Binom(n, 1/2) <= k - 1), in exact arithmetic."""
    return float(1 - 2 * Fraction(sum(comb(n, i) for i in range(k)), 2 ** n))


def _mc_error(p: float, draws: int) -> float:
    return math.sqrt(p * (1 - p) / draws)


# median_interval


@pytest.mark.parametrize(("n", "coverage"), [(2, 0.5), (3, 0.75), (4, 0.875), (5, 0.9375), (6, 0.96875)])
def test_median_interval_is_min_max_up_to_six_values(n, coverage):
    values = np.array([7.0, 3.0, 11.0, 5.0, 2.0, 13.0][:n])
    assert median_interval(values) == Interval(values.min(), values.max(), coverage)


def test_median_interval_picks_the_narrowest_pair_that_still_covers():
    values = np.array([9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0])   # x_(i) = i
    assert median_interval(values) == Interval(2.0, 8.0, 492 / 512)    # k = 3 would cover only 82%
    assert median_interval(values, 0.80) == Interval(3.0, 7.0, 420 / 512)
    twenty = np.arange(20.0, 0.0, -1.0)
    assert median_interval(twenty) == Interval(6.0, 15.0, _exact_coverage(20, 6))
    assert _exact_coverage(20, 6) == pytest.approx(0.958610535)


def test_median_interval_keeps_a_coverage_equal_to_the_confidence():
    assert median_interval(np.array([1.0, 2.0, 3.0]), 0.75) == Interval(1.0, 3.0, 0.75)


@pytest.mark.parametrize("values", [[], [4.0], [1.0, np.nan, 3.0]])
def test_median_interval_without_enough_values_is_nan(values):
    interval = median_interval(np.array(values))
    assert all(math.isnan(x) for x in (interval.low, interval.high, interval.coverage))


def test_median_interval_rejects_a_confidence_outside_0_1():
    with pytest.raises(ValueError):
        median_interval(np.arange(5.0), 95)


@pytest.mark.parametrize("n", [3, 6, 10, 20])
def test_median_interval_covers_as_often_as_it_says(n):
    draws = 4000
    samples = np.random.default_rng(20 + n).lognormal(0.0, 1.0, size=(draws, n))   # skewed; median exactly 1
    intervals = [median_interval(row) for row in samples]
    stated = intervals[0].coverage
    assert stated == _exact_coverage(n, {3: 1, 6: 1, 10: 2, 20: 6}[n])
    hits = np.mean([i.low <= 1.0 <= i.high for i in intervals])
    assert abs(hits - stated) <= 4 * _mc_error(stated, draws)
    if stated >= 0.95:
        assert hits >= 0.95


# ratio_interval


def test_ratio_interval_of_a_known_case():
    # Geometric means 4 and 2; each side's log spread is ln 2, so se = sqrt(2) ln 2 and df = 2.
    r = ratio_interval(np.array([2.0, 8.0]), np.array([1.0, 4.0]))
    assert r.ratio == pytest.approx(2.0, rel=1e-12)
    assert r.low == pytest.approx(2.0 * 2.0 ** (-T_975_DF2 * math.sqrt(2)), rel=1e-9)
    assert r.high == pytest.approx(2.0 * 2.0 ** (T_975_DF2 * math.sqrt(2)), rel=1e-9)
    assert r.low == pytest.approx(0.02948, rel=1e-3)
    assert r.p == pytest.approx(1 - 1 / math.sqrt(5), rel=1e-9)   # t = 1/sqrt(2) at df = 2


def test_ratio_interval_agrees_with_scipy_welch_on_logs():
    new, base = np.array([3.1, 2.7, 3.6, 2.9]), np.array([2.0, 2.4, 1.7])
    reference = stats.ttest_ind(np.log(new), np.log(base), equal_var=False)
    ci = reference.confidence_interval(0.90)
    r = ratio_interval(new, base, 0.90)
    assert r.ratio == pytest.approx(1.518657256, rel=1e-9)
    assert (r.low, r.high, r.p) == pytest.approx((math.exp(ci.low), math.exp(ci.high), reference.pvalue), rel=1e-9)


def test_ratio_interval_is_symmetric_in_its_arguments():
    new, base = np.array([5.0, 6.5, 5.5]), np.array([4.0, 4.1, 4.7, 3.9])
    forward, backward = ratio_interval(new, base), ratio_interval(base, new)
    assert backward.ratio == pytest.approx(1 / forward.ratio, rel=1e-12)
    assert (backward.low, backward.high) == pytest.approx((1 / forward.high, 1 / forward.low), rel=1e-12)
    assert backward.p == pytest.approx(forward.p, rel=1e-12)


def test_ratio_interval_with_one_constant_side():
    # Only base has spread: df = n_base - 1 = 2, se = ln 2 / sqrt(3); the log means are equal.
    r = ratio_interval(np.array([2.0, 2.0, 2.0]), np.array([1.0, 2.0, 4.0]))
    half = T_975_DF2 * math.log(2) / math.sqrt(3)
    assert (r.ratio, r.p) == pytest.approx((1.0, 1.0), rel=1e-12)
    assert (r.low, r.high) == pytest.approx((math.exp(-half), math.exp(half)), rel=1e-9)


def test_ratio_interval_of_constants_is_exact():
    assert ratio_interval(np.array([0.1] * 3), np.array([0.1] * 7)) == Ratio(1.0, 1.0, 1.0, 1.0)
    assert ratio_interval(np.array([6.0, 6.0]), np.array([3.0, 3.0, 3.0])) == Ratio(2.0, 2.0, 2.0, 0.0)


def test_ratio_interval_with_a_single_value_on_one_side_is_the_ratio_only():
    r = ratio_interval(np.array([3.0]), np.array([1.0, 2.0, 4.0]))   # base geometric mean 2
    assert r.ratio == pytest.approx(1.5, rel=1e-12)
    assert all(math.isnan(x) for x in (r.low, r.high, r.p))
    assert ratio_interval(np.array([3.0]), np.array([2.0, 2.0])).ratio == 1.5


@pytest.mark.parametrize(("new", "base"), [
    ([], [1.0, 2.0]), ([1.0, 2.0], []), ([0.0, 1.0], [1.0, 2.0]), ([1.0, 2.0], [-1.0, 2.0]),
    ([np.nan, 1.0], [1.0, 2.0]), ([np.inf, 1.0], [1.0, 2.0]),
])
def test_ratio_interval_is_undefined_without_positive_finite_values(new, base):
    r = ratio_interval(np.array(new), np.array(base))
    assert all(math.isnan(x) for x in (r.ratio, r.low, r.high, r.p))


def test_ratio_interval_of_near_identical_values_is_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = ratio_interval(np.array([1e9, 1e9 + 1, 1e9]), np.array([1e9, 1e9, 1e9 + 1]))
        one_ulp = ratio_interval(np.array([1.0, np.nextafter(1.0, 2.0)]), np.array([1.0, 1.0, 1.0]))
    assert (r.ratio, r.p) == pytest.approx((1.0, 1.0))
    assert r.low < 1.0 < r.high
    assert one_ulp.low <= 1.0 <= one_ulp.high and 0.0 <= one_ulp.p <= 1.0


def test_ratio_interval_p_agrees_with_its_interval():
    rng = np.random.default_rng(3)
    for _ in range(200):
        r = ratio_interval(rng.lognormal(0.1, 0.2, 3), rng.lognormal(0.0, 0.2, 4))
        assert (r.p < 0.05) == (r.low > 1.0 or r.high < 1.0)


# Welch's df is an approximation, so the t-interval's coverage is not exactly nominal at small n.
# Measured on 400,000 draws: equal spreads 96.5% (n = 3), 95.6% (5), 95.1% (10); spreads 4:1
# 94.3% (3), 94.7% (5), 95.0% (10). The tolerance is that 1.5-point approximation plus 3 Monte-Carlo
# standard errors; a z-interval (about 85% at n = 3) or a bootstrap would fail it.
@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize(("sd_new", "sd_base"), [(0.2, 0.2), (0.1, 0.4)])
def test_ratio_interval_covers_the_true_ratio_about_95_percent(n, sd_new, sd_base):
    draws, true_ratio = 4000, 1.3
    rng = np.random.default_rng(100 * n + int(100 * sd_new))
    new = rng.lognormal(math.log(true_ratio * 1000), sd_new, size=(draws, n))
    base = rng.lognormal(math.log(1000), sd_base, size=(draws, n))
    results = [ratio_interval(a, b) for a, b in zip(new, base)]
    hits = np.mean([r.low <= true_ratio <= r.high for r in results])
    assert abs(hits - 0.95) <= 0.015 + 3 * _mc_error(0.95, draws)


# decide


@pytest.mark.parametrize(("low", "high", "verdict"), [
    (1.05, 1.30, "faster"),        # at the boundary counts
    (1.20, 1.40, "faster"),
    (1.049, 1.30, "undecided"),
    (0.70, 0.95, "slower"),        # at the boundary counts
    (0.50, 0.80, "slower"),
    (0.70, 0.951, "undecided"),
    (0.95, 1.05, "equivalent"),    # both boundaries count
    (0.97, 1.02, "equivalent"),
    (0.949, 1.00, "undecided"),
    (1.00, 1.051, "undecided"),
    (0.50, 2.00, "undecided"),
    (1.05, 1.05, "faster"),        # zero width on a boundary: the checks run in the documented order
])
def test_decide(low, high, verdict):
    assert decide(Ratio((low + high) / 2, low, high, 0.01), 0.05) == verdict


def test_decide_with_another_threshold():
    r = Ratio(1.15, 1.12, 1.18, 0.001)
    assert (decide(r, 0.10), decide(r, 0.20)) == ("faster", "equivalent")


@pytest.mark.parametrize("ratio", [Ratio(1.5, np.nan, np.nan, np.nan), Ratio(np.nan, np.nan, np.nan, np.nan)])
def test_decide_without_an_interval_is_undecided(ratio):
    assert decide(ratio, 0.05) == "undecided"


def test_decide_on_real_intervals_and_verdict_names():
    assert VERDICTS == ("faster", "slower", "equivalent", "undecided")
    assert decide(ratio_interval(np.array([2.0, 8.0]), np.array([1.0, 4.0])), 0.05) == "undecided"
    assert decide(ratio_interval(np.array([6.0, 6.0]), np.array([3.0, 3.0])), 0.05) == "faster"
    assert decide(ratio_interval(np.array([3.0, 3.0]), np.array([3.0, 3.0])), 0.05) == "equivalent"
    with pytest.raises(ValueError):
        decide(Ratio(1.0, 0.9, 1.1, 0.5), -0.05)


def test_a_contrast_of_two_groups_is_the_ratio_interval() -> None:
    new, base = np.array([2.0, 2.2, 1.9]), np.array([1.0, 1.1, 0.95, 1.05])
    assert contrast_interval([new], [base]) == ratio_interval(new, base)


def test_a_ratio_of_ratios_cancels_what_both_folders_share() -> None:
    # Folder B's disk was twice as fast for every target: the targets' speeds against their
    # baseline did not change, so the ratio of ratios is 1 and its interval holds it.
    rng = np.random.default_rng(5)
    a_base, a_target = rng.lognormal(np.log(100), 0.05, 6), rng.lognormal(np.log(80), 0.05, 6)
    b_base, b_target = 2 * a_base[::-1], 2 * a_target
    rel = contrast_interval([b_target, a_base], [b_base, a_target])
    assert rel.ratio == pytest.approx(1.0) and rel.low < 1.0 < rel.high
    assert contrast_interval([[4.0, 4.0]], [[2.0, 2.0], [2.0, 2.0]]) == Ratio(1.0, 1.0, 1.0, 1.0)
    assert np.isnan(contrast_interval([[1.0, 2.0]], [[1.0], [0.0, 1.0]]).ratio)  # a non-positive value: undefined


def test_repeated_checks_widen_each_interval_to_keep_the_overall_level() -> None:
    from bench.analysis.statistics import (
        Settings,
        runs_for_median_interval,
        sequential_confidence,
    )

    assert sequential_confidence(0.95, 1) == 0.95 and sequential_confidence(0.95, 10) == pytest.approx(0.995)
    assert Settings(looks=10).compare_confidence == pytest.approx(0.995)
    new, base = np.array([1.10, 1.12, 1.08, 1.11]), np.array([1.0, 1.02, 0.98, 1.01])
    once, ten_times = ratio_interval(new, base, 0.95), ratio_interval(new, base, 0.995)
    assert ten_times.low < once.low < once.high < ten_times.high
    assert runs_for_median_interval(0.95) == 6 and runs_for_median_interval(0.75) == 3
