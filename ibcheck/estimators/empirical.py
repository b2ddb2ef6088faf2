"""The mutual information of an empirical data distribution, by Monte Carlo over z.

For fixed x_1..x_N (uniform weights) and the encoder's Gaussian p(z|x):
  I_emp(X;Z) = E_{n, z ~ p(z|x_n)} [log p(z|x_n) - log 1/N sum_j p(z|x_j)]        (bounds.md section 3)
  I_emp(Y;Z) = E_{n, z ~ p(z|x_n)} [log p_emp(z|y_n) - log 1/N sum_j p(z|x_j)],
with p_emp(z|y) the mixture over the points of class y. This is the exact
mutual information of the distribution the student actually trains on
(bounds.md section 4), so it is at most log N. All N components are used,
chunked by rows, never as an N x N x m tensor.
"""
from __future__ import annotations

import math
import time
from typing import Optional

import torch

from ibcheck.estimators._common import EVAL_ROWS, generator_for, module_device, summarize
from ibcheck.gaussian import diag_log_prob, log_density_blocks, rsample
from ibcheck.interface import DataSampler, Encoder, Estimate

Tensor = torch.Tensor


def _encode_all(encoder: Encoder, x: Tensor) -> tuple[Tensor, Tensor]:
    parts = [encoder(x[s:s + EVAL_ROWS]) for s in range(0, x.shape[0], EVAL_ROWS)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def empirical_terms(encoder: Encoder, x: Tensor, y: Optional[Tensor], draws: int, generator: torch.Generator,
                    query: Optional[Tensor] = None) -> tuple[Tensor, Optional[Tensor]]:
    """Per-(point, draw) terms of I_emp(X;Z) and, for class labels y: (N,) int64, of I_emp(Y;Z).

    x: (N, d), all N points being the mixture's components. z is drawn for the points
    ``query`` (indices, default all N; a uniform random subset keeps the estimate unbiased).
    Returns two (len(query) * draws,) tensors (the second None without labels).
    """
    n_points = x.shape[0]
    query = torch.arange(n_points, device=x.device) if query is None else query
    mean, std = _encode_all(encoder, x)
    if y is not None:
        order = torch.argsort(y, stable=True)
        mean, std, y = mean[order], std[order], y[order]
        query = torch.argsort(order)[query]  # where each queried point went
    own = query.repeat_interleave(draws)
    z = rsample(mean[query], std[query], generator, draws=draws).reshape(len(own), -1)
    own_logp = diag_log_prob(z, mean[own], std[own])
    bounds = _class_ranges(y) if y is not None else None
    marg, cond = [], []
    for start, block in log_density_blocks(z, mean, std, own, own_logp):
        marg.append(torch.logsumexp(block, dim=1))
        if bounds is not None:
            rows_class = y[own[start:start + block.shape[0]]]
            per_class = torch.stack([torch.logsumexp(block[:, s:e], dim=1) for s, e in bounds], dim=1)
            cond.append(per_class.gather(1, rows_class.unsqueeze(1)).squeeze(1))
    log_marginal = torch.cat(marg) - math.log(n_points)
    t_x = own_logp - log_marginal
    if bounds is None:
        return t_x, None
    counts = torch.tensor([e - s for s, e in bounds], device=x.device, dtype=z.dtype)
    log_conditional = torch.cat(cond) - counts.log()[y[own]]
    return t_x, log_conditional - log_marginal


def _class_ranges(sorted_labels: Tensor) -> list[tuple[int, int]]:
    """[start, end) column ranges of each class 0..C-1 in labels sorted ascending (empty for absent ones)."""
    classes = int(sorted_labels.max()) + 1
    edges = torch.searchsorted(sorted_labels, torch.arange(classes + 1, device=sorted_labels.device))
    edges = edges.tolist()
    return [(edges[c], edges[c + 1]) for c in range(classes)]


@torch.no_grad()
def empirical(encoder: Encoder, x: Tensor, y: Optional[Tensor] = None, *, draws: int, seed: int,
              query: Optional[Tensor] = None) -> list[Estimate]:
    """I_emp(X;Z) (and I_emp(Y;Z) with class labels) of the fixed points x: (N, d).

    All N points are mixture components; z is drawn ``draws`` times for each point of
    ``query`` (default all). The standard error is that of the Monte Carlo given the data
    set: terms for different (point, draw) pairs are independent given the points.
    """
    started = time.perf_counter()
    generator = generator_for(seed, x.device)
    t_x, t_y = empirical_terms(encoder, x, y, draws, generator, query)
    params = {"N": x.shape[0], "draws": draws, "points": x.shape[0] if query is None else len(query)}
    out = [summarize("empirical", "I_XZ", "exact", t_x, seed, params, started)]
    if t_y is not None:
        out.append(summarize("empirical", "I_YZ", "exact", t_y, seed, params, started))
    return out


@torch.no_grad()
def empirical_over_datasets(encoder: Encoder, data: DataSampler, *, N: int, sets: int, draws: int,
                            seed: int, device=None) -> list[Estimate]:
    """Mean of I_emp over ``sets`` independent data sets of N points drawn from ``data``.

    One term per data set, so the standard error includes the data sets' own
    variation. Its expectation over data sets equals InfoNCE's with batch N, a
    lower bound on the population I(X;Z) that tends to it as N grows.
    """
    started = time.perf_counter()
    generator = generator_for(seed, device or module_device(encoder))
    x_terms, y_terms = [], []
    for _ in range(sets):
        batch = data.sample(N, generator)
        labels = batch.y if batch.y is not None and batch.y.dim() == 1 else None
        t_x, t_y = empirical_terms(encoder, batch.x, labels, draws, generator)
        x_terms.append(t_x.mean())
        if t_y is not None:
            y_terms.append(t_y.mean())
    params = {"N": N, "sets": sets, "draws": draws}
    out = [summarize("empirical", "I_XZ", "exact", torch.stack(x_terms), seed, params, started)]
    if y_terms:
        out.append(summarize("empirical", "I_YZ", "exact", torch.stack(y_terms), seed, params, started))
    return out
