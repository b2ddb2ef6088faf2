"""q(z_v|z) trained until it has converged (``ibcheck.estimators.q_fit``): the stopping rule is the
one its record shows, a capped run says so, the forward q reaches the exact posterior, and the Eq. 5
q reaches the closed-form best of every built-in case (issue 9's numbers)."""
from __future__ import annotations

import dataclasses
import math

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
    assert [fit["objective"] for fit in fits] == ["forward", "elbo"]
    assert "warm_start" not in fits[0] and fits[1]["warm_start"] == "forward"


def test_without_a_prior_the_forward_q_learns_from_the_teachers_own_model_population():
    """On data with no prior density (a finite set, as MNIST in the pipeline), the simulated pairs are
    z_v ~ N(0, I) through the teacher, then z ~ p(z|x): the model population's draws from the same
    generator; ``train_both`` trains both q's on such data."""
    from ibcheck.estimators.q_fit import simulated_pairs
    from ibcheck.estimators.samplers import FiniteSampler, ModelPopulation
    from ibcheck.gaussian import rsample

    case = suite_case("noisy-teacher")
    encoder, sampler = linear(case)
    finite = FiniteSampler(sampler.sample(64, torch.Generator().manual_seed(0)).x)
    z_v, z = simulated_pairs(encoder, sampler.teacher, finite, 300, torch.Generator().manual_seed(1), torch.float64)
    generator = torch.Generator().manual_seed(1)
    batch = ModelPopulation(sampler.teacher, case.k, "cpu", torch.float64).sample(300, generator)
    assert batch.z_v is not None and torch.equal(z_v, batch.z_v)
    assert torch.equal(z, rsample(*encoder(batch.x), generator))
    q_forward, q = (models.LinearGaussianQ(case.m, case.k) for _ in range(2))
    fits = train_both(encoder, sampler.teacher, finite, q_forward, q, QFitParams(steps=100, holdout=256),
                      torch.Generator().manual_seed(2))
    assert [fit["objective"] for fit in fits] == ["forward", "elbo"] and all(fit["steps_used"] > 0 for fit in fits)


def test_the_forward_q_refuses_prior_data_that_hides_its_z_v():
    from ibcheck.estimators.q_fit import simulated_pairs

    case = suite_case("hand-1d")
    encoder, sampler = linear(case)

    class HiddenLatents:  # a prior density, but batches without the z_v that generated them
        def sample(self, n, generator):
            return dataclasses.replace(sampler.sample(n, generator), z_v=None)

        def log_prior(self, z_v):
            return sampler.log_prior(z_v)

    with pytest.raises(ValueError) as refused:
        simulated_pairs(encoder, sampler.teacher, HiddenLatents(), 5, torch.Generator().manual_seed(0), torch.float64)
    assert str(refused.value) == "the forward q needs the z_v that generated each x; this data gives none"


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
    assert fit["curve"][0] == [0, fit["heldout"], 0.0, fit["lr"]]  # no gain measured yet: its se is 0


SMALL = QFitParams(steps=40, window=20, holdout=64, batch=32)


def _small_fit(q, generator_seed: int, objective: str = "elbo", params: QFitParams = SMALL, data=None, **options):
    case = suite_case("noisy-teacher")
    encoder, sampler = linear(case)
    return train_q(encoder, sampler.teacher, sampler if data is None else data, q, params,
                   torch.Generator().manual_seed(generator_seed), objective, **options)


def _fresh_q(seed: int = 0):
    case = suite_case("noisy-teacher")
    q = models.LinearGaussianQ(case.m, case.k)
    with torch.no_grad():
        q.C.normal_(generator=torch.Generator().manual_seed(seed))
    return q


def test_a_q_with_nothing_to_train_has_converged_at_the_start():
    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    q = models.LinearGaussianQ(case.m, case.k).requires_grad_(False)
    fit = train_q(encoder, sampler.teacher, sampler, q, QFitParams(), torch.Generator().manual_seed(5))
    assert fit["converged"] and not fit["capped"] and fit["steps_used"] == 0
    assert fit["curve"] == [[0, fit["heldout"], 0.0, fit["lr"]]]
    at_once = train_q(encoder, sampler.teacher, sampler, q, QFitParams(steps=0), torch.Generator().manual_seed(5))
    assert at_once["converged"] and not at_once["capped"]  # converged at the cap is not capped


def test_a_q_whose_held_out_loss_is_not_finite_stops_unconverged_and_uncapped():
    q = _fresh_q()
    with torch.no_grad():
        q.e.fill_(float("nan"))
    fit = _small_fit(q, 3, "forward", dataclasses.replace(SMALL, steps=400))
    assert not fit["converged"] and not fit["capped"] and fit["steps_used"] == (SMALL.decays + 1) * SMALL.window
    assert math.isnan(fit["heldout"])


@pytest.mark.parametrize("objective", ["elbo", "forward"])
@pytest.mark.parametrize("pool", [0, 48])
def test_a_fit_is_drawn_from_its_generator_alone(objective, pool):
    """Held-out rows, their common random numbers, the minibatches and the pool's rows all come from
    the generator passed: torch's global stream plays no part, and another seed gives another fit."""
    params = dataclasses.replace(SMALL, pool=pool)
    fits, qs = [], []
    for global_seed, seed in ((0, 3), (1, 3), (0, 4)):
        torch.manual_seed(global_seed)
        qs.append(_fresh_q())
        fits.append(_small_fit(qs[-1], seed, objective, params))
    assert fits[0]["curve"] == fits[1]["curve"] and torch.equal(qs[0].C, qs[1].C)
    assert fits[0]["curve"] != fits[2]["curve"] and not torch.equal(qs[0].C, qs[2].C)


