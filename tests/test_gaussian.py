"""Deterministic checks of the Gaussian helpers against direct formulas and scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from ibcheck import gaussian


def _naive_matrix(z, mean, std):
    """log N(z_i; mean_j, diag std_j^2) by broadcasting (N_z, N_x, m): the reference."""
    diff = (z[:, None, :] - mean[None]) / std[None]
    return (-0.5 * diff**2 - std[None].log() - 0.5 * math.log(2 * math.pi)).sum(-1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("spread", [0.1, 1.0, 30.0])
def test_log_density_matrix_equals_broadcast(dtype, spread):
    g = torch.Generator().manual_seed(1)
    mean = torch.randn(300, 40, generator=g, dtype=torch.float64) * spread + 5.0
    std = torch.rand(300, 40, generator=g, dtype=torch.float64) * 0.9 + 0.1
    z = mean[torch.randperm(300, generator=g)[:120]] + std[:120] * torch.randn(120, 40, generator=g, dtype=torch.float64)
    ref = _naive_matrix(z, mean, std)
    got = gaussian.log_density_matrix(z.to(dtype), mean.to(dtype), std.to(dtype)).double()
    # The standard round-off bound of a length-(2m+1) dot product: (2m+1) eps times the terms' size.
    atol = 81 * torch.finfo(dtype).eps * float(ref.abs().max())
    torch.testing.assert_close(got, ref, rtol=0, atol=atol)


def test_log_density_matrix_centres_each_dimension_for_float32():
    """Components far apart along each dimension (offsets of -300 to 300): the operands are centred per
    dimension, so float32 keeps the round-off bound above; centring on one number for all dimensions
    would leave terms near 300^2 / std^2 to cancel, about a hundred times past it."""
    g = torch.Generator().manual_seed(3)
    offsets = torch.linspace(-300.0, 300.0, 8, dtype=torch.float64)
    mean = offsets + torch.randn(50, 8, generator=g, dtype=torch.float64)
    std = torch.rand(50, 8, generator=g, dtype=torch.float64) + 0.5
    z = mean[:20] + std[:20] * torch.randn(20, 8, generator=g, dtype=torch.float64)
    z, mean, std = z.float(), mean.float(), std.float()
    ref = _naive_matrix(z.double(), mean.double(), std.double())  # of the float32 inputs: only the sums round
    got = gaussian.log_density_matrix(z, mean, std).double()
    atol = 17 * torch.finfo(torch.float32).eps * float(ref.abs().max())  # (2m + 1) eps |L|, m = 8
    torch.testing.assert_close(got, ref, rtol=0, atol=atol)


@pytest.mark.parametrize("exclude", [False, True])
def test_pairwise_logmeanexp_with_own_entries(exclude, monkeypatch):
    monkeypatch.setattr(gaussian, "CHUNK_ENTRIES", 1000)  # force many row blocks
    g = torch.Generator().manual_seed(2)
    mean = torch.randn(50, 3, generator=g, dtype=torch.float64)
    std = torch.rand(50, 3, generator=g, dtype=torch.float64) + 0.2
    own = torch.arange(50).repeat_interleave(2)
    z = mean[own] + std[own] * torch.randn(100, 3, generator=g, dtype=torch.float64)
    own_logp = gaussian.diag_log_prob(z, mean[own], std[own])
    ref = _naive_matrix(z, mean, std)
    if exclude:
        ref[torch.arange(100), own] = -math.inf
    expected = torch.logsumexp(ref, 1) - math.log(49 if exclude else 50)
    got = gaussian.pairwise_logmeanexp(z, mean, std, own, own_logp, exclude_own=exclude)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


def test_pairwise_logmeanexp_without_own_entries_averages_over_every_component():
    """The defaults: no own entries, and the mean over all N_x components (log N_x, not log (N_x - 1))."""
    g = torch.Generator().manual_seed(4)
    mean = torch.randn(30, 2, generator=g, dtype=torch.float64)
    std = torch.rand(30, 2, generator=g, dtype=torch.float64) + 0.2
    z = torch.randn(7, 2, generator=g, dtype=torch.float64)
    expected = torch.logsumexp(_naive_matrix(z, mean, std), 1) - math.log(30)
    torch.testing.assert_close(gaussian.pairwise_logmeanexp(z, mean, std), expected, rtol=0, atol=1e-12)


def test_own_entries_given_in_float64_are_written_into_float32_blocks():
    """``own_logp`` computed in another dtype than the matrix is cast to it (torch's scatter refuses mixed
    dtypes), and lands exactly at each z's own column."""
    g = torch.Generator().manual_seed(5)
    mean = torch.randn(6, 3, generator=g)
    std = torch.rand(6, 3, generator=g) + 0.2
    own = torch.tensor([0, 2, 5, 1])
    z = mean[own] + std[own] * torch.randn(4, 3, generator=g)
    own_logp = gaussian.diag_log_prob(z.double(), mean[own].double(), std[own].double())
    ((_, block),) = list(gaussian.log_density_blocks(z, mean, std, own, own_logp))
    assert block.dtype == torch.float32
    assert torch.equal(block[torch.arange(4), own], own_logp.float())


