"""FLOP rates of the three rate targets on one device, against a plain matmul of the same
shapes on that device, measured in the same process (for CUDA runs; ``nox -s bench`` is
the CPU record). Usage: ``PYTHONPATH=tests:tests/benchmarks python tools/device_timings.py --device cuda``.

Timed: batched Eq. 5 evaluation (``elbo_evaluate``, data sampling included) of the
MNIST-shaped random networks at n = 10,000, and the N x N log-density matrix (m = 40) at
N = 1024 and 10,000; each the minimum over repeats after a warm-up, float32.
"""
from __future__ import annotations

import argparse
import time

import torch

from ibcheck import gaussian
from ibcheck.estimators.common import generator_for
from ibcheck.estimators.teacher_bounds import elbo_evaluate
from ibcheck.pipeline import networks

from benchutil import linear_flops
from helpers import LatentSampler


def _best_seconds(fn, device: torch.device, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def _rate_line(name: str, flops: int, work: float, yard: float) -> str:
    return (f"| {name} | {flops / work / 1e9:.1f} | {flops / yard / 1e9:.1f} | {yard / work:.2f} | "
            f"{'PASS' if yard / work >= 0.5 else 'FAIL'} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    teacher = networks.MLPTeacher(seed=1).to(device)
    encoder = networks.MLPEncoder(seed=2).to(device)
    q = networks.MLPInferenceNet(seed=3).to(device)
    data = LatentSampler(teacher, device=device)
    n = 10_000
    modules = [teacher, encoder, q, teacher, encoder]
    flops = sum(linear_flops(m, n) for m in modules)
    shapes = [(lin.in_features, lin.out_features) for m in modules for lin in m.modules()
              if isinstance(lin, torch.nn.Linear)]
    ops = [(torch.randn(n, i, device=device), torch.randn(i, o, device=device)) for i, o in shapes]
    with torch.no_grad():
        work = _best_seconds(lambda: elbo_evaluate(encoder, teacher, data, q, n, generator_for(0, device)),
                             device, args.repeats)
        yard = _best_seconds(lambda: [a @ b for a, b in ops], device, args.repeats)
    lines = [f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}",
             "", "| work | GFLOP/s | yardstick GFLOP/s | ratio | verdict (>= 0.5) |", "| --- | ---: | ---: | ---: | --- |",
             _rate_line(f"teacher_elbo_eval@n={n}", flops, work, yard)]
    for N in (1024, 10_000):
        mean, std = torch.randn(N, 40, device=device), torch.rand(N, 40, device=device) + 0.1
        z = mean + std * torch.randn(N, 40, device=device)
        a, b = torch.randn(N, 81, device=device), torch.randn(81, N, device=device)
        work = _best_seconds(lambda: gaussian.log_density_matrix(z, mean, std), device, args.repeats)
        yard = _best_seconds(lambda: a @ b, device, args.repeats)
        lines.append(_rate_line(f"log_density_matrix@N={N}", 2 * N * N * 81, work, yard))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
