"""ibcheck.stats' small functions against scipy's own implementations or their definitions: the
coverage tests' binomial p-value and interval, what counts as a nominal level, and which test
levels float64 can hold (the numeric core the mutation run scores, reports/mutation)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import binomtest, norm
from scipy.stats import t as t_dist

from ibcheck import stats


@pytest.mark.parametrize("contained, calls, confidence", [(0, 10, 0.95), (10, 10, 0.95), (3, 10, 0.95),
                                                          (50, 100, 0.9), (1, 2, 0.99)])
def test_clopper_pearson_matches_scipys_exact_interval(contained, calls, confidence):
    expected = binomtest(contained, calls).proportion_ci(confidence_level=confidence, method="exact")
    assert stats.clopper_pearson(contained, calls, confidence) == pytest.approx((expected.low, expected.high),
                                                                               rel=1e-9, abs=1e-12)
    if confidence == 0.95:  # the default
        assert stats.clopper_pearson(contained, calls) == stats.clopper_pearson(contained, calls, 0.95)


@pytest.mark.parametrize("tests, level", [(10, 0.005), (1, 0.05), (0, 0.05)])
def test_bonferroni_splits_the_budget_over_at_least_one_test(tests, level):
    assert stats.bonferroni(0.05, tests) == pytest.approx(level, rel=1e-15)


@pytest.mark.parametrize("contained, calls, level", [(3, 10, 0.9), (90, 100, 0.9), (100, 100, 0.95), (0, 5, 0.5)])
def test_undercoverage_p_is_the_lower_tail_binomial_p_value(contained, calls, level):
    expected = binomtest(contained, calls, level, alternative="less").pvalue
    assert stats.undercoverage_p(contained, calls, level) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("value, ok", [
    (0.5, True), (np.float32(0.25), True), (1e-300, True), (0.999, True),
    (0, False), (1, False), (0.0, False), (1.0, False), (-0.1, False), (1.5, False), (math.nan, False),
    (True, False), (np.bool_(True), False), ("0.5", False), (None, False), (np.int64(0), False),
])
def test_a_nominal_level_is_a_real_number_strictly_between_0_and_1(value, ok):
    assert stats.is_level(value) is ok


@pytest.mark.parametrize("tail, ok", [(0.5, True), (1e-300, True), (1e-310, False), (0.0, False), (1.0, False),
                                      (-0.5, False)])
def test_a_tail_is_representable_where_its_largest_quantile_is_finite(tail, ok):
    # the largest quantile is at n = 2 (one degree of freedom: a Cauchy tail, about 1 / (pi tail))
    assert stats.representable(tail) is ok


# ---------------------------------------------------------------- the one- and two-sided rules at their edges

# With se = 0 only the round-off allowance is left: sqrt(2^-52) (1 + |1|) = 2^-25 at truth 1, and 1 -+ 2^-25,
# 1 -+ 2^-24 are exact in float64, so each rule is tested at its edge itself and one float step past it.
EDGE, PAST = 2.0**-25, 2.0**-24


def test_an_upper_bound_fails_only_below_the_truth_by_more_than_the_round_off():
    assert stats.upper_valid(1.0 - EDGE, 0.0, 10, 1.0, 0.05)
    assert not stats.upper_valid(1.0 - PAST, 0.0, 10, 1.0, 0.05)


def test_a_lower_bound_fails_only_above_the_truth_by_more_than_the_round_off():
    assert stats.lower_valid(1.0 + EDGE, 0.0, 10, 1.0, 0.05)
    assert not stats.lower_valid(1.0 + PAST, 0.0, 10, 1.0, 0.05)


def test_a_match_allows_exactly_the_round_off_at_se_zero():
    for value in (1.0 + EDGE, 1.0 - EDGE):
        assert stats.matches(value, 0.0, 10, 1.0, 0.05)
    for value in (1.0 + PAST, 1.0 - PAST):
        assert not stats.matches(value, 0.0, 10, 1.0, 0.05)


# se 0.3 and the truth's own 0.4 combine to 0.5; each rule is tried a millionth of its margin inside and
# outside its edge, q from scipy's t at n - 1 = 19 degrees of freedom
SE, TRUTH_SE, N, ALPHA = 0.3, 0.4, 20, 0.01
NEAR = 1e-6


def _margin(tail: float) -> float:
    return float(t_dist.isf(tail, N - 1)) * math.hypot(SE, TRUTH_SE) + stats.roundoff(0.0, 2.0**-52)


@pytest.mark.parametrize("inside", [True, False])
def test_the_one_sided_rules_combine_both_standard_errors_at_the_t_quantile(inside):
    margin = _margin(ALPHA) * (1 - NEAR if inside else 1 + NEAR)
    assert stats.upper_valid(-margin, SE, N, 0.0, ALPHA, TRUTH_SE) is inside
    assert stats.lower_valid(margin, SE, N, 0.0, ALPHA, TRUTH_SE) is inside


@pytest.mark.parametrize("inside", [True, False])
def test_a_match_is_two_sided_at_half_the_level_with_both_standard_errors(inside):
    margin = _margin(ALPHA / 2) * (1 - NEAR if inside else 1 + NEAR)
    for value in (margin, -margin):
        assert stats.matches(value, SE, N, 0.0, ALPHA, expected_se=TRUTH_SE) is inside


def _hall(t: float, skew: float, n: int) -> float:
    """Hall's (1992) transformation, written out: t + a t^2 + a^2 t^3 / 3 + skew / (6 sqrt n)."""
    a = skew / (3 * math.sqrt(n))
    return t + a * t * t + a * a * t**3 / 3 + skew / (6 * math.sqrt(n))


