"""Property-based tests (hypothesis, derandomised "ci" profile, >= 50 examples each).

Random valid cases across scales must satisfy what theory guarantees: the analytic
expectations of the upper bounds sit at or above the exact I(X;Z) for any q;
I >= 0; I(Y;Z) <= I(X;Z); and the Monte Carlo estimates of upper bounds are not
significantly below the truth, nor lower bounds above it, at the declared level.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibcheck import estimators
from ibcheck.analytic import exact
from ibcheck.estimators.barber_agakov import BarberAgakovParams
from ibcheck.estimators.batch import BatchParams
from ibcheck.estimators.empirical import EmpiricalParams
from ibcheck.estimators.teacher_bounds import TeacherElboParams, TeacherIWParams
from ibcheck.estimators.vib import VibParams
from ibcheck.stats import roundoff

import budget
from helpers import linear, random_case, trained_context

EXAMPLES = 50
SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


def _case(seed: int, labels: str = "any"):
    case = random_case(np.random.default_rng(seed), labels=labels)
    return dataclasses.replace(case, settings=case.settings.replace(n_exact=50_000, seed=seed))


def _random_q(rng: np.random.Generator, k: int, m: int):
    G = rng.normal(size=(k, k)) * 10 ** rng.uniform(-1, 1)
    C = rng.normal(size=(k, m)) * 10 ** rng.uniform(-2, 1)
    return C, rng.normal(size=k), G @ G.T + 10 ** rng.uniform(-2, 0) * np.eye(k)


@settings(max_examples=EXAMPLES)
@given(case_seed=SEEDS)
def test_vib_and_teacher_expectations_never_fall_below_the_information(case_seed):
    case = _case(case_seed, labels=["none", "gaussian"][case_seed % 2])
    truth = exact.exact_values(case).I_XZ
    vib = exact.vib_expectation(case)
    assert vib >= truth - roundoff(vib, 2.0**-52)
    rng = np.random.default_rng(case_seed + 1)
    for q in (_random_q(rng, case.k, case.m), exact.optimal_q(case)):
        bound = exact.teacher_bound(case, *q)
        assert bound >= truth - roundoff(bound, 2.0**-52)


@settings(max_examples=EXAMPLES)
@given(case_seed=SEEDS)
def test_information_is_non_negative_and_labels_carry_no_more_than_x(case_seed):
    case = _case(case_seed)
    ex = exact.exact_values(case)
    assert ex.I_XZ >= -roundoff(0.0, 2.0**-52)
    if ex.I_YZ is not None:
        # class values are Monte Carlo, with their own standard error
        slack = roundoff(ex.I_XZ, 2.0**-52) + 6 * (ex.I_YZ_se or 0.0)
        assert ex.I_YZ >= -slack
        assert ex.I_YZ <= ex.I_XZ + slack


SMALL = {"vib": VibParams(n=2000), "teacher_elbo": TeacherElboParams(n=2000),
         "teacher_iw": TeacherIWParams(K=(10,), n=1000), "loo": BatchParams(N=(64,), batches=16),
         "nce": BatchParams(N=(64,), batches=16), "empirical": EmpiricalParams(N=64, sets=16, draws=1)}


def _estimates(case, seed: int):
    """Small-sample runs of every I(X;Z) estimator; q trained briefly (any q gives a bound)."""
    enc, smp = linear(case)
    context = trained_context(case, enc, smp, seed, steps=60, lr=0.02, batch=128)
    for i, (name, params) in enumerate(SMALL.items()):
        for est in estimators.run(name, enc, smp, params, seed=seed + 1 + i, context=context):
            if est.target == "I_XZ":
                yield est


@pytest.mark.statistical
@settings(max_examples=EXAMPLES)
@given(case_seed=SEEDS)
def test_monte_carlo_bounds_sit_on_the_right_side_of_the_truth(case_seed, stat):
    case = _case(case_seed, labels="none" if case_seed % 3 else "classes")
    ex = exact.exact_values(case)
    for est in _estimates(case, budget.seed_for("bounds", case_seed)):
        if est.kind == "upper":
            stat.upper(est, ex.I_XZ, ex.I_XZ_se, label=f"random case {case_seed}: {est.estimator}")
        else:
            stat.lower(est, ex.I_XZ, ex.I_XZ_se, label=f"random case {case_seed}: {est.estimator}")


@pytest.mark.statistical
@settings(max_examples=EXAMPLES)
@given(case_seed=SEEDS)
def test_barber_agakov_bound_sits_below_the_label_information(case_seed, stat):
    case = _case(case_seed, labels=["gaussian", "classes"][case_seed % 2])
    ex = exact.exact_values(case)
    enc, smp = linear(case)
    context = trained_context(case, enc, smp, 0, steps=0)
    est = estimators.run_one("barber_agakov", enc, smp, BarberAgakovParams(steps=80, batch=128, lr=0.02, n=2000),
                             seed=budget.seed_for("barber_agakov", case_seed), context=context)
    assert math.isfinite(est.value)
    stat.lower(est, ex.I_YZ, ex.I_YZ_se, label=f"random case {case_seed}: barber_agakov")
