"""Run every registered estimator on linear-Gaussian cases and judge it against the truth.

Per case: the exact values, the modules on the run's device, q(z_v|z) trained once
for both teacher bounds, then every applicable estimator of the registry with the
case's settings, against the reference "population". Judging follows bounds.md
section 5 with one family-wise budget ``alpha`` split over every test of the run
(Bonferroni); ``report`` renders the judged result.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from ibcheck import seeds, stats
from ibcheck.analytic import exact, models
from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.estimators import registry
from ibcheck.estimators.q_fit import train_both
from ibcheck.harness import coverage
from ibcheck.harness import plugin as plugin_mod
from ibcheck.harness.sizes import applicable, check_alpha, check_plugins, check_sizes
from ibcheck.interface import Context, Coverage, Estimate, Exact, Reference

REFERENCE: Reference = "population"


@dataclasses.dataclass(frozen=True)
class CaseSetup:
    """One case ready to estimate: its truth, its modules on the run's device, and the context
    the estimators share (q already trained, a fresh label decoder)."""

    case: LinearGaussianCase
    exact: Exact
    encoder: models.LinearEncoder
    sampler: models.CaseSampler
    context: Context
    seed: int

    def seed_for(self, name: str) -> int:
        """The seed of one estimator run: (run seed; case name, case seed, estimator), so that
        reordering or filtering cases changes nothing."""
        return seeds.seed_of(self.seed, self.case.name, self.case.settings.seed, name)


def _label_decoder(case: LinearGaussianCase, device, dtype):
    if case.labels.kind == "classes":
        return models.SoftmaxLabelQ(case.m, len(case.labels.probs), device, dtype)
    if case.labels.kind == "gaussian":
        return models.LinearGaussianLabelQ(case.m, case.labels.B.shape[0], device, dtype)
    return None


def prepare(case: LinearGaussianCase, *, seed: int, device, dtype: torch.dtype) -> CaseSetup:
    """Exact values, modules, and the two q(z_v|z) trained with ``settings.q`` until converged:
    the forward one, then the Eq. 5 one started from it (``q_fit.train_both``)."""
    device = torch.device(device)
    ex = exact.exact_values(case, seed=seeds.seed_of(seed, case.name, case.settings.seed, "exact"))
    encoder = models.encoder_for(case, device, dtype)
    sampler = models.CaseSampler(case, device, dtype)
    q, q_forward = (models.LinearGaussianQ(case.m, case.k, device, dtype) for _ in range(2))
    q_seed = seeds.seed_of(seed, case.name, case.settings.seed, "q")
    forward_fit, q_fit = train_both(encoder, sampler.teacher, sampler, q_forward, q, case.settings.q,
                                    torch.Generator(device=device).manual_seed(q_seed))
    label_decoder = _label_decoder(case, device, dtype)
    context = Context(teacher=sampler.teacher, q=q, q_fit=q_fit, q_forward=q_forward, q_forward_fit=forward_fit,
                      label_decoder=label_decoder, h_y=None if label_decoder is None else exact.label_entropy(case))
    return CaseSetup(case, ex, encoder, sampler, context, seed)


# ---------------------------------------------------------------- analytic expectations


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One estimate with its analytic expectation (``expected``, with its se where it is a Monte
    Carlo value) at the parameters it ran with, and the analytic value at the optimal q (``best``),
    where they exist; ``error``: why the run failed (a user's estimator that raised, say);
    ``intervals``: a user's estimator's intervals, whose coverage is tested."""

    estimate: Estimate
    expected: float | None = None
    best: float | None = None
    expected_se: float = 0.0
    error: str | None = None
    intervals: coverage.Intervals | None = None


def _q_of(setup: CaseSetup, est: Estimate) -> models.LinearGaussianQ:
    """The q an estimate used (its ``q`` parameter)."""
    q = setup.context.q_forward if est.params.get("q") == "forward" else setup.context.q
    assert isinstance(q, models.LinearGaussianQ)
    return q


def _at_q(setup: CaseSetup, est: Estimate, prior: str = "model") -> float:
    return exact.teacher_bound(setup.case, *_q_of(setup, est).numpy_params(), prior=prior)


def _expect_vib(setup: CaseSetup, est: Estimate) -> Outcome:
    return Outcome(est, expected=exact.vib_expectation(setup.case))


def _expect_elbo(setup: CaseSetup, est: Estimate) -> Outcome:
    best = exact.teacher_bound(setup.case, *exact.optimal_q(setup.case))
    return Outcome(est, expected=_at_q(setup, est), best=best)


def _expect_iw(setup: CaseSetup, est: Estimate) -> Outcome:
    """At K = 1 the importance weight's log is Eq. 5's integrand with the KL estimated by
    sampling, so its expectation is the closed-form teacher bound at the same q."""
    return Outcome(est, expected=_at_q(setup, est) if est.params["K"] == 1 else None)


