"""Torch modules and samplers of the linear-Gaussian model.

These let the generic estimators (which see only an encoder, a teacher, a
q network and a sampler) run on a linear-Gaussian case, on any device and
dtype. The trainable q modules expose their parameters as numpy arrays so the
closed forms of ``exact.py`` can evaluate the bound at exactly the trained q.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.gaussian import LOG_2PI, log_prob, standard_normal
from ibcheck.interface import Batch

Tensor = torch.Tensor


def _t(a: np.ndarray, device, dtype) -> Tensor:
    return torch.as_tensor(np.array(a), device=device, dtype=dtype)


class LinearEncoder(nn.Module):
    """p(z|x) = N(A x + b, diag(std^2)): x (n, d) -> mean (n, m), std (n, m)."""

    A: Tensor
    b: Tensor
    std: Tensor

    def __init__(self, A: Tensor, b: Tensor, std: Tensor):
        super().__init__()
        self.register_buffer("A", A)
        self.register_buffer("b", b)
        self.register_buffer("std", std)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x @ self.A.T + self.b, self.std.expand(x.shape[0], -1)


class LinearTeacher(nn.Module):
    """p(x|z_v) = N(W z_v + c, noise_std^2 I): z_v (n, k) -> x (n, d)."""

    W: Tensor
    c: Tensor

    def __init__(self, W: Tensor, c: Tensor, noise_std: float):
        super().__init__()
        self.register_buffer("W", W)
        self.register_buffer("c", c)
        self.noise_std = float(noise_std)
        self.latent_dim = W.shape[1]

    @property
    def deterministic(self) -> bool:
        """Whether x is a function of z_v (no x-noise)."""
        return self.noise_std == 0

    def sample(self, z_v: Tensor, generator: torch.Generator) -> Tensor:
        x = z_v @ self.W.T + self.c
        if self.noise_std > 0:
            x = x + self.noise_std * standard_normal(x.shape, generator, x.device, x.dtype)
        return x

    def latent_log_lik(self, encoder, z: Tensor, z_v: Tensor) -> Tensor:
        """log p(z|z_v) with the x-noise integrated out, for a linear encoder p(z|x) = N(A x + b, D):
        N(z; A (W z_v + c) + b, noise_std^2 A A^T + D) (bounds.md section 3b's Sn). z: (n, m),
        z_v: (n, C, k) -> (n, C), differentiable in z_v. Another encoder behind a deterministic
        teacher goes through the encoder itself."""
        if not isinstance(encoder, LinearEncoder):
            if not self.deterministic:
                raise ValueError("p(z|z_v) of a noisy linear teacher has a closed form only for a linear encoder")
            n, chains, k = z_v.shape
            mean, std = encoder(self.sample(z_v.reshape(n * chains, k), torch.Generator()))
            return log_prob(z.repeat_interleave(chains, dim=0), mean, std).reshape(n, chains)
        A = encoder.A
        cov = self.noise_std**2 * A @ A.T + torch.diag(encoder.std**2)
        chol = torch.linalg.cholesky(cov)
        # whitened: L^-1 (z - M z_v - h) with M = A W and h = A c + b, so that d never enters per row
        white_M = torch.linalg.solve_triangular(chol, A @ self.W, upper=False)
        white_z = torch.linalg.solve_triangular(chol, (z - (A @ self.c + encoder.b)).T, upper=False).T
        white = white_z.unsqueeze(1) - z_v @ white_M.T
        m = z.shape[-1]
        return -0.5 * (white * white).sum(-1) - torch.diagonal(chol).log().sum() - 0.5 * m * LOG_2PI


class _Cholesky(nn.Module):
    """A trainable lower-triangular factor with a positive diagonal, started at I: L = U diag(s),
    U unit lower-triangular, so that its off-diagonal entries scale with the diagonal they sit
    over (a narrow posterior needs no tiny absolute entries)."""

    def __init__(self, size: int, device, dtype):
        super().__init__()
        self.lower = nn.Parameter(torch.zeros(size, size, device=device, dtype=dtype))
        self.log_diag = nn.Parameter(torch.zeros(size, device=device, dtype=dtype))

    def forward(self) -> Tensor:
        eye = torch.eye(self.lower.shape[0], device=self.lower.device, dtype=self.lower.dtype)
        return (torch.tril(self.lower, diagonal=-1) + eye) * self.log_diag.exp()


class LinearGaussianQ(nn.Module):
    """q(z_v|z) = N(C P (z - mu) + e, L L^T), C: (k, m), started at the model prior N(0, I).

    P, mu are a fixed normalisation of the input (``fit_input``), by default P = I, mu = 0: with
    z whitened, Adam's steps on C are well conditioned even where z's covariance is not (a narrow
    posterior in a high-information case). The family is the same; ``numpy_params`` folds P, mu in.
    """

    mu: Tensor
    P: Tensor

    def __init__(self, m: int, k: int, device=None, dtype=torch.float64):
        super().__init__()
        self.C = nn.Parameter(torch.zeros(k, m, device=device, dtype=dtype))
        self.e = nn.Parameter(torch.zeros(k, device=device, dtype=dtype))
        self.chol = _Cholesky(k, device, dtype)
        self.register_buffer("mu", torch.zeros(m, device=device, dtype=dtype))
        self.register_buffer("P", torch.eye(m, device=device, dtype=dtype))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return (z - self.mu) @ (self.C @ self.P).T + self.e, self.chol().expand(z.shape[0], -1, -1)

    def fit_input(self, z: Tensor) -> None:
        """Whiten the input with the mean and covariance of z: (n, m), keeping q's function:
        C' P' = C P and e' = e + C P (mu' - mu)."""
        with torch.no_grad():
            mu = z.mean(0)
            centred = z - mu
            cov = centred.T @ centred / max(len(z) - 1, 1)
            factor, info = torch.linalg.cholesky_ex(cov)
            if int(info) != 0:  # a degenerate z: keep the current normalisation
                return
            P = torch.linalg.inv(factor)
            CP = self.C @ self.P
            self.e.add_(CP @ (mu - self.mu))
            self.C.copy_(CP @ torch.linalg.inv(P))
            self.mu.copy_(mu)
            self.P.copy_(P)

    def numpy_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(C P, e - C P mu, L L^T) in float64 for ``exact.teacher_bound``."""
        with torch.no_grad():
            L = self.chol().double().cpu().numpy()
            CP = (self.C @ self.P).double().cpu().numpy()
            return CP, self.e.double().cpu().numpy() - CP @ self.mu.double().cpu().numpy(), L @ L.T


