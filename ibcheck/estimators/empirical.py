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

import dataclasses
import math

import torch

from ibcheck.estimators.batch import ENTRY_FLOPS
from ibcheck.estimators.common import EVAL_ROWS
from ibcheck.gaussian import CHUNK_ENTRIES, diag_log_prob, log_density_blocks, rsample
from ibcheck.interface import Context, Cost, DataSampler, Dims, Encoder, FiniteData, Measured

Tensor = torch.Tensor


def _encode_all(encoder: Encoder, x: Tensor) -> tuple[Tensor, Tensor]:
    parts = [encoder(x[s:s + EVAL_ROWS]) for s in range(0, x.shape[0], EVAL_ROWS)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def point_terms(encoder: Encoder, x: Tensor, y: Tensor | None, draws: int, generator: torch.Generator,
                    query: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
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
        if y is not None and bounds is not None:
            rows_class = y[own[start:start + block.shape[0]]]
            per_class = torch.stack([torch.logsumexp(block[:, s:e], dim=1) for s, e in bounds], dim=1)
            cond.append(per_class.gather(1, rows_class.unsqueeze(1)).squeeze(1))
    log_marginal = torch.cat(marg) - math.log(n_points)
    t_x = own_logp - log_marginal
    if y is None or bounds is None:
        return t_x, None
    counts = torch.tensor([e - s for s, e in bounds], device=x.device, dtype=z.dtype)
    log_conditional = torch.cat(cond) - counts.log()[y[own]]
    return t_x, log_conditional - log_marginal


def _class_ranges(sorted_labels: Tensor) -> list[tuple[int, int]]:
    """[start, end) column ranges of each class 0..C-1 in labels sorted ascending (empty for absent ones)."""
    classes = int(sorted_labels.max()) + 1
    edges = torch.searchsorted(sorted_labels, torch.arange(classes + 1, device=sorted_labels.device)).tolist()
    return [(edges[c], edges[c + 1]) for c in range(classes)]


@dataclasses.dataclass(frozen=True)
class EmpiricalParams:
    """Either data sets drawn from the data: ``sets`` independent sets of ``N`` points each;
    or (N and sets null) the data's own finite set, all of its points as mixture components,
    z drawn for ``points`` of them (a uniform random subset; null: all). draws: z per point."""

    N: int | None = dataclasses.field(default=1024, metadata={"min": 2})
    sets: int | None = dataclasses.field(default=32, metadata={"min": 2})
    draws: int = dataclasses.field(default=4, metadata={"min": 1})
    points: int | None = dataclasses.field(default=None, metadata={"min": 1})

    def __post_init__(self):
        check_params(self)


def check_params(params: EmpiricalParams) -> None:
    """Refuse a mixed choice: N and sets together, and ``points`` only with the finite set."""
    if (params.N is None) != (params.sets is None):
        raise ValueError("N and sets are both numbers (data sets) or both null (the finite set)")
    if params.N is not None and params.points is not None:
        raise ValueError("points applies only to the finite set (N and sets null)")


def _class_labels(y: Tensor | None) -> Tensor | None:
    return y if y is not None and y.dim() == 1 else None


def empirical_terms(encoder: Encoder, data: DataSampler, params: EmpiricalParams, generator: torch.Generator,
                       context: Context) -> list[Measured]:
    """I_emp(X;Z), and I_emp(Y;Z) with class labels.

    With ``N`` None, of the data's own finite set (``FiniteData``): terms are the
    (point, draw) pairs, independent given the set, so the standard error is the Monte
    Carlo's. Otherwise the mean over ``sets`` independent data sets of N points: one term
    per set, whose expectation equals InfoNCE's at batch N, a lower bound on the
    population I(X;Z) that tends to it as N grows.
    """
    with torch.no_grad():
        if params.N is None:
            if not isinstance(data, FiniteData):
                raise ValueError("empirical with N = None needs a finite data set")
            points = data.points
            n_points = points.x.shape[0]
            query = None
            if params.points is not None and params.points < n_points:
                query = torch.randperm(n_points, generator=generator, device=generator.device)[:params.points]
                query = query.to(points.x.device)
            t_x, t_y = point_terms(encoder, points.x, _class_labels(points.y), params.draws, generator, query)
            extra = {"N": n_points, "points": n_points if query is None else len(query)}
            return [Measured("I_XZ", t_x, extra)] + ([] if t_y is None else [Measured("I_YZ", t_y, extra)])
        x_terms, y_terms = [], []
        for _ in range(params.sets or 0):
            batch = data.sample(params.N, generator)
            t_x, t_y = point_terms(encoder, batch.x, _class_labels(batch.y), params.draws, generator)
            x_terms.append(t_x.mean())
            if t_y is not None:
                y_terms.append(t_y.mean())
        out = [Measured("I_XZ", torch.stack(x_terms))]
        return out + ([Measured("I_YZ", torch.stack(y_terms))] if y_terms else [])


def empirical_cost(params: EmpiricalParams, dims: Dims) -> Cost:
    """Per data set of N points (``dims.points`` for the finite set): N rows encoded, and
    (queried points x draws) x N log-densities in row blocks of at most CHUNK_ENTRIES entries."""
    N = params.N if params.N is not None else dims.points
    sets = params.sets if params.sets is not None else 1
    queried = min(params.points or N, N) * params.draws
    flops = sets * (N * (dims.encoder_flops + dims.teacher_flops) + queried * N * (ENTRY_FLOPS + 4 * dims.m))
    block = max(min(queried * N, CHUNK_ENTRIES), N)
    return Cost(flops, 8.0 * (N * (dims.d + dims.k + 8 * dims.m) + 2 * block), "N" if N >= sets else "sets")
