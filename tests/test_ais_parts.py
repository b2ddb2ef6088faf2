"""The annealed bounds' parts: the initial distribution q0(v|z) = mean + L u (``ais.Start`` and its
maps), the HMC transition, the step sizes' interpolation and, with transitions scripted, the
chains' sums (``anneal``) and the pilot's adaptation (``tune``), each against an independent
computation (explicit algebra, torch.distributions, scipy's multivariate t, autograd, numpy's
``interp``) or a law it must keep (HMC leaves pi_beta invariant, Neal 2011)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from ibcheck.estimators import ais
from ibcheck.estimators.common import generator_for, summarize
from ibcheck.gaussian import rsample, standard_normal

N, K = 3, 2
# the statistical checks below judge means of plain terms (not informations) with the suite's match rule,
# which reads only their value, se and n: "I_XZ" is just the summary's required target field


def _start(kind: str, tails: int = 0) -> ais.Start:
    """A start of n = 3 z in k = 2 dimensions: diagonal (standard deviations) or full (Cholesky factors)."""
    g = torch.Generator().manual_seed(7)
    mean = torch.randn(N, K, generator=g, dtype=torch.float64)
    if kind == "diagonal":
        return ais.Start(mean, 0.5 + torch.rand(N, K, generator=g, dtype=torch.float64), tails)
    lower = torch.tril(torch.randn(N, K, K, generator=g, dtype=torch.float64), diagonal=-1)
    return ais.Start(mean, lower + torch.diag_embed(0.5 + torch.rand(N, K, generator=g, dtype=torch.float64)), tails)


def _u(chains: int = 4) -> torch.Tensor:
    return torch.randn(N, chains, K, generator=torch.Generator().manual_seed(8), dtype=torch.float64)


@pytest.mark.parametrize("kind", ["diagonal", "full"])
def test_v_is_mean_plus_scale_times_u_and_u_its_inverse(kind):
    start, u = _start(kind), _u()
    v = ais.to_v(start, u)
    L = torch.diag_embed(start.scale) if kind == "diagonal" else start.scale
    expected = start.mean[:, None, :] + torch.einsum("nij,ncj->nci", L, u)
    torch.testing.assert_close(v, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ais.to_u(start, v), u, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["diagonal", "full"])
def test_log_det_is_the_log_determinant_of_the_scale(kind):
    start = _start(kind)
    L = torch.diag_embed(start.scale) if kind == "diagonal" else start.scale
    sign, logabsdet = torch.linalg.slogdet(L)
    assert bool((sign > 0).all())
    torch.testing.assert_close(ais.log_det(start), logabsdet, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tails", [0, 3, 7])
def test_log_q0_is_the_standard_density_of_u_with_its_gradient(tails):
    """tails = 0: the standard normal in k dimensions; tails = nu > 0: the standard multivariate t
    with nu degrees of freedom (scipy's multivariate_t, identity shape). The gradient is autograd's."""
    start = _start("full", tails)
    u = _u(5).requires_grad_(True)
    value, grad = ais.log_q0(start, u)
    if tails:
        law = sps.multivariate_t(loc=np.zeros(K), shape=np.eye(K), df=tails)
        expected = torch.as_tensor(law.logpdf(u.detach().reshape(-1, K).numpy()).reshape(N, 5))
    else:
        normal = torch.distributions.MultivariateNormal(torch.zeros(K, dtype=torch.float64),
                                                        torch.eye(K, dtype=torch.float64))
        expected = normal.log_prob(u.detach())
    torch.testing.assert_close(value.detach(), expected, rtol=1e-10, atol=1e-10)
    (autograd,) = torch.autograd.grad(value.sum(), u)
    torch.testing.assert_close(grad.detach(), autograd, rtol=1e-10, atol=1e-10)


def test_gaussian_draws_of_u_are_the_generators_standard_normal_draws():
    start = _start("diagonal")
    draws = ais.sample_u(start, 4, generator_for(1, "cpu"))
    assert draws.dtype == torch.float64
    assert torch.equal(draws, standard_normal((N, 4, K), generator_for(1, "cpu"), "cpu", torch.float64))


def test_t_draws_of_u_come_from_the_generator_alone():
    start = _start("full", tails=4)
    state = torch.get_rng_state()
    first = ais.sample_u(start, 6, generator_for(2, "cpu"))
    assert torch.equal(torch.get_rng_state(), state), "drawn from torch's global stream"
    assert first.dtype == torch.float64 and first.shape == (N, 6, K)
    assert torch.equal(first, ais.sample_u(start, 6, generator_for(2, "cpu")))


@pytest.mark.statistical
def test_t_draws_of_u_follow_the_multivariate_t(stat, seed):
    """With nu = 5 tails, 100,000 draws in k = 2: the first coordinate's indicator of u_1 <= 1.2 has
    mean P(t_5 <= 1.2), and |u|^2 / k <= 1 has mean P(F(k, nu) <= 1), which holds only when every
    coordinate of a draw shares one chi-square: a coordinate-wise t gives 0.548 against 0.569, 13 of
    this check's standard errors."""
    nu = 5
    start = ais.Start(torch.zeros(50, K, dtype=torch.float64), torch.ones(50, K, dtype=torch.float64), nu)
    u = ais.sample_u(start, 2000, generator_for(seed, "cpu")).reshape(-1, K)
    marginal = (u[:, 0] <= 1.2).double()
    radial = ((u * u).sum(-1) / K <= 1.0).double()
    for terms, expected, what in ((marginal, sps.t.cdf(1.2, nu), "u_1 <= 1.2"),
                                  (radial, sps.f.cdf(1.0, K, nu), "|u|^2 / k <= 1")):
        stat.matches(summarize("sample_u", "I_XZ", "match", terms, seed, {}, 0.0), float(expected),
                     label=f"multivariate t_{nu} draws: P({what})")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_step_sizes_interpolate_their_log_linearly_and_stay_constant_beyond_the_ends(dtype):
    """The pilot's temperatures are float64 (``ais.schedule``); in a float32 run the chains' temperatures
    and log step sizes are float32, and so are the step sizes."""
    grid = torch.tensor([0.1, 0.3, 0.8, 0.9], dtype=torch.float64)
    log_steps = torch.randn(2, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    beta = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.55, 0.85, 0.9, 1.0], dtype=torch.float64)
    found = ais.step_sizes_at(ais.StepSizes(grid, log_steps.to(dtype)), beta.to(dtype))
    expected = np.exp([np.interp(beta.numpy(), grid.numpy(), row) for row in log_steps.numpy()])
    assert found.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(found, torch.as_tensor(expected, dtype=dtype), rtol=tol, atol=0)


