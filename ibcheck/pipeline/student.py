"""The VIB student: a stochastic encoder p(z|x), a label decoder q(y|z), and its training epoch.

Defaults follow Alemi et al.'s reference code ``vib_demo`` (MNISTVIB.ipynb): inputs
scaled to 2x - 1, encoder MLP 784-1024-1024-2K with std = softplus(rho - 5), loss
cross-entropy + beta KL(p(z|x) || N(0, I)) with beta = 1e-3 (in nats here; the
demo divides both by ln 2), one z draw per image in training and 12 at evaluation,
batch 100, Adam(1e-4, betas (0.5, 0.999)) decayed by 0.97 every 2 epochs, 200 epochs.
The paper's choices: K = 40 and a 2-layer MLP label decoder q(y|z) (Herwana & Kadian, section 4).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ibcheck import seeds
from ibcheck.config import StudentConfig
from ibcheck.gaussian import kl_diag_to_standard, rsample
from ibcheck.interface import Diverged
from ibcheck.pipeline import networks

Tensor = torch.Tensor


class CNNEncoder(nn.Module):
    """A 3-layer CNN encoder: conv 5x5 32 (stride 2) - conv 5x5 64 (stride 2) - conv 3x3 128 (stride 2)
    - linear to 2K; std = softplus(rho - std_shift). x: (n, 784) -> mean, std (n, K)."""

    def __init__(self, latent: int = 40, seed: int = 0, std_shift: float = 5.0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.convs = nn.Sequential(nn.Conv2d(1, 32, 5, 2, 2), nn.ReLU(), nn.Conv2d(32, 64, 5, 2, 2), nn.ReLU(),
                                   nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU())
        self.head = nn.Linear(128 * 4 * 4, 2 * latent)
        for layer in list(self.convs) + [self.head]:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                bound = (layer.weight[0].numel()) ** -0.5
                with torch.no_grad():
                    for p in (layer.weight, layer.bias):
                        assert p is not None
                        p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
        self.latent, self.std_shift = latent, std_shift

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.convs((2 * x - 1).view(-1, 1, 28, 28)).flatten(1)
        mean, rho = self.head(h).split(self.latent, dim=-1)
        return mean, F.softplus(rho - self.std_shift)


class ScaledMLPEncoder(networks.MLPEncoder):
    """The MLP encoder on inputs scaled to 2x - 1, as in vib_demo."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return super().forward(2 * x - 1)


class VIBStudent(nn.Module):
    """Encoder p(z|x) and label decoder q(y|z) (``networks.LabelDecoderMLP``); initial weights from
    ``seed``'s tree (paths ``encoder`` and ``classifier``: the seed path keeps the decoder's former
    name, so that a seed gives the weights it gave before the rename)."""

    def __init__(self, config: StudentConfig, seed: int = 0):
        super().__init__()
        encoder_seed = seeds.seed_of(seed, "encoder")
        self.encoder: nn.Module
        if config.encoder == "mlp":
            self.encoder = ScaledMLPEncoder((784, config.hidden, config.hidden), config.latent, seed=encoder_seed,
                                            std_shift=config.std_shift)
        elif config.encoder == "cnn":
            self.encoder = CNNEncoder(config.latent, seed=encoder_seed, std_shift=config.std_shift)
        else:
            raise ValueError(f"unknown encoder {config.encoder!r} (mlp or cnn)")
        self.label_decoder = networks.LabelDecoderMLP((config.latent, config.label_decoder_hidden, 10),
                                                      seed=seeds.seed_of(seed, "classifier"))

    def loss(self, x: Tensor, y: Tensor, beta: float, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """(total, cross-entropy, KL) batch means in nats: -log q(y|z) + beta KL(p(z|x) || N(0, I)), one z each."""
        mean, std = self.encoder(x)
        ce = -self.label_decoder.log_prob(rsample(mean, std, generator), y).mean()
        kl = kl_diag_to_standard(mean, std).mean()
        return ce + beta * kl, ce, kl

    @torch.no_grad()
    def predict(self, x: Tensor, samples: int, generator: torch.Generator) -> Tensor:
        """Class probabilities averaged over ``samples`` z draws (vib_demo's avg_accuracy): (n, 10)."""
        mean, std = self.encoder(x)
        z = rsample(mean, std, generator, draws=samples)
        return torch.softmax(self.label_decoder.net(z), dim=-1).mean(1)


def make_optimizer(student: VIBStudent, config: StudentConfig) -> tuple[torch.optim.Optimizer,
                                                                      torch.optim.lr_scheduler.LRScheduler]:
    """The optimiser and its staircase decay (x ``decay`` every ``decay_epochs`` epochs, stepped per epoch)."""
    opt: torch.optim.Optimizer
    if config.optimizer == "adam":
        opt = torch.optim.Adam(student.parameters(), lr=config.lr, betas=(config.adam_beta1, config.adam_beta2))
    elif config.optimizer == "sgd":
        opt = torch.optim.SGD(student.parameters(), lr=config.sgd_lr, momentum=config.sgd_momentum)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r} (adam or sgd)")
    return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=config.decay_epochs, gamma=config.decay)


def grad_norm(module: nn.Module) -> float:
    """Global L2 norm of the module's gradients."""
    norms = [p.grad.detach().norm() for p in module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def train_epoch(student: VIBStudent, opt: torch.optim.Optimizer, x: Tensor, y: Tensor, config: StudentConfig,
                generator: torch.Generator, on_step: Callable[[int], None] | None = None) -> dict:
    """One pass over (x: (n, 784), y: (n,)) in shuffled batches; returns the epoch's mean loss terms
    and mean gradient norm. ``on_step(step_in_epoch)`` is called after each step (for log-spaced tracking).
    Raises ``Diverged`` at the first non-finite loss or gradient norm, or non-finite parameters at the end."""
    order = torch.randperm(len(x), generator=generator, device=x.device)
    sums = {"loss": 0.0, "cross_entropy": 0.0, "kl": 0.0, "grad_norm": 0.0}
    steps = math.ceil(len(x) / config.batch)
    for step in range(steps):
        idx = order[step * config.batch:(step + 1) * config.batch]
        opt.zero_grad(set_to_none=True)
        total, ce, kl = student.loss(x[idx], y[idx], config.beta, generator)
        total.backward()
        step_values = {"loss": float(total.detach()), "cross_entropy": float(ce.detach()),
                       "kl": float(kl.detach()), "grad_norm": grad_norm(student)}
        bad = [key for key, value in step_values.items() if not math.isfinite(value)]
        if bad:
            raise Diverged(f"the student diverged at step {step + 1} of the epoch: {bad[0]} is {step_values[bad[0]]}")
        opt.step()
        for key, value in step_values.items():
            sums[key] += value
        if on_step is not None:
            on_step(step + 1)
    if not all(bool(torch.isfinite(p).all()) for p in student.parameters()):
        raise Diverged("the student diverged: its parameters are not finite at the end of the epoch")
    return {key: value / steps for key, value in sums.items()}