class LinearGaussianLabelQ(nn.Module):
    """q(y|z) = N(F z + g, L L^T) for real labels y: (n, p)."""

    def __init__(self, m: int, p: int, device=None, dtype=torch.float64):
        super().__init__()
        self.F = nn.Parameter(torch.zeros(p, m, device=device, dtype=dtype))
        self.g = nn.Parameter(torch.zeros(p, device=device, dtype=dtype))
        self.chol = _Cholesky(p, device, dtype)

    def log_prob(self, z: Tensor, y: Tensor) -> Tensor:
        return log_prob(y, z @ self.F.T + self.g, self.chol().expand(z.shape[0], -1, -1))

    def numpy_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(F, g, Sigma) in float64 for ``exact.decoder_expectation``."""
        with torch.no_grad():
            L = self.chol().double().cpu().numpy()
            return self.F.double().cpu().numpy(), self.g.double().cpu().numpy(), L @ L.T


class SoftmaxLabelQ(nn.Module):
    """q(y|z) = softmax(V z + a)_y for class labels y: (n,) int64."""

    def __init__(self, m: int, classes: int, device=None, dtype=torch.float64):
        super().__init__()
        self.linear = nn.Linear(m, classes, device=device, dtype=dtype)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def log_prob(self, z: Tensor, y: Tensor) -> Tensor:
        return torch.log_softmax(self.linear(z), dim=1).gather(1, y.unsqueeze(1)).squeeze(1)


class CaseSampler:
    """Seeded iid draws of (z_v, x, y) from a case's data distribution.

    z_v ~ N(prior_mean, prior_cov) (or, for class labels, y ~ Cat(probs) and
    z_v | y ~ N(means[y], prior_cov)); x = W z_v + c + noise_std eps; Gaussian
    labels y = B z_v + noise_std eps_y.
    """

    def __init__(self, case: LinearGaussianCase, device=None, dtype=torch.float64):
        self.case, self.device, self.dtype = case, torch.device(device or "cpu"), dtype
        self.teacher = LinearTeacher(_t(case.W, device, dtype), _t(case.c, device, dtype), case.noise_std)
        self.prior_mean = _t(case.prior_mean, device, dtype)
        self.prior_chol = _t(np.linalg.cholesky(case.prior_cov), device, dtype)
        self.prior_white = torch.linalg.inv(self.prior_chol)
        labels = case.labels
        if labels.kind == "classes":
            self.class_means = _t(labels.means, device, dtype)
            self.class_probs = _t(labels.probs, device, torch.float64)
        if labels.kind == "gaussian":
            self.B = _t(labels.B, device, dtype)

    def _normal(self, *shape: int, generator: torch.Generator) -> Tensor:
        return standard_normal(shape, generator, self.device, self.dtype)

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        kind = self.case.labels.kind
        y = None
        eps = self._normal(n, self.case.k, generator=generator) @ self.prior_chol.T
        if kind == "classes":
            y = torch.multinomial(self.class_probs, n, replacement=True, generator=generator)
            z_v = self.class_means[y] + eps
        else:
            z_v = self.prior_mean + eps
        x = self.teacher.sample(z_v, generator)
        if kind == "gaussian":
            y = z_v @ self.B.T
            if self.case.labels.noise_std > 0:
                y = y + self.case.labels.noise_std * self._normal(n, self.B.shape[0], generator=generator)
        return Batch(x=x, z_v=z_v, y=y)


    def log_prior(self, z_v: Tensor) -> Tensor:
        """log p_d(z_v) of the case's data prior (the class mixture for class labels): (..., k) -> (...)."""
        # whitened by the inverse factor, one matrix product for any leading axes (a batched triangular
        # solve would copy the factor to every row and class)
        const = -torch.diagonal(self.prior_chol).log().sum() - 0.5 * self.case.k * LOG_2PI
        if self.case.labels.kind == "classes":
            white = (z_v.unsqueeze(-2) - self.class_means) @ self.prior_white.T
            per_class = -0.5 * (white * white).sum(-1) + const
            return torch.logsumexp(per_class + self.class_probs.log().to(z_v.dtype), dim=-1)
        white = (z_v - self.prior_mean) @ self.prior_white.T
        return -0.5 * (white * white).sum(-1) + const


def encoder_for(case: LinearGaussianCase, device=None, dtype=torch.float64) -> LinearEncoder:
    """The case's student encoder as a module."""
    return LinearEncoder(_t(case.A, device, dtype), _t(case.b, device, dtype), _t(case.std, device, dtype))