# ---------------------------------------------------------------- the HMC transition

# gamma in u coordinates: N(u; MU, SIGMA), against q0's N(0, I); pi_beta is then Gaussian with
# precision (1 - beta) I + beta SIGMA^-1 and mean its inverse times beta SIGMA^-1 MU
MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
SIGMA = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=torch.float64)
_GAMMA = torch.distributions.MultivariateNormal(MU, SIGMA)


def _log_gamma(u: torch.Tensor) -> torch.Tensor:
    return _GAMMA.log_prob(u)


def _pi(beta: float) -> torch.distributions.MultivariateNormal:
    precision = (1 - beta) * torch.eye(2, dtype=torch.float64) + beta * torch.linalg.inv(SIGMA)
    covariance = torch.linalg.inv(precision)
    return torch.distributions.MultivariateNormal(covariance @ (beta * torch.linalg.solve(SIGMA, MU)), covariance)


def _chains(u: torch.Tensor) -> ais.State:
    return ais.state_at(_log_gamma, u)


def _standard_start(n: int) -> ais.Start:
    return ais.Start(torch.zeros(n, 2, dtype=torch.float64), torch.ones(n, 2, dtype=torch.float64))


@pytest.mark.statistical
def test_hmc_leaves_its_tempered_target_invariant(stat, seed):
    """Chains drawn exactly from pi_0.6 stay distributed as pi_0.6 after three transitions of steps
    large enough (0.6, 4 leapfrog steps) that the Metropolis correction rejects a part of them: the
    means of u_1, u_2, u_1^2 and u_1 u_2 over 40,000 chains match pi_0.6's."""
    beta, n, chains = 0.6, 200, 200
    law = _pi(beta)
    generator = generator_for(seed, "cpu")
    u = rsample(law.loc.expand(n, 2), torch.linalg.cholesky(law.covariance_matrix).expand(n, 2, 2), generator,
                draws=chains)
    state, start = _chains(u), _standard_start(n)
    step = torch.full((n, chains), 0.6, dtype=torch.float64)
    accepted = []
    for _ in range(3):
        state, accept = ais.hmc(state, start, _log_gamma, torch.tensor(beta, dtype=torch.float64), step, 4, generator)
        accepted.append(float(accept.mean()))
    assert 0.2 < min(accepted) and max(accepted) < 0.98, accepted  # the correction has work to do
    flat = state.u.reshape(-1, 2)
    cov, mean = law.covariance_matrix, law.loc
    for terms, expected, what in ((flat[:, 0], mean[0], "u_1"), (flat[:, 1], mean[1], "u_2"),
                                  (flat[:, 0] ** 2, cov[0, 0] + mean[0] ** 2, "u_1^2"),
                                  (flat[:, 0] * flat[:, 1], cov[0, 1] + mean[0] * mean[1], "u_1 u_2")):
        stat.matches(summarize("hmc", "I_XZ", "match", terms, seed, {}, 0.0), float(expected),
                     label=f"hmc at beta = {beta}: E[{what}]")


