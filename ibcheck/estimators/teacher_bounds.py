"""Teacher bounds on I(X;Z): the paper's Eq. 5 and its importance-weighted form.

Both replace H(Z) by the cross-entropy of p(z) with the teacher's model marginal
p'(z) = E_{z_v ~ N(0, I)} E_{x ~ p(x|z_v)} p(z|x), and lower-bound log p'(z)
with an inference network q(z_v|z) (Herwana & Kadian, section 3.3). Any
normalised p'(z) and any q give an upper bound on I(X;Z).

Training q (the paper's step 8) is a step of its own (``q_fit.train_q``), by one of
two objectives; each bound's ``q`` parameter names the one it evaluates, on fresh samples
that q never trained on, and records how that q was trained.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from ibcheck.estimators.common import EVAL_ROWS, chunks
from ibcheck.estimators.q_fit import OBJECTIVES, elbo_terms, encode_fresh
from ibcheck.gaussian import diag_log_prob, log_prob, rsample, standard_log_prior, with_draws_axis
from ibcheck.interface import (
    Batch,
    Context,
    Cost,
    DataSampler,
    Dims,
    Encoder,
    InferenceNet,
    Measured,
    PriorData,
    Teacher,
)

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class TeacherElboParams:
    """n: fresh z evaluating Eq. 5; q: the q it evaluates, trained by that objective (``q_fit``)."""

    n: int = dataclasses.field(default=20_000, metadata={"min": 2})
    q: str = dataclasses.field(default="elbo", metadata={"choices": OBJECTIVES})


@dataclasses.dataclass(frozen=True)
class TeacherIWParams:
    """K: importance samples per z (one estimate each); n: z per estimate; prior: the p(z_v) in
    the weights, the teacher's model prior N(0, I) ("model", the paper's) or the density the
    data were drawn from ("data", bounds.md section 3b: then the bound tends to I(X;Z)); q: the
    proposal, trained by that objective (``q_fit``)."""

    K: tuple[int, ...] = dataclasses.field(default=(1, 10, 100), metadata={"min": 1})
    n: int = dataclasses.field(default=4_000, metadata={"min": 2})
    prior: str = dataclasses.field(default="model", metadata={"choices": ("model", "data")})
    q: str = dataclasses.field(default="forward", metadata={"choices": OBJECTIVES})


@dataclasses.dataclass(frozen=True)
class TeacherIWDataParams:
    """``teacher_iw`` with the data prior p_d in its weights (bounds.md section 3b), the upper end of
    the bracket that tends to I(X;Z) where p_d is not the model prior: K, n and q as there."""

    K: tuple[int, ...] = dataclasses.field(default=(1, 10, 100), metadata={"min": 1})
    n: int = dataclasses.field(default=4_000, metadata={"min": 2})
    q: str = dataclasses.field(default="forward", metadata={"choices": OBJECTIVES})


@dataclasses.dataclass(frozen=True)
class TeacherRIWParams:
    """K: importance samples per z beside the generating one (one estimate each; K = 0 is the
    Barber-Agakov bound on I(Z_v;Z)); n: z per estimate; q: the proposal, trained by that
    objective (``q_fit``)."""

    K: tuple[int, ...] = dataclasses.field(default=(0, 1, 10, 100), metadata={"min": 0})
    n: int = dataclasses.field(default=2_000, metadata={"min": 2})
    q: str = dataclasses.field(default="forward", metadata={"choices": OBJECTIVES})


def _needs_q(context: Context, objective: str) -> tuple[Teacher, InferenceNet, dict]:
    """The teacher, the q trained by ``objective``, and the summary of its training."""
    q, fit = (context.q, context.q_fit) if objective == "elbo" else (context.q_forward, context.q_forward_fit)
    if context.teacher is None or q is None:
        field = "context.q" if objective == "elbo" else "context.q_forward"
        raise ValueError(f"the teacher bounds with q = {objective!r} need context.teacher and a trained {field}")
    return context.teacher, q, fit_summary(fit)


def fit_summary(fit: dict | None) -> dict:
    """A q's training record without its curve, as kept in each estimate's params."""
    return {key: value for key, value in (fit or {}).items() if key != "curve"}


def elbo_evaluate(encoder: Encoder, teacher: Teacher, data: DataSampler, q: InferenceNet, n: int,
                  generator: torch.Generator) -> Tensor:
    """Eq. 5 terms on n fresh samples, in batches of EVAL_ROWS: (n,)."""
    with torch.no_grad():
        terms = []
        for size in chunks(n, EVAL_ROWS):
            z, entropy = encode_fresh(encoder, data, size, generator)
            terms.append(elbo_terms(encoder, teacher, q, z, entropy, generator))
        return torch.cat(terms)


def teacher_elbo_terms(encoder: Encoder, data: DataSampler, params: TeacherElboParams, generator: torch.Generator,
                       context: Context) -> list[Measured]:
    """The teacher inference-network bound of Herwana & Kadian Eq. 5 at the trained q: (n,) terms."""
    teacher, q, fit = _needs_q(context, params.q)
    terms = elbo_evaluate(encoder, teacher, data, q, params.n, generator)
    return [Measured("I_XZ", terms, {"q_fit": fit})]


LogPrior = Callable[[Tensor], Tensor]


def log_weights(encoder: Encoder, teacher: Teacher, q: InferenceNet, z: Tensor, K: int,
                generator: torch.Generator, log_prior: LogPrior) -> Tensor:
    """log w_k = log p(z|x'_k) + log p(z_v,k) - log q(z_v,k|z) for K proposals z_v,k ~ q(.|z),
    x'_k ~ p(x|z_v,k), sharing each z's q parameters. z: (n, m) -> (n, K), in nats."""
    n = z.shape[0]
    q_mean, q_scale = q(z)
    z_v = rsample(q_mean, q_scale, generator, draws=K)
    log_q = log_prob(z_v, *with_draws_axis(q_mean, q_scale))
    mean, std = encoder(teacher.sample(z_v.reshape(n * K, -1), generator))
    log_lik = diag_log_prob(z.repeat_interleave(K, dim=0), mean, std).reshape(n, K)
    return log_lik + log_prior(z_v) - log_q


def iw_terms(encoder: Encoder, teacher: Teacher, q: InferenceNet, z: Tensor, entropy: Tensor, K: int,
             generator: torch.Generator, log_prior: LogPrior = standard_log_prior) -> Tensor:
    """-H[p(z|x)] - log (1/K) sum_k w_k with w_k = p(z|x'_k) p(z_v,k) / q(z_v,k|z) (Burda et al. 2015).

    z: (n, m) -> (n,). The K draws share each z's q parameters; x'_k ~ p(x|z_v,k).
    """
    log_w = log_weights(encoder, teacher, q, z, K, generator, log_prior)
    return -entropy - (torch.logsumexp(log_w, dim=1) - math.log(K))


def riw_terms(encoder: Encoder, teacher: Teacher, q: InferenceNet, batch: Batch, K: int,
              generator: torch.Generator, log_prior: LogPrior) -> Tensor:
    """log p(z|x_0) - log (1/(K+1)) sum_{k=0..K} w_k, where (z_v,0, x_0) generated z, so that it is
    an exact posterior sample, and k = 1..K are proposals from q (bounds.md section 3b; Sobolev &
    Vetrov 2019). Its expectation is a lower bound on I(X;Z), non-decreasing in K.
    batch: x (n, d), z_v (n, k) -> (n,), in nats."""
    assert batch.z_v is not None
    mean, std = encoder(batch.x)
    z = rsample(mean, std, generator)
    log_lik = diag_log_prob(z, mean, std)
    q_mean, q_scale = q(z)
    log_w0 = log_lik + log_prior(batch.z_v) - log_prob(batch.z_v, q_mean, q_scale)
    log_w = log_w0.unsqueeze(1)
    if K > 0:
        log_w = torch.cat([log_w, log_weights(encoder, teacher, q, z, K, generator, log_prior)], dim=1)
    return log_lik - (torch.logsumexp(log_w, dim=1) - math.log(K + 1))


def data_log_prior(data: DataSampler, name: str) -> LogPrior:
    """The density the data's z_v were drawn from; a clear error where it is unknown, because
    without it the estimate would not be a bound (bounds.md section 3b)."""
    if not isinstance(data, PriorData):
        raise ValueError(f"{name} needs data drawn through the teacher from a prior of known density "
                         f"(a sampler with log_prior and z_v); this data has none, so no bound can be given")
    return data.log_prior


def _iw_measured(encoder: Encoder, data: DataSampler, params: TeacherIWParams | TeacherIWDataParams,
                 generator: torch.Generator, context: Context, log_prior: LogPrior) -> list[Measured]:
    """One estimate per K of the importance-weighted bound with ``log_prior`` in its weights, each over
    n fresh z: (n,) terms."""
    teacher, q, fit = _needs_q(context, params.q)
    out = []
    for K in params.K:
        terms = []
        for size in chunks(params.n, max(1, EVAL_ROWS // K)):
            z, entropy = encode_fresh(encoder, data, size, generator)
            terms.append(iw_terms(encoder, teacher, q, z, entropy, K, generator, log_prior))
        out.append(Measured("I_XZ", torch.cat(terms), {"K": K, "q_fit": fit}))
    return out


def teacher_iw_terms(encoder: Encoder, data: DataSampler, params: TeacherIWParams, generator: torch.Generator,
                     context: Context) -> list[Measured]:
    """The importance-weighted teacher bound, one estimate per K, each over n fresh z; non-increasing
    in K in expectation, tending to the cross-entropy limit CE(p(z), p'(z)) - H(Z|X) (model
    prior), or to I(X;Z) (data prior)."""
    with torch.no_grad():
        log_prior = standard_log_prior if params.prior == "model" else data_log_prior(data, "teacher_iw (prior data)")
        return _iw_measured(encoder, data, params, generator, context, log_prior)


def teacher_iw_data_terms(encoder: Encoder, data: DataSampler, params: TeacherIWDataParams,
                          generator: torch.Generator, context: Context) -> list[Measured]:
    """``teacher_iw`` with p_d in place of N(0, I) in w_k (bounds.md section 3b): an upper bound on
    I(X;Z) that tends to it as K grows, one estimate per K."""
    with torch.no_grad():
        return _iw_measured(encoder, data, params, generator, context, data_log_prior(data, "teacher_iw_data"))


def teacher_riw_terms(encoder: Encoder, data: DataSampler, params: TeacherRIWParams, generator: torch.Generator,
                      context: Context) -> list[Measured]:
    """The reverse importance-weighted teacher bound, a lower bound on I(X;Z) with no ln N
    ceiling: one estimate per K, each over n z whose generating (z_v, x) the data give."""
    with torch.no_grad():
        teacher, q, fit = _needs_q(context, params.q)
        log_prior = data_log_prior(data, "teacher_riw")
        out = []
        for K in params.K:
            terms = []
            for size in chunks(params.n, max(1, EVAL_ROWS // max(K, 1))):
                batch = data.sample(size, generator)
                if batch.z_v is None:
                    raise ValueError("teacher_riw needs the z_v that generated each x; this data gives none")
                terms.append(riw_terms(encoder, teacher, q, batch, K, generator, log_prior))
            out.append(Measured("I_XZ", torch.cat(terms), {"K": K, "q_fit": fit}))
        return out


def _chain_flops(dims: Dims) -> float:
    """One z through Eq. 5: x -> z, z -> q -> z_v' -> x' -> the encoder again (q about as costly as the teacher)."""
    return 2 * dims.encoder_flops + 3 * dims.teacher_flops


def teacher_elbo_cost(params: TeacherElboParams, dims: Dims) -> Cost:
    rows = min(params.n, EVAL_ROWS)
    return Cost(params.n * _chain_flops(dims), 8.0 * 2 * rows * (dims.d + dims.k * dims.k + 3 * dims.m), "n")


def teacher_riw_cost(params: TeacherRIWParams, dims: Dims) -> Cost:
    """As teacher_iw's, with K + 1 weights per z."""
    shifted = TeacherIWParams(K=tuple(K + 1 for K in params.K), n=params.n)
    return teacher_iw_cost(shifted, dims)


def teacher_iw_cost(params: TeacherIWParams | TeacherIWDataParams, dims: Dims) -> Cost:
    """n z with K draws each; a chunk holds max(EVAL_ROWS // K, 1) z, so K rows at least."""
    K = max(params.K)
    rows = max(EVAL_ROWS // K, 1) * K
    flops = params.n * sum(params.K) * (dims.encoder_flops + dims.teacher_flops)
    return Cost(flops, 8.0 * 2 * rows * (dims.d + dims.k * dims.k + 3 * dims.m), "K" if K > params.n else "n")