@pytest.mark.parametrize("truth_se", [0.0, TRUTH_SE])
def test_skewed_terms_move_the_one_sided_rules_by_halls_transformation(truth_se):
    """Right-skewed terms (skew 1, n = 100), the truth's own error diluting the skew by (se / combined
    se)^3: half the transformation's shift at -q below -q an upper bound passes, and as far below q a
    lower bound fails, where the plain t would say the opposite."""
    n, skew = 100, 1.0
    c = math.hypot(SE, truth_se)
    q = float(t_dist.isf(ALPHA, n - 1))
    diluted = skew * (SE / c) ** 3
    up, down = -q - 0.5 * (_hall(-q, diluted, n) + q), q - 0.5 * (_hall(q, diluted, n) - q)
    for t, valid, plain in ((up, stats.upper_valid, lambda t: t >= -q), (down, stats.lower_valid, lambda t: t <= q)):
        expected = _hall(t, diluted, n) >= -q if valid is stats.upper_valid else _hall(t, diluted, n) <= q
        assert expected is not plain(t)  # the point tells the two apart
        value = t * c - (1 if valid is stats.upper_valid else -1) * stats.roundoff(0.0, 2.0**-52)
        assert valid(value, SE, n, 0.0, ALPHA, truth_se, skew=skew) is expected
        assert valid(value, SE, n, 0.0, ALPHA, truth_se) is plain(t)


def test_skew_with_no_spread_at_all_falls_back_to_the_plain_rule():
    """se = truth_se = 0 leaves no t to correct: the plain rule, not a division by zero."""
    assert stats.upper_valid(1.0 - EDGE, 0.0, 10, 1.0, 0.05, skew=2.0)
    assert not stats.upper_valid(1.0 - PAST, 0.0, 10, 1.0, 0.05, skew=2.0)
    assert stats.lower_valid(1.0 + EDGE, 0.0, 10, 1.0, 0.05, skew=2.0)
    assert not stats.lower_valid(1.0 + PAST, 0.0, 10, 1.0, 0.05, skew=2.0)


@pytest.mark.parametrize("truth_se", [0.0, TRUTH_SE])
def test_the_skewed_rules_cross_where_halls_transformation_of_t_meets_the_quantile(truth_se):
    """The edge of each skewed rule is the t at which Hall's transformation (with the skew diluted by
    (se / combined se)^3) equals -q (upper) or q (lower), found by root finding; the rules are tried a
    millionth of a unit of t on each side of it, and the t is over the combined se."""
    n, skew = 100, 1.0
    c = math.hypot(SE, truth_se)
    q = float(t_dist.isf(ALPHA, n - 1))
    diluted = skew * (SE / c) ** 3
    slack = stats.roundoff(0.0, 2.0**-52)
    up = brentq(lambda t: _hall(t, diluted, n) + q, -2 * q, 0.0, xtol=1e-14)
    down = brentq(lambda t: _hall(t, diluted, n) - q, 0.0, 2 * q, xtol=1e-14)
    for side in (1, -1):
        t_up, t_down = up + side * NEAR, down + side * NEAR
        assert stats.upper_valid(t_up * c - slack, SE, n, 0.0, ALPHA, truth_se, skew=skew) is (side > 0)
        assert stats.lower_valid(t_down * c + slack, SE, n, 0.0, ALPHA, truth_se, skew=skew) is (side < 0)


def test_strong_skew_over_few_terms_keeps_the_plain_t():
    """Skew 5 over 10 terms: |a| q = 5 / (3 sqrt 10) x 2.82 > 1/4, so both rules use the plain t, although
    Hall's transformation would turn each verdict at the points tried."""
    n, skew = 10, 5.0
    q = float(t_dist.isf(ALPHA, n - 1))
    slack = stats.roundoff(0.0, 2.0**-52)
    assert abs(skew / (3 * math.sqrt(n))) * q > 0.25
    assert _hall(-q - 0.05, skew, n) >= -q and _hall(q - 0.05, skew, n) > q
    assert not stats.upper_valid((-q - 0.05) * SE - slack, SE, n, 0.0, ALPHA, skew=skew)
    assert stats.lower_valid((q - 0.05) * SE + slack, SE, n, 0.0, ALPHA, skew=skew)


def test_the_transformation_applies_up_to_a_quarter_exactly():
    """|a| q = 1/4 exactly (skew 1.5 over 4 terms, a = 1/4, q = 1) still transforms; past it t is kept."""
    assert stats.skew_corrected(1.0, 1.5, 4, 1.0) == _hall(1.0, 1.5, 4) != 1.0
    assert stats.skew_corrected(1.0, 1.5, 4, 1.0 + 2.0**-52) == 1.0


@pytest.mark.parametrize("n", [2, 1_000_000, 1_000_001])
def test_the_quantile_is_students_t_up_to_a_million_terms_and_normal_beyond(n):
    for tail in (0.05, 1e-7):
        expected = float(norm.isf(tail)) if n > 1_000_000 else float(t_dist.isf(tail, n - 1))
        assert stats.quantile(tail, n) == expected


def test_the_round_off_allowance_and_the_combined_se():
    assert stats.roundoff(0.0, 2.0**-52) == 2.0**-26
    assert stats.roundoff(-3.0, 2.0**-52) == 4 * 2.0**-26
    assert stats.roundoff(1.0, 2.0**-23) == pytest.approx(2 * 2.0**-11.5, rel=1e-15)
    assert stats.combined_se(0.3) == 0.3
    assert stats.combined_se(0.3, 0.4) == pytest.approx(0.5, rel=1e-15)
