"""Benchmarks of every estimator on the MNIST-shaped linear-Gaussian case (d=784, k=20, m=40), float64.

Each benchmark times one public estimator call (data sampling included, since every
estimator draws its own data) and then checks the call's result through the statistical
budget: against its analytic expectation where one exists (``stat.matches``), and as a
valid bound on the exact I(X;Z) or I(Y;Z) (``stat.upper`` / ``stat.lower``). Every round
starts from the same seed, so the checked result does not depend on how many rounds ran.
"""
from __future__ import annotations

import pytest

from ibcheck import estimators
from ibcheck.analytic import exact, models
from ibcheck.estimators.barber_agakov import BarberAgakovParams
from ibcheck.estimators.batch import BatchParams
from ibcheck.estimators.empirical import EmpiricalParams
from ibcheck.estimators.teacher_bounds import TeacherElboParams, TeacherIWParams
from ibcheck.estimators.vib import VibParams
from ibcheck.interface import Context

import benchutil
from benchutil import q_context

pytestmark = pytest.mark.bench

# Expensive calls (seconds each on two cores) get a fixed, small number of rounds.
ROUNDS = 3
DECODER_STEPS, DECODER_BATCH, DECODER_LR = 50, 256, 0.01


@pytest.mark.benchmark(group="vib")
@pytest.mark.parametrize("n", [2_000, 20_000])
def test_vib_linear(benchmark, stat, linear, seed, n):
    """vib over n fresh x: matches 1/2 [tr Sz + |mz|^2 - m - logdet D] and sits above I(X;Z)."""
    est = benchutil.timed(benchmark, lambda: estimators.run_one("vib", linear.encoder, linear.sampler, VibParams(n=n),
                                                                seed=seed), ROUNDS, items=n)
    stat.matches(est, exact.vib_expectation(linear.case), label=f"bench vib linear n={n}")
    stat.upper(est, linear.exact.I_XZ, linear.exact.I_XZ_se, label=f"bench vib linear n={n}")


@pytest.mark.benchmark(group="teacher_elbo")
@pytest.mark.parametrize("n", [2_000, 20_000])
def test_teacher_elbo_linear(benchmark, stat, linear, linear_q, seed, n):
    """Evaluation of paper Eq. 5 at the trained q (steps=0: no training is timed) on n fresh
    samples: matches the closed form at that q and sits above I(X;Z)."""
    def run():
        return estimators.run_one("teacher_elbo", linear.encoder, linear.sampler, TeacherElboParams(n=n), seed=seed,
                                  context=q_context(linear.teacher, linear_q))

    est = benchutil.timed(benchmark, run, ROUNDS, items=n)
    expected = exact.teacher_bound(linear.case, *linear_q.numpy_params())
    stat.matches(est, expected, label=f"bench teacher_elbo linear n={n}")
    stat.upper(est, linear.exact.I_XZ, linear.exact.I_XZ_se, label=f"bench teacher_elbo linear n={n}")


@pytest.mark.benchmark(group="teacher_iw")
@pytest.mark.parametrize("K", [1, 10, 100])
def test_teacher_iw_linear(benchmark, stat, linear, linear_q, seed, K):
    """Importance-weighted bound with K draws of the trained q on n = 500 samples (n*K teacher
    and encoder rows): above I(X;Z); at K = 1 its expectation is Eq. 5's closed form."""
    n = 500

    def run():
        return estimators.run_one("teacher_iw", linear.encoder, linear.sampler, TeacherIWParams(K=(K,), n=n),
                                  seed=seed, context=q_context(linear.teacher, linear_q))

    est = benchutil.timed(benchmark, run, ROUNDS, items=n * K)
    stat.upper(est, linear.exact.I_XZ, linear.exact.I_XZ_se, label=f"bench teacher_iw linear K={K}")
    if K == 1:
        stat.matches(est, exact.teacher_bound(linear.case, *linear_q.numpy_params()),
                     label="bench teacher_iw linear K=1")


@pytest.mark.benchmark(group="loo_nce")
@pytest.mark.parametrize("N", [64, 256, 1024])
@pytest.mark.parametrize("name", ["loo", "nce"])
def test_batch_bound_linear(benchmark, stat, linear, seed, name, N):
    """loo (upper) / nce (lower) over 8 batches of N pairs: on the right side of I(X;Z)."""
    params = BatchParams(N=(N,), batches=8)
    est = benchutil.timed(benchmark, lambda: estimators.run_one(name, linear.encoder, linear.sampler, params,
                                                                seed=seed), ROUNDS, items=8 * N)
    check = stat.upper if name == "loo" else stat.lower
    check(est, linear.exact.I_XZ, linear.exact.I_XZ_se, label=f"bench {name} linear N={N}")


@pytest.mark.benchmark(group="empirical")
def test_empirical_linear(benchmark, stat, linear, seed):
    """I_emp over 4 data sets of N = 1024 points, 4 draws each: its expectation is InfoNCE's at
    N = 1024, so it may not sit above the population I(X;Z). (The empirical I(Y;Z) of a finite
    set has no one-sided relation to the population value; it is timed, not checked.)"""
    sets, N, draws = 4, 1024, 4

    def run():
        return estimators.run("empirical", linear.encoder, linear.sampler, EmpiricalParams(N=N, sets=sets, draws=draws),
                              seed=seed)

    i_xz = benchutil.timed(benchmark, run, ROUNDS, items=sets * N * draws)[0]
    stat.lower(i_xz, linear.exact.I_XZ, linear.exact.I_XZ_se, label="bench empirical linear I_XZ")


@pytest.mark.benchmark(group="barber_agakov")
@pytest.mark.parametrize("n_eval", [2_000, 20_000])
def test_barber_agakov_linear(benchmark, stat, linear, seed, n_eval):
    """Barber-Agakov bound with a softmax q(y|z) trained from zero for DECODER_STEPS steps
    (training is timed; a fresh q per round, built outside the timing), then n_eval fresh
    samples: below the exact I(Y;Z)."""
    case = linear.case

    def setup():
        return (models.SoftmaxLabelQ(case.m, len(case.labels.probs)),), {}

    params = BarberAgakovParams(steps=DECODER_STEPS, batch=DECODER_BATCH, lr=DECODER_LR, n=n_eval)

    def run(q_y):
        return estimators.run_one("barber_agakov", linear.encoder, linear.sampler, params, seed=seed,
                                  context=Context(label_decoder=q_y, h_y=exact.label_entropy(case)))

    est = benchutil.timed(benchmark, run, ROUNDS, setup=setup, items=n_eval, train_steps=DECODER_STEPS)
    stat.lower(est, linear.exact.I_YZ, linear.exact.I_YZ_se, label=f"bench barber_agakov linear n_eval={n_eval}")
