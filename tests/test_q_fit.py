"""q(z_v|z) trained until it has converged (``ibcheck.estimators.q_fit``): the stopping rule is the
one its record shows, a capped run says so, the forward q reaches the exact posterior, and the Eq. 5
q reaches the closed-form best of every built-in case (issue 9's numbers)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ibcheck.analytic import exact, models
from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.estimators import registry
from ibcheck.estimators.q_fit import QFitParams, train_both, train_q
from ibcheck.harness import validate

from helpers import SUITE_NAMES, linear, suite_case, trained_context


def _followed_rule(fit: dict) -> None:
    """Re-derive the stopping rule of q_fit's docstring from the recorded curve, and the held-out
    value of the q it kept: that of the last check that improved by more than its se and tol."""
    curve, best, lr, decays = fit["curve"], fit["curve"][0][1], fit["lr"], 0
    assert curve[0][0] == 0 and curve[-1][0] == fit["steps_used"]
    for i, (step, value, se, used_lr) in enumerate(curve[1:], start=1):
        assert used_lr == pytest.approx(lr) and step == min(i * fit["window"], fit["steps"])
        if best - value > max(se, fit["tol"]):
            best = value
            continue
        if decays == fit["decays"]:
            assert i == len(curve) - 1, "training went on after the rule said it had converged"
            assert fit["converged"] and not fit["capped"] and fit["heldout"] == best
            return
        decays, lr = decays + 1, lr / 2
    assert fit["capped"] and not fit["converged"] and fit["steps_used"] == fit["steps"] and fit["heldout"] == best


@pytest.mark.parametrize("name", ["noisy-teacher", "teacher-15-nats"])
def test_the_record_shows_the_stopping_rule_was_followed(name):
    case = suite_case(name)
    encoder, sampler = linear(case)
    q_forward, q = (models.LinearGaussianQ(case.m, case.k) for _ in range(2))
    fits = train_both(encoder, sampler.teacher, sampler, q_forward, q, QFitParams(), torch.Generator().manual_seed(3))
    for fit in fits:
        _followed_rule(fit)
        assert fit["converged"]


def test_a_capped_run_says_so_and_keeps_its_best_q():
    case = suite_case("teacher-15-nats")
    encoder, sampler = linear(case)
    q = models.LinearGaussianQ(case.m, case.k)
    fit = train_q(encoder, sampler.teacher, sampler, q, QFitParams(steps=120, window=50),
                  torch.Generator().manual_seed(4), "forward")
    _followed_rule(fit)
    assert fit["capped"] and not fit["converged"] and fit["steps_used"] == 120
    assert [row[0] for row in fit["curve"]] == [0, 50, 100, 120]


def test_no_steps_is_a_capped_run_at_the_start():
    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    q = models.LinearGaussianQ(case.m, case.k)
    fit = train_q(encoder, sampler.teacher, sampler, q, QFitParams(steps=0), torch.Generator().manual_seed(5))
    assert fit["capped"] and fit["steps_used"] == 0 and len(fit["curve"]) == 1


def test_an_unknown_objective_is_refused():
    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    with pytest.raises(ValueError, match="unknown q objective 'reverse'"):
        train_q(encoder, sampler.teacher, sampler, models.LinearGaussianQ(1, 1), QFitParams(steps=1),
                torch.Generator().manual_seed(0), "reverse")


def test_whitening_the_input_keeps_q_the_same_function():
    q = models.LinearGaussianQ(3, 2)
    with torch.no_grad():
        q.C.normal_(generator=torch.Generator().manual_seed(0))
        q.e.fill_(0.3)
    z = torch.randn(500, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 4 + 2
    before = q(z)[0]
    q.fit_input(z)
    torch.testing.assert_close(q(z)[0], before)
    whitened = (z - q.mu) @ q.P.T
    torch.testing.assert_close(whitened.T @ whitened / 499, torch.eye(3, dtype=torch.float64))
    # again on other z, from the first normalisation (mu != 0): still the same function
    other = torch.randn(300, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64) - 5
    q.fit_input(other)
    torch.testing.assert_close(q.mu, other.mean(0), rtol=0, atol=0)
    torch.testing.assert_close(q(z)[0], before)
    # a degenerate z (rank 1) keeps the current normalisation
    mu, P = q.mu.clone(), q.P.clone()
    q.fit_input(torch.ones(10, 3, dtype=torch.float64) * torch.arange(10.0, dtype=torch.float64).unsqueeze(1))
    assert torch.equal(q.mu, mu) and torch.equal(q.P, P)
    torch.testing.assert_close(q(z)[0], before)


def posterior(case: LinearGaussianCase) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p(z_v|z) = N(C z + e, S) of a Gaussian data prior, the x-noise folded in (bounds.md 3b):
    S = (Sv^-1 + M^T Sn^-1 M)^-1 with Sn = sx^2 A A^T + D, M = A W."""
    M = case.A @ case.W
    Sn = case.noise_std**2 * case.A @ case.A.T + np.diag(case.std**2)
    Sv_inv = np.linalg.inv(case.prior_cov)
    S = np.linalg.inv(Sv_inv + M.T @ np.linalg.solve(Sn, M))
    C = S @ M.T @ np.linalg.inv(Sn)
    return C, S @ Sv_inv @ case.prior_mean - C @ (case.A @ case.c + case.b), S


