"""The teacher: a VAE whose generative network p(x|z_v) makes the student's data.

MLP 784-hidden-2k recognition network q(z_v|x) and k-hidden-784 generative network
with Bernoulli pixels on [0, 1] (Kingma & Welling 2013, appendix C; pytorch/examples
``vae``); the paper's k = 20, hidden = 400 (Herwana & Kadian, section 4).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ibcheck import seeds
from ibcheck.gaussian import kl_diag_to_standard, standard_normal
from ibcheck.pipeline import networks

Tensor = torch.Tensor


class VAE(nn.Module):
    """q(z_v|x) = N(mu(x), diag exp(logvar(x))) (``recognition``), p(x|z_v) =
    Bernoulli(sigmoid(MLP(z_v))) (``generative``, the teacher of the teacher bounds).
    Initial weights come from ``seed``'s tree (paths ``recognition`` and ``generative``)."""

    def __init__(self, latent: int = 20, hidden: int = 400, seed: int = 0):
        super().__init__()
        self.latent = latent
        self.recognition = networks.mlp([784, hidden, 2 * latent], seeds.seed_of(seed, "recognition"))
        self.generative = networks.MLPTeacher((latent, hidden, 784), seed=seeds.seed_of(seed, "generative"))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (n, 784) in [0, 1] -> posterior mean and std, (n, k)."""
        mean, log_var = self.recognition(x).split(self.latent, dim=-1)
        return mean, (0.5 * log_var).exp()

    def neg_elbo(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Per-image negative ELBO in nats: -E_q log p(x|z_v) + KL(q(z_v|x) || N(0, I)), one draw: (n,).

        Pixels in [0, 1] enter the Bernoulli log-likelihood as soft targets (binary cross-entropy),
        as in pytorch/examples ``vae``."""
        mean, std = self.encode(x)
        z_v = mean + std * standard_normal(mean.shape, generator, mean.device, mean.dtype)
        logits = self.generative.net(z_v)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        return rec + kl_diag_to_standard(mean, std)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, rows: int = 4096) -> Tensor:
        """The generative mean at the posterior mean: (n, 784) float32 in (0, 1) (the student's data)."""
        parts = [self.generative(self.encode(x[s:s + rows])[0]) for s in range(0, len(x), rows)]
        return torch.cat(parts)
