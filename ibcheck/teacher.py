"""The teacher: a VAE whose decoder p(x|z_v) generates the student's data.

MLP 784-400-2k encoder and k-400-784 decoder with Bernoulli pixels on [0, 1]
(Kingma & Welling 2013, appendix C; pytorch/examples ``vae``), k = 20, trained
with Adam 1e-3, batch 128, for 100 epochs (Herwana & Kadian, section 4).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ibcheck import networks, runs
from ibcheck.gaussian import kl_diag_to_standard, standard_normal

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    """Settings of ``ibcheck teacher``; defaults are the paper's."""

    latent: int = 20
    hidden: int = 400
    epochs: int = 100
    batch: int = 128
    lr: float = 1e-3
    seed: int = 0
    data: str = "mnist10k"
    data_dir: Optional[str] = None
    test_fraction: float = 0.2  # of the built-in subset, which has no test file


class VAE(nn.Module):
    """q(z_v|x) = N(mu(x), diag exp(logvar(x))), p(x|z_v) = Bernoulli(sigmoid(MLP(z_v)))."""

    def __init__(self, latent: int = 20, hidden: int = 400, seed: int = 0):
        super().__init__()
        self.latent = latent
        self.encoder = networks.mlp([784, hidden, 2 * latent], seed)
        self.decoder = networks.MLPTeacher((latent, hidden, 784), seed=seed + 1)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (n, 784) in [0, 1] -> posterior mean and std, (n, k)."""
        mean, log_var = self.encoder(x).split(self.latent, dim=-1)
        return mean, (0.5 * log_var).exp()

    def neg_elbo(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Per-image negative ELBO in nats: -E_q log p(x|z_v) + KL(q(z_v|x) || N(0, I)), one draw: (n,).

        Pixels in [0, 1] enter the Bernoulli log-likelihood as soft targets (binary cross-entropy),
        as in pytorch/examples ``vae``."""
        mean, std = self.encode(x)
        z_v = mean + std * standard_normal(mean.shape, generator, mean.device, mean.dtype)
        logits = self.decoder.net(z_v)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        return rec + kl_diag_to_standard(mean, std)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, rows: int = 4096) -> Tensor:
        """The decoder mean at the posterior mean: (n, 784) float32 in (0, 1) (the student's data)."""
        parts = [self.decoder(self.encode(x[s:s + rows])[0]) for s in range(0, len(x), rows)]
        return torch.cat(parts)


@torch.no_grad()
def _mean_neg_elbo(vae: VAE, x: Tensor, generator: torch.Generator, rows: int = 4096) -> float:
    return float(torch.cat([vae.neg_elbo(x[s:s + rows], generator) for s in range(0, len(x), rows)]).mean())


def train_teacher(config: TeacherConfig, train_x: np.ndarray, test_x: np.ndarray, run: runs.RunDir,
                  device: torch.device = torch.device("cpu"),
                  progress: Callable[[int, dict], None] = lambda epoch, record: None) -> VAE:
    """Train (or resume) the VAE on ``device``, saving a checkpoint and the train/test negative
    ELBO each epoch. train_x, test_x: (n, 784) float32 in [0, 1]. Returns the trained model.
    """
    vae = VAE(config.latent, config.hidden, config.seed).to(device)
    optimiser = torch.optim.Adam(vae.parameters(), lr=config.lr)
    g_train = torch.Generator(device=device).manual_seed(config.seed)
    g_eval = torch.Generator(device=device).manual_seed(config.seed + 1)
    state = run.load()
    records = []
    if state is not None:
        vae.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        runs.restore_generators(state["generators"], train=g_train, eval=g_eval)
        records = state["records"]
    x_train, x_test = torch.from_numpy(train_x).to(device), torch.from_numpy(test_x).to(device)
    for epoch in range(len(records) + 1, config.epochs + 1):
        started = time.perf_counter()
        order = torch.randperm(len(x_train), generator=g_train, device=device)
        total = 0.0
        for start in range(0, len(order), config.batch):
            batch = x_train[order[start:start + config.batch]]
            optimiser.zero_grad(set_to_none=True)
            loss = vae.neg_elbo(batch, g_train).mean()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        record = {"epoch": epoch, "train_neg_elbo_running": total / len(order),
                  "test_neg_elbo": _mean_neg_elbo(vae, x_test, g_eval),
                  "seconds": time.perf_counter() - started}
        records.append(record)
        run.save({"model": vae.state_dict(), "optimiser": optimiser.state_dict(), "records": records,
                  "generators": runs.generator_states(train=g_train, eval=g_eval)})
        progress(epoch, record)
    return vae


def load_teacher(path, config: TeacherConfig) -> VAE:
    """The VAE of a finished teacher run's checkpoint."""
    vae = VAE(config.latent, config.hidden, config.seed)
    vae.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["model"])
    return vae.eval()
