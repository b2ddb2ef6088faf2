"""Exact values of the linear-Gaussian model (``bounds.md`` sections 1-3), float64.

Closed forms use Cholesky / slogdet. The only Monte Carlo here is for class
labels, where H(Y|Z) has no closed form; it is reported with its standard error.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.special import log_softmax

from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.interface import Exact

LOG_2PI_E = math.log(2.0 * math.pi) + 1.0
EXACT_CHUNK = 1 << 16


def logdet(S: np.ndarray) -> float:
    """log det of a symmetric positive definite matrix via Cholesky."""
    return 2.0 * float(np.log(np.diag(np.linalg.cholesky(S))).sum())


@dataclasses.dataclass(frozen=True)
class Moments:
    """First and second moments: z_v (mv, Sv), x (mx, Sx), z (mz, Sz); D = diag(std^2)."""

    mv: np.ndarray
    Sv: np.ndarray
    mx: np.ndarray
    Sx: np.ndarray
    mz: np.ndarray
    Sz: np.ndarray
    D: np.ndarray


def moments(case: LinearGaussianCase) -> Moments:
    """Sx = W Sv W^T + sx^2 I, mx = W mv + c, Sz = A Sx A^T + D, mz = A mx + b.

    For class labels (mv, Sv) are the mixture's mean and total covariance
    Sv + Cov_pi(mu_y) (bounds.md section 1).
    """
    mv, Sv = case.prior_mean, case.prior_cov
    if case.labels.kind == "classes":
        mu, pi = case.labels.means, case.labels.probs
        mv = pi @ mu
        centred = mu - mv
        Sv = Sv + (centred * pi[:, None]).T @ centred
    Sx = case.W @ Sv @ case.W.T + case.noise_std**2 * np.eye(case.d)
    mx = case.W @ mv + case.c
    D = np.diag(case.std**2)
    return Moments(mv=mv, Sv=Sv, mx=mx, Sx=Sx, mz=case.A @ mx + case.b, Sz=case.A @ Sx @ case.A.T + D, D=D)


def conditional_z_cov(case: LinearGaussianCase) -> np.ndarray:
    """Cov(z | y) for class labels, shared by all classes: A (W Sv W^T + sx^2 I) A^T + D."""
    Sx_y = case.W @ case.prior_cov @ case.W.T + case.noise_std**2 * np.eye(case.d)
    return case.A @ Sx_y @ case.A.T + np.diag(case.std**2)


def label_entropy(case: LinearGaussianCase) -> float:
    """H(Y): 1/2 logdet(2 pi e Sy) for Gaussian labels, -sum pi log pi for classes."""
    if case.labels.kind == "gaussian":
        Sy = _label_cov(case)
        return 0.5 * (Sy.shape[0] * LOG_2PI_E + logdet(Sy))
    pi = case.labels.probs[case.labels.probs > 0]
    return float(-(pi * np.log(pi)).sum())


def _label_cov(case: LinearGaussianCase) -> np.ndarray:
    B = case.labels.B
    return B @ case.prior_cov @ B.T + case.labels.noise_std**2 * np.eye(B.shape[0])


def _label_z_cov(case: LinearGaussianCase) -> np.ndarray:
    """Cov(y, z) = B Sv W^T A^T for Gaussian labels."""
    return case.labels.B @ case.prior_cov @ case.W.T @ case.A.T


def class_information(case: LinearGaussianCase, n: int, seed: int) -> tuple[float, float]:
    """I(Y;Z) = H(Y) - E_z H[p(y|z)] for class labels by Monte Carlo: (value, stderr).

    Z | y ~ N(m_y, S) with a shared S, so after whitening by S's Cholesky factor L,
    u = L^-1 z = a_y + eps with a_y = L^-1 m_y, and p(y|u) = softmax_y(log pi_y +
    a_y.u - |a_y|^2/2). Each term is an exact posterior entropy in [0, log K],
    which keeps the variance small. Draws are chunked, seeded by ``seed``.
    """
    pi = case.labels.probs
    L = np.linalg.cholesky(conditional_z_cov(case))
    class_means = case.A @ (case.W @ case.labels.means.T + case.c[:, None]) + case.b[:, None]
    a = np.linalg.solve(L, class_means).T
    with np.errstate(divide="ignore"):
        log_pi = np.log(pi)
    bias = log_pi - 0.5 * (a * a).sum(1)
    rng = np.random.default_rng(seed)
    terms = []
    for start in range(0, n, EXACT_CHUNK):
        size = min(EXACT_CHUNK, n - start)
        y = rng.choice(len(pi), size=size, p=pi)
        u = a[y] + rng.standard_normal((size, a.shape[1]))
        log_post = log_softmax(u @ a.T + bias, axis=1)
        post = np.exp(log_post)
        # 0 log 0 = 0 for a class of probability 0 (log_post = -inf), masked before the product so as not to warn
        terms.append(-(post * np.where(post > 0, log_post, 0.0)).sum(1))
    conditional_entropy = np.concatenate(terms)
    value = label_entropy(case) - conditional_entropy.mean()
    return float(value), float(conditional_entropy.std(ddof=1) / math.sqrt(n))


def exact_values(case: LinearGaussianCase, seed: int | None = None) -> Exact:
    """I(X;Z) and I(Y;Z) of a case (bounds.md section 2).

    Gaussian z_v: I(X;Z) = 1/2 [logdet Sz - logdet D]. Gaussian labels:
    I(Y;Z) = 1/2 [logdet Sy + logdet Sz - logdet S_(y,z)]. Class labels: since
    Z depends on Y only through X, I(X;Z) = I(Y;Z) + I(X;Z|Y), and
    I(X;Z|Y) = 1/2 [logdet Cov(z|y) - logdet D] is closed-form, so both values
    share the Monte Carlo error of I(Y;Z) alone (``case.settings.n_exact``
    draws seeded by ``seed``, default the case's own seed).
    """
    log_det_D = float(np.log(case.std**2).sum())
    kind = case.labels.kind
    if kind == "classes":
        i_yz, se = class_information(
            case, case.settings.n_exact, case.settings.seed if seed is None else seed)
        i_xz_given_y = 0.5 * (logdet(conditional_z_cov(case)) - log_det_D)
        return Exact(I_XZ=i_yz + i_xz_given_y, I_XZ_se=se, I_YZ=i_yz, I_YZ_se=se)
    Sz = moments(case).Sz
    i_xz = 0.5 * (logdet(Sz) - log_det_D)
    if kind == "none":
        return Exact(I_XZ=i_xz)
    Sy, Cyz = _label_cov(case), _label_z_cov(case)
    joint = np.block([[Sy, Cyz], [Cyz.T, Sz]])
    i_yz = 0.5 * (logdet(Sy) + logdet(Sz) - logdet(joint))
    return Exact(I_XZ=i_xz, I_YZ=i_yz, I_YZ_se=0.0)


def vib_expectation(case: LinearGaussianCase) -> float:
    """E_x KL(p(z|x) || N(0, I)) = 1/2 [tr Sz + |mz|^2 - m - logdet D] (bounds.md section 3)."""
    mo = moments(case)
    return 0.5 * (np.trace(mo.Sz) + mo.mz @ mo.mz - case.m - float(np.log(case.std**2).sum()))


def teacher_bound(case: LinearGaussianCase, C: np.ndarray, e: np.ndarray, Sq: np.ndarray,
                  prior: str = "model") -> float:
    """Expectation of the teacher bound (paper Eq. 5) at q(z_v|z) = N(C z + e, Sq).

    The closed form of bounds.md section 3: with M = A W, G = I - M C and
    h = M e + A c + b, U = -m/2 + rec/2 + kl/2 where
    rec = tr(G^T D^-1 G Sz) + |G mz - h|^2_{D^-1} + tr(D^-1 M Sq M^T) + sx^2 tr(A^T D^-1 A)
    and kl = tr Sq + tr(C Sz C^T) + |C mz + e|^2 - k - logdet Sq, twice E KL(q(.|z) || N(0, I)).
    prior "data" puts the case's Gaussian data prior N(mv, Sv) in that KL (bounds.md section 3b:
    ``teacher_iw_data`` at K = 1): kl = tr(Sv^-1 (Sq + C Sz C^T)) + |C mz + e - mv|^2_{Sv^-1} - k
    + logdet Sv - logdet Sq. A class mixture has no closed form: ValueError, as is another prior.
    C: (k, m), e: (k,), Sq: (k, k).
    """
    if prior not in ("model", "data"):
        raise ValueError(f"prior must be 'model' or 'data', got {prior!r}")
    mo = moments(case)
    Dinv = np.diag(1.0 / case.std**2)
    M = case.A @ case.W
    G = np.eye(case.m) - M @ C
    h = M @ e + case.A @ case.c + case.b
    r = G @ mo.mz - h
    rec = (np.trace(G.T @ Dinv @ G @ mo.Sz) + r @ Dinv @ r + np.trace(Dinv @ M @ Sq @ M.T)
           + case.noise_std**2 * np.trace(case.A.T @ Dinv @ case.A))
    if prior == "data" and case.labels.kind == "classes":
        raise ValueError("a class mixture's data prior has no closed-form Eq. 5")
    mean, cov = (case.prior_mean, case.prior_cov) if prior == "data" else (np.zeros(case.k), np.eye(case.k))
    off = C @ mo.mz + e - mean
    kl = (np.trace(np.linalg.solve(cov, Sq + C @ mo.Sz @ C.T)) + off @ np.linalg.solve(cov, off) - case.k
          + logdet(cov) - logdet(Sq))
    return float(-0.5 * case.m + 0.5 * rec + 0.5 * kl)


def optimal_q(case: LinearGaussianCase) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best linear-Gaussian q: Sq* = (I + M^T D^-1 M)^-1, C* = Sq* M^T D^-1, e* = -C*(A c + b)."""
    M = case.A @ case.W
    MtDinv = M.T / case.std**2
    Sq = np.linalg.inv(np.eye(case.k) + MtDinv @ M)
    Sq = 0.5 * (Sq + Sq.T)
    C = Sq @ MtDinv
    return C, -C @ (case.A @ case.c + case.b), Sq


