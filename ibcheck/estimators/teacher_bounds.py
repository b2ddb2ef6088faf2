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

import torch

from ibcheck.estimators.common import EVAL_ROWS, chunks, fit, frozen
from ibcheck.gaussian import diag_entropy, diag_log_prob, kl_to_standard, log_prob, rsample, with_draws_axis
from ibcheck.interface import Context, Cost, DataSampler, Dims, Encoder, InferenceNet, Measured, Teacher

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
    """K: importance samples per z (one estimate each); n: z per estimate."""

    K: tuple[int, ...] = dataclasses.field(default=(1, 10, 100), metadata={"min": 1})
    n: int = dataclasses.field(default=4_000, metadata={"min": 2})


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


def iw_terms(encoder: Encoder, teacher: Teacher, q: InferenceNet, z: Tensor, entropy: Tensor, K: int,
             generator: torch.Generator) -> Tensor:
    """-H[p(z|x)] - log (1/K) sum_k w_k with w_k = p(z|x'_k) p(z_v,k) / q(z_v,k|z) (Burda et al. 2015).

    z: (n, m) -> (n,). The K draws share each z's q parameters; x'_k ~ p(x|z_v,k).
    """
    n = z.shape[0]
    q_mean, q_scale = q(z)
    z_v = rsample(q_mean, q_scale, generator, draws=K)
    log_q = log_prob(z_v, *with_draws_axis(q_mean, q_scale))
    log_prior = -0.5 * (z_v * z_v).sum(-1) - 0.5 * z_v.shape[-1] * math.log(2 * math.pi)
    mean, std = encoder(teacher.sample(z_v.reshape(n * K, -1), generator))
    log_lik = diag_log_prob(z.repeat_interleave(K, dim=0), mean, std).reshape(n, K)
    log_marginal = torch.logsumexp(log_lik + log_prior - log_q, dim=1) - math.log(K)
    return -entropy - log_marginal


@torch.no_grad()
def teacher_iw_terms(encoder: Encoder, data: DataSampler, params: TeacherIWParams, generator: torch.Generator,
                     context: Context) -> list[Measured]:
    """The importance-weighted teacher bound, one estimate per K, each over n fresh z; non-increasing
    in K in expectation, tending to the cross-entropy limit CE(p(z), p'(z)) - H(Z|X)."""
    teacher, q = _needs_q(context)
    out = []
    for K in params.K:
        terms = []
        for size in chunks(params.n, max(1, EVAL_ROWS // K)):
            z, entropy = encode_fresh(encoder, data, size, generator)
            terms.append(iw_terms(encoder, teacher, q, z, entropy, K, generator))
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


def teacher_iw_cost(params: TeacherIWParams, dims: Dims) -> Cost:
    """n z with K draws each; a chunk holds max(EVAL_ROWS // K, 1) z, so K rows at least."""
    K = max(params.K)
    rows = max(EVAL_ROWS // K, 1) * K
    flops = params.n * sum(params.K) * (dims.encoder_flops + dims.teacher_flops)
    return Cost(flops, 8.0 * 2 * rows * (dims.d + dims.k * dims.k + 3 * dims.m), "K" if K > params.n else "n")
