"""Gaussian densities, entropies and KL divergences as batched tensor code.

Shapes: a trailing event dimension, any leading batch dimensions. A "scale" is
either a tensor of standard deviations with the mean's shape (diagonal
covariance) or a lower-triangular Cholesky factor with one more trailing
dimension (full covariance). Everything is in nats.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch

Tensor = torch.Tensor
LOG_2PI = math.log(2.0 * math.pi)
# Rows of the pairwise log-density matrix are produced in chunks of at most this
# many matrix entries, so that N = 10,000 never holds an N x N x m tensor and
# stays within a few hundred MB for N x N.
CHUNK_ENTRIES = 1 << 23


def standard_normal(shape, generator: torch.Generator, device, dtype: torch.dtype) -> Tensor:
    """N(0, 1) draws of ``shape`` from ``generator``.

    float64 draws are made in float32 and cast: on CPU that is five times faster,
    and their 2^-24 relative discretisation is far below any Monte Carlo error.
    """
    draw_dtype = torch.float32 if dtype == torch.float64 else dtype
    return torch.randn(shape, generator=generator, device=device, dtype=draw_dtype).to(dtype)


def is_diagonal(mean: Tensor, scale: Tensor) -> bool:
    """True when ``scale`` holds standard deviations (mean's shape) rather than
    Cholesky factors (one more trailing dimension)."""
    return scale.dim() == mean.dim()


def diag_log_prob(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """log N(x; mean, diag(std^2)) summed over the last dimension: (...,)."""
    u = (x - mean) / std
    return -0.5 * (u * u).sum(-1) - std.log().sum(-1) - 0.5 * x.shape[-1] * LOG_2PI


def diag_entropy(std: Tensor) -> Tensor:
    """H[N(., diag(std^2))] = sum_l log std_l + m/2 log(2 pi e): (...,)."""
    return std.log().sum(-1) + 0.5 * std.shape[-1] * (LOG_2PI + 1.0)


def kl_diag_to_standard(mean: Tensor, std: Tensor) -> Tensor:
    """KL(N(mean, diag std^2) || N(0, I)) = 1/2 sum(std^2 + mean^2 - 1 - log std^2).

    The closed form of Kingma & Welling 2013 (Appendix B), used as the VIB rate
    by Alemi et al. 2016 (Eq. 18 with r(z) = N(0, I)). Shapes (..., m) -> (...,).
    """
    return 0.5 * (std * std + mean * mean - 1.0 - 2.0 * std.log()).sum(-1)


def log_prob(x: Tensor, mean: Tensor, scale: Tensor) -> Tensor:
    """log N(x; mean, scale scale^T) for a diagonal or Cholesky ``scale``: (...,)."""
    if is_diagonal(mean, scale):
        return diag_log_prob(x, mean, scale)
    diff = (x - mean).unsqueeze(-1)
    u = torch.linalg.solve_triangular(scale, diff, upper=False).squeeze(-1)
    log_det = torch.diagonal(scale, dim1=-2, dim2=-1).log().sum(-1)
    return -0.5 * (u * u).sum(-1) - log_det - 0.5 * x.shape[-1] * LOG_2PI


def kl_to_standard(mean: Tensor, scale: Tensor) -> Tensor:
    """KL(N(mean, scale scale^T) || N(0, I)) = 1/2 [tr S + |mean|^2 - k - logdet S]: (...,)."""
    if is_diagonal(mean, scale):
        return kl_diag_to_standard(mean, scale)
    trace = (scale * scale).sum((-2, -1))
    log_det = 2.0 * torch.diagonal(scale, dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * (trace + (mean * mean).sum(-1) - mean.shape[-1] - log_det)


def rsample(mean: Tensor, scale: Tensor, generator: torch.Generator, draws: int | None = None) -> Tensor:
    """Reparameterised draws mean + scale @ eps, eps ~ N(0, I) from ``generator``.

    mean: (n, k) -> (n, k), or (n, draws, k) when ``draws`` is given.
    """
    diagonal = is_diagonal(mean, scale)
    shape = mean.shape
    if draws is not None:
        mean, scale = with_draws_axis(mean, scale)
        shape = mean.shape[:-2] + (draws, mean.shape[-1])
    eps = standard_normal(shape, generator, mean.device, mean.dtype)
    if diagonal:
        return mean + scale * eps
    return mean + (scale @ eps.unsqueeze(-1)).squeeze(-1)


def with_draws_axis(mean: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
    """Insert a draws axis before the event axis: mean (n, k) -> (n, 1, k), and the
    scale to match ((n, 1, k) diagonal or (n, 1, k, k) Cholesky)."""
    return mean.unsqueeze(-2), scale.unsqueeze(-2 if is_diagonal(mean, scale) else -3)


def _gemm_operands(z: Tensor, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
    """Operands (N_z, 2m+1) and (N_x, 2m+1) whose product is log p(z_i | x_j).

    Expands -1/2 (z - mu)^2 / s^2 = -1/2 z^2 P + z mu P - 1/2 mu^2 P with
    P = 1/s^2, and folds the per-component constant into a column of ones, so
    the whole matrix is one GEMM with no (N_z, N_x, m) intermediate. Both sides
    are centred on the mean of the component means first, which keeps the
    cancellation between the three terms small in float32.
    """
    centre = mean.mean(0, keepdim=True)
    zc, mc = z - centre, mean - centre
    precision = 1.0 / (std * std)
    const = -0.5 * (mc * mc * precision).sum(-1) - std.log().sum(-1) - 0.5 * z.shape[-1] * LOG_2PI
    left = torch.cat([zc * zc, zc, torch.ones_like(zc[:, :1])], dim=1)
    right = torch.cat([-0.5 * precision, mc * precision, const.unsqueeze(1)], dim=1)
    return left, right


def log_density_matrix(z: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """L[i, j] = log N(z_i; mean_j, diag(std_j^2)): z (N_z, m), mean/std (N_x, m) -> (N_z, N_x)."""
    left, right = _gemm_operands(z, mean, std)
    return left @ right.T


def log_density_blocks(
    z: Tensor,
    mean: Tensor,
    std: Tensor,
    own: Tensor | None = None,
    own_logp: Tensor | None = None,
    exclude_own: bool = False,
) -> Iterator[tuple[int, Tensor]]:
    """Row blocks (start, L[start:start + r]) of the log-density matrix L[i, j] = log p(z_i | x_j).

    z: (N_z, m); mean, std: (N_x, m). ``own``: (N_z,) the column of the
    component z_i was drawn from; its entry is replaced by ``own_logp`` (N_z,),
    computed directly (the entry most exposed to round-off), or by -inf with
    ``exclude_own``. Blocks hold at most CHUNK_ENTRIES entries.
    """
    left, right = _gemm_operands(z, mean, std)
    rows = max(1, CHUNK_ENTRIES // max(mean.shape[0], 1))
    for start in range(0, z.shape[0], rows):
        block = left[start:start + rows] @ right.T
        if own is not None:
            idx = own[start:start + rows].unsqueeze(1)
            if exclude_own:
                fill = torch.full(idx.shape, float("-inf"), device=block.device, dtype=block.dtype)
            else:
                assert own_logp is not None, "own_logp is needed unless exclude_own"
                fill = own_logp[start:start + rows].unsqueeze(1).to(block.dtype)
            block.scatter_(1, idx, fill)
        yield start, block


def pairwise_logmeanexp(
    z: Tensor,
    mean: Tensor,
    std: Tensor,
    own: Tensor | None = None,
    own_logp: Tensor | None = None,
    exclude_own: bool = False,
) -> Tensor:
    """log (1/N') sum_j p(z_i | x_j) for every row i: (N_z,).

    Arguments as for ``log_density_blocks``; N' = N_x, or N_x - 1 with
    ``exclude_own`` (the leave-one-out mixture of Poole et al. 2019).
    """
    blocks = log_density_blocks(z, mean, std, own, own_logp, exclude_own)
    total = torch.cat([torch.logsumexp(block, dim=1) for _, block in blocks])
    return total - math.log(mean.shape[0] - 1 if exclude_own else mean.shape[0])


def standard_log_prior(z_v: Tensor) -> Tensor:
    """log N(z_v; 0, I), the teacher's model prior: (..., k) -> (...)."""
    return -0.5 * (z_v * z_v).sum(-1) - 0.5 * z_v.shape[-1] * math.log(2 * math.pi)
