"""The same checks on a CUDA device (opt in with --run-gpu; skipped where there is none)."""
from __future__ import annotations

import pytest
import torch

from ibcheck import estimators, gaussian
from ibcheck.analytic.models import LinearTeacher
from ibcheck.estimators import ais
from ibcheck.estimators.batch import BatchParams
from ibcheck.estimators.q_fit import QFitParams
from ibcheck.estimators.samplers import FiniteSampler, ModelPopulation
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


def test_the_samplers_draw_on_the_device_of_their_data_and_generator():
    """The finite set's row indices come from the generator's device and follow the data's; the model
    population's z_v are drawn on its device. A device left to torch's default (the CPU) fails here."""
    x = torch.arange(10.0, device="cuda").unsqueeze(1)
    for generator in (torch.Generator(device="cuda").manual_seed(0), torch.Generator().manual_seed(0)):
        batch = FiniteSampler(x, torch.arange(10, device="cuda")).sample(50, generator)
        assert batch.x.device.type == "cuda" and batch.y is not None and torch.equal(batch.y.float(), batch.x[:, 0])
    teacher = LinearTeacher(torch.eye(2, device="cuda"), torch.zeros(2, device="cuda"), noise_std=0.5)
    drawn = ModelPopulation(teacher, 2, "cuda").sample(50, torch.Generator(device="cuda").manual_seed(0))
    assert drawn.z_v is not None and drawn.z_v.device.type == "cuda" and drawn.x.device.type == "cuda"


def test_laplace_on_cuda_finds_the_cpu_mode():
    """The Laplace start's identity and row indices follow the data's device: on CUDA it reaches the mode
    and curvature it reaches on the CPU (log gamma = -|v - 3|^2 / 8: mode 3, standard deviation 2)."""
    def target(v):
        return -((v - 3.0) ** 2).sum(-1) / 8

    mean, scale = torch.zeros(5, 2, dtype=torch.float64), torch.ones(5, 2, dtype=torch.float64)
    cpu = ais.laplace(target, mean, scale, torch.Generator().manual_seed(0), starts=4)
    cuda = ais.laplace(target, mean.cuda(), scale.cuda(), torch.Generator(device="cuda").manual_seed(0), starts=4)
    assert cuda[0].device.type == "cuda" and cuda[1].device.type == "cuda"
    torch.testing.assert_close(cuda[0].cpu(), cpu[0], rtol=0, atol=1e-9)
    torch.testing.assert_close(cuda[1].cpu(), cpu[1], rtol=0, atol=1e-9)
    torch.testing.assert_close(cpu[0], torch.full((5, 2), 3.0, dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(cpu[1], 2.0 * torch.eye(2, dtype=torch.float64).expand(5, 2, 2), rtol=0, atol=1e-9)
