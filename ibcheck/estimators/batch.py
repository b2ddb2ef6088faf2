"""Minibatch sandwich bounds on I(X;Z) with a known encoder density (Poole et al. 2019).

For a batch of N iid pairs (x_i, z_i), z_i ~ p(z|x_i):
  nce (lower, InfoNCE):  mean_i [log p(z_i|x_i) - log 1/N sum_j p(z_i|x_j)], at most log N;
  loo (upper, L1Out):    mean_i [log p(z_i|x_i) - log 1/(N-1) sum_{j != i} p(z_i|x_j)].
Per-sample terms of one batch are dependent, so each batch gives one term and
the standard error is taken across independent batches (bounds.md section 3).
"""
from __future__ import annotations

import dataclasses

import torch

from ibcheck.gaussian import diag_log_prob, pairwise_logmeanexp, rsample
from ibcheck.interface import Context, DataSampler, Encoder, Measured


@dataclasses.dataclass(frozen=True)
class BatchParams:
    """N: batch sizes (one estimate each); batches: independent batches per estimate."""

    N: tuple[int, ...] = dataclasses.field(default=(64, 256, 1024), metadata={"min": 2})
    batches: int = dataclasses.field(default=64, metadata={"min": 2})


@torch.no_grad()
def _batch_terms(encoder: Encoder, data: DataSampler, params: BatchParams, generator: torch.Generator,
                 leave_one_out: bool) -> list[Measured]:
    out = []
    for N in params.N:
        terms = []
        for _ in range(params.batches):
            mean, std = encoder(data.sample(N, generator).x)
            z = rsample(mean, std, generator)
            own_logp = diag_log_prob(z, mean, std)
            own = torch.arange(N, device=z.device)
            mixture = pairwise_logmeanexp(z, mean, std, own, own_logp, exclude_own=leave_one_out)
            terms.append((own_logp - mixture).mean())
        out.append(Measured("I_XZ", torch.stack(terms), {"N": N}))
    return out


def nce_terms(encoder: Encoder, data: DataSampler, params: BatchParams, generator: torch.Generator,
              context: Context) -> list[Measured]:
    """InfoNCE with batch size N, one term per batch (van den Oord et al. 2018; Poole et al. 2019 Eq. 12)."""
    return _batch_terms(encoder, data, params, generator, leave_one_out=False)


def loo_terms(encoder: Encoder, data: DataSampler, params: BatchParams, generator: torch.Generator,
              context: Context) -> list[Measured]:
    """Leave-one-out bound with batch size N, one term per batch (Poole et al. 2019 Eq. 13)."""
    return _batch_terms(encoder, data, params, generator, leave_one_out=True)
