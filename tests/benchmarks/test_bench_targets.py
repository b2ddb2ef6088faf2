"""The numbers to reach, on the random-weight MNIST networks (float32), each piece of work
measured right before its yardstick so that both see the machine in the same state:

- batched Eq. 5 evaluation (``elbo_evaluate``) at n = 10,000 vs plain matmuls of every
  Linear layer it traverses, and vs the per-sample loop of ``reference_loop.py``;
- the N x N log-density matrix (``gaussian.log_density_matrix``, m = 40) at N = 1024 and
  10,000 vs a plain (N, 2m+1) @ (2m+1, N).

Yardsticks are plain dense float32 ``a @ b`` on standard normal operands made outside the
timing; each call allocates its output, as the work does. Every result is checked: the
batched and per-sample evaluations against the InfoNCE bound and each other (through
``stat``), matrices against float64 within the GEMM's round-off bound.
"""
from __future__ import annotations

import pytest
import torch

from ibcheck import gaussian

import benchutil
from benchutil import estimate_of
from reference_loop import per_sample_terms

pytestmark = pytest.mark.bench

TARGET_N = 10_000   # n and N of the FLOP-rate targets
LOOP_N = 200        # samples per call of the per-sample loop and of the small batched call
CHECK_N = 2_000     # samples of the untimed batched estimate the loop is compared with
LATENT = 40         # m of the log-density target


