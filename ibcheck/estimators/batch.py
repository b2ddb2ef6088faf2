"""Minibatch sandwich bounds on I(X;Z) with a known encoder density (Poole et al. 2019).

For a batch of N iid pairs (x_i, z_i), z_i ~ p(z|x_i):
  nce (lower, InfoNCE):  mean_i [log p(z_i|x_i) - log 1/N sum_j p(z_i|x_j)], at most log N;
  loo (upper, L1Out):    mean_i [log p(z_i|x_i) - log 1/(N-1) sum_{j != i} p(z_i|x_j)].
Per-sample terms of one batch are dependent, so each batch gives one term and
the standard error is taken across independent batches (bounds.md section 3).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from ibcheck.gaussian import CHUNK_ENTRIES, diag_log_prob, pairwise_logmeanexp, rsample
from ibcheck.interface import Context, Cost, DataSampler, Dims, Encoder, Measured

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class BatchParams:
    """N: batch sizes (one estimate each); batches: independent batches per estimate."""

    N: tuple[int, ...] = dataclasses.field(default=(64, 256, 1024), metadata={"min": 2})
    batches: int = dataclasses.field(default=64, metadata={"min": 2})


def sandwich_terms(encoder: Encoder, data: DataSampler, params: BatchParams, generator: torch.Generator,
                   context: Context, leave_one_out: Mapping[str, bool]) -> dict[str, list[Measured]]:
    """The bounds named in ``leave_one_out`` from the same batches: one encoding pass and one N x N
    log-density matrix per batch serve them all. A name mapped to True drops the own component
    (loo, Poole et al. 2019 Eq. 13); False keeps it (InfoNCE, van den Oord et al. 2018). One
    Measured per N for each name, each the per-batch terms (n = batches)."""
    with torch.no_grad():
        out: dict[str, list[Measured]] = {name: [] for name in leave_one_out}
        for N in params.N:
            terms: dict[str, list[Tensor]] = {name: [] for name in leave_one_out}
            for _ in range(params.batches):
                mean, std = encoder(data.sample(N, generator).x)
                z = rsample(mean, std, generator)
                own_logp = diag_log_prob(z, mean, std)
                own = torch.arange(N, device=z.device)
                for name, exclude_own in leave_one_out.items():
                    mixture = pairwise_logmeanexp(z, mean, std, own, own_logp, exclude_own=exclude_own)
                    terms[name].append((own_logp - mixture).mean())
            for name in leave_one_out:
                out[name].append(Measured("I_XZ", torch.stack(terms[name]), {"N": N}))
        return out


# an N x N entry: its share of the GEMM is 2 (2m + 1); the exp and sum of logsumexp cost about as much as
# 100 operations of a GEMM on a CPU (they run at about 1e9 entries a second on two cores)
ENTRY_FLOPS = 100


def batch_cost(params: BatchParams, dims: Dims) -> Cost:
    """Per batch: N rows through the teacher and encoder, and the N x N log-density matrix in row
    blocks of at most CHUNK_ENTRIES entries (at least one row)."""
    N = max(params.N)
    flops = params.batches * sum(n * (dims.encoder_flops + dims.teacher_flops) + n * n * (ENTRY_FLOPS + 4 * dims.m)
                                 for n in params.N)
    block = max(min(N * N, CHUNK_ENTRIES), N)
    blame = "N" if N * N > params.batches else "batches"
    return Cost(flops, 8.0 * (N * (dims.d + dims.k + 8 * dims.m) + 2 * block), blame)
