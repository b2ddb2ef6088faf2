"""Minibatch sandwich bounds on I(X;Z) with a known encoder density (Poole et al. 2019).

For a batch of N iid pairs (x_i, z_i), z_i ~ p(z|x_i):
  nce (lower, InfoNCE):  mean_i [log p(z_i|x_i) - log 1/N sum_j p(z_i|x_j)], at most log N;
  loo (upper, L1Out):    mean_i [log p(z_i|x_i) - log 1/(N-1) sum_{j != i} p(z_i|x_j)].
Per-sample terms of one batch are dependent, so each batch gives one term and
the standard error is taken across independent batches (bounds.md section 3).
"""
from __future__ import annotations

import time

import torch

from ibcheck.estimators._common import generator_for, module_device, summarize
from ibcheck.gaussian import diag_log_prob, pairwise_logmeanexp, rsample
from ibcheck.interface import DataSampler, Encoder, Estimate

KINDS = {"nce": "lower", "loo": "upper"}


@torch.no_grad()
def sandwich(encoder: Encoder, data: DataSampler, *, N: int, batches: int, seed: int, device=None,
             names: tuple[str, ...] = ("nce", "loo")) -> list[Estimate]:
    """nce and loo from the same ``batches`` batches of N pairs (one encoding pass serves both):
    one Estimate per name, each the mean of its per-batch terms."""
    for name in names:
        if name not in KINDS:
            raise ValueError(f"unknown batch bound {name!r}")
    started = time.perf_counter()
    generator = generator_for(seed, device or module_device(encoder))
    terms = {name: [] for name in names}
    for _ in range(batches):
        mean, std = encoder(data.sample(N, generator).x)
        z = rsample(mean, std, generator)
        own_logp = diag_log_prob(z, mean, std)
        own = torch.arange(N, device=z.device)
        for name in names:
            mixture = pairwise_logmeanexp(z, mean, std, own, own_logp, exclude_own=(name == "loo"))
            terms[name].append((own_logp - mixture).mean())
    params = {"N": N, "batches": batches}
    return [summarize(name, "I_XZ", KINDS[name], torch.stack(terms[name]), seed, params, started) for name in names]


def batch_bound(name: str, encoder: Encoder, data: DataSampler, *, N: int, batches: int, seed: int,
                device=None) -> Estimate:
    """``name`` is "nce" or "loo"; returns the mean over ``batches`` batches of N pairs."""
    return sandwich(encoder, data, N=N, batches=batches, seed=seed, device=device, names=(name,))[0]


def nce(encoder: Encoder, data: DataSampler, *, N: int, batches: int, seed: int, device=None) -> Estimate:
    """InfoNCE lower bound on I(X;Z) with batch size N (van den Oord et al. 2018; Poole et al. 2019 Eq. 12)."""
    return batch_bound("nce", encoder, data, N=N, batches=batches, seed=seed, device=device)


def loo(encoder: Encoder, data: DataSampler, *, N: int, batches: int, seed: int, device=None) -> Estimate:
    """Leave-one-out upper bound on I(X;Z) with batch size N (Poole et al. 2019 Eq. 13)."""
    return batch_bound("loo", encoder, data, N=N, batches=batches, seed=seed, device=device)
