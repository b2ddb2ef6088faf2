"""The annealed teacher bounds (``teacher_ais`` above, ``teacher_rais`` below; bounds.md section 3c):
exact where the start is the exact posterior, T = 1 equal to ``teacher_iw`` (data prior) and
``teacher_riw`` on the same draws, valid on the built-in suite and moving toward I(X;Z) as T grows,
with kernels that never see the generating z_v, and the planted bugs the issue names caught."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from ibcheck import estimators
from ibcheck.analytic import exact
from ibcheck.estimators import ais, teacher_ais
from ibcheck.estimators.common import generator_for
from ibcheck.estimators.samplers import FiniteSampler, ModelPopulation
from ibcheck.estimators.teacher_ais import TeacherAISParams
from ibcheck.estimators.teacher_bounds import TeacherRIWParams, log_weights, riw_terms
from ibcheck.gaussian import diag_entropy, diag_log_prob, rsample
from ibcheck.interface import Batch, Context
from ibcheck.pipeline.networks import MLPCholeskyInferenceNet, MLPEncoder, MLPInferenceNet, MLPTeacher

from helpers import linear, suite_case, trained_context

PAIR = ("teacher_ais", "teacher_rais")
# suite cases with a Gaussian data prior, where p(z_v|z) is Gaussian and known in closed form
GAUSSIAN_PRIOR = ("deterministic-teacher", "noisy-teacher", "shifted-data-prior", "teacher-15-nats")


class PosteriorQ(torch.nn.Module):
    """The exact posterior p(z_v|z) of a linear-Gaussian case with a Gaussian data prior, x-noise folded
    in: N(S (M^T Sn^-1 (z - h) + Sv^-1 mv), S), S = (Sv^-1 + M^T Sn^-1 M)^-1 (bounds.md section 3b),
    with its covariance scaled by ``widen`` and its mean moved by ``shift`` (a poorer start)."""

    def __init__(self, case, widen: float = 1.0, shift: float = 0.0):
        super().__init__()
        M, h = case.A @ case.W, case.A @ case.c + case.b
        Sn = case.noise_std**2 * case.A @ case.A.T + np.diag(case.std**2)
        Sv_inv, Sn_inv = np.linalg.inv(case.prior_cov), np.linalg.inv(Sn)
        S = np.linalg.inv(Sv_inv + M.T @ Sn_inv @ M)
        self.C = torch.as_tensor(S @ M.T @ Sn_inv)
        self.e = torch.as_tensor(S @ (Sv_inv @ case.prior_mean - M.T @ Sn_inv @ h) + shift)
        self.L = torch.as_tensor(np.linalg.cholesky(widen * S))

    def forward(self, z):
        return z @ self.C.T + self.e, self.L.expand(len(z), -1, -1)


def exact_log_marginal(case, z: torch.Tensor) -> torch.Tensor:
    """log p(z) of a Gaussian-prior case: N(z; M mv + h, M Sv M^T + Sn)."""
    mom = exact.moments(case)
    chol = torch.as_tensor(np.linalg.cholesky(mom.Sz))
    white = torch.linalg.solve_triangular(chol, (z - torch.as_tensor(mom.mz)).T, upper=False).T
    return -0.5 * (white * white).sum(-1) - torch.diagonal(chol).log().sum() - 0.5 * case.m * math.log(2 * math.pi)


def _draw(encoder, sampler, n: int, generator):
    batch = sampler.sample(n, generator)
    mean, std = encoder(batch.x)
    z = rsample(mean, std, generator)
    return batch, z, diag_log_prob(z, mean, std), diag_entropy(std)


def _chunk(case, encoder, sampler, q, params, T, seed, n=200, lower=True):
    batch, z, log_px, _ = _draw(encoder, sampler, n, generator_for(seed, "cpu"))
    log_lik = teacher_ais.latent_likelihood(encoder, sampler.teacher)
    found = teacher_ais.chunk_bracket(q, params, ais.schedule(T, params.schedule), batch, z, log_px,
                                      generator_for(seed + 1, "cpu"), sampler.log_prior, log_lik, lower)
    return z, log_px, found


# ---------------------------------------------------------------- exact, deterministic checks


@pytest.mark.parametrize("name", GAUSSIAN_PRIOR)
@pytest.mark.parametrize("T", [1, 2, 7])
@pytest.mark.parametrize("tails", [0, 4])
def test_from_the_exact_posterior_every_weight_is_p_z(name, T, tails):
    """With q0 = p(z_v|z) (Gaussian start), gamma / q0 = p(z) at every v, so every chain's log W is
    log p(z) whatever the transitions do, and both ends equal log p(z|x) - log p(z) per z. A schedule
    whose increments do not sum to 1, a wrong Jacobian or a wrong p(z|z_v) breaks this. With t
    tails the start is not the posterior, and only the ordering upper >= lower - noise is checked."""
    case = suite_case(name)
    encoder, sampler = linear(case)
    params = TeacherAISParams(K=3, tails=tails, pilot_steps=4)
    z, log_px, found = _chunk(case, encoder, sampler, PosteriorQ(case), params, T, seed=T)
    assert found.lower is not None
    if tails:
        assert torch.isfinite(found.upper).all() and torch.isfinite(found.lower).all()
        return
    truth = log_px - exact_log_marginal(case, z)
    torch.testing.assert_close(found.upper, truth, rtol=0, atol=1e-8 * (1 + case.m))
    torch.testing.assert_close(found.lower, truth, rtol=0, atol=1e-8 * (1 + case.m))


@pytest.mark.parametrize("kind", ais.SCHEDULES)
@pytest.mark.parametrize("T", [1, 2, 3, 10, 100])
def test_the_schedules_run_from_0_to_1_and_increase(kind, T):
    b = ais.schedule(T, kind)
    assert b.shape == (T + 1,) and b[0] == 0.0 and b[-1] == 1.0
    assert bool((b[1:] > b[:-1]).all())


@pytest.mark.parametrize("T", [1, 2, 7, 100])
def test_the_schedules_are_their_formulas_in_float64(T):
    """sigmoid: b_t = (s(t) - s(0)) / (s(T) - s(0)), s(t) = sigmoid(4 (2t/T - 1)) (Grosse et al. 2015);
    geometric: b_0 = 0, b_t = 1e-4^((T - t)/(T - 1)) (b_1 = 1 at T = 1); written out in numpy, float64."""
    t = np.arange(T + 1, dtype=np.float64)
    s = 1.0 / (1.0 + np.exp(-4.0 * (2.0 * t / T - 1.0)))
    sigmoid = (s - s[0]) / (s[-1] - s[0])
    geometric = np.concatenate([[0.0], 1e-4 ** ((T - t[1:]) / (T - 1))]) if T > 1 else np.array([0.0, 1.0])
    for kind, expected in (("sigmoid", sigmoid), ("geometric", geometric)):
        b = ais.schedule(T, kind)
        assert b.dtype == torch.float64
        np.testing.assert_allclose(b.numpy(), expected, rtol=1e-13, atol=0)
        assert ais.schedule(T, kind, torch.float32).dtype == torch.float32


def test_a_schedule_refuses_no_steps_and_unknown_kinds_by_name():
    with pytest.raises(ValueError, match="^an annealing schedule needs T >= 1 steps, got 0$"):
        ais.schedule(0, "sigmoid")
    with pytest.raises(ValueError, match="^unknown schedule 'linear'; one of sigmoid, geometric$"):
        ais.schedule(4, "linear")


@pytest.mark.parametrize("T", [2, 5])
def test_each_transition_leaves_the_temperature_after_its_increment_invariant(T, monkeypatch):
    """Forward chains move by T_j (invariant for pi at b_j) after increment j, j = 1..T-1; the reverse
    chain by T_{T-j} after increment T+1-j. A kernel one temperature behind is an off-by-one that the
    weights alone hardly show, so the temperatures handed to HMC are checked directly."""
    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    seen, honest = [], ais.hmc
    monkeypatch.setattr(ais, "hmc", lambda state, start, target, beta, *rest: (seen.append(beta.clone()),
                                                                                honest(state, start, target, beta,
                                                                                       *rest))[1])
    params = TeacherAISParams(K=2, pilot_steps=3)
    b = ais.schedule(T, params.schedule)
    _chunk(case, encoder, sampler, PosteriorQ(case, widen=2.0), params, T, seed=0, n=5)
    scored = [beta for beta in seen if beta.numel() == params.K + 1]
    assert len(scored) == T - 1
    for j, beta in enumerate(scored, start=1):
        torch.testing.assert_close(beta[:-1], b[j].expand(params.K), rtol=0, atol=0)
        torch.testing.assert_close(beta[-1], b[T - j], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["deterministic-teacher", "high-mi", "hand-1d"])
def test_T_1_is_teacher_iw_with_the_data_prior_and_teacher_riw_on_the_same_draws(name):
    """At T = 1 (no transition) the forward chains are K importance weights drawn as teacher_iw draws
    them, and the reverse chain is the generating sample's weight, as teacher_riw takes it."""
    case = suite_case(name)
    encoder, sampler = linear(case)
    context = trained_context(case, encoder, sampler, 0, steps=200)
    q, K, seed = context.q_forward, 10, 7
    params = TeacherAISParams(K=K)
    batch, z, log_px, _ = _draw(encoder, sampler, 300, generator_for(seed, "cpu"))
    log_lik = teacher_ais.latent_likelihood(encoder, sampler.teacher)
    found = teacher_ais.chunk_bracket(q, params, ais.schedule(1, "sigmoid"), batch, z, log_px,
                                      generator_for(1, "cpu"), sampler.log_prior, log_lik, True)
    log_w = log_weights(encoder, sampler.teacher, q, z, K, generator_for(1, "cpu"), sampler.log_prior)
    iw_log_mean = torch.logsumexp(log_w, dim=1) - math.log(K)
    torch.testing.assert_close(log_px - found.upper, iw_log_mean, rtol=0, atol=1e-9)
    # teacher_riw draws z itself, then its proposals: the same stream as the data, z, then q0's draws
    g = generator_for(seed, "cpu")
    riw = riw_terms(encoder, sampler.teacher, q, sampler.sample(300, g), K, g, sampler.log_prior)
    g = generator_for(seed, "cpu")
    batch, z, log_px, _ = _draw(encoder, sampler, 300, g)
    found = teacher_ais.chunk_bracket(q, params, ais.schedule(1, "sigmoid"), batch, z, log_px, g,
                                      sampler.log_prior, log_lik, True)
    torch.testing.assert_close(found.lower, riw, rtol=0, atol=1e-9)


