"""Annealed teacher bounds on I(X;Z) (bounds.md section 3c): ``teacher_ais`` above, ``teacher_rais`` below.

For each z drawn through the teacher (z_v ~ p_d, x ~ p(x|z_v), z ~ p(z|x)), K forward AIS chains from
q(z_v|z) give W_1..W_K with E W = p(z), and one reverse chain from the generating z_v gives W_rev with
E 1/W_rev = 1/p(z) (``ais.anneal``). Per z:

    upper:  log p(z|x) - log (1/K) sum_k W_k                  (Jensen: E log mean W <= log p(z))
    lower:  log p(z|x) - log (1/(K+1)) (W_rev + sum_k W_k)   (the reverse importance-weighted bound of
                                                              3b in the extended space of whole chains)

Both come from the same z and share the forward chains, so their difference per z is the bracket's
paired width. T = 1 makes no transition and gives back ``teacher_iw`` (prior = data) and
``teacher_riw`` on the same draws. Grosse, Ghahramani & Adams 2015; Wu et al. 2017; Brekelmans et
al. 2022. Both are bounds only with p_d the density the data were really drawn from, and with
kernels tuned on pilot chains (never on the generating z_v or on the scored chains).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ibcheck.estimators import ais
from ibcheck.estimators.common import EVAL_ROWS, chunks
from ibcheck.estimators.q_fit import OBJECTIVES
from ibcheck.estimators.teacher_bounds import LogPrior, _needs_q, data_log_prior
from ibcheck.gaussian import diag_log_prob, rsample
from ibcheck.interface import Batch, Context, Cost, DataSampler, Dims, Encoder, InferenceNet, Measured, Teacher

Tensor = torch.Tensor
# log p(z|z_v): z (n, m), z_v (n, C, k) -> (n, C), differentiable in z_v
LatentLikelihood = Callable[[Tensor, Tensor], Tensor]
UPPER, LOWER = "upper", "lower"
# the initial distribution: q itself, a per-z Laplace Gaussian found from q, or (with the doubling rule;
# without it, q's) whichever of the two gives the narrower bracket at the first T on the selection's own z
STARTS = ("q", "laplace", "best")
# "best" keeps q's start unless the Laplace one is narrower by this factor at the first T: the two can
# be close there and scale differently with T (a Laplace Gaussian's light tails cap the lower bound),
# so only a clear lead is taken (measured on MNIST students, README "The certified information plane")
LAPLACE_MARGIN = 0.25


@dataclasses.dataclass(frozen=True)
class TeacherAISParams:
    """T: annealing steps (one estimate each; 1 = no transition, ``teacher_iw``/``teacher_riw``), or,
    with ``target`` > 0, where the doubling rule starts; K: forward chains per z; n: z per estimate;
    leapfrog: HMC leapfrog steps per transition; schedule: sigmoid or geometric temperatures; q: the
    initial distribution, trained by that objective (``q_fit``); tails: its Student-t degrees of
    freedom (0: Gaussian); pilot, pilot_steps: pilot chains per z and the temperatures they tune the
    step sizes at; start: the initial distribution's centre and covariance, q's own or a per-z
    Laplace Gaussian (``chunk_bracket``). The doubling rule (target > 0): on ``select_n`` z of their
    own, T doubles from its start until the mean paired width is at most ``target`` nats or T
    reaches ``T_max`` (with start "best", the first T is tried with both starts, ``choose_T``); the
    estimate is then made at that T on n fresh z, and records where the rule
    stopped and why."""

    T: tuple[int, ...] = dataclasses.field(default=(1, 10, 100), metadata={"min": 1})
    K: int = dataclasses.field(default=4, metadata={"min": 1})
    n: int = dataclasses.field(default=1000, metadata={"min": 2})
    leapfrog: int = dataclasses.field(default=2, metadata={"min": 1})
    schedule: str = dataclasses.field(default="sigmoid", metadata={"choices": ais.SCHEDULES})
    q: str = dataclasses.field(default="forward", metadata={"choices": OBJECTIVES})
    tails: int = dataclasses.field(default=0, metadata={"min": 0})
    pilot: int = dataclasses.field(default=2, metadata={"min": 1})
    pilot_steps: int = dataclasses.field(default=16, metadata={"min": 1})
    target: float = dataclasses.field(default=0.0, metadata={"at_least": 0.0})
    T_max: int = dataclasses.field(default=1024, metadata={"min": 1})
    select_n: int = dataclasses.field(default=32, metadata={"min": 2})
    start: str = dataclasses.field(default="q", metadata={"choices": STARTS})


def latent_likelihood(encoder: Encoder, teacher: Teacher) -> LatentLikelihood:
    """log p(z|z_v): the teacher's closed form where it has one (``latent_log_lik``, the linear
    teacher with its x-noise folded in), else through the networks for a deterministic teacher
    (x = its output). A teacher that draws x at random has no closed-form p(z|z_v): refused."""
    closed = getattr(teacher, "latent_log_lik", None)
    if closed is not None:
        return lambda z, z_v: closed(encoder, z, z_v)
    if not getattr(teacher, "deterministic", False):
        raise ValueError("teacher_ais needs p(z|z_v) in closed form: a deterministic teacher (its output is x) "
                         "or one with latent_log_lik; this teacher draws x at random (a stochastic neural "
                         "teacher), so no annealed bound can be given")
    unused = torch.Generator()  # a deterministic teacher draws nothing

    def through(z: Tensor, z_v: Tensor) -> Tensor:
        n, chains, k = z_v.shape
        mean, std = encoder(teacher.sample(z_v.reshape(n * chains, k), unused))
        return diag_log_prob(z.repeat_interleave(chains, dim=0), mean, std).reshape(n, chains)
    return through


@dataclasses.dataclass(frozen=True)
class Bracket:
    """Per-z terms of both bounds (n,) (lower None where no reverse chain ran), and the mean
    acceptance probability of the transitions (NaN without any)."""

    upper: Tensor
    lower: Tensor | None
    acceptance: float


def chunk_bracket(q: InferenceNet, params: TeacherAISParams, betas: Tensor, batch: Batch, z: Tensor,
                  log_px: Tensor, generator: torch.Generator, log_prior: LogPrior, log_lik: LatentLikelihood,
                  lower: bool) -> Bracket:
    """Both bounds' terms for given z: (n, m), drawn from the data's x (batch) with log p(z|x): (n,).
    The initial distribution is q's output, or (``start`` "laplace") a Gaussian at the best mode of
    gamma that Newton steps reach from q's mean and draws (``ais.laplace``). The pilot chains draw
    first (where T > 1), then q0's K starting points, so that at T = 1 with q's start the draws are
    those of ``teacher_bounds.log_weights``."""
    def log_gamma(v: Tensor) -> Tensor:
        return log_prior(v) + log_lik(z, v)

    q_mean, q_scale = q(z)
    if params.start == "laplace":
        q_mean, q_scale = ais.laplace(log_gamma, q_mean, q_scale, generator)
    start = ais.Start(q_mean, q_scale, tails=params.tails)

    def log_target(u: Tensor) -> Tensor:
        return log_gamma(ais.to_v(start, u))

    generating = None
    if lower:
        if batch.z_v is None:
            raise ValueError("teacher_rais needs the z_v that generated each x; this data gives none")
        generating = ais.to_u(start, batch.z_v.unsqueeze(1)).squeeze(1)
    T = len(betas) - 1
    steps = None if T == 1 else ais.tune(start, log_target, params.schedule, params.pilot_steps, params.pilot,
                                         params.leapfrog, generator)
    chains = ais.anneal(start, log_target, betas, params.K, generating, steps, params.leapfrog, generator)
    upper = log_px - (torch.logsumexp(chains.log_w, dim=1) - math.log(params.K))
    low = None
    if chains.log_w_rev is not None:
        every = torch.cat([chains.log_w_rev.unsqueeze(1), chains.log_w], dim=1)
        low = log_px - (torch.logsumexp(every, dim=1) - math.log(params.K + 1))
    return Bracket(upper, low, chains.acceptance)


def bracket_terms(encoder: Encoder, data: DataSampler, q: InferenceNet, params: TeacherAISParams, T: int, n: int,
                  generator: torch.Generator, log_prior: LogPrior, log_lik: LatentLikelihood,
                  lower: bool) -> Bracket:
    """Both bounds' terms on n fresh z at T steps, in chunks of about EVAL_ROWS chains; per chunk the
    data and z are drawn first, as ``teacher_iw`` and ``teacher_riw`` draw them."""
    betas = ais.schedule(T, params.schedule)
    found: list[Bracket] = []
    for size in chunks(n, max(1, EVAL_ROWS // (params.K + 1))):
        batch = data.sample(size, generator)
        mean, std = encoder(batch.x)
        z = rsample(mean, std, generator)
        found.append(chunk_bracket(q, params, betas.to(z.dtype), batch, z, diag_log_prob(z, mean, std), generator,
                                   log_prior, log_lik, lower))
    weights = [len(b.upper) for b in found]
    acceptance = sum(b.acceptance * w for b, w in zip(found, weights)) / sum(weights) if T > 1 else math.nan
    lowers = [b.lower for b in found if b.lower is not None]
    return Bracket(torch.cat([b.upper for b in found]), torch.cat(lowers) if lowers else None, acceptance)


def _select_width(encoder: Encoder, data: DataSampler, q: InferenceNet, params: TeacherAISParams, T: int,
                  generator: torch.Generator, log_prior: LogPrior, log_lik: LatentLikelihood) -> tuple[float, float]:
    found = bracket_terms(encoder, data, q, params, T, params.select_n, generator, log_prior, log_lik, True)
    assert found.lower is not None
    width = (found.upper - found.lower).double()
    return float(width.mean()), float(width.std()) / math.sqrt(width.numel())


def choose_T(encoder: Encoder, data: DataSampler, q: InferenceNet, params: TeacherAISParams, first: int,
             generator: torch.Generator, log_prior: LogPrior, log_lik: LatentLikelihood) -> tuple[int, str, dict]:
    """The doubling rule: T = first, 2 first, ... (at most T_max), each on ``select_n`` fresh z, until
    the mean paired width upper - lower is at most ``target`` (a non-finite width counts as too wide).
    With start "best" the first T runs with both starts, and the Laplace one is kept only where its
    width is below LAPLACE_MARGIN times q's (or q's is not finite). Returns the T,
    the start, and the record {"stopped": "target" or "cap", "ladder": [[T, mean width, its se,
    start], ...]}."""
    T = min(first, params.T_max)
    starts = ("q", "laplace") if params.start == "best" else (params.start,)
    first_rung = {start: _select_width(encoder, data, q, dataclasses.replace(params, start=start), T, generator,
                                       log_prior, log_lik) for start in starts}
    ladder: list[list] = [[T, *first_rung[start], start] for start in starts]
    widths = {start: mean for start, (mean, _) in first_rung.items()}
    chosen = starts[0]
    if len(starts) == 2 and math.isfinite(widths["laplace"]) and (
            not math.isfinite(widths["q"]) or widths["laplace"] < LAPLACE_MARGIN * widths["q"]):
        chosen = "laplace"
    params = dataclasses.replace(params, start=chosen)
    width = widths[chosen]
    while True:
        if math.isfinite(width) and width <= params.target:
            return T, chosen, {"stopped": "target", "ladder": ladder}
        if T >= params.T_max:
            return T, chosen, {"stopped": "cap", "ladder": ladder}
        T = min(2 * T, params.T_max)
        width, se = _select_width(encoder, data, q, params, T, generator, log_prior, log_lik)
        ladder.append([T, width, se, chosen])


def ais_terms(encoder: Encoder, data: DataSampler, params: TeacherAISParams, generator: torch.Generator,
              context: Context, sides: Mapping[str, str]) -> dict[str, list[Measured]]:
    """The annealed bounds named in ``sides`` (name -> "upper" or "lower") from the same z and
    forward chains: one Measured per T for each, with the T used, the acceptance rate and, under
    the doubling rule, where it stopped. Refuses data without a prior density and teachers without
    a closed-form p(z|z_v)."""
    with torch.no_grad():
        teacher, q, fit = _needs_q(context, params.q)
        log_prior = data_log_prior(data, "teacher_ais")
        log_lik = latent_likelihood(encoder, teacher)
        lower = LOWER in sides.values()
        out: dict[str, list[Measured]] = {name: [] for name in sides}
        if params.start == "best" and params.target <= 0:  # "best" chooses on the doubling rule's z: none here
            params = dataclasses.replace(params, start="q")
        for first in params.T:
            T, start, rule = first, params.start, dict[str, Any]()
            if params.target > 0:
                T, start, rule = choose_T(encoder, data, q, params, first, generator, log_prior, log_lik)
                rule = {"T_start": first, **rule}
            found = bracket_terms(encoder, data, q, dataclasses.replace(params, start=start), T, params.n, generator,
                                  log_prior, log_lik, lower)
            extra = {"T": T, "start": start, "acceptance": found.acceptance, "q_fit": fit, **rule}
            if found.lower is not None:  # the bracket's width, paired over the same z
                width = (found.upper - found.lower).double()
                extra.update(paired_width=float(width.mean()),
                             paired_width_se=float(width.std()) / math.sqrt(len(width)))
            for name, side in sides.items():
                terms = found.upper if side == UPPER else found.lower
                assert terms is not None
                out[name].append(Measured("I_XZ", terms, extra))
        return out


def ais_cost(params: TeacherAISParams, dims: Dims) -> Cost:
    """Gradient evaluations of log p_d + log p(z|z_v) through the teacher and the encoder (about three
    forward passes each): per z, K + 1 scored chains of 1 + (T - 1) leapfrog passes, and the pilot's
    chains, and the Laplace start's Hessians; under the doubling rule T can reach T_max, and the
    selection's ladder costs at most twice its last rung on select_n z. Memory: a chunk of EVAL_ROWS
    chains with autograd's tape."""
    T = params.T_max if params.target > 0 else max(params.T)
    per_chain = 1 + (T - 1) * params.leapfrog
    pilot = params.pilot * (1 + 2 * params.pilot_steps * params.leapfrog) if T > 1 else 0
    # the Laplace start: about 9 Newton evaluations of k Hessian-vector products (a few passes each)
    laplace = 12 * dims.k if params.start != "q" else 0
    per_z = (params.K + 1) * per_chain + pilot + laplace
    grads = len(params.T) * (params.n + (2 * params.select_n if params.target > 0 else 0)) * per_z
    flops = 3.0 * grads * (dims.encoder_flops + dims.teacher_flops)
    rows = max(EVAL_ROWS // (params.K + 1), 1) * (params.K + 1)
    blame = "T_max" if params.target > 0 else ("T" if T > params.n else "n")
    return Cost(flops, 8.0 * 6 * rows * (dims.d + dims.k * dims.k + 3 * dims.m), blame)
