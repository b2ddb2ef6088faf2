"""The generic data samplers (``ibcheck.estimators.samplers``): draws from a finite set are uniform
rows with their labels, the model population draws z_v ~ N(0, I) and x through the teacher, and both
are functions of the generator they are given (seeded runs repeat)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from ibcheck.analytic.models import CaseSampler, LinearTeacher
from ibcheck.estimators.samplers import FiniteSampler, ModelPopulation

from helpers import suite_case


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_a_finite_set_is_drawn_row_by_row_with_its_labels():
    x = torch.arange(5.0).unsqueeze(1).repeat(1, 3)
    sampler = FiniteSampler(x, torch.arange(5) * 10)
    batch = sampler.sample(1000, _generator(0))
    assert batch.x.shape == (1000, 3) and batch.y is not None and batch.y.shape == (1000,)
    rows = batch.x[:, 0].long()
    assert torch.equal(batch.x, x[rows]) and torch.equal(batch.y, rows * 10)
    # with replacement over the whole set: every row is drawn (each is missed with probability 0.8^1000)
    assert set(rows.tolist()) == set(range(5))
    assert FiniteSampler(x).sample(7, _generator(0)).y is None


def test_finite_draws_are_a_function_of_the_generator():
    sampler = FiniteSampler(torch.randn(50, 2, generator=_generator(9)))
    first, again, other = (sampler.sample(40, _generator(seed)).x for seed in (1, 1, 2))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_the_model_population_draws_through_the_teacher_at_its_dtype():
    W, c = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    population = ModelPopulation(LinearTeacher(W, c, noise_std=0.0), 2, "cpu", torch.float64)
    batch = population.sample(4000, _generator(3))
    assert batch.z_v is not None and batch.z_v.shape == (4000, 2) and batch.z_v.dtype == torch.float64
    torch.testing.assert_close(batch.x, batch.z_v @ W.T)
    # z_v ~ N(0, I): 4,000 draws put each moment within 6 standard errors (about 0.1) of its value
    assert batch.z_v.mean(0).abs().max() < 0.1 and (batch.z_v.var(0) - 1).abs().max() < 0.15
    torch.testing.assert_close(population.log_prior(torch.zeros(2, dtype=torch.float64)),
                               torch.tensor(-torch.log(torch.tensor(2 * torch.pi, dtype=torch.float64)).item(),
                                            dtype=torch.float64))


def test_the_linear_teacher_states_its_latent_size_and_noise():
    """The Teacher protocol's latent_dim is W's columns (q_fit draws the model population with it);
    x = W z_v + c exactly where noise_std is 0."""
    W, c = torch.randn(4, 3, generator=_generator(0), dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    teacher = LinearTeacher(W, c, noise_std=0.0)
    assert teacher.latent_dim == 3 and teacher.deterministic
    z_v = torch.randn(6, 3, generator=_generator(1), dtype=torch.float64)
    torch.testing.assert_close(teacher.sample(z_v, _generator(2)), z_v @ W.T + c, rtol=0, atol=0)
    assert not LinearTeacher(W, c, noise_std=0.1).deterministic


def test_population_draws_are_a_function_of_the_generator():
    W, c = torch.randn(4, 2, generator=_generator(5)), torch.zeros(4)
    population = ModelPopulation(LinearTeacher(W, c, noise_std=0.5), 2, "cpu")
    first, again, other = (population.sample(30, _generator(seed)) for seed in (1, 1, 2))
    assert torch.equal(first.x, again.x) and torch.equal(first.z_v, again.z_v)
    assert not torch.equal(first.x, other.x) and not torch.equal(first.z_v, other.z_v)
    # z_v and the teacher's noise both come from the generator given, never from torch's global stream
    torch.manual_seed(0)
    assert torch.equal(population.sample(30, _generator(1)).x, first.x)


@pytest.mark.parametrize("name", ["ten-classes", "shifted-data-prior"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_case_s_data_prior_density_is_its_mixture_at_z_v_s_dtype(name, dtype):
    """CaseSampler.log_prior: log sum_c p_c N(z_v; mu_c, Sv) for class labels, log N(z_v; mv, Sv)
    otherwise (scipy's densities), over any leading axes, in the sampler's dtype."""
    case = suite_case(name)
    sampler = CaseSampler(case, "cpu", dtype)
    z_v = torch.randn(3, 4, case.k, generator=_generator(0), dtype=torch.float64)
    found = sampler.log_prior(z_v.to(dtype))
    assert found.shape == (3, 4) and found.dtype == dtype
    points = z_v.reshape(-1, case.k).numpy()
    if case.labels.kind == "classes":
        per_class = [multivariate_normal(mean, case.prior_cov).logpdf(points) + np.log(p)
                     for mean, p in zip(case.labels.means, case.labels.probs)]
        expected = logsumexp(np.stack(per_class), axis=0)
    else:
        expected = multivariate_normal(case.prior_mean, case.prior_cov).logpdf(points)
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4
    np.testing.assert_allclose(found.double().reshape(-1).numpy(), expected, rtol=tolerance, atol=tolerance)
