"""Teacher bounds on I(X;Z): the paper's Eq. 5 and its importance-weighted form.

Both replace H(Z) by the cross-entropy of p(z) with the teacher's model marginal
p'(z) = E_{z_v ~ N(0, I)} E_{x ~ p(x|z_v)} p(z|x), and lower-bound log p'(z)
with an inference network q(z_v|z) (Herwana & Kadian, section 3.3). Any
normalised p'(z) and any q give an upper bound on I(X;Z).

Training q (the paper's step 8) is a step of its own, ``train_q``: both bounds
then evaluate the same trained q on fresh samples it never trained on.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import torch

from ibcheck.estimators.common import EVAL_ROWS, chunks, fit, frozen
from ibcheck.gaussian import diag_entropy, diag_log_prob, kl_to_standard, log_prob, rsample, with_draws_axis
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
class QFitParams:
    """Training of q(z_v|z): Adam steps (cosine-annealed lr) on fresh minibatches of ``batch`` z."""

    steps: int = dataclasses.field(default=1_500, metadata={"min": 0})
    batch: int = dataclasses.field(default=256, metadata={"min": 1})
    lr: float = dataclasses.field(default=0.01, metadata={"positive": True})


@dataclasses.dataclass(frozen=True)
class TeacherElboParams:
    """n: fresh z evaluating Eq. 5."""

    n: int = dataclasses.field(default=20_000, metadata={"min": 2})


@dataclasses.dataclass(frozen=True)
class TeacherIWParams:
    """K: importance samples per z (one estimate each); n: z per estimate; prior: the p(z_v) in
    the weights, the teacher's model prior N(0, I) ("model", the paper's) or the density the
    data were drawn from ("data", bounds.md section 3b: then the bound tends to I(X;Z))."""

    K: tuple[int, ...] = dataclasses.field(default=(1, 10, 100), metadata={"min": 1})
    n: int = dataclasses.field(default=4_000, metadata={"min": 2})
    prior: str = dataclasses.field(default="model", metadata={"choices": ("model", "data")})


@dataclasses.dataclass(frozen=True)
class TeacherRIWParams:
    """K: importance samples per z beside the generating one (one estimate each; K = 0 is the
    Barber-Agakov bound on I(Z_v;Z)); n: z per estimate."""

    K: tuple[int, ...] = dataclasses.field(default=(0, 1, 10, 100), metadata={"min": 0})
    n: int = dataclasses.field(default=2_000, metadata={"min": 2})


def encode_fresh(encoder: Encoder, data: DataSampler, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Steps 1-3 of the paper's algorithm: z_v, x from the data, z ~ p(z|x).
    Returns z: (n, m) and H[p(z|x)]: (n,)."""
    with torch.no_grad():
        mean, std = encoder(data.sample(n, generator).x)
        return rsample(mean, std, generator), diag_entropy(std)


def elbo_terms(encoder: Encoder, teacher: Teacher, q: InferenceNet, z: Tensor, entropy: Tensor,
               generator: torch.Generator) -> Tensor:
    """Per-z terms of Eq. 5, steps 4-7: -H[p(z|x)] - log p(z|x') + KL(q(z_v|z) || N(0, I)),
    z_v' ~ q(.|z), x' ~ p(x|z_v'). z: (n, m), entropy: (n,) -> (n,), in nats."""
    q_mean, q_scale = q(z)
    x_prime = teacher.sample(rsample(q_mean, q_scale, generator), generator)
    mean, std = encoder(x_prime)
    return -entropy - diag_log_prob(z, mean, std) + kl_to_standard(q_mean, q_scale)


def train_q(encoder: Encoder, teacher: Teacher, data: DataSampler, q: InferenceNet, params: QFitParams,
            generator: torch.Generator) -> dict:
    """Step 8: minimise the Eq. 5 bound over q's parameters on fresh minibatches, in place
    (warm start: whatever q holds). Returns the record kept with the bounds' params."""
    def loss() -> Tensor:
        z, entropy = encode_fresh(encoder, data, params.batch, generator)
        return elbo_terms(encoder, teacher, q, z, entropy, generator).mean()

    started = time.perf_counter()
    with frozen(encoder, teacher):
        history = fit(q.parameters(), loss, params.steps, params.lr)
    return {**dataclasses.asdict(params), "final_train_loss": history[-1] if history else None,
            "seconds": time.perf_counter() - started}


def _needs_q(context: Context) -> tuple[Teacher, InferenceNet]:
    if context.teacher is None or context.q is None:
        raise ValueError("the teacher bounds need context.teacher and a trained context.q")
    return context.teacher, context.q


