"""What a run may ask for: refuse settings whose work or memory cannot fit, before any work.

Each registered estimator estimates its own cost from its parameters and the sizes of the
problem (``Spec.cost``). A run is refused, with one line naming the setting and the limit,
when one estimator run would need more than ``FLOP_LIMIT`` floating-point operations (about
three hours on two CPU cores, minutes on a GPU) or more memory than the device allows.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ibcheck.estimators import registry
from ibcheck.estimators.q_fit import QFitParams, q_fit_cost
from ibcheck.interface import Cost, Dims, InputError

FLOP_LIMIT = 1e15
# the share of the device's memory one estimator run may use
MEMORY_SHARE = 0.5


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
