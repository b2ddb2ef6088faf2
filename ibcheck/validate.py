"""Run every applicable estimator on linear-Gaussian cases and judge it against the truth.

The table ``RUNNERS`` names each estimator and what it needs; the same table
drives ``ibcheck validate`` and the tests (over the built-in suite, the one table
of named cases that the tests, benchmarks and reports share). Judging follows
bounds.md section 5 with one family-wise budget ``alpha`` split over every test
of the run (Bonferroni).
"""
from __future__ import annotations

import dataclasses
import time
import zlib
from typing import Callable, Iterable, Optional

import numpy as np
import torch

from ibcheck import estimators, io, stats
from ibcheck.analytic import exact, models
from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.config import EstimatorSettings
from ibcheck.interface import Estimate, Exact


@dataclasses.dataclass
class CaseContext:
    """What runners share for one case: modules on the run's device, exact values,
    and the teacher q once ``teacher_elbo`` has trained it (``teacher_iw`` reuses it)."""

    case: LinearGaussianCase
    exact: Exact
    device: torch.device
    dtype: torch.dtype
    seed: int
    encoder: models.LinearEncoder = dataclasses.field(init=False)
    sampler: models.CaseSampler = dataclasses.field(init=False)
    q: Optional[models.LinearGaussianQ] = None

    def __post_init__(self):
        self.encoder = models.encoder_for(self.case, self.device, self.dtype)
        self.sampler = models.CaseSampler(self.case, self.device, self.dtype)

    @property
    def settings(self) -> EstimatorSettings:
        return self.case.settings

    def seed_for(self, name: str, index: int = 0) -> int:
        """A seed per (run seed, case seed, case name, estimator, index): reordering cases changes nothing."""
        words = [self.seed, self.settings.seed, zlib.crc32(self.case.name.encode()), zlib.crc32(name.encode()), index]
        return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One estimate with its analytic expectation (``expected``) and the analytic value
    at the optimal q (``best``) where they exist."""

    estimate: Estimate
    expected: Optional[float] = None
    best: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class Runner:
    """A named estimator: ``applies(case)`` says whether it runs; ``units(case)`` how many
    estimates it makes (for the progress bar); ``run(ctx)`` makes them."""

    name: str
    run: Callable[[CaseContext], list[Outcome]]
    applies: Callable[[LinearGaussianCase], bool] = lambda case: True
    units: Callable[[LinearGaussianCase], int] = lambda case: 1


def _vib(ctx: CaseContext) -> list[Outcome]:
    est = estimators.vib(ctx.encoder, ctx.sampler, n=ctx.settings.n_vib, seed=ctx.seed_for("vib"))
    return [Outcome(est, expected=exact.vib_expectation(ctx.case))]


def _teacher_elbo(ctx: CaseContext) -> list[Outcome]:
    s = ctx.settings
    ctx.q = models.LinearGaussianQ(ctx.case.m, ctx.case.k, ctx.device, ctx.dtype)
    est = estimators.teacher_elbo(ctx.encoder, ctx.sampler.teacher, ctx.sampler, ctx.q, steps=s.q_steps,
                                  batch=s.q_batch, lr=s.q_lr, n_eval=s.n_eval, seed=ctx.seed_for("teacher_elbo"))
    expected = exact.teacher_bound(ctx.case, *ctx.q.numpy_params())
    return [Outcome(est, expected=expected, best=exact.teacher_bound(ctx.case, *exact.optimal_q(ctx.case)))]


def _teacher_iw(ctx: CaseContext) -> list[Outcome]:
    """One estimate per K. At K = 1 the importance weight's log is Eq. 5's integrand with the KL
    estimated by sampling, so its expectation is the closed-form teacher bound at the same q."""
    if ctx.q is None:
        _teacher_elbo(ctx)
    at_q = exact.teacher_bound(ctx.case, *ctx.q.numpy_params())
    return [Outcome(estimators.teacher_iw(ctx.encoder, ctx.sampler.teacher, ctx.sampler, ctx.q, K=K,
                                          n=ctx.settings.iw_n, seed=ctx.seed_for("teacher_iw", K)),
                    expected=at_q if K == 1 else None)
            for K in ctx.settings.iw_K]


def _batch(name: str) -> Callable[[CaseContext], list[Outcome]]:
    def run(ctx: CaseContext) -> list[Outcome]:
        fn = getattr(estimators, name)
        return [Outcome(fn(ctx.encoder, ctx.sampler, N=N, batches=ctx.settings.n_batches,
                           seed=ctx.seed_for(name, N)))
                for N in ctx.settings.batch_N]
    return run


def _empirical(ctx: CaseContext) -> list[Outcome]:
    s = ctx.settings
    out = estimators.empirical_over_datasets(ctx.encoder, ctx.sampler, N=s.empirical_N, sets=s.empirical_sets,
                                             draws=s.empirical_draws, seed=ctx.seed_for("empirical"))
    return [Outcome(est) for est in out]


def _decoder(ctx: CaseContext) -> list[Outcome]:
    s, case = ctx.settings, ctx.case
    if case.labels.kind == "classes":
        q_y = models.SoftmaxLabelQ(case.m, len(case.labels.probs), ctx.device, ctx.dtype)
    else:
        q_y = models.LinearGaussianLabelQ(case.m, case.labels.B.shape[0], ctx.device, ctx.dtype)
    est = estimators.decoder(ctx.encoder, ctx.sampler, q_y, h_y=exact.label_entropy(case), steps=s.decoder_steps,
                             batch=s.decoder_batch, lr=s.decoder_lr, n_eval=s.n_eval, seed=ctx.seed_for("decoder"))
    expected = exact.decoder_expectation(case, *q_y.numpy_params()) if case.labels.kind == "gaussian" else None
    return [Outcome(est, expected=expected)]


RUNNERS: list[Runner] = [
    Runner("vib", _vib),
    Runner("teacher_elbo", _teacher_elbo),
    Runner("teacher_iw", _teacher_iw, units=lambda case: len(case.settings.iw_K)),
    Runner("loo", _batch("loo"), units=lambda case: len(case.settings.batch_N)),
    Runner("nce", _batch("nce"), units=lambda case: len(case.settings.batch_N)),
    Runner("empirical", _empirical),
    Runner("decoder", _decoder, applies=lambda case: case.labels.kind != "none"),
]


@dataclasses.dataclass(frozen=True)
class Judged:
    """An outcome with its tests: ``valid`` (one-sided, bounds.md section 5) and
    ``matches_expected`` (two-sided); None where a test does not apply."""

    outcome: Outcome
    truth: float
    truth_se: float
    valid: Optional[bool]
    matches_expected: Optional[bool]

    @property
    def gap(self) -> float:
        return self.outcome.estimate.value - self.truth


@dataclasses.dataclass(frozen=True)
class CaseResult:
    name: str
    exact: Exact
    rows: list[Judged]


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
        return all(flag is not False for c in self.cases for r in c.rows for flag in (r.valid, r.matches_expected))


def run_case(case: LinearGaussianCase, *, seed: int, device: torch.device, dtype: torch.dtype,
             runners: Iterable[Runner] = None, tick: Callable[[str, int], None] = lambda name, units: None
             ) -> tuple[Exact, list[Outcome]]:
    """Exact values and every applicable runner's outcomes for one case."""
    exact_seed = int(np.random.SeedSequence([seed, case.settings.seed]).generate_state(1)[0])
    ctx = CaseContext(case, exact.exact_values(case, seed=exact_seed), torch.device(device), dtype, seed)
    outcomes = []
    for runner in RUNNERS if runners is None else runners:
        if runner.applies(case):
            outcomes.extend(runner.run(ctx))
            tick(f"{case.name}: {runner.name}", runner.units(case))
    return ctx.exact, outcomes


