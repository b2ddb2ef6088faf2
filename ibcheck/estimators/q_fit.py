"""Training q(z_v|z) for the teacher bounds until it has converged, by either of two objectives.

- ``"elbo"``: minimise the paper's Eq. 5 (Herwana & Kadian, step 8), the reverse KL from q to the
  teacher's posterior; the q at which Eq. 5 is tightest.
- ``"forward"``: maximum likelihood of q on simulated pairs (z_v, z), z_v from the data's prior
  where the data give it (else the model prior N(0, I)), x ~ p(x|z_v), z ~ p(z|x): the forward KL
  from the posterior to q, whose optimum covers the posterior's mass (bounds.md section 3b), the
  natural proposal of the importance-weighted bounds.

The stopping rule, checkable from the recorded curve: every ``window`` steps the objective is
evaluated on a fixed held-out batch with common random numbers, so that two evaluations differ
only through q. An improvement over the best so far larger than its standard error (paired over
the held-out rows) and than ``tol`` keeps the learning rate; otherwise q goes back to its best
parameters and the learning rate halves. After ``decays`` halvings without improvement, q has
converged; at ``steps`` steps it is capped, and the record says so.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import torch

from ibcheck.estimators.common import frozen
from ibcheck.estimators.samplers import ModelPopulation
from ibcheck.gaussian import diag_entropy, diag_log_prob, kl_to_standard, log_prob, rsample
from ibcheck.interface import Cost, DataSampler, Dims, Encoder, InferenceNet, PriorData, Teacher

Tensor = torch.Tensor
OBJECTIVES = ("elbo", "forward")


@dataclasses.dataclass(frozen=True)
class QFitParams:
    """Adam on fresh minibatches of ``batch`` z at learning rate ``lr`` (or, with ``pool`` > 0,
    minibatches drawn from one pool of that many rows, drawn once: where the encoder and teacher
    dominate the cost of a row, the forward q then trains at the cost of q alone), checked on
    ``holdout`` held-out z every ``window`` steps; stops after ``decays`` halvings of the learning
    rate without an improvement larger than its standard error and ``tol`` (nats), or at
    ``steps`` steps (the cap)."""

    steps: int = dataclasses.field(default=5_000, metadata={"min": 0})
    batch: int = dataclasses.field(default=256, metadata={"min": 1})
    lr: float = dataclasses.field(default=0.01, metadata={"positive": True})
    window: int = dataclasses.field(default=50, metadata={"min": 1})
    holdout: int = dataclasses.field(default=4_096, metadata={"min": 2})
    decays: int = dataclasses.field(default=2, metadata={"min": 0})
    tol: float = dataclasses.field(default=1e-3, metadata={"at_least": 0.0})
    pool: int = dataclasses.field(default=0, metadata={"min": 0})


def encode_fresh(encoder: Encoder, data: DataSampler, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
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


def simulated_pairs(encoder: Encoder, teacher: Teacher, data: DataSampler, n: int, generator: torch.Generator,
                    dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(z_v, z): (n, k), (n, m) with z ~ p(z|x), x ~ p(x|z_v): the data's own (z_v, x) where it
    has a known prior (``PriorData``), else z_v ~ N(0, I) through the teacher."""
    with torch.no_grad():
        source = data if isinstance(data, PriorData) else ModelPopulation(teacher, teacher.latent_dim,
                                                                          generator.device, dtype)
        batch = source.sample(n, generator)
        z_v, x = batch.z_v, batch.x
        if z_v is None:
            raise ValueError("the forward q needs the z_v that generated each x; this data gives none")
        mean, std = encoder(x)
        return z_v, rsample(mean, std, generator)


Rows = tuple[Tensor, Tensor]
Loss = Callable[[Tensor, Tensor, torch.Generator], Tensor]


def _objective(objective: str, encoder: Encoder, teacher: Teacher, data: DataSampler, q: InferenceNet,
               dtype: torch.dtype) -> tuple[Callable[[int, torch.Generator], Rows], Loss]:
    """(draw, loss): draw(n, g) gives n rows of data, (z: (n, m), other: (n,) entropies or (n, k)
    z_v); loss(z, other, g) -> (n,) the per-row losses of q on them, whose remaining randomness
    (Eq. 5's z_v', x') comes from g."""
    if objective == "elbo":
        return (lambda n, g: encode_fresh(encoder, data, n, g),
                lambda z, entropy, g: elbo_terms(encoder, teacher, q, z, entropy, g))
    if objective == "forward":
        def draw_forward(n: int, generator: torch.Generator) -> Rows:
            z_v, z = simulated_pairs(encoder, teacher, data, n, generator, dtype)
            return z, z_v
        return draw_forward, lambda z, z_v, g: -log_prob(z_v, *q(z))
    raise ValueError(f"unknown q objective {objective!r}; one of {', '.join(OBJECTIVES)}")