@pytest.mark.parametrize("components", [1, 30, 150])
def test_row_blocks_hold_at_most_chunk_entries_and_at_least_one_row(components, monkeypatch):
    """Blocks of max(1, CHUNK_ENTRIES // N_x) rows: at most CHUNK_ENTRIES entries each, or one row where
    a row alone is longer; together they are the whole matrix."""
    monkeypatch.setattr(gaussian, "CHUNK_ENTRIES", 100)
    g = torch.Generator().manual_seed(6)
    mean = torch.randn(components, 3, generator=g, dtype=torch.float64)
    std = torch.rand(components, 3, generator=g, dtype=torch.float64) + 0.2
    z = torch.randn(250, 3, generator=g, dtype=torch.float64)
    rows = max(1, 100 // components)
    blocks = list(gaussian.log_density_blocks(z, mean, std))
    assert [start for start, _ in blocks] == list(range(0, 250, rows))
    assert [len(block) for _, block in blocks] == [min(rows, 250 - start) for start in range(0, 250, rows)]
    torch.testing.assert_close(torch.cat([block for _, block in blocks]), _naive_matrix(z, mean, std),
                               rtol=0, atol=1e-10)


def test_own_entries_without_their_values_are_a_programming_error():
    z, mean, std = torch.zeros(2, 1), torch.zeros(3, 1), torch.ones(3, 1)
    with pytest.raises(AssertionError, match="^own_logp is needed unless exclude_own$"):
        list(gaussian.log_density_blocks(z, mean, std, own=torch.tensor([0, 1])))


def test_full_covariance_log_prob_and_kl_match_scipy_and_torch():
    g = torch.Generator().manual_seed(3)
    k = 4
    L = torch.tril(torch.randn(k, k, generator=g, dtype=torch.float64)) + 2 * torch.eye(k, dtype=torch.float64)
    L = L * torch.sign(torch.diagonal(L)).unsqueeze(0)
    mean = torch.randn(6, k, generator=g, dtype=torch.float64)
    x = torch.randn(6, k, generator=g, dtype=torch.float64)
    cov = (L @ L.T).numpy()
    ref = [sps.multivariate_normal(mean[i].numpy(), cov).logpdf(x[i].numpy()) for i in range(6)]
    got = gaussian.log_prob(x, mean, L.expand(6, k, k))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)
    dist = torch.distributions
    kl_ref = dist.kl_divergence(dist.MultivariateNormal(mean, scale_tril=L.expand(6, k, k)),
                                dist.MultivariateNormal(torch.zeros(k, dtype=torch.float64),
                                                        torch.eye(k, dtype=torch.float64)))
    torch.testing.assert_close(gaussian.kl_to_standard(mean, L.expand(6, k, k)), kl_ref)


