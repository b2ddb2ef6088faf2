"""Annealed importance sampling of log p(z) in both directions (bounds.md section 3c).

For one z the unnormalised posterior over the teacher's latent v = z_v is gamma(v) = p_d(v) p(z|v),
whose normaliser is p(z); the chains anneal from the initial distribution q0(v) = q(v|z) to it through
pi_t ∝ q0^(1 - b_t) gamma^(b_t) (Neal 2001). Forward chains start from q0; the reverse chain starts
from the v that generated z, an exact posterior sample, and runs the same transitions backwards
(bidirectional Monte Carlo, Grosse, Ghahramani & Adams 2015). E W = p(z) forward and
E 1/W_rev = 1/p(z) in reverse.

Everything runs in the whitened coordinates u of q0, v = mean(z) + L(z) u, where q0 is a standard
normal (or a standard multivariate t): HMC with an identity mass there is HMC preconditioned by q0's
covariance, a function of z alone. The step size of each z is a function of the temperature, tuned on
pilot chains of their own (``tune``), never on the generating v nor on the chains being scored, which
the bounds need. Shapes: n z, C chains per z, k latent dimensions; states u: (n, C, k).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from ibcheck.gaussian import LOG_2PI, is_diagonal, standard_normal

Tensor = torch.Tensor
# log gamma in whitened coordinates: u (n, C, k) -> (n, C), differentiable in u
LogTarget = Callable[[Tensor], Tensor]
SCHEDULES = ("sigmoid", "geometric")
SIGMOID_SPREAD = 4.0  # Grosse et al. 2015's delta: b_t = sigmoid(delta (2t/T - 1)), rescaled to [0, 1]
GEOMETRIC_FIRST = 1e-4  # b_1 of the geometric schedule, whose b_t grow by a constant factor to b_T = 1
ACCEPT_TARGET = 0.65  # the acceptance rate the pilot chains steer each z's step size to
ADAPT_RATE = 1.5  # log step size += rate * (mean acceptance - target), once per pilot transition
FIRST_STEP = 0.5  # pilot chains' first step size, in units of q0's scale
STEP_RANGE = (1e-5, 4.0)


def schedule(T: int, kind: str, dtype=torch.float64) -> Tensor:
    """The temperatures 0 = b_0 < b_1 < ... < b_T = 1: (T + 1,).

    ``sigmoid``: b_t proportional to sigmoid(4 (2t/T - 1)) shifted to start at 0 (Grosse et al. 2015,
    section 5); ``geometric``: b_t = 1e-4^((T - t)/(T - 1)) for t >= 1."""
    if T < 1:
        raise ValueError(f"an annealing schedule needs T >= 1 steps, got {T}")
    t = torch.arange(T + 1, dtype=torch.float64)
    if kind == "sigmoid":
        raw = torch.sigmoid(SIGMOID_SPREAD * (2.0 * t / T - 1.0))
        b = (raw - raw[0]) / (raw[-1] - raw[0])
    elif kind == "geometric":
        b = torch.zeros(T + 1, dtype=torch.float64)
        if T == 1:
            b[1] = 1.0
        else:
            b[1:] = GEOMETRIC_FIRST ** ((T - t[1:]) / (T - 1))
    else:
        raise ValueError(f"unknown schedule {kind!r}; one of {', '.join(SCHEDULES)}")
    b[0], b[-1] = 0.0, 1.0
    return b.to(dtype)


@dataclasses.dataclass(frozen=True)
class Start:
    """The initial distribution q0(v|z) = mean + L u, u ~ N(0, I) or a standard multivariate t with
    ``tails`` degrees of freedom (0: Gaussian). mean: (n, k); scale: (n, k) standard deviations or
    (n, k, k) lower-triangular Cholesky factors (q's own output)."""

    # its maps and densities are module functions (to_v, to_u, sample_u, log_q0, log_det): mutmut 3.3
    # scores no method of a decorated class (reports/mutation/README.md)

    mean: Tensor
    scale: Tensor
    tails: int = 0

    @property
    def k(self) -> int:
        return self.mean.shape[-1]


def log_det(start: Start) -> Tensor:
    """log |det L|: (n,)."""
    diagonal = is_diagonal(start.mean, start.scale)
    diag = start.scale if diagonal else torch.diagonal(start.scale, dim1=-2, dim2=-1)
    return diag.log().sum(-1)


def to_v(start: Start, u: Tensor) -> Tensor:
    """v = mean + L u: u (n, C, k) -> (n, C, k)."""
    if is_diagonal(start.mean, start.scale):
        return start.mean.unsqueeze(1) + start.scale.unsqueeze(1) * u
    return start.mean.unsqueeze(1) + u @ start.scale.transpose(-1, -2)


def to_u(start: Start, v: Tensor) -> Tensor:
    """u = L^-1 (v - mean): v (n, C, k) -> (n, C, k)."""
    diff = v - start.mean.unsqueeze(1)
    if is_diagonal(start.mean, start.scale):
        return diff / start.scale.unsqueeze(1)
    solved = torch.linalg.solve_triangular(start.scale, diff.transpose(-1, -2), upper=False)
    return solved.transpose(-1, -2)


def sample_u(start: Start, chains: int, generator: torch.Generator) -> Tensor:
    """(n, chains, k) draws of u; the Gaussian ones are exactly ``gaussian.rsample``'s draws."""
    shape = (start.mean.shape[0], chains, start.k)
    eps = standard_normal(shape, generator, start.mean.device, start.mean.dtype)
    if not start.tails:
        return eps
    # chi-square with an integer number of degrees of freedom, as a sum of squared normals
    chi2 = standard_normal(shape[:2] + (start.tails,), generator, start.mean.device, start.mean.dtype)
    return eps * torch.rsqrt((chi2 * chi2).sum(-1, keepdim=True) / start.tails)


def log_q0(start: Start, u: Tensor) -> tuple[Tensor, Tensor]:
    """(log density of u, its gradient in u): (n, C), (n, C, k). The density of v is this
    minus ``log_det``."""
    sq = (u * u).sum(-1)
    k = start.k
    if not start.tails:
        return -0.5 * sq - 0.5 * k * LOG_2PI, -u
    nu = float(start.tails)
    const = math.lgamma((nu + k) / 2) - math.lgamma(nu / 2) - 0.5 * k * math.log(nu * math.pi)
    return const - 0.5 * (nu + k) * torch.log1p(sq / nu), -((nu + k) / (nu + sq)).unsqueeze(-1) * u


def laplace(log_gamma: LogTarget, mean: Tensor, scale: Tensor, generator: torch.Generator, starts: int = 1,
            iters: int = 8, floor: float = 1e-2) -> tuple[Tensor, Tensor]:
    """A per-z Gaussian at a mode of gamma: damped Newton steps on log gamma(v) from q's mean and
    ``starts`` - 1 draws of q, with the Hessian's negative made positive definite (eigenvalues at
    least ``floor``), the best mode of each z kept, and its inverse as the covariance. It sees z
    and q only. log_gamma: v (n, C, k) -> (n, C); mean: (n, k), scale: q's. Returns (mode (n, k),
    Cholesky factor (n, k, k))."""
    first = Start(mean, scale)
    v = torch.cat([mean.unsqueeze(1), to_v(first, sample_u(first, starts - 1, generator))], dim=1)
    value, precision, grad = _newton_parts(log_gamma, v, floor)
    damping = torch.ones_like(value)
    eye = torch.eye(v.shape[-1], dtype=v.dtype, device=v.device)
    for _ in range(iters):
        step = torch.linalg.solve(precision + damping[..., None, None] * eye, grad.unsqueeze(-1)).squeeze(-1)
        trial = v + step
        trial_value, trial_precision, trial_grad = _newton_parts(log_gamma, trial, floor)
        better = torch.isfinite(trial_value) & (trial_value > value)
        v = torch.where(better.unsqueeze(-1), trial, v)
        value = torch.where(better, trial_value, value)
        precision = torch.where(better[..., None, None], trial_precision, precision)
        grad = torch.where(better.unsqueeze(-1), trial_grad, grad)
        damping = torch.where(better, damping / 3, damping * 4)
    best = torch.nan_to_num(value, nan=-math.inf).argmax(1)
    rows = torch.arange(len(best), device=best.device)
    covariance = torch.linalg.inv(precision[rows, best])
    return v[rows, best], torch.linalg.cholesky(0.5 * (covariance + covariance.transpose(-1, -2)))


def _newton_parts(log_gamma: LogTarget, v: Tensor, floor: float) -> tuple[Tensor, Tensor, Tensor]:
    """(log gamma, the negative Hessian made positive definite, the gradient) at v: (n, C, k), the
    Hessian's columns from k Hessian-vector products of the batch's sum (its blocks are per row)."""
    k = v.shape[-1]
    with torch.enable_grad():
        leaf = v.detach().requires_grad_(True)
        value = log_gamma(leaf)
        (grad,) = torch.autograd.grad(value.sum(), leaf, create_graph=True)
        columns = [torch.autograd.grad(grad[..., d].sum(), leaf, retain_graph=d < k - 1)[0] for d in range(k)]
    hessian = torch.nan_to_num(torch.stack(columns, dim=-1).detach(), nan=0.0, posinf=0.0, neginf=0.0)
    eigvals, eigvecs = torch.linalg.eigh(-0.5 * (hessian + hessian.transpose(-1, -2)))
    eigvals = torch.nan_to_num(eigvals, nan=floor).clamp(min=floor)
    precision = (eigvecs * eigvals.unsqueeze(-2)) @ eigvecs.transpose(-1, -2)
    return value.detach(), precision, grad.detach()


def value_and_grad(log_target: LogTarget, u: Tensor) -> tuple[Tensor, Tensor]:
    """(log gamma(u), its gradient): (n, C), (n, C, k), without touching any parameter's .grad."""
    with torch.enable_grad():
        leaf = u.detach().requires_grad_(True)
        value = log_target(leaf)
        (grad,) = torch.autograd.grad(value.sum(), leaf)
    return value.detach(), grad


@dataclasses.dataclass
class State:
    """Chains' positions u: (n, C, k) with log gamma (n, C) and its gradient (n, C, k) at them."""

    u: Tensor
    log_gamma: Tensor
    grad: Tensor


def state_at(log_target: LogTarget, u: Tensor) -> State:
    """The chains' state at positions u: (n, C, k)."""
    return State(u, *value_and_grad(log_target, u))


def hmc(state: State, start: Start, log_target: LogTarget, beta: Tensor, step: Tensor, leapfrog: int,
        generator: torch.Generator) -> tuple[State, Tensor]:
    """One HMC transition leaving pi_beta ∝ q0^(1 - beta) gamma^beta invariant (Neal 2011): a fresh
    momentum, ``leapfrog`` steps of size ``step``, a Metropolis correction; reversible, as the reverse
    chains need. beta: (C,) or (n, C) per chain; step: (n, C). Returns the new state and the
    acceptance probabilities (n, C); a proposal whose energy is not finite is rejected."""
    b, eps = beta.expand(step.shape).unsqueeze(-1), step.unsqueeze(-1)

    def potential_grad(log_q_grad: Tensor, log_gamma_grad: Tensor) -> Tensor:
        return -((1 - b) * log_q_grad + b * log_gamma_grad)

    def energy(log_q: Tensor, log_gamma: Tensor, p: Tensor) -> Tensor:
        return -((1 - b[..., 0]) * log_q + b[..., 0] * log_gamma) + 0.5 * (p * p).sum(-1)

    p = standard_normal(state.u.shape, generator, state.u.device, state.u.dtype)
    log_q, q_grad = log_q0(start, state.u)
    h0 = energy(log_q, state.log_gamma, p)
    u, p = state.u, p - 0.5 * eps * potential_grad(q_grad, state.grad)
    for i in range(leapfrog):
        u = u + eps * p
        log_gamma, grad = value_and_grad(log_target, u)
        log_q, q_grad = log_q0(start, u)
        p = p - (0.5 if i == leapfrog - 1 else 1.0) * eps * potential_grad(q_grad, grad)
    log_ratio = h0 - energy(log_q, log_gamma, p)
    log_ratio = torch.where(torch.isfinite(log_ratio), log_ratio, torch.full_like(log_ratio, -math.inf))
    accept_prob = log_ratio.clamp(max=0.0).exp()
    uniform = torch.rand(accept_prob.shape, generator=generator, device=u.device, dtype=u.dtype)
    take = uniform < accept_prob
    new = State(torch.where(take.unsqueeze(-1), u, state.u), torch.where(take, log_gamma, state.log_gamma),
                torch.where(take.unsqueeze(-1), grad, state.grad))
    return new, accept_prob


@dataclasses.dataclass(frozen=True)
class StepSizes:
    """Each z's step size as a function of the temperature: log step sizes (n, S) at the pilot's
    temperatures ``betas`` (S,), interpolated linearly in between (constant beyond the ends)."""

    betas: Tensor
    log_steps: Tensor


def step_sizes_at(steps: StepSizes, beta: Tensor) -> Tensor:
    """Step sizes (n, C) at per-chain temperatures beta: (C,)."""
    grid = steps.betas.to(beta.dtype)
    right = torch.searchsorted(grid, beta.contiguous()).clamp(1, len(grid) - 1)
    left = right - 1
    span = (grid[right] - grid[left]).clamp(min=torch.finfo(grid.dtype).tiny)
    w = ((beta - grid[left]) / span).clamp(0.0, 1.0).to(steps.log_steps.dtype)
    return (steps.log_steps[:, left] * (1 - w) + steps.log_steps[:, right] * w).exp()


def tune(start: Start, log_target: LogTarget, kind: str, temperatures: int, chains: int, leapfrog: int,
         generator: torch.Generator, rounds: int = 2) -> StepSizes:
    """Step sizes per z and temperature from pilot chains of their own: ``chains`` forward chains
    per z from q0 through ``temperatures`` temperatures of the schedule, ``rounds`` HMC transitions
    at each, after each of which the log step size moves by ADAPT_RATE times (mean acceptance over
    the z's pilot chains - ACCEPT_TARGET). The pilot chains see z and q0 only: neither the
    generating v nor the chains that will be scored."""
    # on the chains' device: a CPU temperature vector would meet them in every HMC step
    betas = schedule(temperatures, kind, start.mean.dtype)[1:].to(start.mean.device)
    n = start.mean.shape[0]
    state = state_at(log_target, sample_u(start, chains, generator))
    log_step = torch.full((n,), math.log(FIRST_STEP), device=start.mean.device, dtype=start.mean.dtype)
    low, high = (math.log(s) for s in STEP_RANGE)
    recorded = []
    for beta in betas:
        for _ in range(rounds):
            state, accept = hmc(state, start, log_target, beta.reshape(1), log_step.exp().unsqueeze(1).expand(
                n, chains), leapfrog, generator)
            log_step = (log_step + ADAPT_RATE * (accept.mean(1) - ACCEPT_TARGET)).clamp(low, high)
        recorded.append(log_step)
    return StepSizes(betas, torch.stack(recorded, dim=1))


@dataclasses.dataclass(frozen=True)
class Chains:
    """What the scored chains give: log W of the K forward chains (n, K), log W_rev of the reverse
    chain (n,) (None without one), and the mean acceptance probability of their transitions."""

    log_w: Tensor
    log_w_rev: Tensor | None
    acceptance: float


def anneal(start: Start, log_target: LogTarget, betas: Tensor, forward: int, generating_u: Tensor | None,
           steps: StepSizes | None, leapfrog: int, generator: torch.Generator) -> Chains:
    """``forward`` chains per z from q0 and, where ``generating_u`` (n, k) is given, one reverse
    chain from it, all through the schedule ``betas`` (T + 1,) at once (bounds.md section 3c):

        forward: v_0 ~ q0, v_t ~ T_t(. | v_{t-1}) for t = 1..T-1,
                 log W = sum_{t=1..T} (b_t - b_{t-1}) [log gamma(v_{t-1}) - log q0(v_{t-1})];
        reverse: v_{T-1} = the generating v, v_{t-1} ~ T_t(. | v_t) for t = T-1..1, the same sum.

    At loop step j the forward chains add increment j and then move by T_j; the reverse chain adds
    increment T + 1 - j and then moves by T_{T-j}, so one gradient pass serves all chains. T = 1
    makes no transition: log W is one importance weight (``teacher_iw``), log W_rev the generating
    sample's (``teacher_riw``)."""
    T = len(betas) - 1
    u = sample_u(start, forward, generator)
    if generating_u is not None:
        u = torch.cat([u, generating_u.unsqueeze(1)], dim=1)
    reverse = generating_u is not None
    state = state_at(log_target, u)
    log_det_l = log_det(start).unsqueeze(1)
    log_w = torch.zeros_like(state.log_gamma)
    accepted, moves = 0.0, 0
    for j in range(1, T + 1):
        gain = torch.full((u.shape[1],), float(betas[j] - betas[j - 1]), dtype=u.dtype, device=u.device)
        beta = torch.full((u.shape[1],), float(betas[j]), dtype=u.dtype, device=u.device)
        if reverse:
            gain[-1], beta[-1] = betas[T + 1 - j] - betas[T - j], betas[T - j]
        log_q, _ = log_q0(start, state.u)
        log_w = log_w + gain * (state.log_gamma - (log_q - log_det_l))
        if j < T:
            assert steps is not None, "transitions need step sizes (tune)"
            state, accept = hmc(state, start, log_target, beta, step_sizes_at(steps, beta), leapfrog, generator)
            accepted, moves = accepted + float(accept.sum()), moves + accept.numel()
    acceptance = accepted / moves if moves else math.nan
    if reverse:
        return Chains(log_w[:, :-1], log_w[:, -1], acceptance)
    return Chains(log_w, None, acceptance)
