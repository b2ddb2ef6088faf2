"""The statistical rules of bounds.md section 5, the tests the study's claims use over runs
(``t_test``, ``holm``, ``runs_to_decide``), and the binomial test of a user's intervals
(``undercoverage_p``, ``clopper_pearson``).

An upper bound U fails only if U_hat + q_(1-a) se < T; a lower bound L fails
only if L_hat - q_(1-a) se > T; an implementation matches its analytic
expectation E if |U_hat - E| <= q_(1-a/2) se. One family-wise false-failure
budget is split evenly over all tests (Bonferroni).

Two choices made here, both conservative:
- q is Student's t quantile with n - 1 degrees of freedom (the normal quantile
  once n is large): minibatch estimators have only tens of terms, and the
  normal quantile would under-cover at Bonferroni-sized levels.
- Where the truth is itself a Monte Carlo value with standard error se_T, the
  two errors add in quadrature.
A third, for the one-sided tests only: t is corrected for the skewness of the
estimate's terms (``skew_corrected``, Hall 1992), since right-skewed terms make
its lower tail heavier than Student's at Bonferroni-sized levels. A two-sided
test keeps the plain t, where that first-order effect cancels between the tails.
A round-off allowance of sqrt(machine epsilon) * (1 + |T|) covers estimates
whose terms are all equal (se = 0), e.g. an encoder that ignores x; it is far
below any statistical scale and is not a tuned tolerance.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def quantile(tail: float, n: int) -> float:
    """The point with probability ``tail`` above it, of Student's t with n - 1 dof (normal for
    n > 10^6): the one-sided (1 - tail) quantile. Computed from the upper tail (``isf``), so it
    stays finite for any tail in (0, 1) whose quantile float64 can hold; 1 - tail would round
    to 1 below tail = 1e-16 and give an infinite quantile, which passes every test."""
    if n > 1_000_000:
        return float(stats.norm.isf(tail))
    return float(stats.t.isf(tail, max(n - 1, 1)))


def representable(tail: float) -> bool:
    """Whether every quantile of ``tail`` (at any n, the largest at n = 2) is a finite float64."""
    return 0.0 < tail < 1.0 and math.isfinite(quantile(tail, 2))


def roundoff(truth: float, eps: float) -> float:
    """sqrt(eps) (1 + |truth|): the slack for floating-point error in a dtype with machine epsilon eps."""
    return math.sqrt(eps) * (1.0 + abs(truth))


def combined_se(se: float, truth_se: float = 0.0) -> float:
    return math.sqrt(se * se + truth_se * truth_se)


def skew_corrected(t: float, skew: float, n: int, q: float | None = None) -> float:
    """Hall's monotone transformation of a studentized mean t of n terms with skewness ``skew``:
    t + a t^2 + a^2 t^3 / 3 + skew / (6 sqrt n), a = skew / (3 sqrt n) (Hall 1992, "On the removal
    of skewness by transformation", JRSS B 54, 221-228). It removes the n^-1/2 skewness term of t's
    Edgeworth expansion, by which each tail of t is off by a factor growing with the depth of the
    level (for right-skewed terms the lower tail is heavier), so that a one-sided t quantile holds
    to O(1/n). Increasing in t; skew = 0 leaves t unchanged.

    The expansion holds while its quadratic term is small beside t. Where, at the test's quantile
    ``q``, it would exceed a quarter of t (|a| q > 1/4: strong skew over few terms), t is returned
    unchanged: there the transformation would move the test's threshold by more than half of q,
    beyond what a first-order term can be trusted to say."""
    a = skew / (3 * math.sqrt(n))
    if skew == 0.0 or (q is not None and abs(a) * q > 0.25):
        return t
    return t + a * t * t + a * a * t**3 / 3 + skew / (6 * math.sqrt(n))


def one_sided_t(t: float, se: float, n: int, truth_se: float, skew: float, q: float) -> float:
    """A one-sided test's t (of the estimate minus its reference, over the combined se), corrected
    for the skewness of the estimate's n terms at the test's quantile q; the reference's own Monte
    Carlo error, if any, is taken as symmetric, which dilutes that skewness by (se / combined se)^3."""
    return skew_corrected(t, skew * (se / combined_se(se, truth_se)) ** 3, n, q)


def upper_valid(value: float, se: float, n: int, truth: float, alpha: float, truth_se: float = 0.0,
                eps: float = 2.0**-52, skew: float = 0.0) -> bool:
    """One-sided validity of an upper bound at level alpha: fails only if U + q se < T, for the
    t of U - T corrected for the terms' ``skew`` (``skew_corrected``)."""
    slack = roundoff(truth, eps)
    if skew == 0.0 or combined_se(se, truth_se) == 0.0:
        return bool(value + quantile(alpha, n) * combined_se(se, truth_se) + slack >= truth)
    q = quantile(alpha, n)
    return bool(one_sided_t((value + slack - truth) / combined_se(se, truth_se), se, n, truth_se, skew, q) >= -q)


def lower_valid(value: float, se: float, n: int, truth: float, alpha: float, truth_se: float = 0.0,
                eps: float = 2.0**-52, skew: float = 0.0) -> bool:
    """One-sided validity of a lower bound at level alpha: fails only if L - q se > T, for the
    t of L - T corrected for the terms' ``skew`` (``skew_corrected``)."""
    slack = roundoff(truth, eps)
    if skew == 0.0 or combined_se(se, truth_se) == 0.0:
        return bool(value - quantile(alpha, n) * combined_se(se, truth_se) - slack <= truth)
    q = quantile(alpha, n)
    return bool(one_sided_t((value - slack - truth) / combined_se(se, truth_se), se, n, truth_se, skew, q) <= q)


def matches(value: float, se: float, n: int, expected: float, alpha: float, eps: float = 2.0**-52,
            expected_se: float = 0.0) -> bool:
    """Two-sided agreement with an analytic expectation: |U - E| <= q_(1-alpha/2) se (se combined
    with that of E where E is itself a Monte Carlo value)."""
    return bool(abs(value - expected) <= quantile(alpha / 2, n) * combined_se(se, expected_se)
                + roundoff(expected, eps))


def bonferroni(alpha: float, tests: int) -> float:
    """The level of each of ``tests`` tests sharing a family-wise budget alpha."""
    return alpha / max(tests, 1)


# ---------------------------------------------------------------- the claims' tests over runs


def t_test(values: Sequence[float], threshold: float) -> tuple[float, float, float, float, float]:
    """(mean, sd, ci_low, ci_high, p) of a one-sample t test of mean = threshold, 95% interval.
    With zero spread (a discrete statistic equal in every run) p is 0: the side is certain, and a
    mean on the threshold is not on the claimed side of it."""
    x = np.asarray(values, dtype=float)
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(x) - 1)) * sd / math.sqrt(len(x))
    if sd == 0.0:  # every run gives the same number: its side of the threshold is certain
        p = 0.0
    else:
        p = float(2 * stats.t.sf(abs(mean - threshold) / (sd / math.sqrt(len(x))), len(x) - 1))
    return mean, sd, mean - half, mean + half, p


