"""The same checks on a CUDA device (opt in with --run-gpu; skipped where there is none)."""
from __future__ import annotations

import pytest
import torch

from ibcheck import estimators, gaussian
from ibcheck.estimators.batch import BatchParams
from ibcheck.estimators.q_fit import QFitParams
from ibcheck.estimators.teacher_bounds import TeacherElboParams
from ibcheck.estimators.vib import VibParams
from ibcheck.harness.validate import run_case
from ibcheck.interface import Context
from ibcheck.pipeline import networks

import budget
import match_checks
from helpers import LatentSampler, fast, suite_case

pytestmark = [pytest.mark.gpu, pytest.mark.statistical]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", ["deterministic-teacher", "ten-classes", "mnist-shaped"])
def test_every_estimator_on_cuda(name, dtype, stat):
    case = fast(suite_case(name))
    ex, outcomes, _ = run_case(case, seed=budget.seed_for("gpu", name), device="cuda", dtype=dtype)
    # float32 sums drift by round-off far above the float64 expectations' standard errors
    stat.observe(match_checks.outcome_observations(ex, outcomes, f"cuda {dtype} {name}",
                                                   expectations=dtype == torch.float64))


def test_log_density_matrix_agrees_between_cuda_and_cpu():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(2000, 40, generator=g, dtype=torch.float64)
    std = torch.rand(2000, 40, generator=g, dtype=torch.float64) + 0.2
    z = mean + std * torch.randn(2000, 40, generator=g, dtype=torch.float64)
    cpu = gaussian.log_density_matrix(z, mean, std)
    gpu = gaussian.log_density_matrix(z.cuda(), mean.cuda(), std.cuda())
    atol = 81 * torch.finfo(torch.float64).eps * float(cpu.abs().max())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=atol)


def test_networks_estimators_on_cuda(stat):
    teacher = networks.MLPTeacher(seed=2).cuda()
    encoder = networks.MLPEncoder(seed=1).cuda()
    q = networks.MLPInferenceNet(seed=3).cuda()
    data = LatentSampler(teacher, device="cuda")
    fit = estimators.train_q(encoder, teacher, data, q, QFitParams(steps=50, batch=256, lr=1e-3),
                             torch.Generator(device="cuda").manual_seed(budget.seed_for("gpu-q")))
    upper = estimators.run_one("teacher_elbo", encoder, data, TeacherElboParams(n=10_000),
                               seed=budget.seed_for("gpu-elbo"), context=Context(teacher=teacher, q=q, q_fit=fit))
    lower = estimators.run_one("nce", encoder, data, BatchParams(N=(1024,), batches=8), seed=budget.seed_for("gpu-nce"))
    stat.not_below(upper, lower, label="cuda networks: teacher_elbo >= nce")
    vib = estimators.run_one("vib", encoder, data, VibParams(n=10_000), seed=budget.seed_for("gpu-vib"))
    stat.not_below(vib, lower, label="cuda networks: vib >= nce")