def _operands(shapes: list[tuple[int, int, int]], seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Standard normal float32 (rows, inner) and (inner, cols) operands for each (rows, inner, cols)."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(r, k, generator=generator), torch.randn(k, c, generator=generator)) for r, k, c in shapes]


def _check_product(a: torch.Tensor, b: torch.Tensor, product: torch.Tensor, rows: int = 16) -> None:
    """The first ``rows`` rows of a @ b against float64, within round-off."""
    a64, b64 = a[:rows].double(), b.double()
    benchutil.assert_within_gemm_error(product[:rows], a64 @ b64, a64.abs() @ b64.abs(), a.shape[1])


@pytest.mark.benchmark(group="teacher_elbo")
@pytest.mark.parametrize("n", [LOOP_N, TARGET_N])
def test_teacher_elbo_nets(benchmark, stat, nets, nets_nce, seed, n):
    """Batched Eq. 5 evaluation (``elbo_evaluate``) on n samples. Timed: the whole call, i.e. the
    teacher on z_v (data sampling), the encoder on x, q on z, the teacher on z_v', the encoder
    on x', the draws and the term arithmetic; ``flops`` counts the matmuls of all five passes.
    Checked: not below InfoNCE."""
    target = {"work": benchutil.teacher_eval_key(n)} if n == TARGET_N else {}
    terms = benchutil.timed(benchmark, lambda: benchutil.batched_elbo_terms(nets, n, seed), 5 if n == TARGET_N else 10,
                            items=n, flops=benchutil.teacher_eval_flops(nets, n), per_sample="batched", **target)
    stat.not_below(estimate_of("teacher_elbo", "upper", terms, seed), nets_nce,
                   label=f"bench teacher_elbo nets n={n} >= nce")


@pytest.mark.benchmark(group="yardstick")
def test_matmul_teacher_eval_layers(benchmark, nets, seed):
    """Every Linear layer of one batched Eq. 5 evaluation (teacher, encoder, q, teacher, encoder)
    as a plain (n, in) @ (in, out) at n = 10,000, without biases or nonlinearities."""
    shapes = benchutil.teacher_eval_shapes(nets)
    ops = _operands([(TARGET_N, i, o) for i, o in shapes], seed)
    flops = sum(2 * TARGET_N * i * o for i, o in shapes)
    assert flops == benchutil.teacher_eval_flops(nets, TARGET_N)
    products = benchutil.timed(benchmark, lambda: [a @ b for a, b in ops], 5, items=TARGET_N, flops=flops,
                               yardstick_for=benchutil.teacher_eval_key(TARGET_N))
    for (a, b), product in zip(ops, products):
        _check_product(a, b, product)


@pytest.mark.benchmark(group="per_sample_loop")
def test_per_sample_loop(benchmark, stat, nets, seed):
    """The paper's steps 1-7 as a plain loop, batch size 1 (``reference_loop.py``), LOOP_N samples
    per call (all of it timed): its mean agrees with the batched evaluation's on independent draws."""
    def run():
        return per_sample_terms(nets.encoder, nets.teacher, nets.q, LOOP_N, torch.Generator().manual_seed(seed))

    terms = benchutil.timed(benchmark, run, 3, items=LOOP_N, flops=benchutil.teacher_eval_flops(nets, LOOP_N),
                            per_sample="loop")
    loop = estimate_of("teacher_elbo", "upper", terms, seed)
    batched = estimate_of("teacher_elbo", "upper", benchutil.batched_elbo_terms(nets, CHECK_N, seed + 1), seed + 1)
    stat.same_mean(loop, batched, label="bench per-sample loop vs batched elbo_evaluate")


def _check_log_density_rows(matrix: torch.Tensor, data, rows: torch.Tensor) -> None:
    """Rows of the float32 matrix against direct float64 per-pair log densities, within the
    round-off bound of the implementation's centred expansion (``gaussian._gemm_operands``):
    |a||b| = sum 1/2 zc^2 P + |zc mc| P + |const|, with zc, mc centred on the mean of the means
    and P = 1/std^2; the constant column is itself a sum of m terms, hence inner = 3m + 1."""
    z, mean, std = data.z[rows].double(), data.mean.double(), data.std.double()
    exact = gaussian.diag_log_prob(z[:, None, :], mean[None], std[None])
    centre = mean.mean(0)
    zc, mc, precision = (z - centre)[:, None, :], (mean - centre)[None], 1.0 / std[None] ** 2
    const = (0.5 * mc * mc * precision).sum(-1) + std.log().sum(-1).abs() + 0.5 * z.shape[1] * gaussian.LOG_2PI
    magnitude = (0.5 * zc * zc * precision + (zc * mc).abs() * precision).sum(-1) + const
    benchutil.assert_within_gemm_error(matrix[rows], exact, magnitude, 3 * z.shape[1] + 1)


@pytest.mark.benchmark(group="logdensity")
@pytest.mark.parametrize("N", [1024, TARGET_N])
def test_log_density_matrix(benchmark, encoded, N):
    """L[i, j] = log p(z_i | x_j), N x N from z, mean, std (N, 40) float32: one GEMM of
    (N, 81) x (81, N) and its operands (timed), never an N x N x 40 tensor. 32 spread rows
    equal a direct per-pair float64 computation within round-off."""
    data = encoded.head(N)
    matrix = benchutil.timed(benchmark, lambda: gaussian.log_density_matrix(data.z, data.mean, data.std),
                             5 if N == TARGET_N else 100, items=N, flops=benchutil.log_density_flops(N, LATENT),
                             work=benchutil.log_density_key(N))
    assert matrix.shape == (N, N) and matrix.dtype == torch.float32 and data.mean.shape[1] == LATENT
    _check_log_density_rows(matrix, data, torch.linspace(0, N - 1, 32).long())


@pytest.mark.benchmark(group="yardstick")
@pytest.mark.parametrize("N", [1024, TARGET_N])
def test_matmul_log_density_shape(benchmark, seed, N):
    """(N, 2m+1) @ (2m+1, N) with m = 40: the yardstick of the N x N log-density matrix."""
    [(a, b)] = _operands([(N, 2 * LATENT + 1, N)], seed)
    product = benchutil.timed(benchmark, lambda: a @ b, 5 if N == TARGET_N else 100, items=N,
                              flops=benchutil.log_density_flops(N, LATENT), yardstick_for=benchutil.log_density_key(N))
    _check_product(a, b, product)


@pytest.mark.benchmark(group="yardstick")
def test_matmul_square(benchmark, seed):
    """A square 2048^3 float32 matmul: the machine's best-case GEMM rate, for reference only."""
    size = 2048
    [(a, b)] = _operands([(size, size, size)], seed)
    product = benchutil.timed(benchmark, lambda: a @ b, 10, items=size, flops=2 * size**3)
    _check_product(a, b, product)
