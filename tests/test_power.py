"""Power: planted wrong bounds must be caught by the same statistical checks (bounds.md section 5).

Each planted bug is a plausible slip in an estimator; each test asserts that the
check which guards against it fails, at the same per-check level the honest
estimators pass at.
"""
from __future__ import annotations

import dataclasses
import math
import time

import pytest
import torch

from ibcheck import estimators
from ibcheck.analytic import exact, models
from ibcheck.estimators.barber_agakov import BarberAgakovParams
from ibcheck.estimators.batch import BatchParams
from ibcheck.estimators.common import generator_for, summarize
from ibcheck.estimators.teacher_bounds import TeacherIWParams, elbo_terms, encode_fresh
from ibcheck.estimators.vib import VibParams
from ibcheck.gaussian import diag_log_prob, kl_to_standard, pairwise_logmeanexp, rsample
from ibcheck.interface import Context

from helpers import linear, suite_case, trained_context

pytestmark = pytest.mark.power


class MeanDropped(torch.nn.Module):
    """The encoder as a buggy KL would see it: the |mu|^2 term lost."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        mean, std = self.encoder(x)
        return torch.zeros_like(mean), std


def _linear(name):
    case = suite_case(name)
    return (case, *linear(case))


def test_vib_without_its_mean_term_is_caught(stat, seed):
    case, enc, smp = _linear("deterministic-teacher")
    est = estimators.run_one("vib", MeanDropped(enc), smp, VibParams(n=20_000), seed=seed)
    stat.caught("match", est, exact.vib_expectation(case), "vib without mean term vs its expectation")
    stat.caught("upper", est, exact.exact_values(case).I_XZ, "vib without mean term vs I(X;Z)")


def test_teacher_bound_without_its_kl_term_is_caught(stat, seed):
    case, enc, smp = _linear("deterministic-teacher")
    q = trained_context(case, enc, smp, seed, steps=400).q
    g = generator_for(seed + 1, "cpu")
    with torch.no_grad():
        z, entropy = encode_fresh(enc, smp, 20_000, g)
        q_mean, q_scale = q(z)
        terms = elbo_terms(enc, smp.teacher, q, z, entropy, g) - kl_to_standard(q_mean, q_scale)
    est = summarize("teacher_elbo", "I_XZ", "upper", terms, seed, {}, time.perf_counter())
    stat.caught("upper", est, exact.exact_values(case).I_XZ, "teacher bound without KL")
    stat.caught("match", est, exact.teacher_bound(case, *q.numpy_params()), "teacher bound without KL vs closed form")


def test_teacher_iw_with_log_sum_instead_of_log_mean_is_caught(stat, seed):
    case, enc, smp = _linear("noisy-teacher")
    context = trained_context(case, enc, smp, seed, steps=400)
    K = 100
    est = estimators.run_one("teacher_iw", enc, smp, TeacherIWParams(K=(K,), n=2000), seed=seed + 1, context=context)
    planted = dataclasses.replace(est, value=est.value - math.log(K))
    stat.caught("upper", planted, exact.exact_values(case).I_XZ, "teacher_iw forgetting 1/K")


def test_nce_used_as_an_upper_bound_is_caught(stat, seed):
    """loo with the self term left in is nce: below I(X;Z) once I > ln N."""
    case, enc, smp = _linear("high-mi")
    est = estimators.run_one("nce", enc, smp, BatchParams(N=(64,), batches=32), seed=seed)
    stat.caught("upper", est, exact.exact_values(case).I_XZ, "loo that keeps the self term")


def test_loo_used_as_a_lower_bound_is_caught(stat, seed):
    """nce with the self term left out (and 1/(N-1)) is loo: above I(X;Z) at small N."""
    case, enc, smp = _linear("noisy-teacher")
    est = estimators.run_one("loo", enc, smp, BatchParams(N=(64,), batches=32), seed=seed)
    stat.caught("lower", est, exact.exact_values(case).I_XZ, "nce that drops the self term")


def test_barber_agakov_with_an_overstated_label_entropy_is_caught(stat, seed):
    case, enc, smp = _linear("ten-classes")
    context = Context(label_decoder=models.SoftmaxLabelQ(case.m, len(case.labels.probs)),
                      h_y=exact.label_entropy(case) + 0.1)
    est = estimators.run_one("barber_agakov", enc, smp, BarberAgakovParams(steps=600, lr=0.02, n=20_000), seed=seed,
                             context=context)
    ex = exact.exact_values(case)
    stat.caught("lower", est, ex.I_YZ, "barber_agakov with H(Y) + 0.1 nats")


def test_empirical_without_its_own_component_is_caught(stat, seed):
    """Leaving x_n out of the mixture turns the empirical MI into a loo-like overestimate."""
    case, enc, smp = _linear("high-mi")
    g = generator_for(seed, "cpu")
    terms = []
    with torch.no_grad():
        for _ in range(16):
            mean, std = enc(smp.sample(256, g).x)
            z = rsample(mean, std, g)
            own_logp = diag_log_prob(z, mean, std)
            mix = pairwise_logmeanexp(z, mean, std, torch.arange(256), own_logp, exclude_own=True)
            terms.append((own_logp - mix).mean())
    est = summarize("empirical", "I_XZ", "exact", torch.stack(terms), seed, {}, time.perf_counter())
    stat.caught("lower", est, exact.exact_values(case).I_XZ, "empirical without own component")