def runs_to_decide(mean: float, sd: float, threshold: float, level: float, max_runs: int) -> int | None:
    """The fewest runs (at most ``max_runs``) whose two-sided t interval at ``level`` excludes the
    threshold, at the observed mean and spread; None when none would (the mean sits on the
    threshold, or more runs are needed)."""
    gap = abs(mean - threshold)
    if gap == 0.0:
        return None
    if sd == 0.0:
        return 2
    for n in range(2, max_runs + 1):
        if float(stats.t.ppf(1 - level / 2, n - 1)) * sd / math.sqrt(n) < gap:
            return n
    return None


def holm(pvalues: Sequence[float], alpha: float) -> tuple[list[float], list[bool]]:
    """Holm's step-down procedure (Holm 1979) at family-wise level ``alpha``: for each p value, in
    the given order, its level alpha / (m - rank) by rank of p, and whether it is rejected (every
    smaller p was rejected too, and p <= its level)."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    levels, significant = [0.0] * len(pvalues), [False] * len(pvalues)
    rejecting = True
    for rank, i in enumerate(order):
        levels[i] = alpha / (len(pvalues) - rank)
        rejecting = rejecting and pvalues[i] <= levels[i]
        significant[i] = rejecting
    return levels, significant


def is_level(value: object) -> bool:
    """Whether ``value`` is a nominal level: a real number (not a bool) strictly inside (0, 1)."""
    return bool(not isinstance(value, (bool, np.bool_))
                and isinstance(value, (int, float, np.integer, np.floating)) and 0 < value < 1)


def undercoverage_p(contained: int, calls: int, level: float) -> float:
    """Exact one-sided binomial p-value that intervals of nominal ``level`` cover less often than
    they claim: P(Binomial(calls, level) <= contained). Wider intervals than claimed are not a
    failure (they are conservative), so only too few contained truths count against them."""
    return float(stats.binom.cdf(contained, calls, level))


def clopper_pearson(contained: int, calls: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson 1934) two-sided interval on a binomial proportion."""
    tail = (1.0 - confidence) / 2
    low = 0.0 if contained == 0 else float(stats.beta.ppf(tail, contained, calls - contained + 1))
    high = 1.0 if contained == calls else float(stats.beta.ppf(1 - tail, contained + 1, calls - contained))
    return low, high
