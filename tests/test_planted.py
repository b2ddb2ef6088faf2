"""Tests for single-line bugs that were once planted and survived the suite (the hardening
issue). Each says which bug it catches; ``nox -s mutants`` plants them again and checks."""
from __future__ import annotations

import math

import pytest
import torch
from scipy import stats as sps

from ibcheck import estimators, stats
from ibcheck.analytic.casefile import parse_cases
from ibcheck.config import PRESETS
from ibcheck.estimators.empirical import EmpiricalParams
from ibcheck.estimators.samplers import FiniteSampler
from ibcheck.estimators.vib import VibParams
from ibcheck.gaussian import kl_diag_to_standard
from ibcheck.harness.validate import validate
from ibcheck.pipeline import student, tracking, training

from helpers import linear, suite_case


class IgnoresX(torch.nn.Module):
    """p(z|x) = N(0.3, 0.7^2 I) whatever x: every mixture component is the same density."""

    def forward(self, x):
        mean = torch.full((x.shape[0], 3), 0.3, dtype=x.dtype)
        return mean, torch.full_like(mean, 0.7)


def test_empirical_information_is_zero_when_the_encoder_ignores_x():
    """Every component equal: log p(z|x_n) - log (1/N) sum_j p(z|x_j) = 0 exactly, and for Y the class
    mixture (1/N_y) sum_{j in y} p(z|x_j) equals the marginal. Catches a mixture divided by N - 1,
    and the class mixture without its 1/N_y (classes of unequal size)."""
    x = torch.randn(50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0] * 7 + [1] * 30 + [2] * 13)
    for est in estimators.run("empirical", IgnoresX(), FiniteSampler(x, y), EmpiricalParams(N=None, sets=None, draws=3),
                              seed=1, reference="finite"):
        assert abs(est.value) < 1e-12 and est.stderr < 1e-12, est


def test_validate_splits_alpha_over_its_tests():
    """Bonferroni over the number of tests made, not over the number of cases."""
    document = {"name": "c", "teacher": {"W": [[1.0]]}, "encoder": {"A": [[1.0]], "std": [1.0]},
                "settings": {"q": {"steps": 20}, "n_exact": 1000,
                             "estimators": {"vib": {"n": 200}, "teacher_elbo": {"n": 200},
                                            "teacher_iw": {"K": [1, 3], "n": 100}, "loo": {"N": [16], "batches": 4},
                                            "nce": {"N": [16], "batches": 4}, "empirical": {"N": 16, "sets": 4}}}}
    result = validate(parse_cases({"cases": [document]}), alpha=1e-3)
    flags = [f for c in result.cases for r in c.rows for f in (r.valid, r.matches_expected) if f is not None]
    assert result.tests == len(flags) > len(result.cases)
    assert result.test_alpha == pytest.approx(1e-3 / len(flags), rel=1e-12)


def test_the_matching_test_uses_the_standard_error():
    """|value - expected| <= q se: five standard errors out fails at any sane level (sd = 100 se here)."""
    assert not stats.matches(1.05, 0.01, 10_000, 1.0, 1e-3)
    assert stats.matches(1.01, 0.01, 10_000, 1.0, 1e-3)


def test_estimator_draws_follow_their_seed():
    case = suite_case("noisy-teacher")
    enc, smp = linear(case)
    values = [estimators.run_one("vib", enc, smp, VibParams(n=100), seed=s).value for s in (1, 1, 2)]
    assert values[0] == values[1] != values[2]


def test_label_entropy_is_in_nats():
    y = torch.tensor([0] * 10 + [1] * 30 + [2] * 60)
    assert tracking.label_entropy(y, classes=3) == pytest.approx(sps.entropy([0.1, 0.3, 0.6]), rel=1e-12)


def test_mean_logdet_sums_the_log_variances():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(len(x), 2), torch.tensor([[0.5, 3.0]]).expand(len(x), 2)

    assert tracking.mean_logdet(Fixed(), torch.zeros(4, 1)) == pytest.approx(2 * math.log(0.5) + 2 * math.log(3.0))
    assert tracking.mean_logdet(lambda x: (x, torch.full_like(x, 2.0)), torch.zeros(3, 5)) == pytest.approx(
        5 * math.log(4.0))


def test_the_students_kl_is_the_batch_mean():
    """beta multiplies the mean KL over the batch (vib_demo): a sum would scale beta by the batch size."""
    config = PRESETS["smoke"].student
    model = student.VIBStudent(config, seed=0)
    x, y = torch.rand(17, 784), torch.randint(0, 10, (17,))
    with torch.no_grad():
        total, ce, kl = model.loss(x, y, 0.5, torch.Generator().manual_seed(0))
        mean, std = model.encoder(x)
    assert float(kl) == pytest.approx(float(kl_diag_to_standard(mean, std).mean()), rel=1e-6)
    assert float(total) == pytest.approx(float(ce) + 0.5 * float(kl), rel=1e-6)


def test_a_session_restores_its_learning_rate_schedule():
    """--resume continues the staircase decay where it was, also after an odd number of epochs."""
    config = PRESETS["smoke"]
    first = training.new_session(config, torch.device("cpu"))
    for _ in range(3):
        first.optimiser.step()
        first.schedule.step()
    second = training.new_session(config, torch.device("cpu"))
    second.restore(first.state())
    for _ in range(3):
        for session in (first, second):
            session.optimiser.step()
            session.schedule.step()
        assert second.optimiser.param_groups[0]["lr"] == first.optimiser.param_groups[0]["lr"]
    assert first.optimiser.param_groups[0]["lr"] == pytest.approx(config.student.lr * config.student.decay ** 3)
