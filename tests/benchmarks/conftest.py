"""Fixtures of the benchmarks: the MNIST-shaped linear case and random-weight MNIST networks.

Everything here is built once per session and is not timed. The linear case is
float64 (the analytic harness's dtype); the networks are float32, the dtype the
FLOP-rate targets are stated for. Network weights come from fixed seeds, so the
work measured is the same in every run; the draws the benchmarks make come from
the ``seed`` fixture (fresh under ``nox -s stats``).
"""
from __future__ import annotations

import dataclasses
import importlib.resources

import pytest
import torch

from ibcheck import estimators
from ibcheck.analytic import exact, models
from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.analytic.casefile import load_cases
from ibcheck.estimators.batch import BatchParams
from ibcheck.estimators.common import generator_for
from ibcheck.estimators.q_fit import QFitParams, train_q
from ibcheck.interface import Estimate, Exact
from ibcheck.pipeline import networks

import budget
from helpers import LatentSampler

LINEAR_CASE = "mnist-shaped"
# q of the linear case is trained only briefly: the closed form of the teacher
# bound holds at whatever q the training stops at, so the checks do not need a
# converged q, and training loops of small ops are slow on two shared cores.
Q_STEPS, Q_BATCH, Q_LR = 60, 256, 0.01
# The random-weight networks' images and encodings, shared by the log-density,
# empirical and batch-bound benchmarks: N = 10,000 rows, a prefix for smaller N.
NET_POINTS = 10_000
NET_DTYPE = torch.float32


@dataclasses.dataclass(frozen=True)
class LinearSetup:
    """The MNIST-shaped linear-Gaussian case (d=784, k=20, m=40) as modules, float64."""

    case: LinearGaussianCase
    exact: Exact
    encoder: models.LinearEncoder
    sampler: models.CaseSampler

    @property
    def teacher(self) -> models.LinearTeacher:
        return self.sampler.teacher


@dataclasses.dataclass(frozen=True)
class Networks:
    """Random-weight MNIST networks, float32: teacher 20-400-784, encoder
    784-1024-1024-2x40, q 40-256-2x20, and the teacher's data sampler."""

    teacher: networks.MLPTeacher
    encoder: networks.MLPEncoder
    q: networks.MLPInferenceNet
    sampler: LatentSampler


@dataclasses.dataclass(frozen=True)
class Encoded:
    """N teacher images x: (N, 784), their encodings mean, std: (N, 40) and one
    draw z ~ p(z|x_i) per image: (N, 40), all float32."""

    x: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    z: torch.Tensor

    def head(self, n: int) -> Encoded:
        """The first n rows (iid draws, so a prefix is itself an iid set)."""
        return Encoded(self.x[:n], self.mean[:n], self.std[:n], self.z[:n])


@pytest.fixture(scope="session")
def linear() -> LinearSetup:
    suite = importlib.resources.files("ibcheck.baselines") / "suite.json"
    case = next(c for c in load_cases(suite) if c.name == LINEAR_CASE)
    return LinearSetup(case=case, exact=exact.exact_values(case), encoder=models.encoder_for(case),
                       sampler=models.CaseSampler(case))


@pytest.fixture(scope="session")
def linear_q(linear) -> models.LinearGaussianQ:
    """A LinearGaussianQ trained for Q_STEPS steps of paper Eq. 5 (the linear case's teacher q)."""
    q = models.LinearGaussianQ(linear.case.m, linear.case.k)
    train_q(linear.encoder, linear.teacher, linear.sampler, q, QFitParams(steps=Q_STEPS, batch=Q_BATCH, lr=Q_LR),
            generator_for(budget.seed_for("bench", "linear_q"), "cpu"))
    return q


@pytest.fixture(scope="session")
def nets() -> Networks:
    teacher = networks.MLPTeacher(seed=1, dtype=NET_DTYPE)
    return Networks(teacher=teacher, encoder=networks.MLPEncoder(seed=2, dtype=NET_DTYPE),
                    q=networks.MLPInferenceNet(seed=3, dtype=NET_DTYPE),
                    sampler=LatentSampler(teacher, dtype=NET_DTYPE))


@pytest.fixture(scope="session")
def encoded(nets) -> Encoded:
    """NET_POINTS teacher images with their encodings and one z per image."""
    generator = generator_for(budget.seed_for("bench", "encoded"), "cpu")
    with torch.no_grad():
        x = nets.sampler.sample(NET_POINTS, generator).x
        mean, std = nets.encoder(x)
        z = mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
    return Encoded(x=x, mean=mean, std=std, z=z)


@pytest.fixture(scope="session")
def nets_nce(nets) -> Estimate:
    """InfoNCE at N = 1024 on the networks: a lower bound every upper bound must sit above."""
    return estimators.run_one("nce", nets.encoder, nets.sampler, BatchParams(N=(1024,), batches=8),
                              seed=budget.seed_for("bench", "nets_nce"))
