"""Exact values against independent computations: hand values, scipy's Gaussian
entropies over an independently derived joint covariance, and Monte Carlo with
exact densities (bounds.md section 2)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.special import logsumexp

from ibcheck.analytic import exact
from ibcheck.interface import Estimate

import match_checks
from helpers import joint_factor, numpy_draw, random_case, suite, suite_case

GAUSSIAN_PRIOR_CASES = [c.name for c in suite() if c.labels.kind != "classes"]
CLASS_CASES = [c.name for c in suite() if c.labels.kind == "classes"]


def test_hand_1d_values():
    case = suite_case("hand-1d")
    ex = exact.exact_values(case)
    assert ex.I_XZ == pytest.approx(0.5 * math.log(2), abs=1e-15)
    assert ex.I_YZ == pytest.approx(0.5 * math.log(4 / 3), abs=1e-15)
    assert exact.vib_expectation(case) == pytest.approx(0.5, abs=1e-15)
    C, e, Sq = exact.optimal_q(case)
    np.testing.assert_allclose([C[0, 0], e[0], Sq[0, 0]], [0.5, 0.0, 0.5], atol=1e-15)
    assert exact.teacher_bound(case, C, e, Sq) == pytest.approx(ex.I_XZ, abs=1e-14)
    # q = prior (C = 0, Sq = 1): U = -1/2 + E(z - x')^2 / 2 + E|0|^2 / 2 with z ~ N(0, 2), x' ~ N(0, 1): 1.
    assert exact.teacher_bound(case, np.zeros((1, 1)), np.zeros(1), np.eye(1)) == pytest.approx(1.0, abs=1e-15)


def _entropy(cov: np.ndarray) -> float:
    return float(sps.multivariate_normal(mean=np.zeros(len(cov)), cov=cov, allow_singular=False).entropy())


def _check_against_scipy(case):
    Jy, _, Jz, _ = joint_factor(case)
    Sz = Jz @ Jz.T
    ex = exact.exact_values(case)
    i_xz = _entropy(Sz) - _entropy(np.diag(case.std**2))
    assert ex.I_XZ == pytest.approx(i_xz, rel=1e-9, abs=1e-9)
    if case.labels.kind == "gaussian":
        J = np.vstack([Jy, Jz])
        i_yz = _entropy(Jy @ Jy.T) + _entropy(Sz) - _entropy(J @ J.T)
        assert ex.I_YZ == pytest.approx(i_yz, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", GAUSSIAN_PRIOR_CASES)
def test_gaussian_cases_match_scipy_entropies(name):
    _check_against_scipy(suite_case(name))


@pytest.mark.parametrize("seed", range(20))
def test_random_gaussian_cases_match_scipy_entropies(seed):
    case = random_case(np.random.default_rng(seed), labels=["none", "gaussian"][seed % 2])
    _check_against_scipy(case)


@pytest.mark.statistical
@pytest.mark.parametrize("name", match_checks.GROUPS["information-mc"].params)
def test_gaussian_information_by_monte_carlo(name, stat, seed):
    """I(X;Z) = E[log p(z|x) - log p(z)] with both densities exact, by plain sampling."""
    stat.observe(match_checks.information_mc(name, seed))


def _mixture_terms(case, n, rng):
    """Independent MC of class-label information: terms of I(Y;Z) and I(X;Z) with the
    mixture density p(z) = sum_y pi_y N(z; m_y, S) evaluated exactly by scipy."""
    lab = case.labels
    y, _, _, mean, z = numpy_draw(case, n, rng)
    S = case.A @ (case.W @ case.prior_cov @ case.W.T + case.noise_std**2 * np.eye(case.d)) @ case.A.T
    S = S + np.diag(case.std**2)
    centres = (lab.means @ case.W.T + case.c) @ case.A.T + case.b
    log_each = np.stack([sps.multivariate_normal(c, S).logpdf(z) for c in centres], axis=1)
    log_marg = logsumexp(log_each + np.log(lab.probs), axis=1)
    t_y = log_each[np.arange(n), y] - log_marg
    t_x = sps.norm.logpdf(z, mean, case.std).sum(1) - log_marg
    return t_y, t_x


@pytest.mark.statistical
@pytest.mark.parametrize("name", CLASS_CASES)
def test_class_information_by_independent_monte_carlo(name, stat, seed):
    case = suite_case(name)
    case = dataclasses.replace(case, settings=case.settings.replace(n_exact=400_000))
    ex = exact.exact_values(case, seed=seed)
    t_y, t_x = _mixture_terms(case, 100_000, np.random.default_rng(seed + 1))
    for target, terms, value, se in (("I_YZ", t_y, ex.I_YZ, ex.I_YZ_se), ("I_XZ", t_x, ex.I_XZ, ex.I_XZ_se)):
        mc = Estimate("mc", target, "exact", terms.mean(), terms.std(ddof=1) / math.sqrt(len(terms)), len(terms), seed)
        ours = Estimate("exact", target, "exact", value, se, case.settings.n_exact, seed)
        stat.same_mean(mc, ours, label=f"{name} {target}")


def test_zero_information_cases_are_exactly_zero_without_clipping():
    blind = exact.exact_values(suite_case("encoder-ignores-x"))
    assert abs(blind.I_XZ) < 1e-12 and abs(blind.I_YZ) < 1e-12
    indep = exact.exact_values(suite_case("labels-independent"))
    assert abs(indep.I_YZ) < 1e-12 and indep.I_YZ_se < 1e-12


@pytest.mark.parametrize("name", ["ten-classes", "hand-1d"])
def test_moments_of_z_v_and_of_the_encoder_noise(name):
    """Sv is z_v's total covariance (a class mixture's: the shared covariance plus the probability-weighted
    covariance of the class means, numpy's weighted np.cov) and D the encoder's diagonal variance."""
    case = suite_case(name)
    mo = exact.moments(case)
    Sv = case.prior_cov
    if case.labels.kind == "classes":
        Sv = Sv + np.cov(case.labels.means.T, aweights=case.labels.probs, bias=True).reshape(case.k, case.k)
    np.testing.assert_allclose(mo.Sv, Sv, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(mo.D, np.diag(case.std**2))


def test_a_class_of_probability_zero_changes_no_value():
    """A case file may give a class probability 0 (only negatives are refused): such a class is never
    drawn and carries no entropy, so I(Y;Z), H(Y) and I(X;Z) are those of the case without it, on the
    same draws (numpy's choice draws the same classes when a zero is appended), and no log 0 warns."""
    case = suite_case("ten-classes")
    labels = case.labels
    extra = dataclasses.replace(labels, means=np.vstack([labels.means, np.full((1, case.k), 3.0)]),
                                probs=np.append(labels.probs, 0.0))
    wider = dataclasses.replace(case, labels=extra)
    assert exact.label_entropy(wider) == pytest.approx(exact.label_entropy(case), rel=1e-14)
    assert exact.class_information(wider, 5000, 3) == pytest.approx(exact.class_information(case, 5000, 3), rel=1e-12)


def test_eq5_with_the_data_prior_of_a_class_mixture_is_refused_by_name():
    case = suite_case("ten-classes")
    C, e, Sq = exact.optimal_q(case)
    with pytest.raises(ValueError, match=r"^a class mixture's data prior has no closed-form Eq\. 5$"):
        exact.teacher_bound(case, C, e, Sq, prior="data")


def test_eq5_takes_the_model_prior_by_default_and_refuses_any_other_name():
    case = suite_case("hand-1d")
    C, e, Sq = exact.optimal_q(case)
    assert exact.teacher_bound(case, C, e, Sq) == exact.teacher_bound(case, C, e, Sq, prior="model")
    with pytest.raises(ValueError, match="^prior must be 'model' or 'data', got 'Data'$"):
        exact.teacher_bound(case, C, e, Sq, prior="Data")


@pytest.mark.statistical
@pytest.mark.parametrize("name", match_checks.GROUPS["vib-mc"].params)
def test_vib_expectation_by_monte_carlo(name, stat, seed):
    """E_x KL(N(Ax + b, D) || N(0, I)) by sampling x and the closed-form KL per x (numpy)."""
    stat.observe(match_checks.vib_mc(name, seed))


@pytest.mark.statistical
@pytest.mark.parametrize("name", match_checks.GROUPS["teacher-mc"].params)
def test_teacher_bound_closed_form_by_monte_carlo(name, stat, seed):
    """Eq. 5's per-sample term, written out in numpy: -H[p(z|x)] - log p(z|x') + KL(q || N(0, I))."""
    stat.observe(match_checks.teacher_mc(name, seed))


@pytest.mark.parametrize("name", [c.name for c in suite()])
def test_optimal_q_is_a_minimum_of_the_teacher_bound(name):
    case = suite_case(name)
    C, e, Sq = exact.optimal_q(case)
    best = exact.teacher_bound(case, C, e, Sq)
    rng = np.random.default_rng(0)
    for _ in range(5):
        dC, de = rng.normal(size=C.shape) * 1e-3, rng.normal(size=e.shape) * 1e-3
        G = rng.normal(size=Sq.shape) * 1e-3
        assert exact.teacher_bound(case, C + dC, e + de, Sq + G @ G.T) >= best - 1e-10


@pytest.mark.parametrize("name", ["hand-1d", "deterministic-teacher", "high-mi"])
def test_best_teacher_bound_is_exact_for_deterministic_teacher_and_model_prior(name):
    case = suite_case(name)
    if case.noise_std > 0:
        pytest.skip("noisy teacher")
    assert exact.teacher_bound(case, *exact.optimal_q(case)) == pytest.approx(exact.exact_values(case).I_XZ,
                                                                              rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", ["hand-1d", "deterministic-teacher", "encoder-ignores-x"])
def test_barber_agakov_expectation_at_the_posterior_is_the_information(name):
    """q(y|z) = p(y|z) (Gaussian conditioning) turns Barber-Agakov into an equality."""
    case = suite_case(name)
    Jy, my, Jz, mz = joint_factor(case)
    Syz, Sz, Sy = Jy @ Jz.T, Jz @ Jz.T, Jy @ Jy.T
    F = Syz @ np.linalg.inv(Sz)
    Sigma = Sy - F @ Syz.T
    assert exact.barber_agakov_expectation(case, F, my - F @ mz, Sigma) == pytest.approx(
        exact.exact_values(case).I_YZ, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", ["hand-1d", "deterministic-teacher"])
def test_barber_agakov_expectation_pays_for_a_biased_mean_by_its_mahalanobis_length(name):
    """Shifting q(y|z)'s mean by delta adds delta delta^T to E[r r^T], so the bound drops by exactly
    delta^T Sigma^-1 delta / 2 (the mean residual term of the docstring)."""
    case = suite_case(name)
    Jy, my, Jz, mz = joint_factor(case)
    Syz, Sz, Sy = Jy @ Jz.T, Jz @ Jz.T, Jy @ Jy.T
    F = Syz @ np.linalg.inv(Sz)
    Sigma = Sy - F @ Syz.T + 0.5 * np.eye(len(my))  # a wider q: its Sigma enters the drop
    g = my - F @ mz
    delta = np.linspace(0.3, 0.7, len(my))
    drop = exact.barber_agakov_expectation(case, F, g, Sigma) - exact.barber_agakov_expectation(case, F, g + delta,
                                                                                                  Sigma)
    assert drop == pytest.approx(0.5 * delta @ np.linalg.solve(Sigma, delta), rel=1e-9)


def _zv_z_moments(case):
    """Means and covariances of (z_v, z) in the linear-Gaussian chain, written out here."""
    mv, Sv = case.prior_mean, case.prior_cov
    Sx = case.W @ Sv @ case.W.T + case.noise_std**2 * np.eye(case.d)
    Sz = case.A @ Sx @ case.A.T + np.diag(case.std**2)
    Cvz = Sv @ case.W.T @ case.A.T
    mz = case.A @ (case.W @ mv + case.c) + case.b
    return mv, Sv, mz, Sz, Cvz


@pytest.mark.parametrize("name", ["hand-1d", "noisy-teacher", "shifted-data-prior"])
def test_riw_at_k_zero_is_i_zv_z_at_the_posterior_and_pays_for_a_biased_mean(name):
    """teacher_riw at K = 0 is Barber-Agakov on I(Z_v;Z): an equality at q(z_v|z) = p(z_v|z), and
    a q whose mean is off by delta loses exactly delta^T Sq^-1 delta / 2."""
    case = suite_case(name)
    mv, Sv, mz, Sz, Cvz = _zv_z_moments(case)
    C = Cvz @ np.linalg.inv(Sz)
    e, Sq = mv - C @ mz, Sv - C @ Cvz.T
    joint = np.block([[Sv, Cvz], [Cvz.T, Sz]])
    info = 0.5 * (np.linalg.slogdet(Sv)[1] + np.linalg.slogdet(Sz)[1] - np.linalg.slogdet(joint)[1])
    assert exact.riw_zero_expectation(case, C, e, Sq) == pytest.approx(info, rel=1e-9, abs=1e-9)
    delta = np.linspace(0.2, 0.5, case.k)
    wide = Sq + 0.25 * np.eye(case.k)
    drop = exact.riw_zero_expectation(case, C, e, wide) - exact.riw_zero_expectation(case, C, e + delta, wide)
    assert drop == pytest.approx(0.5 * delta @ np.linalg.solve(wide, delta), rel=1e-9)


def test_riw_at_k_zero_has_no_closed_form_for_class_labels():
    assert exact.riw_zero_expectation(suite_case("ten-classes"), None, None, None) is None


@pytest.mark.statistical
@pytest.mark.parametrize("param", match_checks.GROUPS["sampler-moments"].params, ids="-".join)
def test_sampler_moments_match_the_model(param, stat, seed):
    """ibcheck's torch sampler: a random projection of x and of z has the model's mean and variance."""
    stat.observe(match_checks.sampler_moments(param, seed))