def test_a_pool_is_drawn_once_and_minibatches_come_from_it():
    case = suite_case("noisy-teacher")
    _, sampler = linear(case)
    calls = []

    class Counted:  # the case's data, counting its draws
        def sample(self, n, generator):
            calls.append(n)
            return sampler.sample(n, generator)

        def log_prior(self, z_v):
            return sampler.log_prior(z_v)

    _small_fit(_fresh_q(), 3, "forward", dataclasses.replace(SMALL, pool=48), data=Counted())
    assert calls == [SMALL.holdout, 48]
    calls.clear()
    _small_fit(_fresh_q(), 3, "forward", data=Counted())
    assert calls == [SMALL.holdout] + [SMALL.batch] * SMALL.steps


class _Shifted(torch.nn.Module):
    """A module with a trainable shift added to the output of a linear encoder or teacher."""

    def __init__(self, inner, width: int):
        super().__init__()
        self.inner, self.shift = inner, torch.nn.Parameter(torch.zeros(width, dtype=torch.float64))
        self.latent_dim = getattr(inner, "latent_dim", None)

    def forward(self, x):
        mean, std = self.inner(x)
        return mean + self.shift, std

    def sample(self, z_v, generator):
        return self.inner.sample(z_v, generator) + self.shift


def test_training_q_leaves_the_encoders_and_teachers_gradients_alone():
    """Eq. 5's loss runs through the encoder and the teacher; their parameters are frozen while q trains
    (no .grad filled) and trainable again after."""
    case = suite_case("noisy-teacher")
    encoder, sampler = linear(case)
    student, teacher = _Shifted(encoder, case.m), _Shifted(sampler.teacher, case.d)
    train_q(student, teacher, sampler, _fresh_q(), SMALL, torch.Generator().manual_seed(3), "elbo")
    for module in (student, teacher):
        assert module.shift.grad is None and module.shift.requires_grad


def test_a_restart_state_is_taken_only_where_it_is_better_on_the_held_out_rows():
    """``restart``: with steps = 0 the record's held-out value is that of the state kept. A better restart
    state replaces the warm start, a worse or equal one does not, and a warm start whose held-out value
    is not finite is always replaced."""
    none = dict(params=dataclasses.replace(SMALL, steps=0))
    good, bad = _fresh_q(), _fresh_q()
    with torch.no_grad():
        bad.e.add_(5.0)
    good_value, bad_value = (_small_fit(q, 3, **none)["heldout"] for q in (_fresh_q(), bad))
    assert good_value < bad_value
    assert _small_fit(_fresh_q(), 3, **none)["restarted"] is False
    for warm, restart, taken in ((bad, good, True), (good, bad, False), (good, good, False)):
        q = models.LinearGaussianQ(good.C.shape[1], good.C.shape[0])
        q.load_state_dict(warm.state_dict())
        fit = _small_fit(q, 3, restart=restart.state_dict(), **none)
        kept = restart if taken else warm
        assert fit["restarted"] is taken and fit["heldout"] == (good_value if kept is good else bad_value)
        z = torch.randn(7, good.C.shape[1], generator=torch.Generator().manual_seed(9), dtype=torch.float64)
        for mine, theirs in zip(q(z), kept(z)):  # the function kept (fit_input renormalises its input)
            torch.testing.assert_close(mine, theirs)
    broken = models.LinearGaussianQ(good.C.shape[1], good.C.shape[0])
    with torch.no_grad():
        broken.e.fill_(float("nan"))
    fit = _small_fit(broken, 3, restart=good.state_dict(), **none)
    assert fit["restarted"] is True and fit["heldout"] == good_value


def test_the_record_names_its_objective_and_times_the_whole_fit():
    import time

    begun = time.perf_counter()
    fit = _small_fit(_fresh_q(), 3, "forward")
    took = time.perf_counter() - begun
    assert fit["objective"] == "forward" and "warm_start" not in fit
    assert 0.0 < fit["seconds"] <= took


def test_no_gain_at_all_is_not_an_improvement_even_at_tol_0():
    """A learning rate far below float64's resolution leaves q's held-out loss exactly unchanged (gain 0,
    se 0): with tol = 0 that is still no improvement, so the rate halves ``decays`` times and q has
    converged at the first checks, not run on to the cap."""
    params = dataclasses.replace(SMALL, steps=400, lr=1e-300, tol=0.0, decays=2)
    fit = _small_fit(_fresh_q(), 3, "forward", params)
    assert fit["converged"] and fit["steps_used"] == 3 * params.window
    assert [row[1] for row in fit["curve"]] == [fit["heldout"]] * 4 and [row[2] for row in fit["curve"]] == [0.0] * 4


def test_an_unknown_objective_is_refused():
    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    with pytest.raises(ValueError, match=r"^unknown q objective 'reverse'; one of elbo, forward$"):
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
