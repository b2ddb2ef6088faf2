"""Every tensor is made on the device of the data it serves, checked without an accelerator: torch's
``meta`` device (shapes and dtypes, no data) stands in for one. A tensor left on the CPU either meets
a meta one, which torch refuses as it would a CUDA one, or comes back on the CPU; both fail here.
``tests/test_gpu.py`` runs the numbers themselves on CUDA where a GPU is lent. Only code that reads
no value back into Python can run on meta, so the loops that do (``anneal`` past T = 1, the
finite-set bounds) are left to that file."""
from __future__ import annotations

import pytest
import torch

from ibcheck.analytic import models
from ibcheck.estimators import ais
from ibcheck.estimators.batch import BatchParams, sandwich_terms
from ibcheck.estimators.samplers import FiniteSampler, ModelPopulation
from ibcheck.interface import Context

from helpers import suite_case

META = torch.device("meta")
DTYPE = torch.float64


def _on_meta(*tensors: torch.Tensor | None) -> bool:
    return all(t is None or t.device == META for t in tensors)


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _module_tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return list(module.parameters()) + list(module.buffers())


# ---------------------------------------------------------------- the analytic models


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_linear_models_make_their_parameters_on_the_device_and_dtype_asked(dtype):
    qs = (models.LinearGaussianQ(3, 2, META, dtype), models.LinearGaussianLabelQ(3, 2, META, dtype),
          models.SoftmaxLabelQ(3, 4, META, dtype), models.encoder_for(suite_case("high-mi"), META, dtype))
    for module in qs:
        held = _module_tensors(module)
        assert held and _on_meta(*held) and all(t.dtype == dtype for t in held), type(module).__name__
    z = torch.zeros(5, 3, device=META, dtype=dtype)
    q, label_q, softmax_q, _ = qs
    real, classes = torch.zeros(5, 2, device=META, dtype=dtype), torch.zeros(5, dtype=torch.long, device=META)
    assert _on_meta(*q(z), q.chol(), label_q.log_prob(z, real), softmax_q.log_prob(z, classes))


@pytest.mark.parametrize("name", ["ten-classes", "shifted-data-prior", "hand-1d"])
def test_a_case_sampler_draws_and_scores_on_its_device(name):
    sampler = models.CaseSampler(suite_case(name), META, DTYPE)
    held = [t for t in vars(sampler).values() if isinstance(t, torch.Tensor)] + _module_tensors(sampler.teacher)
    assert sampler.device == META and _on_meta(*held)
    batch = sampler.sample(6, _generator())
    assert _on_meta(batch.x, batch.z_v, batch.y, sampler.log_prior(batch.z_v))


# ---------------------------------------------------------------- the generic samplers


def test_the_generic_samplers_draw_on_the_device_of_their_data():
    x, y = torch.zeros(5, 3, device=META, dtype=DTYPE), torch.zeros(5, dtype=torch.long, device=META)
    finite = FiniteSampler(x, y).sample(4, _generator())
    assert finite.x.shape == (4, 3) and _on_meta(finite.x, finite.y)
    teacher = models.LinearTeacher(torch.zeros(3, 2, device=META, dtype=DTYPE), torch.zeros(3, device=META,
                                   dtype=DTYPE), noise_std=0.5)
    batch = ModelPopulation(teacher, 2, META, DTYPE).sample(4, _generator())
    assert batch.x.shape == (4, 3) and _on_meta(batch.x, batch.z_v)


# ---------------------------------------------------------------- the annealed bounds' parts


def _target(v: torch.Tensor) -> torch.Tensor:
    return -(v * v).sum(-1)


@pytest.mark.parametrize("tails", [0, 3])
def test_the_annealing_kernels_run_on_the_device_of_their_start(tails):
    n, k, chains = 4, 2, 3
    start = ais.Start(torch.zeros(n, k, device=META, dtype=DTYPE), torch.ones(n, k, device=META, dtype=DTYPE), tails)
    u = ais.sample_u(start, chains, _generator())
    state = ais.state_at(_target, u)
    assert u.shape == (n, chains, k) and _on_meta(u, *ais.log_q0(start, u), ais.log_det(start))
    step = torch.full((n, chains), 0.1, device=META, dtype=DTYPE)
    moved, accept = ais.hmc(state, start, _target, torch.full((chains,), 0.5, device=META, dtype=DTYPE), step, 2,
                            _generator())
    assert _on_meta(moved.u, moved.log_gamma, moved.grad, accept)
    steps = ais.tune(start, _target, "sigmoid", 3, chains, 2, _generator())
    assert _on_meta(steps.betas, steps.log_steps)
    assert _on_meta(ais.step_sizes_at(steps, torch.full((chains,), 0.3, device=META, dtype=DTYPE)))
    mode, chol = ais.laplace(_target, start.mean, start.scale, _generator(), starts=2)
    assert mode.shape == (n, k) and _on_meta(mode, chol)


def test_one_step_annealing_runs_on_the_device_of_its_start():
    """T = 1 (no transition, so no acceptance read back): its increments are made on the chains'
    device, for the forward chains and the reverse one."""
    n, k = 4, 2
    start = ais.Start(torch.zeros(n, k, device=META, dtype=DTYPE), torch.ones(n, k, device=META, dtype=DTYPE))
    for generating_u in (None, torch.zeros(n, k, device=META, dtype=DTYPE)):
        chains = ais.anneal(start, _target, ais.schedule(1, "sigmoid"), 3, generating_u, None, 2, _generator())
        assert chains.log_w.shape == (n, 3) and _on_meta(chains.log_w, chains.log_w_rev)


# ---------------------------------------------------------------- the batch bounds


def test_the_batch_bounds_run_on_the_device_of_their_data():
    case = suite_case("high-mi")
    encoder, sampler = models.encoder_for(case, META, DTYPE), models.CaseSampler(case, META, DTYPE)
    found = sandwich_terms(encoder, sampler, BatchParams(N=(8,), batches=2), _generator(), Context(),
                           {"loo": True, "nce": False})
    assert all(_on_meta(m.terms) and m.terms.shape == (2,) for measured in found.values() for m in measured)
