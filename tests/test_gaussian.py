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


def test_rsample_is_mean_plus_scale_times_the_generators_noise():
    mean = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    L = torch.tensor([[[2.0, 0.0], [0.5, 0.3]]], dtype=torch.float64)
    eps = gaussian.standard_normal((1, 3, 2), torch.Generator().manual_seed(5), "cpu", torch.float64)
    draws = gaussian.rsample(mean, L, torch.Generator().manual_seed(5), draws=3)
    torch.testing.assert_close(draws, mean.unsqueeze(1) + (L.unsqueeze(1) @ eps.unsqueeze(-1)).squeeze(-1))
    diag = gaussian.rsample(mean, torch.tensor([[2.0, 0.3]], dtype=torch.float64), torch.Generator().manual_seed(5))
    eps1 = gaussian.standard_normal((1, 2), torch.Generator().manual_seed(5), "cpu", torch.float64)
    torch.testing.assert_close(diag, mean + torch.tensor([[2.0, 0.3]], dtype=torch.float64) * eps1)
