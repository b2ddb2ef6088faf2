"""Pieces every estimator shares: generators, term summaries, training loops."""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator

import torch

from ibcheck.interface import BoundKind, Estimate, Target

Tensor = torch.Tensor
# Rows pushed through the networks at once; large enough that the matrix
# products dominate, small enough for 784-wide inputs times K draws.
EVAL_ROWS = 8192


def generator_for(seed: int, device: torch.device | str) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``: the only source of randomness of a run."""
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def module_device(module) -> torch.device:
    """Device of a module's first parameter or buffer (CPU when it has none)."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return torch.device("cpu")


def summarize(estimator: str, target: Target, kind: BoundKind, terms: Tensor, seed: int,
              params: dict, started: float) -> Estimate:
    """value = mean of independent terms, stderr = sd / sqrt(n) (bounds.md section 3), skew = the
    terms' sample skewness m3 / m2^(3/2) (0 for fewer than 3 terms or equal ones)."""
    terms = terms.detach().double()
    n = terms.numel()
    stderr = float(terms.std(unbiased=True)) / math.sqrt(n) if n > 1 else math.inf
    centred = terms - terms.mean()
    m2 = float((centred**2).mean()) if n > 2 else 0.0
    # in torch: a float's m2**1.5 raises OverflowError for huge terms, where this gives inf, then a skew of 0
    skew = float((centred**3).mean() / torch.tensor(m2, dtype=torch.float64) ** 1.5) if m2 > 0 else 0.0
    return Estimate(estimator=estimator, target=target, kind=kind, value=float(terms.mean()),
                    stderr=stderr, n=n, seed=int(seed), params=dict(params),
                    seconds=time.perf_counter() - started, skew=skew if math.isfinite(skew) else 0.0)


def chunks(n: int, size: int) -> Iterator[int]:
    """Sizes of consecutive chunks covering n rows."""
    for start in range(0, n, size):
        yield min(size, n - start)


@contextlib.contextmanager
def frozen(*modules) -> Iterator[None]:
    """Turn off gradients of the modules' parameters while another module trains.

    The student encoder and the teacher sit inside the teacher bound's graph;
    without this, training q would also fill (and spoil) their .grad fields.
    """
    params = [p for mod in modules for p in getattr(mod, "parameters", lambda: [])()]
    saved = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, saved):
            p.requires_grad_(flag)


def fit(parameters: Iterable[Tensor], loss: Callable[[], Tensor], steps: int, lr: float) -> list[float]:
    """Minimise ``loss()`` (a fresh Monte Carlo minibatch per call) with Adam and a
    cosine-annealed learning rate; returns the loss of every step."""
    params = [p for p in parameters if p.requires_grad]
    if not params or steps <= 0:
        return []
    optimiser = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    history = []
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        value = loss()
        value.backward()
        optimiser.step()
        schedule.step()
        history.append(float(value.detach()))
    return history
