"""Teacher bounds on I(X;Z): the paper's Eq. 5 and its importance-weighted form.

Both replace H(Z) by the cross-entropy of p(z) with the teacher's model marginal
p'(z) = E_{z_v ~ N(0, I)} E_{x ~ p(x|z_v)} p(z|x), and lower-bound log p'(z)
with an inference network q(z_v|z) (Herwana & Kadian, section 3.3). Any
normalised p'(z) and any q give an upper bound on I(X;Z).
"""
from __future__ import annotations

import math
import time

import torch

from ibcheck.estimators._common import EVAL_ROWS, chunks, fit, frozen, generator_for, module_device, summarize
from ibcheck.gaussian import diag_entropy, diag_log_prob, kl_to_standard, log_prob, rsample, with_draws_axis
from ibcheck.interface import DataSampler, Encoder, Estimate, InferenceNet, Teacher

Tensor = torch.Tensor


def _encode(encoder: Encoder, data: DataSampler, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
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


def train_inference_net(encoder: Encoder, teacher: Teacher, data: DataSampler, q: InferenceNet, *,
                        steps: int, batch: int, lr: float, generator: torch.Generator) -> list[float]:
    """Step 8: minimise the Eq. 5 bound over q's parameters on fresh minibatches (in place)."""
    def loss() -> Tensor:
        z, entropy = _encode(encoder, data, batch, generator)
        return elbo_terms(encoder, teacher, q, z, entropy, generator).mean()

    with frozen(encoder, teacher):
        return fit(q.parameters(), loss, steps, lr)


def teacher_elbo(encoder: Encoder, teacher: Teacher, data: DataSampler, q: InferenceNet, *, n_eval: int, seed: int,
                 steps: int = 0, batch: int = 256, lr: float = 1e-3, device=None) -> Estimate:
    """The teacher inference-network bound of Herwana & Kadian Eq. 5.

    Trains ``q`` in place for ``steps`` Adam steps (warm start: whatever q holds),
    then evaluates on ``n_eval`` fresh samples it never trained on.
    """
    started = time.perf_counter()
    generator = generator_for(seed, device or module_device(encoder))
    history = train_inference_net(encoder, teacher, data, q, steps=steps, batch=batch, lr=lr, generator=generator)
    terms = elbo_evaluate(encoder, teacher, data, q, n_eval, generator)
    params = {"steps": steps, "batch": batch, "lr": lr, "n_eval": n_eval,
              "final_train_loss": history[-1] if history else None}
    return summarize("teacher_elbo", "I_XZ", "upper", terms, seed, params, started)


@torch.no_grad()
def elbo_evaluate(encoder: Encoder, teacher: Teacher, data: DataSampler, q: InferenceNet, n: int,
                  generator: torch.Generator) -> Tensor:
    """Eq. 5 terms on n fresh samples, in batches of EVAL_ROWS: (n,)."""
    terms = []
    for size in chunks(n, EVAL_ROWS):
        z, entropy = _encode(encoder, data, size, generator)
        terms.append(elbo_terms(encoder, teacher, q, z, entropy, generator))
    return torch.cat(terms)


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
def teacher_iw(encoder: Encoder, teacher: Teacher, data: DataSampler, q: InferenceNet, *,
               K: int, n: int, seed: int, device=None) -> Estimate:
    """Importance-weighted teacher bound with K samples of a (trained) q; non-increasing in
    K in expectation, tending to the cross-entropy limit CE(p(z), p'(z)) - H(Z|X)."""
    started = time.perf_counter()
    generator = generator_for(seed, device or module_device(encoder))
    terms = []
    for size in chunks(n, max(1, EVAL_ROWS // K)):
        z, entropy = _encode(encoder, data, size, generator)
        terms.append(iw_terms(encoder, teacher, q, z, entropy, K, generator))
    return summarize("teacher_iw", "I_XZ", "upper", torch.cat(terms), seed, {"K": K, "n": n}, started)
