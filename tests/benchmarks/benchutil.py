"""What the benchmarks share besides fixtures: the timing call, FLOP counts, the keys that
pair a measured piece of work with its dense-matmul yardstick, Estimates of per-sample
terms, and the round-off bound of a GEMM.

extra_info keys the summary reads (``tools/bench_summary.py``): ``flops`` (matmul FLOPs of one call),
``items`` (samples or rows of one call), ``work`` (this call is a rate target, named by
its key), ``yardstick_for`` (this plain matmul is the yardstick of that key), and
``per_sample`` ("batched" or "loop") for the per-sample speed ratio, ``torch_threads``, and
``other_cpu`` (cores other processes kept busy while the rounds ran: a rate measured while
they competed for the cores says more about them than about ibcheck).
"""
from __future__ import annotations

import math
import os
import time

import torch
from torch import nn

from ibcheck.estimators.common import generator_for
from ibcheck.estimators.teacher_bounds import elbo_evaluate
from ibcheck.interface import Context, Estimate


def linear_flops(module: nn.Module, rows: int) -> int:
    """2 * rows * in * out summed over the module's Linear layers: one forward pass's matmul FLOPs."""
    return sum(2 * rows * m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def q_context(teacher, q) -> Context:
    """The context of the teacher bounds with an already trained q, serving as the Eq. 5 q and as
    the forward one (the benchmarks time the bounds, whichever q they read)."""
    return Context(teacher=teacher, q=q, q_forward=q)


def timed(benchmark, fn, rounds: int, setup=None, **info):
    """Time fn() (or fn(*setup()) with a fresh setup, untimed, per round) for ``rounds`` rounds
    after one warm-up round, with extra_info ``info``; return fn's result (of the last round).

    A fixed, small number of rounds keeps expensive cases bounded; the summary uses the minimum.
    """
    benchmark.extra_info.update(info, torch_threads=torch.get_num_threads())
    busy, own, wall = _busy_cpu_seconds(), time.process_time(), time.perf_counter()
    result = benchmark.pedantic(fn, setup=setup, rounds=rounds, iterations=1, warmup_rounds=1)
    if busy is not None:
        others = (_busy_cpu_seconds() - busy) - (time.process_time() - own)
        benchmark.extra_info["other_cpu"] = round(max(others, 0.0) / (time.perf_counter() - wall), 2)
    return result


def _busy_cpu_seconds():
    """CPU seconds all processes have spent not idle since boot (Linux /proc/stat), else None."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def estimate_of(name: str, kind: str, terms: torch.Tensor, seed: int, **params) -> Estimate:
    """An Estimate of independent per-sample terms (n,): mean and sd / sqrt(n), in nats."""
    terms = terms.detach().double()
    n = terms.numel()
    return Estimate(estimator=name, target="I_XZ", kind=kind, value=float(terms.mean()),
                    stderr=float(terms.std()) / math.sqrt(n), n=n, seed=seed, params=params)


def batched_elbo_terms(nets, n: int, seed: int) -> torch.Tensor:
    """Eq. 5 terms (n,) of the batched evaluation on the networks, from a generator seeded afresh
    (so every round of a benchmark computes the same terms)."""
    return elbo_evaluate(nets.encoder, nets.teacher, nets.sampler, nets.q, n, generator_for(seed, "cpu"))


def teacher_eval_key(n: int) -> str:
    return f"teacher_elbo_eval@n={n}"


def log_density_key(N: int) -> str:
    return f"log_density_matrix@N={N}"


def teacher_eval_modules(nets) -> list[nn.Module]:
    """The networks in the order one batched Eq. 5 evaluation runs them: the teacher on z_v
    (data sampling), the encoder on x, q on z, the teacher on z_v', the encoder on x'."""
    return [nets.teacher, nets.encoder, nets.q, nets.teacher, nets.encoder]


def teacher_eval_flops(nets, n: int) -> int:
    """Matmul FLOPs of evaluating Eq. 5 on n samples, data sampling included: 2 n in out per Linear."""
    return sum(linear_flops(module, n) for module in teacher_eval_modules(nets))


def teacher_eval_shapes(nets) -> list[tuple[int, int]]:
    """(in, out) of every Linear layer the evaluation traverses, in order."""
    return [(layer.in_features, layer.out_features) for module in teacher_eval_modules(nets)
            for layer in module.modules() if isinstance(layer, nn.Linear)]


def log_density_flops(N: int, m: int) -> int:
    """The log-density matrix as one GEMM (N, 2m+1) x (2m+1, N): 2 N^2 (2m+1) FLOPs."""
    return 2 * N * N * (2 * m + 1)


def assert_within_gemm_error(got: torch.Tensor, exact: torch.Tensor, magnitude: torch.Tensor, inner: int) -> None:
    """|got - exact| <= (inner + 1) eps |a| |b|, elementwise: the forward error bound of a dot
    product of length ``inner`` in got's dtype (Higham, Accuracy and Stability, section 3.1),
    with one more rounding for forming the operands. ``magnitude`` is |a| |b| (the sum of
    the absolute values of the products), computed in float64 like ``exact``."""
    bound = (inner + 1) * torch.finfo(got.dtype).eps * magnitude
    err = (got.double() - exact).abs()
    worst = float((err / bound).max())
    assert worst <= 1.0, f"GEMM result off by {worst:.3g} times its round-off bound"
