"""The VIB rate: an upper bound on I(X;Z) (Alemi et al. 2016, Eq. 13 and 18)."""
from __future__ import annotations

import dataclasses

import torch

from ibcheck.estimators.common import EVAL_ROWS, chunks
from ibcheck.gaussian import kl_diag_to_standard
from ibcheck.interface import Context, Cost, DataSampler, Dims, Encoder, Measured


@dataclasses.dataclass(frozen=True)
class VibParams:
    """n: fresh x, one closed-form KL each."""

    n: int = dataclasses.field(default=20_000, metadata={"min": 2})


def vib_terms(encoder: Encoder, data: DataSampler, params: VibParams, generator: torch.Generator,
              context: Context) -> list[Measured]:
    """KL(p(z|x) || r(z)) with r = N(0, I_m) for n fresh x: (n,) terms, in nats.

    Their mean is E_x KL(p(z|x) || r), whose gap to I(X;Z) is KL(p(z) || r(z))."""
    with torch.no_grad():
        terms = []
        for size in chunks(params.n, EVAL_ROWS):
            mean, std = encoder(data.sample(size, generator).x)
            terms.append(kl_diag_to_standard(mean, std))
        return [Measured("I_XZ", torch.cat(terms))]


def vib_cost(params: VibParams, dims: Dims) -> Cost:
    """n rows through the teacher and the encoder, EVAL_ROWS at a time."""
    rows = min(params.n, EVAL_ROWS)
    return Cost(params.n * (dims.encoder_flops + dims.teacher_flops), 8.0 * rows * (dims.d + dims.k + 3 * dims.m), "n")