def test_T_1_through_the_registry_equals_teacher_riw_and_teacher_iw():
    """The same seed through ``estimators.run``: teacher_rais at T = 1 is teacher_riw to round-off,
    and teacher_ais differs from teacher_iw (data prior) only by log p(z|x) + H[p(z|x)], mean 0."""
    case = suite_case("deterministic-teacher")
    encoder, sampler = linear(case)
    context = trained_context(case, encoder, sampler, 0, steps=200)
    pair = estimators.run_together(PAIR, encoder, sampler, TeacherAISParams(T=(1,), K=10, n=500), seed=3,
                                   context=context)
    riw = estimators.run_one("teacher_riw", encoder, sampler, TeacherRIWParams(K=(10,), n=500), seed=3,
                             context=context)
    assert pair["teacher_rais"][0].value == pytest.approx(riw.value, abs=1e-10)
    assert pair["teacher_rais"][0].stderr == pytest.approx(riw.stderr, abs=1e-10)
    assert pair["teacher_ais"][0].params["T"] == 1 and math.isnan(pair["teacher_ais"][0].params["acceptance"])


@pytest.mark.parametrize("kind", ["diag", "chol"])
def test_neural_networks_T_1_matches_the_importance_weights(kind):
    """The same equality through MLP networks (a deterministic neural teacher, float32)."""
    teacher, encoder = MLPTeacher((3, 16, 12), seed=1), MLPEncoder((12, 16), latent=4, seed=2, std_shift=1.0)
    q = (MLPInferenceNet if kind == "diag" else MLPCholeskyInferenceNet)((4, 16), 3, seed=3)
    population = ModelPopulation(teacher, 3, "cpu")
    batch, z, log_px, _ = _draw(encoder, population, 64, generator_for(0, "cpu"))
    log_lik = teacher_ais.latent_likelihood(encoder, teacher)
    with torch.no_grad():
        found = teacher_ais.chunk_bracket(q, TeacherAISParams(K=5), ais.schedule(1, "sigmoid"), batch, z, log_px,
                                          generator_for(1, "cpu"), population.log_prior, log_lik, True)
        log_w = log_weights(encoder, teacher, q, z, 5, generator_for(1, "cpu"), population.log_prior)
    torch.testing.assert_close(log_px - found.upper, torch.logsumexp(log_w, 1) - math.log(5), rtol=0, atol=1e-4)