def _tests_of(outcome: Outcome) -> tuple[bool, bool]:
    """(has a validity test, has an expectation test). The empirical I(Y;Z) of a finite
    sample has no one-sided relation to the population value, so it is reported only."""
    est = outcome.estimate
    one_sided = not (est.kind == "exact" and est.target == "I_YZ")
    return one_sided, outcome.expected is not None


def judge(per_case: list[tuple[str, Exact, list[Outcome]]], *, alpha: float, eps: float) -> tuple[float, int, list[CaseResult]]:
    """Apply bounds.md section 5 to every outcome, alpha split evenly over all tests."""
    tests = sum(sum(_tests_of(o)) for _, _, outcomes in per_case for o in outcomes)
    level = stats.bonferroni(alpha, tests)
    results = []
    for name, ex, outcomes in per_case:
        rows = []
        for o in outcomes:
            est, (one_sided, two_sided) = o.estimate, _tests_of(o)
            truth = ex.I_XZ if est.target == "I_XZ" else ex.I_YZ
            truth_se = (ex.I_XZ_se if est.target == "I_XZ" else ex.I_YZ_se) or 0.0
            valid = None
            if one_sided:
                # empirical ("exact" for its own finite data sets) is a lower bound on the
                # population value in expectation over data sets: it equals InfoNCE's.
                check = stats.upper_valid if est.kind == "upper" else stats.lower_valid
                valid = check(est.value, est.stderr, est.n, truth, level, truth_se, eps)
            match = stats.matches(est.value, est.stderr, est.n, o.expected, level, eps) if two_sided else None
            rows.append(Judged(o, truth, truth_se, valid, match))
        results.append(CaseResult(name, ex, rows))
    return level, tests, results