def barber_agakov_expectation(case: LinearGaussianCase, F: np.ndarray, g: np.ndarray, Sigma: np.ndarray) -> float:
    """H(Y) + E log q(y|z) at q(y|z) = N(F z + g, Sigma), Gaussian labels (Barber & Agakov 2003).

    E log q = -1/2 [p log 2 pi + logdet Sigma + tr(Sigma^-1 E[r r^T])] with
    r = y - F z - g, E[r r^T] = Sy - F Czy - Cyz F^T + F Sz F^T + mr mr^T.
    """
    mo = moments(case)
    Sy, Cyz = _label_cov(case), _label_z_cov(case)
    mr = case.labels.B @ mo.mv - F @ mo.mz - g
    Err = Sy - F @ Cyz.T - Cyz @ F.T + F @ mo.Sz @ F.T + np.outer(mr, mr)
    p = Sy.shape[0]
    log_q = -0.5 * (p * math.log(2 * math.pi) + logdet(Sigma) + np.trace(np.linalg.solve(Sigma, Err)))
    return label_entropy(case) + float(log_q)


def riw_zero_expectation(case: LinearGaussianCase, C: np.ndarray, e: np.ndarray, Sq: np.ndarray) -> float | None:
    """``teacher_riw`` at K = 0: E log q(z_v|z) + h(Z_v), the Barber-Agakov bound on I(Z_v;Z) at
    q(z_v|z) = N(C z + e, Sq) (bounds.md section 3b); None for class labels, whose mixture prior
    has no closed-form entropy.

    With M = A W and G = I - C M, the residual r = z_v - C z - e has mean G mv - C(A c + b) - e and
    covariance G Sv G^T + sx^2 C A A^T C^T + C D C^T, so
    E log q = -1/2 [k log 2 pi + logdet Sq + tr(Sq^-1 Cov r) + |E r|^2_{Sq^-1}].
    """
    if case.labels.kind == "classes":
        return None
    mv, Sv = case.prior_mean, case.prior_cov
    G = np.eye(case.k) - C @ case.A @ case.W
    mean_r = G @ mv - C @ (case.A @ case.c + case.b) - e
    CA = C @ case.A
    cov_r = G @ Sv @ G.T + case.noise_std**2 * CA @ CA.T + C @ np.diag(case.std**2) @ C.T
    quad = np.trace(np.linalg.solve(Sq, cov_r)) + mean_r @ np.linalg.solve(Sq, mean_r)
    log_q = -0.5 * (case.k * math.log(2 * math.pi) + logdet(Sq) + quad)
    entropy = 0.5 * (case.k * LOG_2PI_E + logdet(Sv))
    return float(log_q + entropy)