def _expect_iw_data(setup: CaseSetup, est: Estimate) -> Outcome:
    """As ``_expect_iw`` with p_d in the KL; a class mixture's has no closed form."""
    closed = est.params["K"] == 1 and setup.case.labels.kind != "classes"
    return Outcome(est, expected=_at_q(setup, est, prior="data") if closed else None)


def _expect_riw(setup: CaseSetup, est: Estimate) -> Outcome:
    """At K = 0 the only weight is the generating sample's, and the term is log q(z_v|z) - log p_d(z_v):
    its expectation is the Barber-Agakov bound on I(Z_v;Z) at the same q."""
    if est.params["K"] != 0:
        return Outcome(est)
    return Outcome(est, expected=exact.riw_zero_expectation(setup.case, *_q_of(setup, est).numpy_params()))


def _expect_barber_agakov(setup: CaseSetup, est: Estimate) -> Outcome:
    if setup.case.labels.kind != "gaussian":
        return Outcome(est)
    q_y = setup.context.label_decoder
    assert isinstance(q_y, models.LinearGaussianLabelQ)
    return Outcome(est, expected=exact.barber_agakov_expectation(setup.case, *q_y.numpy_params()))


EXPECTATIONS: dict[str, Callable[[CaseSetup, Estimate], Outcome]] = {
    registry.VIB.name: _expect_vib,
    registry.TEACHER_ELBO.name: _expect_elbo,
    registry.TEACHER_IW.name: _expect_iw,
    registry.TEACHER_IW_DATA.name: _expect_iw_data,
    registry.TEACHER_RIW.name: _expect_riw,
    registry.BARBER_AGAKOV.name: _expect_barber_agakov,
}


def _expected(setup: CaseSetup, name: str, est: Estimate) -> Outcome:
    """The estimate with its analytic values; NaN where they cannot be computed (a trained q or
    label decoder that diverged), which the judging reports as a failure with its reason."""
    expect = EXPECTATIONS.get(name)
    if expect is None:
        return Outcome(est)
    try:
        return expect(setup, est)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError):
        return Outcome(est, expected=math.nan)


def run_case(case: LinearGaussianCase, *, seed: int, device, dtype: torch.dtype,
             names: Iterable[str] | None = None, plugins: Sequence[plugin_mod.Plugin] = (),
             tick: Callable[[str], None] = lambda label: None) -> tuple[Exact, list[Outcome], dict[str, dict]]:
    """Exact values, the outcomes of every applicable estimator (or those in ``names``) and of the
    user's ``plugins``, and the records of the two q's training, by objective (none where no
    built-in estimator runs)."""
    wanted = None if names is None else set(names)
    specs = [spec for spec in applicable(case) if wanted is None or spec.name in wanted]
    setup = prepare(case, seed=seed, device=device, dtype=dtype) if specs else None
    ex = setup.exact if setup else exact.exact_values(case, seed=seeds.seed_of(seed, case.name, case.settings.seed,
                                                                                   "exact"))
    outcomes: list[Outcome] = []
    # estimators that share a joint function and their parameters (loo and nce; the annealed pair) run
    # together from the same draws, seeded by the first one's name: their difference is then paired
    for group in registry.groups([spec.name for spec in specs], case.settings.estimators):
        assert setup is not None
        together = registry.run_together(group, setup.encoder, setup.sampler, case.settings.params(group[0]),
                                         seed=setup.seed_for(group[0]), context=setup.context, reference=REFERENCE)
        for name in group:
            outcomes.extend(_expected(setup, name, est) for est in together[name])
            tick(f"{case.name}: {name}")
    for plugin in plugins:
        if plugin.applies(case):
            outcomes.append(_plugin_outcome(plugin, case, ex, seed))
            tick(f"{case.name}: {plugin.name}")
    fits = {} if setup is None else {"elbo": setup.context.q_fit or {}, "forward": setup.context.q_forward_fit or {}}
    return ex, outcomes, fits


def _plugin_outcome(plugin: plugin_mod.Plugin, case: LinearGaussianCase, ex: Exact, seed: int) -> Outcome:
    """A user's estimator on a case; a point estimator's expectation is the truth itself (its bias is
    tested against 0)."""
    done = plugin_mod.run(plugin, case, seed)
    if plugin.kind != "point":
        return Outcome(done.estimate, error=done.error, intervals=done.intervals)
    truth = ex.I_XZ if plugin.target == "I_XZ" else ex.I_YZ
    truth_se = (ex.I_XZ_se if plugin.target == "I_XZ" else ex.I_YZ_se) or 0.0
    return Outcome(done.estimate, expected=truth, expected_se=truth_se, error=done.error, intervals=done.intervals)


# ---------------------------------------------------------------- judging