def validate(cases: list[LinearGaussianCase], *, alpha: float = 1e-3, seed: int = 0, device="cpu",
             dtype: torch.dtype = torch.float64, progress=None, runners: Iterable[Runner] = None) -> ValidationResult:
    """Run and judge every case. ``progress``, if given, is called as progress(label, units)."""
    started = time.perf_counter()
    runners = RUNNERS if runners is None else list(runners)
    per_case = []
    for case in cases:
        ex, outcomes = run_case(case, seed=seed, device=device, dtype=dtype, runners=runners,
                                tick=progress or (lambda name, units: None))
        per_case.append((case.name, ex, outcomes))
    level, tests, results = judge(per_case, alpha=alpha, eps=torch.finfo(dtype).eps)
    return ValidationResult(alpha=alpha, test_alpha=level, tests=tests, cases=results, seed=seed,
                            device=str(device), dtype=str(dtype).replace("torch.", ""),
                            seconds=time.perf_counter() - started)


def total_units(cases: list[LinearGaussianCase], runners: Iterable[Runner] = None) -> int:
    """Progress-bar length: estimates the run will make."""
    runners = RUNNERS if runners is None else list(runners)
    return sum(r.units(c) for c in cases for r in runners if r.applies(c))


def to_json(result: ValidationResult) -> dict:
    """The ``--json`` document of case-file.md, plus each estimate's params and seed.
    Non-finite numbers (a diverged run) become null."""
    cases = []
    for c in result.cases:
        ex = c.exact
        entry = {"name": c.name,
                 "exact": {"I_XZ": ex.I_XZ, "I_XZ_se": ex.I_XZ_se, "I_YZ": ex.I_YZ, "I_YZ_se": ex.I_YZ_se},
                 "estimates": []}
        for r in c.rows:
            est = r.outcome.estimate
            entry["estimates"].append({
                "estimator": est.estimator, "target": est.target, "kind": est.kind,
                "value": est.value, "stderr": est.stderr, "n": est.n,
                "expected": r.outcome.expected, "best": r.outcome.best, "gap": r.gap,
                "valid": r.valid, "matches_expected": r.matches_expected, "seconds": est.seconds,
                "params": est.params, "seed": est.seed})
        cases.append(entry)
    return io.finite_or_none({"alpha": result.alpha, "passed": result.passed, "test_alpha": result.test_alpha,
            "tests": result.tests, "seed": result.seed, "device": result.device, "dtype": result.dtype,
            "seconds": result.seconds, "cases": cases})