def test_refusals_are_one_line_errors():
    case = suite_case("deterministic-teacher")
    encoder, sampler = linear(case)
    context = trained_context(case, encoder, sampler, 0, steps=50)
    finite = FiniteSampler(sampler.sample(50, torch.Generator().manual_seed(0)).x)
    with pytest.raises(ValueError, match="prior of known density"):
        estimators.run_together(PAIR, encoder, finite, TeacherAISParams(T=(1,), n=10), seed=0, context=context)
    binary = MLPTeacher((3, 8, 6), seed=0, binary=True)
    net = MLPEncoder((6, 8), latent=2, seed=0)
    q = MLPInferenceNet((2, 8), 3, seed=0)
    stochastic = Context(teacher=binary, q_forward=q)
    with pytest.raises(ValueError, match="stochastic neural teacher") as err:
        estimators.run_together(PAIR, net, ModelPopulation(binary, 3, "cpu"), TeacherAISParams(T=(2,), n=4),
                                seed=0, context=stochastic)
    assert "\n" not in str(err.value)


def test_a_linear_teacher_s_p_z_given_zv_with_another_encoder():
    """Behind a deterministic linear teacher, an encoder that is not a LinearEncoder (here the same
    map hidden in a function) goes through the encoder itself and gives the closed form's value; behind
    a noisy one, whose x-noise only a linear encoder integrates in closed form, it is refused in one
    line."""
    generator = torch.Generator().manual_seed(3)

    def parts(name):
        case = suite_case(name)
        encoder, sampler = linear(case)
        z = torch.randn(5, case.m, generator=generator, dtype=torch.float64)
        z_v = torch.randn(5, 4, case.k, generator=generator, dtype=torch.float64)
        return sampler.teacher, encoder, (lambda x: encoder(x)), z, z_v

    teacher, encoder, hidden, z, z_v = parts("deterministic-teacher")
    assert teacher.deterministic
    torch.testing.assert_close(teacher.latent_log_lik(hidden, z, z_v), teacher.latent_log_lik(encoder, z, z_v))
    teacher, encoder, hidden, z, z_v = parts("noisy-teacher")
    assert not teacher.deterministic
    with pytest.raises(ValueError, match=r"^p\(z\|z_v\) of a noisy linear teacher has a closed form only "
                                         r"for a linear encoder$"):
        teacher.latent_log_lik(hidden, z, z_v)


# ---------------------------------------------------------------- the kernels never see the generating z_v


class Relabelled:
    """The case's data with every generating z_v moved by ``offset`` (x and z unchanged), and the
    last batch kept in ``last``."""

    def __init__(self, sampler, offset: float):
        self.sampler, self.offset, self.last = sampler, offset, None

    def sample(self, n, generator):
        batch = self.sampler.sample(n, generator)
        self.last = Batch(x=batch.x, z_v=batch.z_v + self.offset, y=batch.y)
        return self.last

    def log_prior(self, z_v):
        return self.sampler.log_prior(z_v)


def _forward_ends(sampler, encoder, q, seed):
    params = TeacherAISParams(T=(6,), K=3, n=40, pilot_steps=4)
    log_lik = teacher_ais.latent_likelihood(encoder, sampler.sampler.teacher)
    return teacher_ais.bracket_terms(encoder, sampler, q, params, 6, 40, generator_for(seed, "cpu"),
                                     sampler.log_prior, log_lik, True)


def test_the_forward_chains_and_their_kernels_do_not_depend_on_the_generating_zv():
    case = suite_case("high-mi")
    encoder, sampler = linear(case)
    q = PosteriorQ(case, widen=3.0)
    a, b = (_forward_ends(Relabelled(sampler, offset), encoder, q, 5) for offset in (0.0, 0.7))
    torch.testing.assert_close(a.upper, b.upper, rtol=0, atol=0)
    assert not torch.equal(a.lower, b.lower)


@pytest.mark.power
def test_a_kernel_tuned_on_the_generating_zv_is_caught(monkeypatch):
    """Planted: the pilot chains start at the generating z_v. Their step sizes then depend on it,
    and so do the scored forward chains: the invariance above fails."""
    case = suite_case("high-mi")
    encoder, sampler = linear(case)
    q = PosteriorQ(case, widen=3.0)
    holders = [Relabelled(sampler, offset) for offset in (0.0, 0.7)]
    current = {}
    honest = ais.tune

    def planted(start, log_target, kind, temperatures, chains, leapfrog, generator, rounds=2):
        at_generating = ais.to_u(start, current["data"].last.z_v.unsqueeze(1))
        with monkeypatch.context() as patch:  # the pilot chains' draws only, not the scored chains'
            patch.setattr(ais, "sample_u", lambda s, count, g: at_generating.expand(-1, count, -1).clone())
            return honest(start, log_target, kind, temperatures, chains, leapfrog, generator, rounds)

    monkeypatch.setattr(ais, "tune", planted)
    ends = []
    for data in holders:
        current["data"] = data
        ends.append(_forward_ends(data, encoder, q, 5))
    assert not torch.equal(ends[0].upper, ends[1].upper), "a kernel tuned on the generating z_v went unnoticed"


# ---------------------------------------------------------------- statistical: valid, and closing with T


def _poor_context(case, encoder, sampler):
    """A start far from the posterior (covariance x 6, mean moved by 0.5), so that T has work to do."""
    q = PosteriorQ(case, widen=6.0, shift=0.5)
    return Context(teacher=sampler.teacher, q_forward=q, q_forward_fit={})


def _pair(case, encoder, sampler, context, T, n, seed, **more):
    params = TeacherAISParams(T=(T,), K=4, n=n, pilot_steps=8, **more)
    out = estimators.run_together(PAIR, encoder, sampler, params, seed=seed, context=context)
    return out["teacher_ais"][0], out["teacher_rais"][0]


@pytest.mark.statistical
@pytest.mark.parametrize("name", ["noisy-teacher", "shifted-data-prior", "high-mi", "teacher-15-nats",
                                  "ten-classes", "mnist-shaped"])