@dataclasses.dataclass(frozen=True)
class Judged:
    """An outcome with its tests: ``valid`` (one-sided, bounds.md section 5) and
    ``matches_expected`` (two-sided); None where a test does not apply. ``error`` says why an
    outcome that is not a finite number failed. ``coverage``: how often a user's intervals held
    the truth, with its binomial verdict (``harness.coverage``)."""

    outcome: Outcome
    truth: float
    truth_se: float
    valid: bool | None
    matches_expected: bool | None
    error: str | None = None
    coverage: Coverage | None = None

    @property
    def covers(self) -> bool | None:
        return None if self.coverage is None else self.coverage["covers"]

    @property
    def estimate(self) -> Estimate:
        return self.outcome.estimate

    @property
    def gap(self) -> float:
        return self.outcome.estimate.value - self.truth


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """One case judged; q_fits: the training record of each q (by objective, with its curve)."""

    name: str
    exact: Exact
    rows: list[Judged]
    q_fits: dict[str, dict] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ValidationResult:
    """The judged run: ``alpha`` is the family-wise budget, ``test_alpha`` each test's share."""

    alpha: float
    test_alpha: float
    tests: int
    cases: list[CaseResult]
    seed: int
    device: str
    dtype: str
    seconds: float

    @property
    def passed(self) -> bool:
        return all(r.error is None and r.valid is not False and r.matches_expected is not False
                   and r.covers is not False for c in self.cases for r in c.rows)


def _tests_of(outcome: Outcome) -> tuple[bool, bool, bool]:
    """(has a one-sided test, has an expectation test, has a coverage test): a bound against the
    truth, an estimate against its analytic expectation where one exists, and a user's intervals
    against their level."""
    return outcome.estimate.kind in ("upper", "lower"), outcome.expected is not None, outcome.intervals is not None


def _not_finite(outcome: Outcome) -> str | None:
    est = outcome.estimate
    if not (math.isfinite(est.value) and math.isfinite(est.stderr)):
        return f"the estimate is not finite ({est.value} ± {est.stderr})"
    if outcome.expected is not None and not math.isfinite(outcome.expected):
        return "its analytic expectation is not finite (a trained q or label decoder diverged)"
    return None


def _judge_one(o: Outcome, ex: Exact, level: float, eps: float) -> Judged:
    est, (one_sided, two_sided, _) = o.estimate, _tests_of(o)
    truth = ex.I_XZ if est.target == "I_XZ" else ex.I_YZ
    if truth is None:
        raise ValueError(f"an estimate of {est.target} for a case without labels")
    truth_se = (ex.I_XZ_se if est.target == "I_XZ" else ex.I_YZ_se) or 0.0
    error = o.error or _not_finite(o)
    if error is not None:
        return Judged(o, truth, truth_se, False if one_sided else None, False if two_sided else None, error)
    valid = None
    if one_sided:
        check = stats.upper_valid if est.kind == "upper" else stats.lower_valid
        valid = check(est.value, est.stderr, est.n, truth, level, truth_se, eps, est.skew)
    match = None
    if o.expected is not None:
        match = stats.matches(est.value, est.stderr, est.n, o.expected, level, eps, o.expected_se)
    covered = None if o.intervals is None else coverage.judged(o.intervals, truth, level)
    return Judged(o, truth, truth_se, valid, match, coverage=covered)


def judge(per_case: list[tuple[str, Exact, list[Outcome], dict[str, dict]]], *, alpha: float,
          eps: float) -> tuple[float, int, list[CaseResult]]:
    """Apply bounds.md section 5 to every outcome, alpha split evenly over all tests."""
    tests = sum(sum(_tests_of(o)) for _, _, outcomes, _ in per_case for o in outcomes)
    level = stats.bonferroni(alpha, tests)
    results = [CaseResult(name, ex, [_judge_one(o, ex, level, eps) for o in outcomes], fits)
               for name, ex, outcomes, fits in per_case]
    return level, tests, results


def validate(cases: list[LinearGaussianCase], *, alpha: float = 1e-3, seed: int = 0, device="cpu",
             dtype: torch.dtype = torch.float64, progress: Callable[[str], None] = lambda label: None,
             names: Iterable[str] | None = None, plugins: Sequence[plugin_mod.Plugin] = ()) -> ValidationResult:
    """Run and judge every case, with the user's ``plugins`` beside the built-in estimators (or
    those in ``names``); ``progress(label)`` is called after each estimator run. A plugin that
    applies to no case is refused (``check_plugins``)."""
    check_plugins(cases, plugins)
    check_alpha(alpha, cases, len(plugins))
    check_sizes(cases, device, plugins)
    started = time.perf_counter()
    per_case = []
    try:
        for case in cases:
            ex, outcomes, fits = run_case(case, seed=seed, device=device, dtype=dtype, names=names, plugins=plugins,
                                          tick=progress)
            per_case.append((case.name, ex, outcomes, fits))
    finally:  # the users' worker processes end with the run, and whatever they left running with them
        for plugin in plugins:
            plugin.close()
    level, tests, results = judge(per_case, alpha=alpha, eps=torch.finfo(dtype).eps)
    return ValidationResult(alpha=alpha, test_alpha=level, tests=tests, cases=results, seed=seed,
                            device=str(device), dtype=str(dtype).replace("torch.", ""),
                            seconds=time.perf_counter() - started)
