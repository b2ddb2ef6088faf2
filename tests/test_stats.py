"""ibcheck.stats' small functions against scipy's own implementations or their definitions: the
coverage tests' binomial p-value and interval, what counts as a nominal level, and which test
levels float64 can hold (the numeric core the mutation run scores, reports/mutation)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

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