def test_diagonal_helpers_match_scipy():
    g = torch.Generator().manual_seed(4)
    mean = torch.randn(5, 3, generator=g, dtype=torch.float64)
    std = torch.rand(5, 3, generator=g, dtype=torch.float64) + 0.1
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    for i in range(5):
        cov = np.diag(std[i].numpy() ** 2)
        mvn = sps.multivariate_normal(mean[i].numpy(), cov)
        assert gaussian.diag_log_prob(x[i], mean[i], std[i]).item() == pytest.approx(mvn.logpdf(x[i].numpy()), abs=1e-12)
        assert gaussian.diag_entropy(std[i]).item() == pytest.approx(mvn.entropy(), abs=1e-12)
        kl = 0.5 * (np.trace(cov) + mean[i].numpy() @ mean[i].numpy() - 3 - np.log(np.linalg.det(cov)))
        assert gaussian.kl_diag_to_standard(mean[i], std[i]).item() == pytest.approx(kl, abs=1e-12)
        # the general KL takes a diagonal scale (standard deviations) as well as a Cholesky factor
        assert gaussian.kl_to_standard(mean[i], std[i]).item() == pytest.approx(kl, abs=1e-12)


@pytest.mark.parametrize("default", [torch.float32, torch.float64])
def test_seeded_draws_do_not_depend_on_torchs_default_dtype(default):
    """float64 draws are float32 draws cast (the docstring's speed choice), and neither follows
    torch.set_default_dtype: a seed gives the same numbers whatever the global default."""
    reference = {dtype: torch.randn((4, 3), generator=torch.Generator().manual_seed(7), dtype=dtype)
                 for dtype in (torch.float32, torch.float16)}
    before = torch.get_default_dtype()
    torch.set_default_dtype(default)
    try:
        draws = {dtype: gaussian.standard_normal((4, 3), torch.Generator().manual_seed(7), "cpu", dtype)
                 for dtype in (torch.float64, torch.float32, torch.float16)}
    finally:
        torch.set_default_dtype(before)
    assert draws[torch.float64].dtype == torch.float64
    assert torch.equal(draws[torch.float64], reference[torch.float32].double())
    assert torch.equal(draws[torch.float32], reference[torch.float32])
    assert torch.equal(draws[torch.float16], reference[torch.float16])


def test_full_covariance_kl_over_a_batch_of_any_shape():
    """KL(N(mean, L L^T) || N(0, I)) for a (2, 3) batch of 4-dimensional Gaussians against torch's own."""
    g = torch.Generator().manual_seed(8)
    L = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64).tril()
    L = L + 3.0 * torch.eye(4, dtype=torch.float64)  # a positive diagonal
    mean = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    dist = torch.distributions
    ref = dist.kl_divergence(dist.MultivariateNormal(mean, scale_tril=L),
                             dist.MultivariateNormal(torch.zeros(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64)))
    torch.testing.assert_close(gaussian.kl_to_standard(mean, L), ref)


def test_rsample_is_mean_plus_scale_times_the_generators_noise():
    mean = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    L = torch.tensor([[[2.0, 0.0], [0.5, 0.3]]], dtype=torch.float64)
    eps = gaussian.standard_normal((1, 3, 2), torch.Generator().manual_seed(5), "cpu", torch.float64)
    draws = gaussian.rsample(mean, L, torch.Generator().manual_seed(5), draws=3)
    torch.testing.assert_close(draws, mean.unsqueeze(1) + (L.unsqueeze(1) @ eps.unsqueeze(-1)).squeeze(-1))
    diag = gaussian.rsample(mean, torch.tensor([[2.0, 0.3]], dtype=torch.float64), torch.Generator().manual_seed(5))
    eps1 = gaussian.standard_normal((1, 2), torch.Generator().manual_seed(5), "cpu", torch.float64)
    torch.testing.assert_close(diag, mean + torch.tensor([[2.0, 0.3]], dtype=torch.float64) * eps1)