def test_the_annealed_ends_hold_the_truth(stat, seed, name):
    case = suite_case(name)
    encoder, sampler = linear(case)
    context = (trained_context(case, encoder, sampler, seed, steps=300) if case.labels.kind == "classes"
               else _poor_context(case, encoder, sampler))
    truth = exact.exact_values(case, seed=0)
    for T in (1, 4, 30):
        upper, lower = _pair(case, encoder, sampler, context, T, 600, seed + T)
        stat.upper(upper, truth.I_XZ, truth.I_XZ_se, label=f"{name}: teacher_ais T={T}")
        stat.lower(lower, truth.I_XZ, truth.I_XZ_se, label=f"{name}: teacher_rais T={T}")


@pytest.mark.statistical
@pytest.mark.parametrize("name", ["high-mi", "teacher-15-nats"])
def test_both_ends_move_toward_the_truth_as_T_grows(stat, seed, name):
    """From a poor start the T = 1 bracket is wide; at T = 40 both ends have moved toward I(X;Z),
    each by many of their standard errors (independent draws)."""
    case = suite_case(name)
    encoder, sampler = linear(case)
    context = _poor_context(case, encoder, sampler)
    (up1, low1), (up40, low40) = (_pair(case, encoder, sampler, context, T, 800, seed + T) for T in (1, 40))
    stat.not_below(up1, up40, label=f"{name}: teacher_ais T=1 not below T=40")
    stat.not_below(low40, low1, label=f"{name}: teacher_rais T=40 not below T=1")
    for hi, lo in ((up1, up40), (low40, low1)):
        assert hi.value - lo.value > 6 * math.hypot(hi.stderr, lo.stderr), (hi.value, lo.value)


@pytest.mark.power
def test_a_reverse_chain_started_from_a_q_sample_is_caught(stat, seed, monkeypatch):
    """Planted: the reverse chain starts from a draw of q0 instead of the generating z_v. It is then
    one more forward chain, and the 'lower' bound reads like the upper one, above the truth."""
    case = suite_case("high-mi")
    encoder, sampler = linear(case)
    context = _poor_context(case, encoder, sampler)
    draws = torch.Generator().manual_seed(seed)
    monkeypatch.setattr(ais, "to_u", lambda start, v: ais.sample_u(start, 1, draws))
    _, lower = _pair(case, encoder, sampler, context, 3, 800, seed)
    stat.caught("lower", lower, exact.exact_values(case).I_XZ, "rais from a q sample")


@pytest.mark.power
def test_a_schedule_off_by_one_step_is_caught(monkeypatch):
    """Planted: the temperatures shifted by one step (b_0 = b_1, so that the increments sum to 1 - b_1).
    From the exact posterior the weights must equal p(z) exactly; they do not."""
    case = suite_case("deterministic-teacher")
    encoder, sampler = linear(case)
    honest = ais.schedule
    monkeypatch.setattr(ais, "schedule", lambda T, kind, dtype=torch.float64: torch.cat(
        [honest(T, kind, dtype)[1:], torch.ones(1, dtype=dtype)]))
    z, log_px, found = _chunk(case, encoder, sampler, PosteriorQ(case), TeacherAISParams(K=3, pilot_steps=4), 5, 1)
    truth = log_px - exact_log_marginal(case, z)
    assert float((found.upper - truth).abs().max()) > 1e-3, "a schedule off by one step went unnoticed"


def test_the_doubling_rule_stops_at_the_target_or_at_the_cap():
    case = suite_case("high-mi")
    encoder, sampler = linear(case)
    context = _poor_context(case, encoder, sampler)
    for target, T_max in ((0.05, 64), (1e-9, 8)):
        params = TeacherAISParams(T=(2,), K=3, n=50, pilot_steps=4, target=target, T_max=T_max, select_n=40)
        est = estimators.run_together(PAIR, encoder, sampler, params, seed=1, context=context)["teacher_ais"][0]
        ladder = est.params["ladder"]
        assert [rung[0] for rung in ladder] == [2 * 2**i for i in range(len(ladder))]
        assert est.params["T"] == ladder[-1][0] and est.params["T_start"] == 2
        if est.params["stopped"] == "target":
            assert ladder[-1][1] <= target and all(rung[1] > target for rung in ladder[:-1])
        else:
            assert ladder[-1][0] == T_max and all(rung[1] > target for rung in ladder)
    assert est.params["stopped"] == "cap"


def test_summaries_record_T_and_the_acceptance_rate():
    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    context = _poor_context(case, encoder, sampler)
    upper, lower = _pair(case, encoder, sampler, context, 5, 50, 0)
    for est in (upper, lower):
        assert est.params["T"] == 5 and est.params["K"] == 4 and 0 < est.params["acceptance"] <= 1


def test_no_parameter_gradient_is_touched():
    teacher, encoder = MLPTeacher((3, 16, 12), seed=1), MLPEncoder((12, 16), latent=4, seed=2, std_shift=1.0)
    q = MLPCholeskyInferenceNet((4, 16), 3, seed=3)
    population = ModelPopulation(teacher, 3, "cpu")
    estimators.run_together(PAIR, encoder, population, TeacherAISParams(T=(4,), K=2, n=8, pilot_steps=2), seed=0,
                            context=Context(teacher=teacher, q_forward=q))
    assert all(p.grad is None for m in (teacher, encoder, q) for p in m.parameters())


def test_sizes_are_validated_and_costed():
    from ibcheck.interface import Dims
    dims = Dims(d=784, k=20, m=40, encoder_flops=4e6, teacher_flops=6e5)
    small, large = (teacher_ais.ais_cost(TeacherAISParams(T=(T,)), dims) for T in (10, 5000))
    assert large.flops > 50 * small.flops and small.blame == "n" and large.blame == "T"
    assert teacher_ais.ais_cost(TeacherAISParams(target=0.1, T_max=4096), dims).blame == "T_max"


