"""The Barber-Agakov lower bound on I(Y;Z) with a trained decoder q(y|z).

I(Y;Z) = H(Y) + E log p(y|z) >= H(Y) + E log q(y|z) (Barber & Agakov 2003;
Herwana & Kadian section 3.2). H(Y) is supplied by the caller: exact in the
linear-Gaussian cases, the label frequencies' entropy for a finite data set.
"""
from __future__ import annotations

import time

import torch

from ibcheck.estimators._common import EVAL_ROWS, chunks, fit, generator_for, module_device, summarize
from ibcheck.gaussian import rsample
from ibcheck.interface import DataSampler, Encoder, Estimate, LabelDecoder

Tensor = torch.Tensor


def _labelled_z(encoder: Encoder, data: DataSampler, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        batch = data.sample(n, generator)
        mean, std = encoder(batch.x)
        return rsample(mean, std, generator), batch.y


def decoder(encoder: Encoder, data: DataSampler, q_y: LabelDecoder, *, h_y: float, n_eval: int, seed: int,
            steps: int = 0, batch: int = 256, lr: float = 1e-3, device=None) -> Estimate:
    """Train ``q_y`` in place for ``steps`` Adam steps (maximum likelihood on fresh (z, y) draws;
    none by default, e.g. for a classifier's own decoder), then return H(Y) + mean log q(y|z)
    over n_eval fresh draws, in nats. Never clipped at 0."""
    started = time.perf_counter()
    generator = generator_for(seed, device or module_device(encoder))

    def loss() -> Tensor:
        z, y = _labelled_z(encoder, data, batch, generator)
        return -q_y.log_prob(z, y).mean()

    history = fit(q_y.parameters(), loss, steps, lr)
    terms = []
    with torch.no_grad():
        for size in chunks(n_eval, EVAL_ROWS):
            z, y = _labelled_z(encoder, data, size, generator)
            terms.append(h_y + q_y.log_prob(z, y))
    params = {"steps": steps, "batch": batch, "lr": lr, "n_eval": n_eval, "H_Y": h_y,
              "final_train_loss": history[-1] if history else None}
    return summarize("decoder", "I_YZ", "lower", torch.cat(terms), seed, params, started)
