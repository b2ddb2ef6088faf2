"""The one-sided checks' skewness correction: ``stats.skew_corrected`` (Hall 1992) and the
terms' skewness that ``estimators.common.summarize`` records."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from ibcheck import stats
from ibcheck.estimators.common import summarize


def test_zero_skew_leaves_t_and_the_checks_unchanged():
    assert stats.skew_corrected(-3.7, 0.0, 50) == -3.7
    for value in (0.9, 0.97, 1.0, 1.03):
        plain = stats.upper_valid(value, 0.01, 100, 1.0, 1e-3)
        assert stats.upper_valid(value, 0.01, 100, 1.0, 1e-3, skew=0.0) == plain
        assert stats.lower_valid(value, 0.01, 100, 1.0, 1e-3, skew=0.0) == stats.lower_valid(value, 0.01, 100, 1.0, 1e-3)


@pytest.mark.parametrize("skew", [-3.0, -0.5, 0.5, 3.0])
def test_the_correction_is_increasing_with_johnsons_offset_at_zero(skew):
    t = np.linspace(-60, 60, 4001)
    corrected = np.array([stats.skew_corrected(x, skew, 30) for x in t])
    assert np.all(np.diff(corrected) >= 0)
    # Johnson's first-order terms: E[t] = -g/(2 sqrt n) is moved by g/(6 sqrt n) + g E[t^2]/(3 sqrt n) to 0
    n = 10_000
    assert stats.skew_corrected(0.0, skew, n) == pytest.approx(skew / (6 * math.sqrt(n)))


def test_the_correction_stays_out_where_skew_is_strong_beside_the_terms():
    """g = 3 over 100 terms at q = 5: |a| q = 0.5 > 1/4, so t stands; over 10,000 terms it is corrected."""
    assert stats.skew_corrected(-5.0, 3.0, 100, q=5.0) == -5.0
    assert stats.skew_corrected(-5.0, 3.0, 10_000, q=5.0) > -5.0
    assert stats.upper_valid(0.0, 1.0, 100, 5.5, 1e-6, skew=3.0) == stats.upper_valid(0.0, 1.0, 100, 5.5, 1e-6)


def test_summarize_records_the_terms_skewness():
    terms = -torch.log(torch.rand(5000, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    est = summarize("e", "I_XZ", "upper", terms, 0, {}, 0.0)
    assert est.skew == pytest.approx(float(sps.skew(terms.numpy(), bias=True)), rel=1e-10)
    flat = summarize("e", "I_XZ", "upper", torch.full((100,), 0.3, dtype=torch.float64), 0, {}, 0.0)
    assert flat.skew == 0.0


def _rates(check, values, se, skews, n, truth, level, corrected):
    return np.mean([not check(v, s, n, truth, level, skew=g if corrected else 0.0)
                    for v, s, g in zip(values, se, skews)])


def test_a_tight_bound_on_skewed_terms_fails_at_its_level_only_when_corrected():
    """Exponential terms (skewness 2), n = 200, truth = their mean: each one-sided check at level
    0.01 over 40,000 seeded replicates. Uncorrected, the upper-bound check fails about twice as
    often as 0.01 (the lower tail of t is heavy) and the lower-bound check about half as often;
    corrected, each is within 4.5 binomial se of 0.01 (false failure 7e-6 each, were the draws
    redrawn; Hall's residual error is O(1/n), here about 0.0005)."""
    n, reps, level = 200, 40_000, 0.01
    x = np.random.default_rng(11).exponential(size=(reps, n))
    values, se = x.mean(1), x.std(1, ddof=1) / math.sqrt(n)
    skews = sps.skew(x, axis=1, bias=True)
    band = 4.5 * math.sqrt(level * (1 - level) / reps)
    plain_upper = _rates(stats.upper_valid, values, se, skews, n, 1.0, level, corrected=False)
    assert plain_upper > level + band
    for check in (stats.upper_valid, stats.lower_valid):
        assert abs(_rates(check, values, se, skews, n, 1.0, level, corrected=True) - level) < band, check.__name__