def test_hmc_with_small_steps_accepts_almost_every_proposal():
    """Leapfrog's energy error is of order step^2 on a smooth target: at step 0.02 (5 leapfrog steps,
    beta = 0.5) the mean acceptance probability is above 0.999. A drift from the wrong potential
    (a sign or an operation of its gradient) makes the error of order step instead."""
    n, chains = 50, 40
    u = standard_normal((n, chains, 2), generator_for(3, "cpu"), "cpu", torch.float64)
    step = torch.full((n, chains), 0.02, dtype=torch.float64)
    _, accept = ais.hmc(_chains(u), _standard_start(n), _log_gamma, torch.tensor(0.5, dtype=torch.float64), step, 5,
                        generator_for(4, "cpu"))
    assert float(accept.mean()) > 0.999


def test_hmc_returns_the_state_at_its_own_positions():
    """Each chain either moves, with log gamma and its gradient at its new position, or keeps its state."""
    n, chains = 20, 50
    before = _chains(standard_normal((n, chains, 2), generator_for(5, "cpu"), "cpu", torch.float64))
    step = torch.full((n, chains), 0.8, dtype=torch.float64)
    after, _ = ais.hmc(before, _standard_start(n), _log_gamma, torch.tensor(1.0, dtype=torch.float64), step, 3,
                       generator_for(6, "cpu"))
    again = _chains(after.u)
    torch.testing.assert_close(after.log_gamma, again.log_gamma, rtol=0, atol=0)
    torch.testing.assert_close(after.grad, again.grad, rtol=0, atol=0)
    stayed = (after.u == before.u).all(-1)
    assert 0 < int(stayed.sum()) < stayed.numel()  # some proposals taken, some refused


def test_hmc_refuses_every_proposal_where_log_gamma_is_not_finite():
    """log gamma is finite only on the line u_1 = 0, where the chains start (-inf beside it for u_2 > 0,
    NaN for u_2 <= 0): every proposal leaves the line, so each is refused with acceptance probability
    exactly 0 (never NaN, which would poison the recorded acceptance rate) and every chain stays."""
    def target(u):
        outside = torch.where(u[..., 1] > 0, -math.inf, math.nan)
        return torch.where(u[..., 0] == 0, _log_gamma(u), outside.to(u.dtype))

    n, chains = 10, 40
    u = standard_normal((n, chains, 2), generator_for(7, "cpu"), "cpu", torch.float64)
    u[..., 0] = 0.0
    before = ais.state_at(target, u)
    step = torch.full((n, chains), 0.5, dtype=torch.float64)
    after, accept = ais.hmc(before, _standard_start(n), target, torch.tensor(0.7, dtype=torch.float64), step, 2,
                            generator_for(8, "cpu"))
    assert torch.equal(accept, torch.zeros_like(accept))
    assert torch.equal(after.u, before.u) and torch.equal(after.log_gamma, before.log_gamma)
    assert torch.equal(after.grad, before.grad)


