"""Every estimator on every case of the built-in suite (fast settings): valid as a bound,
equal to its analytic expectation where one exists, and related to the others as theory says."""
from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
import torch

from ibcheck import estimators
from ibcheck.estimators.batch import BatchParams
from ibcheck.estimators.empirical import EmpiricalParams
from ibcheck.harness.validate import run_case

import budget
import match_checks
from helpers import SUITE_NAMES, fast, linear, suite_case, trained_context

pytestmark = pytest.mark.statistical


@pytest.fixture(scope="session")
def suite_outcomes():
    """One fast run of every runner on a suite case, shared by the tests below, for one pytest session:
    a module-level cache would outlive it, and mutmut's mutant runs (forked after its clean run) would
    read the unmutated results."""
    runs: dict[str, tuple] = {}

    def outcomes(name: str):
        if name not in runs:
            case = fast(suite_case(name))
            runs[name] = case, run_case(case, seed=budget.seed_for("suite", name), device="cpu", dtype=torch.float64)
        return runs[name]

    return outcomes


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_every_estimate_is_a_valid_bound_and_matches_its_expectation(name, stat, suite_outcomes):
    case, (ex, outcomes, _) = suite_outcomes(name)
    names = {o.estimate.estimator for o in outcomes}
    assert {"vib", "teacher_elbo", "teacher_iw", "loo", "nce", "empirical"} <= names
    assert ("barber_agakov" in names) == (case.labels.kind != "none")
    stat.observe(match_checks.outcome_observations(ex, outcomes, name))


@pytest.mark.parametrize("name", match_checks.GROUPS["teacher-iw-one"].params)
def test_teacher_iw_with_one_sample_has_the_elbo_expectation(name, stat, seed):
    """K = 1: log w = log p(z|x') + log p(z_v) - log q(z_v|z), whose mean is Eq. 5's integrand with the
    KL estimated by sampling; so it matches the closed form at the same q."""
    stat.observe(match_checks.teacher_iw_one(name, seed))


@pytest.mark.parametrize("name", ["noisy-teacher", "shifted-data-prior", "high-mi"])
def test_teacher_iw_does_not_increase_with_K(name, stat, suite_outcomes):
    _, (_, outcomes, _) = suite_outcomes(name)
    iw = sorted((o.estimate for o in outcomes if o.estimate.estimator == "teacher_iw"), key=lambda e: e.params["K"])
    for small, large in zip(iw, iw[1:]):
        stat.not_below(small, large, label=f"{name} iw K={small.params['K']} >= K={large.params['K']}")


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_nce_never_exceeds_log_N_and_loo_sits_above_nce(name, stat, suite_outcomes):
    _, (_, outcomes, _) = suite_outcomes(name)
    by = {(o.estimate.estimator, o.estimate.params.get("N")): o.estimate for o in outcomes}
    for (est_name, N), est in by.items():
        if est_name == "nce":
            assert est.value <= math.log(N) + 1e-9
            stat.not_below(by[("loo", N)], est, label=f"{name} loo >= nce at N={N}")


@pytest.mark.parametrize("name", ["deterministic-teacher", "ten-classes", "encoder-ignores-x"])
def test_empirical_over_data_sets_has_the_expectation_of_nce(name, stat, seed):
    """E over data sets of I_emp(N) equals InfoNCE's expectation at batch N (one z per point)."""
    case = suite_case(name)
    enc, smp = linear(case)
    emp = estimators.run("empirical", enc, smp, EmpiricalParams(N=128, sets=200, draws=1), seed=seed)[0]
    nce = estimators.run_one("nce", enc, smp, BatchParams(N=(128,), batches=200), seed=seed + 1)
    stat.same_mean(emp, nce, label=f"{name} empirical vs nce")


def test_vib_runs_in_float32_and_matches(stat, seed):
    stat.observe(match_checks.vib_float32(None, seed))


@pytest.mark.parametrize("steps, batch, n, blame", [(10, 64, 1000, "n"), (10, 64, 640, "n"), (10, 64, 639, "steps"),
                                                     (0, 256, 20_000, "n"), (5, 20_000, 10, "steps")])
