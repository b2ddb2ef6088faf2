"""The Barber-Agakov lower bound on I(Y;Z) with a trained label decoder q(y|z).

I(Y;Z) = H(Y) + E log p(y|z) >= H(Y) + E log q(y|z) (Barber & Agakov 2003;
Herwana & Kadian section 3.2). H(Y) is supplied by the caller: exact in the
linear-Gaussian cases, the label frequencies' entropy for a finite data set.
"""
from __future__ import annotations

import dataclasses

import torch

from ibcheck.estimators.common import EVAL_ROWS, chunks, fit
from ibcheck.gaussian import rsample
from ibcheck.interface import Context, Cost, DataSampler, Dims, Encoder, Measured

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class BarberAgakovParams:
    """steps, batch, lr: Adam training of q(y|z) by maximum likelihood on fresh (z, y) draws
    (0 steps: use q(y|z) as it is, e.g. a classifier's own head); n: fresh draws evaluating it."""

    steps: int = dataclasses.field(default=1_000, metadata={"min": 0})
    batch: int = dataclasses.field(default=256, metadata={"min": 1})
    lr: float = dataclasses.field(default=0.01, metadata={"positive": True})
    n: int = dataclasses.field(default=20_000, metadata={"min": 2})


def _labelled_z(encoder: Encoder, data: DataSampler, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        batch = data.sample(n, generator)
        if batch.y is None:
            raise ValueError("barber_agakov needs labelled data")
        mean, std = encoder(batch.x)
        return rsample(mean, std, generator), batch.y


def barber_agakov_terms(encoder: Encoder, data: DataSampler, params: BarberAgakovParams,
                        generator: torch.Generator, context: Context) -> list[Measured]:
    """Train ``context.label_decoder`` in place, then H(Y) + log q(y|z) over n fresh draws: (n,)
    terms in nats. Never clipped at 0."""
    q_y, h_y = context.label_decoder, context.h_y
    if q_y is None or h_y is None:
        raise ValueError("barber_agakov needs context.label_decoder and context.h_y")

    def loss() -> Tensor:
        z, y = _labelled_z(encoder, data, params.batch, generator)
        return -q_y.log_prob(z, y).mean()

    history = fit(q_y.parameters(), loss, params.steps, params.lr)
    terms = []
    with torch.no_grad():
        for size in chunks(params.n, EVAL_ROWS):
            z, y = _labelled_z(encoder, data, size, generator)
            terms.append(h_y + q_y.log_prob(z, y))
    extra = {"H_Y": h_y, "final_train_loss": history[-1] if history else None}
    return [Measured("I_YZ", torch.cat(terms), extra)]


def barber_agakov_cost(params: BarberAgakovParams, dims: Dims) -> Cost:
    """steps minibatches of ``batch`` (forward and backward), then n rows, EVAL_ROWS at a time."""
    row = dims.encoder_flops + dims.teacher_flops
    flops = (3.0 * params.steps * params.batch + params.n) * row
    rows = max(min(params.n, EVAL_ROWS), params.batch)
    blame = "n" if params.n >= params.steps * params.batch else "steps"
    return Cost(flops, 8.0 * 2 * rows * (dims.d + dims.k + 3 * dims.m), blame)