def test_hmc_draws_its_momenta_and_uniforms_from_its_generator_alone():
    n, chains = 5, 8
    before = _chains(standard_normal((n, chains, 2), generator_for(9, "cpu"), "cpu", torch.float64))
    step = torch.full((n, chains), 0.8, dtype=torch.float64)
    beta = torch.tensor(0.5, dtype=torch.float64)
    state = torch.get_rng_state()
    first = ais.hmc(before, _standard_start(n), _log_gamma, beta, step, 3, generator_for(10, "cpu"))
    assert torch.equal(torch.get_rng_state(), state), "drawn from torch's global stream"
    again = ais.hmc(before, _standard_start(n), _log_gamma, beta, step, 3, generator_for(10, "cpu"))
    assert torch.equal(first[0].u, again[0].u) and torch.equal(first[1], again[1])


# ---------------------------------------------------------------- the chains, with a scripted transition


class _ScriptedMoves:
    """A stand-in for ``ais.hmc`` that moves every chain by +1 in each coordinate, accepts with a
    set probability (a number, or one per z: (n, 1)) and records the temperatures, step sizes,
    starts, leapfrog counts and generators it was called with."""

    def __init__(self, accept: float | torch.Tensor = 1.0):
        self.accept, self.betas, self.steps, self.passed = accept, [], [], []

    def __call__(self, state, start, log_target, beta, step, leapfrog, generator):
        self.betas.append(beta.expand(step.shape).clone())
        self.steps.append(step.clone())
        self.passed.append((start, leapfrog, generator))
        accept = torch.as_tensor(self.accept, dtype=step.dtype).expand(step.shape).clone()
        return ais.state_at(log_target, state.u + 1.0), accept


def _log_weight_term(start: ais.Start, u: torch.Tensor) -> torch.Tensor:
    """log gamma(u) - log q0(v(u)): q0's density of v, its log-determinant included. u: (n, C, k)."""
    return _log_gamma(u) - (ais.log_q0(start, u)[0] - ais.log_det(start).unsqueeze(1))