@torch.no_grad()
def elbo_evaluate(encoder: Encoder, teacher: Teacher, data: DataSampler, q: InferenceNet, n: int,
                  generator: torch.Generator) -> Tensor:
    """Eq. 5 terms on n fresh samples, in batches of EVAL_ROWS: (n,)."""
    terms = []
    for size in chunks(n, EVAL_ROWS):
        z, entropy = encode_fresh(encoder, data, size, generator)
        terms.append(elbo_terms(encoder, teacher, q, z, entropy, generator))
    return torch.cat(terms)


def teacher_elbo_terms(encoder: Encoder, data: DataSampler, params: TeacherElboParams, generator: torch.Generator,
                       context: Context) -> list[Measured]:
    """The teacher inference-network bound of Herwana & Kadian Eq. 5 at the trained q: (n,) terms."""
    teacher, q = _needs_q(context)
    terms = elbo_evaluate(encoder, teacher, data, q, params.n, generator)
    return [Measured("I_XZ", terms, {"q": context.q_fit})]


LogPrior = Callable[[Tensor], Tensor]


def standard_log_prior(z_v: Tensor) -> Tensor:
    """log N(z_v; 0, I), the teacher's model prior: (..., k) -> (...)."""
    return -0.5 * (z_v * z_v).sum(-1) - 0.5 * z_v.shape[-1] * math.log(2 * math.pi)


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


@torch.no_grad()
def teacher_iw_terms(encoder: Encoder, data: DataSampler, params: TeacherIWParams, generator: torch.Generator,
                     context: Context) -> list[Measured]:
    """The importance-weighted teacher bound, one estimate per K, each over n fresh z; non-increasing
    in K in expectation, tending to the cross-entropy limit CE(p(z), p'(z)) - H(Z|X) (model
    prior), or to I(X;Z) (data prior)."""
    teacher, q = _needs_q(context)
    log_prior = standard_log_prior if params.prior == "model" else data_log_prior(data, "teacher_iw (prior data)")
    out = []
    for K in params.K:
        terms = []
        for size in chunks(params.n, max(1, EVAL_ROWS // K)):
            z, entropy = encode_fresh(encoder, data, size, generator)
            terms.append(iw_terms(encoder, teacher, q, z, entropy, K, generator, log_prior))
        out.append(Measured("I_XZ", torch.cat(terms), {"K": K, "q": context.q_fit}))
    return out


@torch.no_grad()
def teacher_riw_terms(encoder: Encoder, data: DataSampler, params: TeacherRIWParams, generator: torch.Generator,
                      context: Context) -> list[Measured]:
    """The reverse importance-weighted teacher bound, a lower bound on I(X;Z) with no ln N
    ceiling: one estimate per K, each over n z whose generating (z_v, x) the data give."""
    teacher, q = _needs_q(context)
    log_prior = data_log_prior(data, "teacher_riw")
    out = []
    for K in params.K:
        terms = []
        for size in chunks(params.n, max(1, EVAL_ROWS // max(K, 1))):
            batch = data.sample(size, generator)
            if batch.z_v is None:
                raise ValueError("teacher_riw needs the z_v that generated each x; this data gives none")
            terms.append(riw_terms(encoder, teacher, q, batch, K, generator, log_prior))
        out.append(Measured("I_XZ", torch.cat(terms), {"K": K, "q": context.q_fit}))
    return out


def _chain_flops(dims: Dims) -> float:
    """One z through Eq. 5: x -> z, z -> q -> z_v' -> x' -> the encoder again (q about as costly as the teacher)."""
    return 2 * dims.encoder_flops + 3 * dims.teacher_flops


def q_fit_cost(params: QFitParams, dims: Dims) -> Cost:
    """steps minibatches of ``batch`` z, forward and backward (about three times the forward)."""
    return Cost(3.0 * params.steps * params.batch * _chain_flops(dims),
                8.0 * 4 * params.batch * (dims.d + dims.k + dims.m + dims.k * dims.k), "steps")


def teacher_elbo_cost(params: TeacherElboParams, dims: Dims) -> Cost:
    rows = min(params.n, EVAL_ROWS)
    return Cost(params.n * _chain_flops(dims), 8.0 * 2 * rows * (dims.d + dims.k * dims.k + 3 * dims.m), "n")


def teacher_riw_cost(params: TeacherRIWParams, dims: Dims) -> Cost:
    """As teacher_iw's, with K + 1 weights per z."""
    shifted = TeacherIWParams(K=tuple(K + 1 for K in params.K), n=params.n)
    return teacher_iw_cost(shifted, dims)


def teacher_iw_cost(params: TeacherIWParams, dims: Dims) -> Cost:
    """n z with K draws each; a chunk holds max(EVAL_ROWS // K, 1) z, so K rows at least."""
    K = max(params.K)
    rows = max(EVAL_ROWS // K, 1) * K
    flops = params.n * sum(params.K) * (dims.encoder_flops + dims.teacher_flops)
    return Cost(flops, 8.0 * 2 * rows * (dims.d + dims.k * dims.k + 3 * dims.m), "K" if K > params.n else "n")