@pytest.mark.parametrize("name", GAUSSIAN_PRIOR)
def test_the_laplace_start_finds_a_gaussian_posterior_exactly(name):
    """Where p(z_v|z) is Gaussian, Newton's steps from a poor q reach its mean in one step and the
    Hessian is its precision: the Laplace start is the exact posterior."""
    case = suite_case(name)
    encoder, sampler = linear(case)
    _, z, _, _ = _draw(encoder, sampler, 50, generator_for(0, "cpu"))
    log_lik = teacher_ais.latent_likelihood(encoder, sampler.teacher)
    mean, chol = ais.laplace(lambda v: sampler.log_prior(v) + log_lik(z, v), *PosteriorQ(case, 6.0, 0.5)(z),
                             generator_for(1, "cpu"))
    exact_mean, exact_chol = PosteriorQ(case)(z)
    torch.testing.assert_close(mean, exact_mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(chol, exact_chol, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["deterministic-teacher", "noisy-teacher"])
def test_annealing_from_the_laplace_start_is_exact_on_a_gaussian_posterior(name):
    case = suite_case(name)
    encoder, sampler = linear(case)
    params = TeacherAISParams(K=3, pilot_steps=4, start="laplace")
    z, log_px, found = _chunk(case, encoder, sampler, PosteriorQ(case, 6.0, 0.5), params, 4, seed=2)
    truth = log_px - exact_log_marginal(case, z)
    torch.testing.assert_close(found.upper, truth, rtol=0, atol=1e-6)
    torch.testing.assert_close(found.lower, truth, rtol=0, atol=1e-6)


def test_the_annealed_terms_are_the_brackets_at_the_chosen_start_with_their_record():
    """ais_terms is bracket_terms at the chosen start on the caller's generator: the same terms, and
    one record for both ends whose paired width is the mean of upper - lower over those z (with its
    se) and whose q_fit is the q's training without its curve. Under the doubling rule the selection
    (choose_T) draws first from the same generator and its chosen start is the one scored; nothing
    is drawn from torch's global stream."""
    case = suite_case("high-mi")
    encoder, sampler = linear(case)
    q = PosteriorQ(case, widen=6.0, shift=0.5)
    context = Context(teacher=sampler.teacher, q_forward=q, q_forward_fit={"steps_used": 7, "curve": [[7, 1.5]]})
    log_prior = teacher_ais.data_log_prior(sampler, "teacher_ais")
    log_lik = teacher_ais.latent_likelihood(encoder, sampler.teacher)
    sides = {"teacher_ais": "upper", "teacher_rais": "lower"}
    plain = TeacherAISParams(T=(3,), K=3, n=20, pilot_steps=4, start="laplace")
    # "best" under the doubling rule: the selection picks Laplace's start here (asserted below)
    doubling = dataclasses.replace(plain, start="best", target=0.05, T_max=8, select_n=20)
    for params in (plain, doubling):
        state = torch.get_rng_state()
        out = teacher_ais.ais_terms(encoder, sampler, params, generator_for(5, "cpu"), context, sides)
        assert torch.equal(torch.get_rng_state(), state), "drawn from torch's global stream"
        generator = generator_for(5, "cpu")
        T, start = 3, params.start
        if params.target > 0:
            T, start, _ = teacher_ais.choose_T(encoder, sampler, q, params, 3, generator, log_prior, log_lik)
        direct = teacher_ais.bracket_terms(encoder, sampler, q, dataclasses.replace(params, start=start), T,
                                           params.n, generator, log_prior, log_lik, True)
        (upper,), (lower,) = out["teacher_ais"], out["teacher_rais"]
        assert torch.equal(upper.terms, direct.upper) and torch.equal(lower.terms, direct.lower)
        width = (direct.upper - direct.lower).double()
        assert upper.params is lower.params
        assert (upper.params["T"], upper.params["start"], upper.params["q_fit"]) == (T, start, {"steps_used": 7})
        assert start == "laplace"
        assert upper.params["paired_width"] == pytest.approx(float(width.mean()), rel=1e-12, abs=0)
        assert upper.params["paired_width_se"] == pytest.approx(float(width.std()) / math.sqrt(20), rel=1e-12, abs=0)


def test_chunk_bracket_turns_the_chains_weights_into_both_ends(monkeypatch):
    """With the chains scripted: upper = log p(z|x) - (logsumexp log W - log K) and lower = log p(z|x)
    - (logsumexp [log W_rev, log W] - log(K + 1)) (bounds.md section 3c). The pilot runs (T > 1 only)
    with the settings' schedule, pilot_steps temperatures, pilot chains, leapfrog and the caller's
    generator; the chains start from q's output with the settings' tails, target log gamma at v(u),
    and the reverse chain starts at the generating z_v in q0's coordinates."""
    case = suite_case("high-mi")
    encoder, sampler = linear(case)
    q = PosteriorQ(case, widen=2.0)
    n, K = 6, 3
    batch, z, log_px, _ = _draw(encoder, sampler, n, generator_for(0, "cpu"))
    log_lik = teacher_ais.latent_likelihood(encoder, sampler.teacher)
    weights = torch.randn(n, K + 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    calls: dict = {}

    def tune(start, log_target, kind, temperatures, chains, leapfrog, generator):
        calls["tune"] = (kind, temperatures, chains, leapfrog, generator)
        return "pilot's step sizes"

    def anneal(start, log_target, betas, forward, generating_u, steps, leapfrog, generator):
        calls["anneal"] = (start, betas, forward, generating_u, steps, leapfrog, generator)
        calls["target at u = 0"] = log_target(torch.zeros(n, 1, case.k, dtype=torch.float64))
        return ais.Chains(weights[:, 1:], None if generating_u is None else weights[:, 0], 0.42)

    monkeypatch.setattr(ais, "tune", tune)
    monkeypatch.setattr(ais, "anneal", anneal)
    params = TeacherAISParams(K=K, schedule="geometric", pilot=5, pilot_steps=7, leapfrog=3, tails=2)
    generator, betas = generator_for(1, "cpu"), ais.schedule(4, "geometric")
    found = teacher_ais.chunk_bracket(q, params, betas, batch, z, log_px, generator, sampler.log_prior, log_lik, True)
    torch.testing.assert_close(found.upper, log_px - (torch.logsumexp(weights[:, 1:], 1) - math.log(K)))
    torch.testing.assert_close(found.lower, log_px - (torch.logsumexp(weights, 1) - math.log(K + 1)))
    assert found.acceptance == 0.42
    kind, temperatures, chains, leapfrog, pilot_generator = calls["tune"]
    assert (kind, temperatures, chains, leapfrog) == ("geometric", 7, 5, 3) and pilot_generator is generator
    start, passed_betas, forward, generating_u, steps, leapfrog, chain_generator = calls["anneal"]
    assert passed_betas is betas and (forward, steps, leapfrog) == (K, "pilot's step sizes", 3)
    assert chain_generator is generator and start.tails == 2
    mean, scale = q(z)
    assert torch.equal(start.mean, mean) and torch.equal(start.scale, scale)
    torch.testing.assert_close(generating_u, ais.to_u(start, batch.z_v.unsqueeze(1)).squeeze(1))
    at_mean = sampler.log_prior(mean.unsqueeze(1)) + log_lik(z, mean.unsqueeze(1))
    torch.testing.assert_close(calls["target at u = 0"], at_mean)
    # T = 1 without the reverse chain: no pilot, no generating point, no lower end
    calls.clear()
    alone = teacher_ais.chunk_bracket(q, params, ais.schedule(1, "geometric"), batch, z, log_px, generator,
                                      sampler.log_prior, log_lik, False)
    assert "tune" not in calls and calls["anneal"][3] is None and calls["anneal"][4] is None
    assert alone.lower is None
    torch.testing.assert_close(alone.upper, found.upper)
    # the reverse chain needs the generating z_v: refused in one line where the data gives none
    with pytest.raises(ValueError, match=r"^teacher_rais needs the z_v that generated each x; this data gives none$"):
        teacher_ais.chunk_bracket(q, params, betas, dataclasses.replace(batch, z_v=None), z, log_px, generator,
                                  sampler.log_prior, log_lik, True)


@pytest.mark.parametrize("rows, K, n", [(12, 3, 7), (12, 2, 9), (8, 15, 3), (64, 15, 5)])
def test_bracket_terms_fills_each_chunk_up_to_EVAL_ROWS_chains_in_z_s_dtype(monkeypatch, rows, K, n):
    """Memory is bounded by EVAL_ROWS chains a chunk (K + 1 a z), or one z where its chains alone
    are more; every chunk but the last is as full as that allows, so no more chunks run than needed.
    The temperatures reach each chunk in z's dtype (float32 here), and the record's acceptance is
    the mean over z."""
    case = suite_case("high-mi")
    encoder, sampler = linear(case)

    def single(x):
        return tuple(t.float() for t in encoder(x))

    seen: list[tuple[int, torch.dtype, torch.dtype]] = []

    def chunk_bracket(q, params, betas, batch, z, log_px, generator, log_prior, log_lik, lower):
        seen.append((len(z), betas.dtype, z.dtype))
        torch.testing.assert_close(betas, ais.schedule(4, params.schedule).to(z.dtype), rtol=0, atol=0)
        size = len(z)
        return teacher_ais.Bracket(torch.full((size,), float(size)), torch.zeros(size), float(size))

    monkeypatch.setattr(teacher_ais, "EVAL_ROWS", rows)
    monkeypatch.setattr(teacher_ais, "chunk_bracket", chunk_bracket)
    params = TeacherAISParams(K=K)
    found = teacher_ais.bracket_terms(single, sampler, PosteriorQ(case), params, 4, n, generator_for(0, "cpu"),
                                      sampler.log_prior, None, True)
    sizes = [size for size, _, _ in seen]
    assert sum(sizes) == n and all(size >= 1 for size in sizes)
    assert all(size * (K + 1) <= rows or size == 1 for size in sizes), sizes
    assert all((size + 1) * (K + 1) > rows for size in sizes[:-1]), sizes
    assert all(dtype == torch.float32 for _, betas_dtype, z_dtype in seen for dtype in (betas_dtype, z_dtype))
    assert found.acceptance == pytest.approx(sum(size * size for size in sizes) / n, rel=1e-12, abs=0)
    assert torch.equal(found.upper, torch.cat([torch.full((size,), float(size)) for size in sizes]))


def test_the_best_start_takes_laplace_only_on_a_clear_lead():
    """start "best": both starts at the first T on the selection's z; Laplace only if its width is
    below LAPLACE_MARGIN times q's. On a Gaussian posterior from a poor q, Laplace is exact and wins."""
    case = suite_case("high-mi")
    encoder, sampler = linear(case)
    context = _poor_context(case, encoder, sampler)
    params = TeacherAISParams(T=(2,), K=3, n=40, pilot_steps=4, target=0.05, T_max=8, select_n=30, start="best")
    est = estimators.run_together(PAIR, encoder, sampler, params, seed=2, context=context)["teacher_ais"][0]
    q_rung, laplace_rung = est.params["ladder"][:2]
    assert (q_rung[0], q_rung[3], laplace_rung[0], laplace_rung[3]) == (2, "q", 2, "laplace")
    assert laplace_rung[1] < teacher_ais.LAPLACE_MARGIN * q_rung[1]
    assert est.params["start"] == "laplace" and est.params["stopped"] == "target" and est.params["T"] == 2
    # without the doubling rule there is nothing to choose on: q's start
    plain = estimators.run_together(PAIR, encoder, sampler, dataclasses.replace(params, target=0.0), seed=2,
                                    context=context)["teacher_ais"][0]
    assert plain.params["start"] == "q" and "ladder" not in plain.params


def _scripted_widths(monkeypatch, widths: dict[tuple[str, int], float]) -> tuple[list[tuple[str, int]], torch.Generator]:
    """Replace the selection's width measurement by a table {(start, T): mean width}; returns the list of
    (start, T) asked for, in order. Each call must carry the caller's generator (the same z stream)."""
    asked: list[tuple[str, int]] = []
    token = torch.Generator()

    def measured(encoder, data, q, params, T, generator, log_prior, log_lik):
        assert generator is token, "the selection ran on a generator other than the caller's"
        asked.append((params.start, T))
        return widths[(params.start, T)], 0.01 * T

    monkeypatch.setattr(teacher_ais, "_select_width", measured)
    return asked, token


@pytest.mark.parametrize("laplace_width, q_width, chosen", [
    (0.24, 1.0, "laplace"),          # below the margin: Laplace
    (0.25, 1.0, "q"),                # at the margin exactly: not a clear lead
    (5.0, 1.0, "q"),                 # finite and worse
    (1.0, 8.0, "laplace"),           # 1 < 0.25 * 8: a margin that scales with q's width, not its inverse
    (1.0, math.inf, "laplace"),      # q's width not finite: any finite Laplace width wins
    (math.inf, 1.0, "q"),
])
def test_the_best_start_rule_on_scripted_widths(monkeypatch, laplace_width, q_width, chosen):
    assert teacher_ais.LAPLACE_MARGIN == 0.25
    later = {(start, T): 0.0 for start in ("q", "laplace") for T in (4, 8)}
    asked, token = _scripted_widths(monkeypatch, {("q", 2): q_width, ("laplace", 2): laplace_width, **later})
    params = TeacherAISParams(start="best", target=0.1, T_max=8)
    T, start, rule = teacher_ais.choose_T(None, None, None, params, 2, token, None, None)
    assert (T, start, rule["stopped"]) == (4, chosen, "target")
    # both starts at the first rung, then only the chosen one: its start reaches the next rung's chains
    assert asked == [("q", 2), ("laplace", 2), (chosen, 4)]
    assert rule["ladder"] == [[2, q_width, 0.02, "q"], [2, laplace_width, 0.02, "laplace"], [4, 0.0, 0.04, chosen]]


@pytest.mark.parametrize("widths, expected", [
    ({2: 0.3, 4: 0.1, 8: 0.0}, (4, "target")),     # a width equal to the target stops the rule
    ({2: 0.3, 4: 0.2, 8: 0.15}, (8, "cap")),
    ({2: 0.1}, (2, "target")),
    ({2: math.nan, 4: math.inf, 8: 0.05}, (8, "target")),  # a non-finite width counts as too wide
])
def test_the_doubling_rule_on_scripted_widths(monkeypatch, widths, expected):
    asked, token = _scripted_widths(monkeypatch, {("q", T): w for T, w in widths.items()})
    T, start, rule = teacher_ais.choose_T(None, None, None, TeacherAISParams(start="q", target=0.1, T_max=8), 2,
                                          token, None, None)
    assert (T, rule["stopped"]) == expected and start == "q"
    assert [T for _, T in asked] == [rung[0] for rung in rule["ladder"]] == [2 * 2**i for i in range(len(asked))]
    assert len(asked) == [2, 4, 8].index(T) + 1


def test_the_selection_width_is_the_paired_mean_with_its_standard_error(monkeypatch):
    upper, lower = torch.tensor([3.0, 5.0, 4.0, 8.0]), torch.tensor([2.0, 2.0, 3.0, 2.0])
    token = torch.Generator()

    def terms(encoder, data, q, params, T, n, generator, log_prior, log_lik, lower_too):
        assert generator is token and lower_too and n == params.select_n and T == 7
        return teacher_ais.Bracket(upper, lower, 0.5)

    monkeypatch.setattr(teacher_ais, "bracket_terms", terms)
    mean, se = teacher_ais._select_width(None, None, None, TeacherAISParams(select_n=4), 7, token, None, None)
    width = np.array([1.0, 3.0, 1.0, 6.0])
    assert mean == pytest.approx(width.mean(), abs=1e-12)
    assert se == pytest.approx(width.std(ddof=1) / 2.0, abs=1e-12)


def _two_modes(v: torch.Tensor) -> torch.Tensor:
    """log of 0.3 N(v; -8, 2^2) + 0.7 N(v; 8, 2^2), v: (n, C, 1) -> (n, C): modes at -8 and 8 (the higher),
    each with the curvature 1/4 of its component (the other's density is below e^-30 there)."""
    parts = torch.stack([math.log(0.3) - (v[..., 0] + 8) ** 2 / 8, math.log(0.7) - (v[..., 0] - 8) ** 2 / 8])
    return torch.logsumexp(parts, dim=0) - math.log(2 * math.sqrt(2 * math.pi))


def test_laplace_from_q_alone_finds_the_nearest_mode_with_its_curvature():
    """By default the Newton steps start from q's mean only; the covariance is the inverse curvature
    there (1/4 here, below 1: the eigenvalue floor does not bind)."""
    n = 20
    mean, scale = torch.full((n, 1), -6.5, dtype=torch.float64), torch.full((n, 1), 10.0, dtype=torch.float64)
    mode, chol = ais.laplace(_two_modes, mean, scale, generator_for(0, "cpu"))
    torch.testing.assert_close(mode, torch.full((n, 1), -8.0, dtype=torch.float64), rtol=0, atol=1e-6)
    torch.testing.assert_close(chol, torch.full((n, 1, 1), 2.0, dtype=torch.float64), rtol=0, atol=1e-6)


def test_laplace_keeps_the_best_mode_of_its_starts_and_draws_them_from_its_generator():
    n = 20
    mean, scale = torch.full((n, 1), -6.5, dtype=torch.float64), torch.full((n, 1), 10.0, dtype=torch.float64)
    state = torch.get_rng_state()
    first = ais.laplace(_two_modes, mean, scale, generator_for(3, "cpu"), starts=64)
    assert torch.equal(torch.get_rng_state(), state), "the starts were drawn from torch's global stream"
    # 63 draws of N(-6.5, 10^2): each row has one past the saddle near 0 but for odds of 0.74^63 = 6e-9
    torch.testing.assert_close(first[0], torch.full((n, 1), 8.0, dtype=torch.float64), rtol=0, atol=1e-6)
    torch.testing.assert_close(first[1], torch.full((n, 1, 1), 2.0, dtype=torch.float64), rtol=0, atol=1e-6)
    again = ais.laplace(_two_modes, mean, scale, generator_for(3, "cpu"), starts=64)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_laplace_never_moves_to_a_worse_point():
    """Damped Newton on a target that is far from quadratic (log gamma = -sqrt(1 + |v|^2), whose
    curvature vanishes away from 0): each kept step raises log gamma, so the result is above the start's."""
    def target(v):
        return -torch.sqrt(1 + (v * v).sum(-1))

    mean = torch.tensor([[10.0, -4.0], [0.5, 0.2], [-30.0, 30.0]], dtype=torch.float64)
    mode, chol = ais.laplace(target, mean, torch.ones_like(mean), generator_for(0, "cpu"))
    start_value, end_value = target(mean.unsqueeze(1))[:, 0], target(mode.unsqueeze(1))[:, 0]
    assert bool((end_value >= start_value).all()) and bool((end_value > start_value).any())
    assert torch.isfinite(chol).all() and bool((torch.diagonal(chol, dim1=-2, dim2=-1) > 0).all())


def test_laplace_damps_more_after_a_step_that_overshoots():
    """log gamma = -1000 log cosh(v), from v = 3: the curvature there (1000 sech^2 3 = 9.9) is a
    hundredth of the mode's, so the first damped step (to about -88) overshoots and is refused. Only
    a damping that grows after each refusal gets back to a step that is kept; then the steps reach the
    mode 0, whose curvature 1000 gives the covariance 1/1000. Were the damping to shrink after a
    refusal instead, every later step would overshoot further and v would stay at 3."""
    def target(v):
        return -1000.0 * torch.log(torch.cosh(v[..., 0]))

    mean = torch.full((3, 1), 3.0, dtype=torch.float64)
    mode, chol = ais.laplace(target, mean, torch.ones_like(mean), generator_for(0, "cpu"))
    # 1e-3 is 3% of the mode's standard deviation 1/sqrt(1000): converged, without pinning the path
    torch.testing.assert_close(mode, torch.zeros(3, 1, dtype=torch.float64), rtol=0, atol=1e-3)
    torch.testing.assert_close(chol, torch.full((3, 1, 1), 1000 ** -0.5, dtype=torch.float64), rtol=1e-4, atol=0)


def test_laplace_never_keeps_a_start_where_log_gamma_is_nan():
    """Starts drawn where log gamma is NaN stay there (no finite trial improves on them) and must lose
    to any finite mode, never win as if NaN were a high value."""
    def target(v):
        return torch.where(v[..., 0] < -20, torch.full_like(v[..., 0], math.nan), _two_modes(v))

    n = 20
    mean, scale = torch.full((n, 1), -6.5, dtype=torch.float64), torch.full((n, 1), 10.0, dtype=torch.float64)
    # of 63 draws of N(-6.5, 10^2) per row, about 9% fall below -20
    mode, _ = ais.laplace(target, mean, scale, generator_for(3, "cpu"), starts=64)
    torch.testing.assert_close(mode, torch.full((n, 1), 8.0, dtype=torch.float64), rtol=0, atol=1e-6)


# poisoned second derivatives: (row, column, value) of the Hessian that autograd will report
POISON = ((0, 1, math.inf), (0, 2, -math.inf), (1, 2, math.nan))


class _PoisonedCurvature(torch.autograd.Function):
    """The gradient -v of log gamma = -|v|^2 / 2, whose own derivative (the Hessian -I) comes back with
    the entries of POISON in place of 0, as a network's overflowing second derivatives would."""

    @staticmethod
    def forward(ctx, v, upstream):
        ctx.save_for_backward(upstream)
        return -v * upstream.unsqueeze(-1)

    @staticmethod
    def backward(ctx, column_seed):
        (upstream,) = ctx.saved_tensors
        column = -upstream.unsqueeze(-1) * column_seed  # column d of the Hessian: column_seed is e_d
        d = int(column_seed.reshape(-1, column_seed.shape[-1])[0].argmax())
        for row, col, value in POISON:
            if col == d:
                column = column.clone()
                column[..., row] = value
        return column, None


class _Quadratic(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v):
        ctx.save_for_backward(v)
        return -0.5 * (v * v).sum(-1)

    @staticmethod
    def backward(ctx, upstream):
        (v,) = ctx.saved_tensors
        return _PoisonedCurvature.apply(v, upstream)


def test_non_finite_second_derivatives_count_as_zero_curvature():
    """_newton_parts sets a NaN or infinite Hessian entry to 0 (keeping the finite ones) before making
    the precision positive definite: here the finite part is -I, so the precision is exactly I, while
    keeping an infinity as the largest float, or a non-finite entry as 1, would couple the dimensions."""
    v = torch.randn((4, 3, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    value, precision, grad = ais._newton_parts(_Quadratic.apply, v, floor=1e-2)
    torch.testing.assert_close(value, -0.5 * (v * v).sum(-1), rtol=0, atol=0)
    torch.testing.assert_close(grad, -v, rtol=0, atol=0)
    eye = torch.eye(3, dtype=torch.float64).expand(4, 3, 3, 3)
    torch.testing.assert_close(precision, eye, rtol=0, atol=1e-12)
    # and Laplace's whole search: one Newton step from anywhere reaches the mode 0 with covariance I
    mode, chol = ais.laplace(_Quadratic.apply, v[:, 0], torch.ones(4, 3, dtype=torch.float64), generator_for(0, "cpu"))
    torch.testing.assert_close(mode, torch.zeros(4, 3, dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(chol, torch.eye(3, dtype=torch.float64).expand(4, 3, 3), rtol=0, atol=1e-9)


def test_the_annealed_bounds_start_from_the_q_their_settings_name():
    """q = "elbo" is the q trained on Eq. 5 (context.q), "forward" the forward-KL one (context.q_forward):
    the same q under either name gives the same numbers, and a missing one is refused by its name."""
    case = suite_case("high-mi")
    encoder, sampler = linear(case)
    q = PosteriorQ(case, widen=3.0)
    teacher = sampler.teacher
    as_elbo = _pair(case, encoder, sampler, Context(teacher=teacher, q=q, q_fit={}), 1, 50, 0, q="elbo")
    as_forward = _pair(case, encoder, sampler, Context(teacher=teacher, q_forward=q, q_forward_fit={}), 1, 50, 0)
    assert as_elbo[0].value == as_forward[0].value and as_elbo[1].value == as_forward[1].value
    with pytest.raises(ValueError, match="^teacher_ais needs context.q_forward$"):
        _pair(case, encoder, sampler, Context(teacher=teacher, q=q, q_fit={}), 1, 50, 0)


def test_the_record_carries_the_chains_mean_acceptance_from_the_first_transition_on():
    """T = 1 makes no transition (acceptance NaN); from T = 2 on the record is the mean acceptance
    probability of the scored chains' HMC moves, a probability near the pilot's target."""
    case = suite_case("high-mi")
    encoder, sampler = linear(case)
    context = Context(teacher=sampler.teacher, q_forward=PosteriorQ(case, widen=3.0), q_forward_fit={})
    assert all(math.isnan(e.params["acceptance"]) for e in _pair(case, encoder, sampler, context, 1, 50, 0))
    for est in _pair(case, encoder, sampler, context, 2, 50, 0):
        assert 0.3 < est.params["acceptance"] <= 1.0, est.params["acceptance"]


def test_a_teacher_that_does_not_say_it_is_deterministic_is_refused_in_full():
    """A teacher with neither ``latent_log_lik`` nor ``deterministic`` counts as one that draws x at random:
    refused with the whole message, not an AttributeError, and not taken as deterministic."""
    encoder, _ = linear(suite_case("hand-1d"))
    with pytest.raises(ValueError) as refused:
        teacher_ais.latent_likelihood(encoder, object())
    assert str(refused.value) == (
        "teacher_ais needs p(z|z_v) in closed form: a deterministic teacher (its output is x) or one with "
        "latent_log_lik; this teacher draws x at random (a stochastic neural teacher), so no annealed bound "
        "can be given")