def test_anneal_adds_each_directions_increments_in_the_order_of_bounds_md_3c(monkeypatch):
    """T = 3 on the schedule 0, 0.2, 0.7, 1 with transitions scripted to move by +1: with f(u) =
    log gamma(u) - log q0(v(u)) (q0's density of v, its log-determinant included), the forward
    chains add 0.2 f(u0) + 0.5 f(u0 + 1) + 0.3 f(u0 + 2), moving at 0.2 then 0.7; the reverse chain
    from the generating u_g adds 0.3 f(u_g) + 0.5 f(u_g + 1) + 0.2 f(u_g + 2), moving at 0.7 then 0.2."""
    moves = _ScriptedMoves(accept=0.75)
    monkeypatch.setattr(ais, "hmc", moves)
    start = _start("full")
    betas = torch.tensor([0.0, 0.2, 0.7, 1.0], dtype=torch.float64)
    steps = ais.StepSizes(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.log(torch.full((N, 2), 0.3,
                                                                                              dtype=torch.float64)))
    generating = torch.tensor([[0.5, -1.0], [0.0, 0.2], [1.5, 0.3]], dtype=torch.float64)
    generator = generator_for(11, "cpu")
    chains = ais.anneal(start, _log_gamma, betas, 4, generating, steps, 3, generator)

    def f(u):
        return _log_weight_term(start, u)

    u0 = ais.sample_u(start, 4, generator_for(11, "cpu"))
    forward = 0.2 * f(u0) + 0.5 * f(u0 + 1) + 0.3 * f(u0 + 2)
    ug = generating.unsqueeze(1)
    reverse = (0.3 * f(ug) + 0.5 * f(ug + 1) + 0.2 * f(ug + 2))[:, 0]
    torch.testing.assert_close(chains.log_w, forward, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(chains.log_w_rev, reverse, rtol=1e-12, atol=1e-12)
    assert chains.acceptance == pytest.approx(0.75, rel=1e-12)
    expected_betas = [torch.tensor([0.2] * 4 + [0.7], dtype=torch.float64),
                      torch.tensor([0.7] * 4 + [0.2], dtype=torch.float64)]
    for called, expected in zip(moves.betas, expected_betas, strict=True):
        torch.testing.assert_close(called, expected.expand(N, 5), rtol=0, atol=1e-15)
    for called in moves.steps:
        torch.testing.assert_close(called, torch.full((N, 5), 0.3, dtype=torch.float64), rtol=1e-12, atol=0)
    assert all(a is start and b == 3 and c is generator for a, b, c in moves.passed)
    # forward chains alone: the same forward sums, no reverse chain
    alone = ais.anneal(start, _log_gamma, betas, 4, None, steps, 3, generator_for(11, "cpu"))
    torch.testing.assert_close(alone.log_w, forward, rtol=1e-12, atol=1e-12)
    assert alone.log_w_rev is None and alone.acceptance == pytest.approx(0.75, rel=1e-12)
    with pytest.raises(AssertionError, match=r"^transitions need step sizes \(tune\)$"):
        ais.anneal(start, _log_gamma, betas, 4, None, None, 3, generator_for(11, "cpu"))


def test_anneal_at_one_step_is_one_importance_weight_and_makes_no_transition(monkeypatch):
    moves = _ScriptedMoves()
    monkeypatch.setattr(ais, "hmc", moves)
    start = _start("diagonal")
    generating = torch.zeros(N, K, dtype=torch.float64)
    chains = ais.anneal(start, _log_gamma, ais.schedule(1, "sigmoid"), 3, generating, None, 3, generator_for(12, "cpu"))
    u0 = ais.sample_u(start, 3, generator_for(12, "cpu"))
    torch.testing.assert_close(chains.log_w, _log_weight_term(start, u0), rtol=1e-12, atol=1e-12)
    assert moves.betas == [] and np.isnan(chains.acceptance)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tune_moves_each_log_step_by_the_rate_times_its_own_acceptance_gap(monkeypatch, dtype):
    """Scripted acceptance a_i for the pilot chains of z_i (1, 0 and 0.65 here): after each of the
    ``rounds`` transitions at each temperature, z_i's log step size moves by ADAPT_RATE (a_i -
    ACCEPT_TARGET), from log FIRST_STEP, within STEP_RANGE (the first two rows reach its ends); the
    record holds it after each temperature's last round, at the schedule's temperatures but b_0, in
    the start's dtype. The pilot starts from q0 draws of the caller's generator and passes the start,
    leapfrog and generator to every transition."""
    rates = torch.tensor([1.0, 0.0, 0.65], dtype=dtype)
    moves = _ScriptedMoves(rates.unsqueeze(1))
    monkeypatch.setattr(ais, "hmc", moves)
    base = _start("diagonal")
    start = ais.Start(base.mean.to(dtype), base.scale.to(dtype))
    temperatures, rounds, generator = 5, 3, generator_for(13, "cpu")
    state = torch.get_rng_state()
    steps = ais.tune(start, _log_gamma, "sigmoid", temperatures, 7, 2, generator, rounds=rounds)
    assert torch.equal(torch.get_rng_state(), state), "drawn from torch's global stream"
    assert steps.betas.dtype == dtype and steps.log_steps.dtype == dtype
    torch.testing.assert_close(steps.betas, ais.schedule(temperatures, "sigmoid", dtype)[1:], rtol=0, atol=0)
    low, high = (np.log(s) for s in ais.STEP_RANGE)
    expected = []
    for rate in rates.tolist():
        log_step, row = np.log(ais.FIRST_STEP), []
        for _ in range(temperatures):
            for _ in range(rounds):
                log_step = float(np.clip(log_step + ais.ADAPT_RATE * (rate - ais.ACCEPT_TARGET), low, high))
            row.append(log_step)
        expected.append(row)
    assert expected[0][-1] == high and expected[1][-1] == low
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(steps.log_steps, torch.tensor(expected, dtype=dtype), rtol=0, atol=tol)
    assert len(moves.betas) == temperatures * rounds
    assert all(a is start and b == 2 and c is generator for a, b, c in moves.passed)
    for i, (beta, step) in enumerate(zip(moves.betas, moves.steps)):
        assert step.shape == (N, 7)
        torch.testing.assert_close(beta, steps.betas[i // rounds].expand(N, 7), rtol=0, atol=0)
