"""The VIB rate: an upper bound on I(X;Z) (Alemi et al. 2016, Eq. 13 and 18)."""
from __future__ import annotations

import time

import torch

from ibcheck.estimators._common import EVAL_ROWS, chunks, generator_for, module_device, summarize
from ibcheck.gaussian import kl_diag_to_standard
from ibcheck.interface import DataSampler, Encoder, Estimate


@torch.no_grad()
def vib(encoder: Encoder, data: DataSampler, *, n: int, seed: int, device=None) -> Estimate:
    """E_x KL(p(z|x) || r(z)) with r = N(0, I_m), one closed-form KL per fresh x.

    Its gap to I(X;Z) is KL(p(z) || r(z)). Terms: n independent x, in nats.
    """
    started = time.perf_counter()
    generator = generator_for(seed, device or module_device(encoder))
    terms = []
    for size in chunks(n, EVAL_ROWS):
        mean, std = encoder(data.sample(size, generator).x)
        terms.append(kl_diag_to_standard(mean, std))
    return summarize("vib", "I_XZ", "upper", torch.cat(terms), seed, {"n": n}, started)
