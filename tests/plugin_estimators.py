"""Small estimators written the way a user would, to test the plugin interface (``ibcheck.harness.plugin``)."""
from __future__ import annotations

import time

import numpy as np
from scipy.special import digamma


def _expected_logdet_bias(p: int, n: int) -> float:
    """E log det S - log det Sigma for the unbiased sample covariance S of n Gaussian draws in p
    dimensions: sum_i psi((n - i) / 2) + p log(2 / (n - 1)), i = 1..p (Muirhead 1982, Thm 3.2.15)."""
    return float(digamma((n - np.arange(1, p + 1)) / 2).sum() + p * np.log(2.0 / (n - 1)))


def _logdet(a: np.ndarray) -> float:
    return float(np.linalg.slogdet(np.atleast_2d(np.cov(a, rowvar=False)))[1])


def gaussian_mi(a: np.ndarray, b: np.ndarray) -> float:
    """I(A;B) of jointly Gaussian data from sample covariances, each log-determinant corrected for
    its expected bias, so that the estimate is unbiased for Gaussian data: a correct point estimator."""
    n, p, q = len(a), a.shape[1], b.shape[1]
    joint = np.hstack([a, b])
    terms = [(_logdet(a), p), (_logdet(b), q), (_logdet(joint), p + q)]
    (la, pa), (lb, pb), (lj, pj) = ((value - _expected_logdet_bias(dim, n), dim) for value, dim in terms)
    return 0.5 * (la + lb - lj)


def gaussian_mi_plus_a_tenth(a: np.ndarray, b: np.ndarray) -> float:
    """A deliberately biased estimator: 0.1 nats too high."""
    return gaussian_mi(a, b) + 0.1


def gaussian_mi_times_0_9(a: np.ndarray, b: np.ndarray) -> float:
    """Ten per cent low: declared an upper bound, it must fail wherever I(A;B) is large enough."""
    return 0.9 * gaussian_mi(a, b)


def zero(a: np.ndarray, b: np.ndarray) -> float:
    """The trivial estimator: the plugin's overhead is measured on it."""
    return 0.0


def raises(a: np.ndarray, b: np.ndarray) -> float:
    raise RuntimeError("this estimator is broken")


def not_finite(a: np.ndarray, b: np.ndarray) -> float:
    return float("nan")


def sleeps(a: np.ndarray, b: np.ndarray) -> float:
    time.sleep(5)
    return 0.0
