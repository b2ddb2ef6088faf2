"""What a run may ask for: refuse settings whose work or memory cannot fit, before any work.

Each registered estimator estimates its own cost from its parameters and the sizes of the
problem (``Spec.cost``). A run is refused, with one line naming the setting and the limit,
when one estimator run would need more than ``FLOP_LIMIT`` floating-point operations (about
three hours on two CPU cores, minutes on a GPU) or more memory than the device allows. Counts
that multiply whole runs (a study's cells, a case file's cases) have caps of their own
(``MAX_CELLS``, ``MAX_CASES``), and a run expected to take longer than ``ANNOUNCE_SECONDS``
says so before it starts (``about``).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from ibcheck.estimators import registry
from ibcheck.estimators.q_fit import QFitParams, q_fit_cost
from ibcheck.interface import Cost, Dims, InputError

FLOP_LIMIT = 1e15
# the share of the device's memory one estimator run may use
MEMORY_SHARE = 0.5
# a study of more cells is refused: each cell is a whole training run of minutes to hours
MAX_CELLS = 10_000
# a case file of more cases is refused: each case is about ten estimator runs
MAX_CASES = 100_000
# floating-point operations per second of the reference machine (two CPU cores, float64
# estimators), and the fixed cost of one estimator run there, which dominates small cases (their
# time goes to per-operation overhead, not arithmetic): fitted to the built-in suite's reference
# run (baselines/reference.json) and 1-d case files (docs/results/2026-12-03-limits.md)
CPU_FLOPS_PER_SECOND = 5e10
SECONDS_PER_RUN = 1.0
# a run expected to take longer says how long before it starts
ANNOUNCE_SECONDS = 3600.0
# the same for training, per part of a run, against the cost models' floating-point operations (which
# are upper bounds: the bracket's assumes T_max), on two CPU cores: fitted to the paper preset's run
# (docs/results/2026-12-02-paper-preset-bracket.md: training 164 s, the teacher 43 s, the estimates
# 160 s, the bracket 226 s); the bracket's rate is the geometric mean of that run's (9.6e11, where T
# often reached its cap) and study-bracket's (about 2.6e12, docs/results/2026-12-02-study-bracket.md),
# so either is within a factor of 1.7
REFERENCE_CORES = 2
TRAIN_FLOPS_PER_SECOND = 1.1e11
TEACHER_FLOPS_PER_SECOND = 7e10
TRACK_FLOPS_PER_SECOND = 2e11
BRACKET_FLOPS_PER_SECOND = 1.6e12


def memory_limit(device: torch.device | str) -> float:
    """Bytes one estimator run may use: half of the GPU's memory, or of the machine's RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        return MEMORY_SHARE * torch.cuda.get_device_properties(device).total_memory
    return MEMORY_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def refuse_if_too_large(costs: Iterable[tuple[str, Any, Cost]], device: torch.device | str) -> None:
    """``costs``: (setting's key path, its value, Cost). Raise InputError for the first that does not fit."""
    memory = memory_limit(device)
    for path, value, cost in costs:
        if cost.flops > FLOP_LIMIT:
            raise InputError(f"{path} = {value} needs about {cost.flops:.1e} floating-point operations per run, "
                             f"above the limit of {FLOP_LIMIT:.0e} (ibcheck.estimators.limits.FLOP_LIMIT); lower it")
        if cost.bytes > memory:
            raise InputError(f"{path} = {value} needs about {cost.bytes / 2**30:.3g} GiB of memory, more than the "
                             f"{memory / 2**30:.3g} GiB allowed on {device}; lower it")


def estimator_costs(params: Mapping[str, Any], names: Iterable[str], dims: Dims,
                    prefix: str) -> list[tuple[str, Any, Cost]]:
    """The cost of each named estimator at ``params[name]``, keyed by its setting's path under ``prefix``."""
    out = []
    for name in names:
        spec = registry.get(name)
        if spec.cost is not None:
            cost = spec.cost(params[name], dims)
            out.append((f"{prefix}.{name}.{cost.blame}", getattr(params[name], cost.blame), cost))
    return out


def q_costs(params: QFitParams, dims: Dims, prefix: str) -> list[tuple[str, Any, Cost]]:
    cost = q_fit_cost(params, dims)
    return [(f"{prefix}.{cost.blame}", getattr(params, cost.blame), cost)]


def mlp_flops(widths: Sequence[int]) -> float:
    """Floating-point operations of one row through an MLP of layer ``widths`` (2 per weight)."""
    return 2.0 * sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def network_cost(widths: Sequence[int], passes: int, blame: str) -> Cost:
    """An MLP of layer ``widths`` trained on ``passes`` rows (an epoch, or a fit's steps x batch;
    the limit is per epoch, as it is per estimator run): about three passes each, forward and
    backward; memory for its float32 weights, their gradients and Adam's two moments."""
    flops = mlp_flops(widths)
    return Cost(flops=3.0 * flops * passes, bytes=4 * 4 * flops / 2, blame=blame)


def sample_cost(n: int, width: int, copies: int, blame: str) -> Cost:
    """``n`` draws of ``width`` float64 numbers each, held ``copies`` times at once (the draw, the
    arrays handed on, their copy in a file or a worker): memory only."""
    return Cost(flops=0.0, bytes=8.0 * n * width * copies, blame=blame)


def refuse_count(setting: str, count: int, limit: int, unit: str) -> None:
    """InputError when ``count`` ``unit`` exceed ``limit``, checked before any of them is built."""
    if count > limit:
        raise InputError(f"{setting} gives {count:,} {unit}, more than the limit of {limit:,} "
                         f"(ibcheck.estimators.limits); split it into smaller runs")


def about(seconds: float) -> str:
    """A duration for a person: "about 4 h 50 min", "about 12 min", "about 40 s"."""
    if seconds >= 3600:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"about {hours} h {minutes} min" if minutes else f"about {hours} h"
    if seconds >= 60:
        return f"about {round(seconds / 60)} min"
    return f"about {max(round(seconds), 1)} s"
