"""Neural encoder, teacher decoder, inference network and label decoder.

Shapes follow the paper and the reference VIB code: the student encoder is an
MLP 784-1024-1024-2K with K = 40 and std = softplus(rho - 5) (Alemi et al.
2016, section 4.1); the teacher is a VAE decoder 20-400-784 with Bernoulli
pixels (Kingma & Welling 2013, appendix C); q(z_v|z) an MLP 40-256-2x20 with a
diagonal Gaussian output (or, to start annealing from, a full-covariance one); the label decoder
q(y|z) an MLP 40-256-10. Every constructor takes a seed, so weights never depend on the global
random state.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

Tensor = torch.Tensor


def init_linear_(layer: nn.Linear, generator: torch.Generator) -> None:
    """PyTorch's default range U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, drawn from ``generator``."""
    bound = layer.in_features ** -0.5
    with torch.no_grad():
        for p in (layer.weight, layer.bias):
            p.copy_((torch.rand(p.shape, generator=generator, dtype=p.dtype) * 2 - 1) * bound)


def mlp(sizes: Sequence[int], seed: int, dtype=torch.float32) -> nn.Sequential:
    """Linear layers of ``sizes`` with ReLU between them (none after the last)."""
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = nn.Linear(n_in, n_out, dtype=dtype)
        init_linear_(layer, generator)
        layers.append(layer)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """p(z|x) = N(mu(x), diag(softplus(rho(x) - std_shift)^2)): x (n, d) -> mean, std (n, K).

    The default shift 5 starts the encoder nearly deterministic (std near 0.007), as in
    Alemi et al.'s code; a shift of 0 starts it wide (std near 0.7).
    """

    def __init__(self, sizes: Sequence[int] = (784, 1024, 1024), latent: int = 40, seed: int = 0,
                 dtype=torch.float32, std_shift: float = 5.0):
        super().__init__()
        self.net = mlp(list(sizes) + [2 * latent], seed, dtype)
        self.latent, self.std_shift = latent, std_shift

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, rho = self.net(x).split(self.latent, dim=-1)
        return mean, F.softplus(rho - self.std_shift)


class MLPTeacher(nn.Module):
    """VAE decoder p(x|z_v): Bernoulli pixels with means sigmoid(MLP(z_v)), z_v (n, k) -> x (n, d).

    ``sample`` returns the decoder mean by default: the student trains on the
    teacher's mean reconstructions (a deterministic teacher, noise_std = 0);
    with ``binary=True`` it draws Bernoulli pixels instead (not reparameterisable).
    """

    def __init__(self, sizes: Sequence[int] = (20, 400, 784), seed: int = 0, binary: bool = False,
                 dtype=torch.float32):
        super().__init__()
        self.net = mlp(sizes, seed, dtype)
        self.latent_dim = sizes[0]
        self.binary = binary

    def forward(self, z_v: Tensor) -> Tensor:
        return torch.sigmoid(self.net(z_v))

    @property
    def deterministic(self) -> bool:
        """Whether ``sample`` returns the decoder mean (x a function of z_v), as the student's data are."""
        return not self.binary

    def sample(self, z_v: Tensor, generator: torch.Generator) -> Tensor:
        mean = self(z_v)
        if not self.binary:
            return mean
        uniform = torch.rand(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return (uniform < mean).to(mean.dtype)


class MLPInferenceNet(nn.Module):
    """q(z_v|z) = N(mu(z), diag(softplus(s(z)) + 1e-4)^2): z (n, m) -> mean, std (n, k).

    The last layer starts at zero weights and a softplus^-1(1) bias, i.e. at the model prior N(0, I).
    """

    def __init__(self, sizes: Sequence[int] = (40, 256), latent: int = 20, seed: int = 0, dtype=torch.float32):
        super().__init__()
        self.net = mlp(list(sizes) + [2 * latent], seed, dtype)
        self.latent = latent
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.zero_()
            last.bias[:latent].zero_()
            last.bias[latent:].fill_(0.5413)  # softplus(0.5413) = 1.0

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        mean, raw = self.net(z).split(self.latent, dim=-1)
        return mean, F.softplus(raw) + 1e-4


class MLPCholeskyInferenceNet(nn.Module):
    """q(z_v|z) = N(mu(z), L(z) L(z)^T) with a full covariance: z (n, m) -> mean (n, k), Cholesky factor
    (n, k, k), L = U diag(softplus(s(z)) + 1e-4) with U unit lower-triangular, so that off-diagonal entries
    scale with the widths they sit over. On a curved posterior (a neural student) the forward KL of
    this family is far lower than the diagonal one's, which makes it the better start of annealing
    (bounds.md section 3c). The last layer starts at zero weights, i.e. at the model prior N(0, I)."""

    def __init__(self, sizes: Sequence[int] = (40, 256), latent: int = 20, seed: int = 0, dtype=torch.float32):
        super().__init__()
        self.latent = latent
        self.rows, self.cols = torch.tril_indices(latent, latent, offset=-1)
        self.net = mlp(list(sizes) + [2 * latent + len(self.rows)], seed, dtype)
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()
            last.bias[latent:2 * latent].fill_(0.5413)  # softplus(0.5413) = 1.0

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        k = self.latent
        out = self.net(z)
        mean, raw, off = out[:, :k], out[:, k:2 * k], out[:, 2 * k:]
        unit = torch.eye(k, dtype=out.dtype, device=out.device).repeat(len(z), 1, 1)
        unit[:, self.rows, self.cols] = off
        return mean, unit * (F.softplus(raw) + 1e-4).unsqueeze(1)


class LabelDecoderMLP(nn.Module):
    """The student's label decoder q(y|z) = softmax(MLP(z))_y for class labels: z (n, m), y (n,) -> log q (n,)."""

    def __init__(self, sizes: Sequence[int] = (40, 256, 10), seed: int = 0, dtype=torch.float32):
        super().__init__()
        self.net = mlp(sizes, seed, dtype)

    def log_prob(self, z: Tensor, y: Tensor) -> Tensor:
        return torch.log_softmax(self.net(z), dim=-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