def test_barber_agakov_costs_its_training_and_its_evaluation(steps, batch, n, blame):
    """``barber_agakov_cost``: steps minibatches forward and backward (3 passes a row) and n rows
    forward, each through the teacher and the encoder; memory of the larger of a minibatch and an
    evaluation chunk of at most EVAL_ROWS rows, (d + k + 3 m) float64 numbers each, twice."""
    from ibcheck.estimators.barber_agakov import BarberAgakovParams, barber_agakov_cost
    from ibcheck.estimators.common import EVAL_ROWS
    from ibcheck.interface import Dims

    dims = Dims(d=12, k=3, m=5, encoder_flops=700.0, teacher_flops=300.0)
    cost = barber_agakov_cost(BarberAgakovParams(steps=steps, batch=batch, n=n), dims)
    assert cost.flops == (3.0 * steps * batch + n) * 1000.0
    assert cost.bytes == 16.0 * max(min(n, EVAL_ROWS), batch) * (12 + 3 + 15)
    assert cost.blame == blame


def test_barber_agakov_names_what_it_lacks():
    from ibcheck.estimators.barber_agakov import BarberAgakovParams, barber_agakov_terms
    from ibcheck.estimators.samplers import FiniteSampler
    from ibcheck.interface import Context

    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    decoder = torch.nn.Linear(1, 1)
    params, generator = BarberAgakovParams(steps=1, batch=4, n=4), torch.Generator().manual_seed(0)
    for context in (Context(label_decoder=decoder), Context(h_y=1.0), Context()):
        with pytest.raises(ValueError, match="^barber_agakov needs context.label_decoder and context.h_y$"):
            barber_agakov_terms(encoder, sampler, params, generator, context)
    unlabelled = FiniteSampler(torch.zeros(8, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="^barber_agakov needs labelled data$"):
        barber_agakov_terms(encoder, unlabelled, params, generator, Context(label_decoder=decoder, h_y=1.0))


def test_fit_takes_every_step_and_returns_each_loss():
    """``common.fit``: Adam with a cosine-annealed rate; the loss of each step, before that step."""
    from ibcheck.estimators.common import fit

    p = torch.nn.Parameter(torch.zeros(()))
    history = fit([p], lambda: (p - 3.0) ** 2, 1, 0.5)
    assert history == [9.0] and p.item() == pytest.approx(0.5)  # Adam's first step is lr in size
    p = torch.nn.Parameter(torch.zeros(()))
    history = fit([p], lambda: (p - 3.0) ** 2, 200, 0.5)
    assert len(history) == 200 and history[0] == 9.0 and history[-1] < 1e-3 and p.item() == pytest.approx(3.0, abs=0.05)
    frozen = torch.zeros((), requires_grad=False)
    assert fit([frozen], lambda: frozen + 1.0, 5, 0.1) == [] and fit([], lambda: torch.zeros(()), 5, 0.1) == []
    assert fit([torch.nn.Parameter(torch.zeros(()))], lambda: torch.zeros(()), 0, 0.1) == []


def test_class_ranges_cover_every_class_up_to_the_largest_label():
    from ibcheck.estimators.empirical import _class_ranges

    assert _class_ranges(torch.tensor([0, 0, 1, 3, 3, 3])) == [(0, 2), (2, 3), (3, 3), (3, 6)]
    assert _class_ranges(torch.tensor([2])) == [(0, 0), (0, 0), (0, 1)]


@pytest.mark.parametrize("history, final", [([3.0, 2.0, 1.5], 1.5), ([], None)])
def test_barber_agakov_records_the_label_entropy_and_its_last_training_loss(monkeypatch, history, final):
    from ibcheck.estimators import barber_agakov
    from ibcheck.estimators.barber_agakov import BarberAgakovParams

    from helpers import trained_context

    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    context = trained_context(case, encoder, sampler, seed=0, steps=5)
    monkeypatch.setattr(barber_agakov, "fit", lambda parameters, loss, steps, lr: list(history))
    est = estimators.run_one("barber_agakov", encoder, sampler, BarberAgakovParams(steps=3, n=16), seed=0,
                             context=context)
    assert est.params["H_Y"] == context.h_y and est.params["final_train_loss"] == final


@pytest.mark.parametrize(("N", "sets", "points", "refused"), [
    (8, 2, None, None), (None, None, None, None), (None, None, 5, None),
    (8, None, None, "N and sets are both numbers (data sets) or both null (the finite set)"),
    (None, 2, None, "N and sets are both numbers (data sets) or both null (the finite set)"),
    (8, 2, 5, "points applies only to the finite set (N and sets null)"),
])
def test_empirical_settings_are_either_data_sets_or_the_finite_set(N, sets, points, refused):
    if refused is None:
        assert EmpiricalParams(N=N, sets=sets, points=points).points == points
    else:
        with pytest.raises(ValueError, match=f"^{re.escape(refused)}$"):  # the whole message, as the user reads it
            EmpiricalParams(N=N, sets=sets, points=points)


@pytest.mark.parametrize("n", [1, 1000, 5000])
def test_teacher_elbo_costs_two_encoder_and_three_teacher_passes_per_z(n):
    """``_chain_flops``: x -> z and x' -> the encoder again (2 encoder passes), q, the teacher's draw and
    x' (3 teacher-sized passes) per z."""
    from ibcheck.estimators.teacher_bounds import TeacherElboParams, teacher_elbo_cost
    from ibcheck.interface import Dims

    cost = teacher_elbo_cost(TeacherElboParams(n=n), Dims(d=12, k=3, m=5, encoder_flops=700.0, teacher_flops=300.0))
    assert cost.flops == n * (2 * 700.0 + 3 * 300.0)


@pytest.mark.parametrize("name, label", [("teacher_iw_data", "teacher_iw_data"), ("teacher_riw", "teacher_riw"),
                                         ("teacher_ais", "teacher_ais"), ("teacher_iw", "teacher_iw (prior data)")])
def test_the_data_prior_bounds_name_themselves_on_data_without_a_prior(name, label):
    """A sampler with no prior density (a finite set) cannot give these bounds: the refusal names the
    estimator, in one line."""
    from ibcheck.estimators import registry
    from ibcheck.estimators.samplers import FiniteSampler

    case = suite_case("shifted-data-prior")
    encoder, sampler = linear(case)
    finite = FiniteSampler(sampler.sample(64, torch.Generator().manual_seed(0)).x)
    context = trained_context(case, encoder, sampler, seed=0, steps=5)
    params = registry.SPECS[name].params
    if name == "teacher_iw":
        params = dataclasses.replace(params, prior="data")  # the model prior N(0, I) needs no data density
    with pytest.raises(ValueError, match=f"^{re.escape(label)} needs data drawn through the teacher from a prior of "
                                         "known density"):
        estimators.run(name, encoder, finite, params, seed=0, context=context)


def test_the_reverse_bound_refuses_data_with_a_prior_but_without_the_generating_z_v():
    """teacher_riw scores each z at the z_v that generated it: a sampler with a prior density whose
    batches carry no z_v is refused in one line, by name."""
    from ibcheck.estimators.teacher_bounds import TeacherRIWParams
    from ibcheck.interface import Batch

    case = suite_case("shifted-data-prior")
    encoder, sampler = linear(case)

    class Unlabelled:
        log_prior = staticmethod(sampler.log_prior)

        def sample(self, n, generator):
            return Batch(x=sampler.sample(n, generator).x)

    context = trained_context(case, encoder, sampler, seed=0, steps=5)
    with pytest.raises(ValueError, match="^teacher_riw needs the z_v that generated each x; this data gives none$"):
        estimators.run("teacher_riw", encoder, Unlabelled(), TeacherRIWParams(K=(1,), n=16), seed=0, context=context)


# ---------------------------------------------------------------- empirical on the data's own finite set


def _finite_set(n: int = 40, classes: bool = False):
    """(encoder, a FiniteSampler of n points of a suite case, with its class labels where asked)."""
    from ibcheck.estimators.samplers import FiniteSampler

    case = suite_case("ten-classes" if classes else "hand-1d")
    encoder, sampler = linear(case)
    batch = sampler.sample(n, torch.Generator().manual_seed(7))
    return encoder, FiniteSampler(batch.x, batch.y if classes else None)


def _finite_run(encoder, finite, seed: int = 3, **options):
    return estimators.run("empirical", encoder, finite, EmpiricalParams(N=None, sets=None, **options), seed=seed)


def test_the_finite_set_estimate_records_its_set_and_its_queried_points():
    encoder, finite = _finite_set(classes=True)
    both = _finite_run(encoder, finite, draws=2)
    assert [e.target for e in both] == ["I_XZ", "I_YZ"]
    for est in both:  # every (point, draw) pair is a term, and both records name the set and the points
        assert est.n == 80 and est.params["N"] == 40 and est.params["points"] == 40
    some = _finite_run(encoder, finite, draws=2, points=10)
    assert all(e.n == 20 and e.params["N"] == 40 and e.params["points"] == 10 for e in some)


def test_the_queried_points_are_a_subset_drawn_from_the_runs_own_generator():
    encoder, finite = _finite_set()
    torch.manual_seed(0)
    first = _finite_run(encoder, finite, points=10)[0]
    torch.manual_seed(1)  # torch's global stream plays no part
    assert _finite_run(encoder, finite, points=10)[0].value == first.value
    assert _finite_run(encoder, finite, points=10, seed=4)[0].value != first.value
    # asking for every point is the whole set, drawn exactly as without a subset
    assert _finite_run(encoder, finite, points=40)[0].value == _finite_run(encoder, finite)[0].value


def test_the_finite_set_estimate_needs_a_finite_set():
    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    with pytest.raises(ValueError, match=r"^empirical with N = None needs a finite data set$"):
        _finite_run(encoder, sampler)


class _SharpEncoder(torch.nn.Module):
    """z | x ~ N(x, std^2 I) with one fixed std; records the rows of each call."""

    def __init__(self, std: float):
        super().__init__()
        self.std, self.calls = std, []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return x * 1.0, torch.full_like(x, self.std)


def test_the_finite_set_is_encoded_whole_in_blocks_of_eval_rows():
    from ibcheck.estimators.common import EVAL_ROWS
    from ibcheck.estimators.empirical import _encode_all

    x = torch.randn(EVAL_ROWS + 3, 2, generator=torch.Generator().manual_seed(0))
    encoder = _SharpEncoder(0.5)
    mean, std = _encode_all(encoder, x)
    assert encoder.calls == [EVAL_ROWS, 3] and torch.equal(mean, x) and torch.equal(std, torch.full_like(x, 0.5))


def test_at_the_ln_n_cap_every_float32_term_is_ln_n_and_ln_n_over_its_class():
    """Rows at least 0.25 apart, encoded with std 1e-3: every other component's density is below e^-(3 10^4)
    times the own one's, so each I_emp(X;Z) term is ln N and each I_emp(Y;Z) term ln(N / n_c), its class's
    share. In float32 the own entry computed through the matrix product is off by far more (|z|^2 / std^2
    ~ 10^8 against a 24-bit mantissa), which is why it is computed directly; the tolerance is float32
    round-off of log densities near 25."""
    from ibcheck.estimators.empirical import point_terms

    n, d = 48, 4
    x = torch.stack([torch.arange(n, dtype=torch.float32) + 0.5 * j for j in range(d)], dim=1) % 12
    x = x + torch.arange(n, dtype=torch.float32).unsqueeze(1) * 0.25  # distinct rows, at least 0.25 apart
    y = torch.arange(n) % 3
    y[:6] = 0  # classes of 18, 14 and 16 points
    t_x, t_y = point_terms(_SharpEncoder(1e-3), x, y, 3, torch.Generator().manual_seed(1))
    counts = torch.bincount(y).float()
    share = (n / counts[y]).log().repeat_interleave(3)
    assert t_x.dtype == torch.float32 and t_x.shape == (n * 3,) and t_y is not None
    torch.testing.assert_close(t_x, torch.full_like(t_x, math.log(n)), rtol=0, atol=1e-4)
    torch.testing.assert_close(t_y, share, rtol=0, atol=1e-4)


def test_an_estimate_records_its_settings_and_nothing_else():
    """The record of a run is its settings (the swept one at its value) and what the estimator adds
    on purpose; nce, loo and the data-set empirical add nothing."""
    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    for name, params in (("nce", BatchParams(N=(16, 32), batches=2)), ("loo", BatchParams(N=(16,), batches=2)),
                         ("empirical", EmpiricalParams(N=16, sets=2))):
        for est in estimators.run(name, encoder, sampler, params, seed=0):
            assert set(est.params) == set(dataclasses.asdict(params)), (name, est.params)


@pytest.mark.parametrize("name, settings", [
    ("teacher_elbo", {"n": 64}),
    ("teacher_iw", {"K": (1, 3), "n": 64}),
    ("teacher_iw", {"K": (1, 3), "n": 64, "q": "elbo"}),
    ("teacher_iw_data", {"K": (1, 3), "n": 64, "q": "forward"}),
    ("teacher_iw_data", {"K": (1, 3), "n": 64, "q": "elbo"}),
    ("teacher_riw", {"K": (0, 2), "n": 64, "q": "elbo"}),
    ("teacher_riw", {"K": (0, 2), "n": 64, "q": "forward"}),
])
def test_the_teacher_bounds_record_their_settings_and_their_qs_training(name, settings):
    """Each estimate's record is its settings (K at its own value) and the training record of the q
    its ``q`` setting names, without the curve; nothing else."""
    from ibcheck.estimators import registry
    from ibcheck.estimators.teacher_bounds import fit_summary

    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    context = trained_context(case, encoder, sampler, seed=0, steps=5)
    params = dataclasses.replace(registry.SPECS[name].params, **settings)
    fit = context.q_forward_fit if getattr(params, "q", "elbo") == "forward" else context.q_fit
    assert fit_summary(context.q_fit) != fit_summary(context.q_forward_fit)  # the two can be told apart
    found = estimators.run(name, encoder, sampler, params, seed=0, context=context)
    assert [est.params.get("K") for est in found] == list(settings.get("K", (None,)))
    for est in found:
        assert fit and est.params["q_fit"] == fit_summary(fit)
        assert set(est.params) == set(dataclasses.asdict(params)) | {"q_fit"}


@pytest.mark.parametrize("objective, field", [("elbo", "context.q"), ("forward", "context.q_forward")])
def test_the_teacher_bounds_refuse_a_missing_teacher_or_q_naming_the_field(objective, field):
    """Either part missing is refused (a teacher without its q, and a q without its teacher), with the
    field the ``q`` setting names."""
    from ibcheck.estimators.teacher_bounds import _needs_q

    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    context = trained_context(case, encoder, sampler, seed=0, steps=5)
    message = f"^the teacher bounds with q = '{objective}' need context.teacher and a trained {re.escape(field)}$"
    without_q = dataclasses.replace(context, q=None, q_forward=None)
    for broken in (without_q, dataclasses.replace(context, teacher=None)):
        with pytest.raises(ValueError, match=message):
            _needs_q(broken, objective)
    assert _needs_q(context, objective)[0] is context.teacher


def test_summarize_gives_the_mean_its_standard_error_and_the_terms_skewness():
    """value = mean, stderr = sd (n - 1) / sqrt(n), inf for one term; skew = m3 / m2^1.5 (scipy's biased
    sample skewness) from three terms on, exactly 0 below three and where m3 overflows; the seed as an
    int and the seconds since ``started``."""
    import time

    from scipy import stats as sps

    from ibcheck.estimators.common import summarize

    def summary(values):
        return summarize("x", "I_XZ", "upper", torch.tensor(values, dtype=torch.float64), 7, {"a": 1},
                         time.perf_counter())

    many = [1.0, 2.0, 4.0, 8.0]
    est = summary(many)
    assert est.value == pytest.approx(3.75, rel=1e-15)
    assert est.stderr == pytest.approx(float(np.std(many, ddof=1)) / 2, rel=1e-14)
    assert est.skew == pytest.approx(float(sps.skew(many, bias=True)), rel=1e-12)
    assert est.n == 4 and est.seed == 7 and type(est.seed) is int and est.params == {"a": 1}
    assert 0.0 <= est.seconds < 60.0
    begun_earlier = summarize("x", "I_XZ", "upper", torch.ones(3, dtype=torch.float64), 7, {}, time.perf_counter() - 5.0)
    assert 5.0 <= begun_earlier.seconds < 65.0
    assert summary([0.0, 0.0, 3.0]).skew == pytest.approx(float(sps.skew([0.0, 0.0, 3.0], bias=True)), rel=1e-12)
    two = summary([0.1, 0.7])  # centred terms not exactly opposite in float64: m3 is not exactly 0
    assert two.skew == 0.0 and two.stderr == pytest.approx(0.3, rel=1e-12)
    assert summary([2.0]).stderr == math.inf
    assert summary([0.0, 0.0, 1e120]).skew == 0.0  # m3 overflows to inf