def train_q(encoder: Encoder, teacher: Teacher, data: DataSampler, q: InferenceNet, params: QFitParams,
            generator: torch.Generator, objective: str = "elbo", restart: dict | None = None) -> dict:
    """Train q in place (warm start: whatever q holds) by ``objective`` until the stopping rule
    of the module docstring says it has converged, or until the cap. A q with ``fit_input(z)``
    first normalises its input on the held-out z. ``restart``: a state of q (its initial one, say)
    to start from instead where it is better on the held-out batch than the warm start (a warm
    start can be far worse than a fresh one after the encoder has moved). Returns the record kept
    with the bounds' params: the objective, the steps used, ``converged``, ``capped`` (stopped by
    the cap), ``restarted``, the best held-out value (the q kept) and the curve [step, held-out
    mean (nats), standard error of its gain, learning rate]."""
    started = time.perf_counter()
    dtype = next(iter(q.parameters())).dtype
    draw, per_row = _objective(objective, encoder, teacher, data, q, dtype)
    crn_seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    heldout = draw(params.holdout, generator)
    pool = draw(params.pool, generator) if params.pool else None

    def evaluate() -> Tensor:
        with torch.no_grad():
            return per_row(*heldout, torch.Generator(device=generator.device).manual_seed(crn_seed)).double()

    restarted = False
    if restart is not None:
        warm = {key: value.clone() for key, value in q.state_dict().items()}
        warm_value = float(evaluate().mean())
        q.load_state_dict(restart)
        restarted = float(evaluate().mean()) < warm_value or not math.isfinite(warm_value)
        if not restarted:
            q.load_state_dict(warm)
    if hasattr(q, "fit_input"):
        q.fit_input(heldout[0])

    def loss() -> Tensor:
        if pool is None:
            return per_row(*draw(params.batch, generator), generator).mean()
        rows = torch.randint(params.pool, (params.batch,), generator=generator, device=generator.device)
        return per_row(pool[0][rows], pool[1][rows], generator).mean()

    with frozen(encoder, teacher):
        steps, converged, curve, best = _descend(q, loss, evaluate, params)
    return {**dataclasses.asdict(params), "objective": objective, "steps_used": steps, "converged": converged,
            "capped": steps >= params.steps and not converged, "restarted": restarted, "heldout": best, "curve": curve,
            "seconds": time.perf_counter() - started}


def train_both(encoder: Encoder, teacher: Teacher, data: DataSampler, q_forward: InferenceNet, q_elbo: InferenceNet,
               params: QFitParams, generator: torch.Generator) -> tuple[dict, dict]:
    """The forward q, then the Eq. 5 q started from it (``warm_start`` in its record): measured on
    the built-in suite, the Eq. 5 q then reaches its optimum in fewer steps, and on a narrow
    posterior one it would not reach from the prior (README, "Training q")."""
    forward = train_q(encoder, teacher, data, q_forward, params, generator, "forward")
    q_elbo.load_state_dict(q_forward.state_dict())
    elbo = train_q(encoder, teacher, data, q_elbo, params, generator, "elbo")
    return forward, {**elbo, "warm_start": "forward"}


def _descend(q: InferenceNet, loss: Callable[[], Tensor], evaluate: Callable[[], Tensor],
             params: QFitParams) -> tuple[int, bool, list[list[float]], float]:
    """Adam with the held-out rule: returns (steps taken, converged, curve, best held-out mean);
    q holds its best held-out parameters on return. A q whose held-out loss is not finite has
    not converged."""
    trainable = [p for p in q.parameters() if p.requires_grad]
    lr = params.lr
    best = evaluate()
    best_state = _state(q)
    curve = [[0, float(best.mean()), 0.0, lr]]
    if not trainable:
        return 0, True, curve, curve[0][1]
    optimiser = torch.optim.Adam(trainable, lr=lr)
    step, decays = 0, 0
    while step < params.steps:
        for _ in range(min(params.window, params.steps - step)):
            optimiser.zero_grad(set_to_none=True)
            loss().backward()
            optimiser.step()
            step += 1
        now = evaluate()
        gain = best - now
        se = float(gain.std()) / math.sqrt(gain.numel())
        curve.append([step, float(now.mean()), se, lr])
        if bool(torch.isfinite(now).all()) and float(gain.mean()) > max(se, params.tol):
            best, best_state = now, _state(q)
            continue
        _load(q, best_state)
        if decays == params.decays:
            return step, math.isfinite(float(best.mean())), curve, float(best.mean())
        decays, lr = decays + 1, lr / 2
        for group in optimiser.param_groups:
            group["lr"] = lr
    _load(q, best_state)
    return step, False, curve, float(best.mean())


def _state(q: InferenceNet) -> list[Tensor]:
    return [p.detach().clone() for p in q.parameters()]


def _load(q: InferenceNet, state: list[Tensor]) -> None:
    with torch.no_grad():
        for p, saved in zip(q.parameters(), state):
            p.copy_(saved)


def q_fit_cost(params: QFitParams, dims: Dims) -> Cost:
    """At most ``steps`` minibatches of ``batch`` z, forward and backward (about three times the
    forward) through Eq. 5's chain (x -> z, z -> q -> z_v' -> x' -> the encoder again, q about as
    costly as the teacher), a held-out check of ``holdout`` z every ``window`` steps, and the pool."""
    chain = 2 * dims.encoder_flops + 3 * dims.teacher_flops
    checks = params.steps // params.window + 1
    rows = max(params.batch, params.holdout, params.pool)
    return Cost((3.0 * params.steps * params.batch + checks * params.holdout + params.pool) * chain,
                8.0 * 4 * rows * (dims.d + dims.k + dims.m + dims.k * dims.k), "steps")
