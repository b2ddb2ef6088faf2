"""A plain per-sample loop of the paper's algorithm (Herwana & Kadian, section 3.3), the reference
the batched ``ibcheck.estimators.teacher.elbo_evaluate`` is measured and checked against.

It is written independently of ``ibcheck.estimators.teacher`` on purpose: one sample at a
time, batch size 1 through every network, its own torch.Generator, and only torch
primitives and the Gaussian formulas of ``ibcheck.gaussian``. It is slow by design: a
Python loop over samples is what batching replaces, so it must not be used elsewhere.
"""
from __future__ import annotations

import torch

from ibcheck.gaussian import diag_entropy, diag_log_prob, kl_diag_to_standard

Tensor = torch.Tensor


def _normal_like(mean: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)


@torch.no_grad()
def one_sample_term(encoder, teacher, q, generator: torch.Generator) -> float:
    """Steps 1-7 for one sample: the Eq. 5 term -H[p(z|x)] - log p(z|x') + KL(q(z_v|z) || N(0, I)), nats.

    encoder: x (1, d) -> mean, std (1, m); teacher: ``sample(z_v (1, k), generator)`` -> x (1, d);
    q: z (1, m) -> mean, std (1, k), a diagonal Gaussian (the MLP inference network's form).
    """
    weight = next(iter(encoder.parameters()))
    z_v = torch.randn((1, teacher.latent_dim), generator=generator, dtype=weight.dtype)  # 1. z_v ~ N(0, I)
    x = teacher.sample(z_v, generator)                                                   # 1. x ~ p(x|z_v)
    enc_mean, enc_std = encoder(x)                                                       # 2. p(z|x)
    z = enc_mean + enc_std * _normal_like(enc_mean, generator)                           # 3. z ~ p(z|x)
    q_mean, q_std = q(z)                                                                 # 4. q(z_v|z)
    z_v_prime = q_mean + q_std * _normal_like(q_mean, generator)                         # 5. z_v' ~ q
    x_prime = teacher.sample(z_v_prime, generator)                                       # 6. x' ~ p(x|z_v')
    mean_prime, std_prime = encoder(x_prime)                                             # 6. p(z|x')
    term = -diag_entropy(enc_std) - diag_log_prob(z, mean_prime, std_prime) + kl_diag_to_standard(q_mean, q_std)
    return float(term)                                                                   # 7. Eq. 5 term


def per_sample_terms(encoder, teacher, q, n: int, generator: torch.Generator) -> Tensor:
    """The Eq. 5 terms of n independent samples, one at a time: (n,) float64, nats.

    Step 8 (training q on these terms) is not part of the evaluation and is left out.
    """
    return torch.tensor([one_sample_term(encoder, teacher, q, generator) for _ in range(n)],
                        dtype=torch.float64)
