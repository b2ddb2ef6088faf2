"""The generic data samplers (``ibcheck.estimators.samplers``): draws from a finite set are uniform
rows with their labels, the model population draws z_v ~ N(0, I) and x through the teacher, and both
are functions of the generator they are given (seeded runs repeat)."""
from __future__ import annotations

import torch

from ibcheck.analytic.models import LinearTeacher
from ibcheck.estimators.samplers import FiniteSampler, ModelPopulation


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


def test_population_draws_are_a_function_of_the_generator():
    W, c = torch.randn(4, 2, generator=_generator(5)), torch.zeros(4)
    population = ModelPopulation(LinearTeacher(W, c, noise_std=0.5), 2, "cpu")
    first, again, other = (population.sample(30, _generator(seed)) for seed in (1, 1, 2))
    assert torch.equal(first.x, again.x) and torch.equal(first.z_v, again.z_v)
    assert not torch.equal(first.x, other.x) and not torch.equal(first.z_v, other.z_v)
    # z_v and the teacher's noise both come from the generator given, never from torch's global stream
    torch.manual_seed(0)
    assert torch.equal(population.sample(30, _generator(1)).x, first.x)