def expected_kl(case: LinearGaussianCase, C, e, S, Cq, eq, Sq) -> float:
    """E_z KL(N(C z + e, S) || N(Cq z + eq, Sq)) over z ~ p(z), in nats."""
    mo = exact.moments(case)
    dC, de = C - Cq, e - eq
    Sq_inv = np.linalg.inv(Sq)
    mean_sq = np.trace(Sq_inv @ dC @ mo.Sz @ dC.T) + (dC @ mo.mz + de) @ Sq_inv @ (dC @ mo.mz + de)
    return 0.5 * (np.trace(Sq_inv @ S) - case.k + exact.logdet(Sq) - exact.logdet(S) + mean_sq)


@pytest.mark.parametrize("name", ["deterministic-teacher", "noisy-teacher", "shifted-data-prior", "teacher-15-nats"])
def test_the_forward_q_reaches_the_exact_posterior(name, seed):
    """Maximum likelihood on simulated pairs has the exact posterior as its optimum in the linear-Gaussian
    family. The rule stops it where the held-out loss resolves no gain, so it lands near, not on, the
    optimum: E KL(posterior || q) must be under 0.1 nats, a tenth of the 1-nat bracket issue 9 asks of
    the 15-nat case (measured here: 0.001-0.01 on the small cases, 0.02-0.04 on teacher-15-nats)."""
    case = suite_case(name)
    context = trained_context(case, *linear(case), seed, steps=QFitParams().steps)
    kl = expected_kl(case, *posterior(case), *context.q_forward.numpy_params())
    assert 0 <= kl < 0.1, f"{name}: E KL(posterior || forward q) = {kl:.4f} nats"


def test_a_forward_q_trained_on_one_pool_of_pairs_reaches_the_posterior_too():
    """``pool``: minibatches from one fixed set of simulated pairs (the pipeline's cheap way) obey the
    same rule and land as near the exact posterior as fresh minibatches do."""
    case = suite_case("teacher-15-nats")
    encoder, sampler = linear(case)
    q = models.LinearGaussianQ(case.m, case.k)
    fit = train_q(encoder, sampler.teacher, sampler, q, QFitParams(pool=8192), torch.Generator().manual_seed(6),
                  "forward")
    _followed_rule(fit)
    assert fit["converged"] and fit["pool"] == 8192
    assert expected_kl(case, *posterior(case), *q.numpy_params()) < 0.1


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_the_eq5_q_reaches_its_closed_form_best(name, seed):
    """Issue 9: teacher_elbo at the trained q within 5% + 0.05 nats of its value at the best q."""
    case = suite_case(name)
    context = trained_context(case, *linear(case), seed, steps=QFitParams().steps)
    best = exact.teacher_bound(case, *exact.optimal_q(case))
    got = exact.teacher_bound(case, *context.q.numpy_params())
    assert best - 1e-9 <= got <= best + 0.05 * abs(best) + 0.05, f"{name}: Eq. 5 at q {got:.4f}, best {best:.4f}"


