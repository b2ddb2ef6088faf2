"""Benchmarks on the random-weight MNIST networks (float32): teacher 20-400-784, encoder
784-1024-1024-2x40, q 40-256-2x20.

These networks have no exact I(X;Z), so results are checked by what must hold for any
networks: upper bounds (vib, teacher_iw, loo) not below the InfoNCE lower bound
(``stat.not_below``), nce and the empirical I(X;Z) at most ln N (deterministic, up to
round-off), the K = 1 importance-weighted bound and the empirical I(X;Z) agreeing in mean
with an independent computation (``stat.same_mean``), and the row-blocked log-mean-exp
equal to the whole matrix's. The FLOP-rate targets (batched Eq. 5 evaluation, the N x N
log-density matrix) and their yardsticks are in ``test_bench_targets.py``.

Timed functions draw from a generator made fresh from the test's seed on every call, so
the checked result does not depend on how many rounds ran.
"""
from __future__ import annotations

import math

import pytest
import torch

from ibcheck import estimators, gaussian, stats
from ibcheck.estimators.batch import BatchParams
from ibcheck.estimators.empirical import EmpiricalParams
from ibcheck.estimators.samplers import FiniteSampler
from ibcheck.estimators.teacher_bounds import TeacherIWParams
from ibcheck.estimators.vib import VibParams

import benchutil
from benchutil import estimate_of, q_context

pytestmark = pytest.mark.bench

TARGET_N = 10_000   # the largest n and N, as in the FLOP-rate targets (test_bench_targets.py)
CHECK_N = 2_000     # samples of the untimed, independent batched Eq. 5 estimate K = 1 is compared with
EPS32 = torch.finfo(torch.float32).eps


def _rounds(rows: int) -> int:
    """Rounds for a call that pushes ``rows`` rows through the networks or an N x N matrix:
    5 for the large cases (about a second each on two cores), more for the cheap ones."""
    return 5 if rows >= TARGET_N else 10


def _at_most_log_n(est, N: int) -> None:
    """Every term of nce and of the empirical I(X;Z) is at most ln N (the own component is in
    the mixture), so their mean is too, up to float32 round-off."""
    assert est.value <= math.log(N) + stats.roundoff(math.log(N), EPS32), f"{est.value} > ln {N}"


@pytest.mark.benchmark(group="vib")
@pytest.mark.parametrize("n", [1_000, TARGET_N])
def test_vib_nets(benchmark, stat, nets, nets_nce, seed, n):
    """vib on n fresh teacher images (sampling and encoder timed): not below InfoNCE."""
    def run():
        return estimators.run_one("vib", nets.encoder, nets.sampler, VibParams(n=n), seed=seed)

    est = benchutil.timed(benchmark, run, _rounds(n), items=n)
    stat.not_below(est, nets_nce, label=f"bench vib nets n={n} >= nce")


@pytest.mark.benchmark(group="teacher_iw")
@pytest.mark.parametrize("K", [1, 8])
def test_teacher_iw_nets(benchmark, stat, nets, nets_nce, seed, K):
    """Importance-weighted bound, n = 500 samples with K draws of q each (n K rows through the
    teacher and encoder): not below InfoNCE; at K = 1 the same mean as the Eq. 5 evaluation."""
    n = 500

    def run():
        return estimators.run_one("teacher_iw", nets.encoder, nets.sampler, TeacherIWParams(K=(K,), n=n), seed=seed,
                                  context=q_context(nets.teacher, nets.q))

    est = benchutil.timed(benchmark, run, _rounds(n * K), items=n * K)
    stat.not_below(est, nets_nce, label=f"bench teacher_iw nets K={K} >= nce")
    if K == 1:
        elbo = estimate_of("teacher_elbo", "upper", benchutil.batched_elbo_terms(nets, CHECK_N, seed + 1), seed + 1)
        stat.same_mean(est, elbo, label="bench teacher_iw nets K=1 vs elbo")


@pytest.mark.benchmark(group="loo_nce")
@pytest.mark.parametrize("N", [256, 1024])
@pytest.mark.parametrize("name", ["loo", "nce"])
def test_batch_bound_nets(benchmark, stat, nets, seed, name, N):
    """loo / nce over 4 batches of N pairs (sampling, encoder and the N x N matrix timed).
    loo is not below an independent nce at the same N; nce is at most ln N."""
    params = BatchParams(N=(N,), batches=4)
    est = benchutil.timed(benchmark, lambda: estimators.run_one(name, nets.encoder, nets.sampler, params, seed=seed),
                          _rounds(4 * N), items=4 * N)
    if name == "nce":
        _at_most_log_n(est, N)
    else:
        other = estimators.run_one("nce", nets.encoder, nets.sampler, params, seed=seed + 1)
        stat.not_below(est, other, label=f"bench loo >= nce nets N={N}")


def _naive_empirical(encoded, points: int, seed: int):
    """I_emp(X;Z) of the fixed set by direct float64 per-pair densities: ``points`` iid
    (n uniform, z ~ p(z|x_n)) terms log p(z|x_n) - log 1/N sum_j p(z|x_j)."""
    generator = torch.Generator().manual_seed(seed)
    N = encoded.mean.shape[0]
    idx = torch.randint(N, (points,), generator=generator)
    mean, std = encoded.mean.double(), encoded.std.double()
    z = mean[idx] + std[idx] * torch.randn((points, mean.shape[1]), generator=generator, dtype=torch.float64)
    terms = []
    for rows in torch.arange(points).split(16):  # 16 x N x m float64 at a time
        log_p = gaussian.diag_log_prob(z[rows, None, :], mean[None], std[None])
        terms.append(log_p[torch.arange(len(rows)), idx[rows]] - torch.logsumexp(log_p, 1) + math.log(N))
    return estimate_of("empirical", "exact", torch.cat(terms), seed)


@pytest.mark.benchmark(group="empirical")
@pytest.mark.parametrize("N", [1024, TARGET_N])
def test_empirical_nets(benchmark, stat, encoded, nets, seed, N):
    """Empirical I(X;Z) of N fixed teacher images, one z per image (encoder and N x N blocks
    timed): at most ln N, and the same mean as a direct float64 computation on 128 random points."""
    data = encoded.head(N)
    params = EmpiricalParams(N=None, sets=None, draws=1)
    est = benchutil.timed(benchmark, lambda: estimators.run("empirical", nets.encoder, FiniteSampler(data.x), params,
                                                            seed=seed, reference="finite")[0], _rounds(N), items=N)
    _at_most_log_n(est, N)
    stat.same_mean(est, _naive_empirical(data, 128, seed + 1), label=f"bench empirical nets N={N} vs direct")


@pytest.mark.benchmark(group="logdensity")
@pytest.mark.parametrize("N", [1024, TARGET_N])
def test_pairwise_logmeanexp(benchmark, encoded, N):
    """log 1/N sum_j p(z_i | x_j) for every i: (N,), by row blocks (timed); equals torch.logsumexp
    of the whole matrix minus ln N (same operands, so float32 tolerances)."""
    data = encoded.head(N)
    got = benchutil.timed(benchmark, lambda: gaussian.pairwise_logmeanexp(data.z, data.mean, data.std),
                          _rounds(N), items=N, flops=benchutil.log_density_flops(N, data.mean.shape[1]))
    whole = torch.logsumexp(gaussian.log_density_matrix(data.z, data.mean, data.std), dim=1) - math.log(N)
    torch.testing.assert_close(got, whole)