def from_teachers_model(case: LinearGaussianCase) -> bool:
    """Data drawn from the teacher's model: z_v ~ N(0, I) (class labels only if every class shares it)."""
    means = case.labels.means if case.labels.kind == "classes" else case.prior_mean[None]
    return bool(np.all(means == 0) and np.array_equal(case.prior_cov, np.eye(case.k)))


MODEL_CASES = [name for name in SUITE_NAMES if from_teachers_model(suite_case(name))]


def _largest_K(case: LinearGaussianCase, name: str):
    params = case.settings.params(name)
    return dataclasses.replace(params, K=(max(params.K),))


@pytest.mark.statistical
@pytest.mark.parametrize("name", MODEL_CASES)
def test_the_bracket_closes_on_cases_from_the_teachers_model(name, stat, seed):
    """Issue 9's numbers at validate's settings: teacher_riw <= I(X;Z) <= teacher_iw at the largest K,
    and the width iw - riw at most 0.25 nats where I(X;Z) <= 5, at most 1 nat above (the 15-nat case);
    a width fails only when it is above its target by more than its test's quantile times its se."""
    case = suite_case(name)
    setup = validate.prepare(case, seed=seed, device="cpu", dtype=torch.float64)
    truth = setup.exact.I_XZ
    low, high = (registry.run_one(est, setup.encoder, setup.sampler, _largest_K(case, est), seed=seed + i,
                                  context=setup.context) for i, est in enumerate(("teacher_riw", "teacher_iw")))
    stat.lower(low, truth, label=f"{name}: teacher_riw K={low.params['K']}")
    stat.upper(high, truth, label=f"{name}: teacher_iw K={high.params['K']}")
    width = dataclasses.replace(high, value=high.value - low.value, n=min(low.n, high.n),
                                stderr=float(np.hypot(low.stderr, high.stderr)))
    stat.lower(width, 0.25 if truth <= 5 else 1.0, label=f"{name}: bracket width at K={high.params['K']}")


def test_the_suite_has_a_15_nat_case_from_the_teachers_model():
    assert any(exact.exact_values(suite_case(name)).I_XZ >= 15 for name in MODEL_CASES)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("make", [lambda dtype: models.LinearGaussianQ(3, 2, "cpu", dtype),
                                  lambda dtype: models.LinearGaussianLabelQ(3, 2, "cpu", dtype),
                                  lambda dtype: models.SoftmaxLabelQ(3, 4, "cpu", dtype)],
                         ids=["q(z_v|z)", "gaussian q(y|z)", "softmax q(y|z)"])
def test_every_linear_q_holds_its_parameters_and_buffers_at_the_dtype_asked(make, dtype):
    """A parameter left at torch's default float32 would train and be read back at a coarser precision
    than the float64 exact values it is compared with."""
    q = make(dtype)
    tensors = [*q.parameters(), *q.buffers()]
    assert tensors and all(t.dtype == dtype for t in tensors), [t.dtype for t in tensors]


def test_the_linear_q_s_covariance_factor_is_unit_lower_triangular_times_a_positive_diagonal():
    """L = U diag(exp(log_diag)), U unit lower-triangular from the strict lower part of ``lower``:
    lower-triangular with the positive diagonal exp(log_diag) whatever ``lower`` holds on or above
    its diagonal, and each off-diagonal entry scaled by its column's diagonal."""
    q = models.LinearGaussianQ(2, 3, "cpu", torch.float64)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        q.chol.lower.copy_(torch.randn(3, 3, generator=generator, dtype=torch.float64) - 5 * torch.eye(3))
        q.chol.log_diag.copy_(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    lower, scale = q.chol.lower.detach(), q.chol.log_diag.detach().exp()
    L = q.chol().detach()
    expected = torch.eye(3, dtype=torch.float64) * scale
    for i, j in ((1, 0), (2, 0), (2, 1)):
        expected[i, j] = lower[i, j] * scale[j]
    torch.testing.assert_close(L, expected, rtol=1e-15, atol=0)
