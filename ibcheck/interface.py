"""Protocols and result types shared by every part of ibcheck.

This module imports nothing from the package (the layout of ``cbg-ethz/bmi``),
so estimators, analytic baselines, reports and the future MNIST pipeline can
all depend on it without depending on each other.

Conventions: batches are leading dimensions, ``x: (n, d)`` data, ``z: (n, m)``
the student's representation, ``z_v: (n, k)`` the teacher's latent, and every
information quantity is in nats.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict, runtime_checkable

if TYPE_CHECKING:  # annotations only: the CLI parses its arguments (and --help) without loading torch
    import torch
    from torch import Tensor
# "estimate": a built-in estimate with no claim about the truth: reported, and tested only against
# its own analytic expectation where one exists. "point": a user's point estimator, which claims
# the truth itself: tested two-sided against it (its bias against 0).
BoundKind = Literal["upper", "lower", "exact", "estimate", "point"]
Target = Literal["I_XZ", "I_YZ"]
# What an estimate is judged against: the population the data are drawn from, or the
# finite data set itself (the uniform distribution over its points, bounds.md section 4).
Reference = Literal["population", "finite"]


@dataclasses.dataclass(frozen=True)
class Batch:
    """One draw from a data distribution.

    x: (n, d) inputs; z_v: (n, k) the teacher latents that generated them, or
    None where they are unknown; y: labels, (n,) class indices (int64) or
    (n, p) real vectors, or None.
    """

    x: Tensor
    z_v: Tensor | None = None
    y: Tensor | None = None


@runtime_checkable
class Encoder(Protocol):
    """The student's stochastic encoder p(z|x) = N(mean(x), diag(std(x)^2)).

    ``encoder(x)`` with x: (n, d) returns (mean, std), both (n, m), std > 0.
    """

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class Teacher(Protocol):
    """The teacher's decoder p(x|z_v); its model prior is N(0, I_k).

    ``teacher.sample(z_v, generator)`` with z_v: (n, k) returns x: (n, d), one
    draw of p(x|z_v) per row (the mean itself for a deterministic decoder).
    Must be differentiable in z_v (reparameterised) where the noise allows it.
    """

    latent_dim: int

    def sample(self, z_v: Tensor, generator: torch.Generator) -> Tensor: ...


@runtime_checkable
class InferenceNet(Protocol):
    """The variational posterior q(z_v|z) of the teacher bound (paper Eq. 5).

    ``q(z)`` with z: (n, m) returns (mean, scale): mean (n, k), and scale either
    (n, k) standard deviations (diagonal) or (n, k, k) lower-triangular Cholesky
    factors with a positive diagonal (an expanded view where q shares one). ``state_dict`` and
    ``load_state_dict`` (any torch module's) let one q start from another's parameters; an
    optional ``fit_input(z)`` sets a fixed normalisation of its input without changing its function.
    """

    def __call__(self, z: Tensor) -> tuple[Tensor, Tensor]: ...

    def parameters(self): ...

    def state_dict(self): ...

    def load_state_dict(self, state): ...


@runtime_checkable
class LabelDecoder(Protocol):
    """A variational label decoder q(y|z) for the Barber-Agakov bound.

    ``model.log_prob(z, y)`` with z: (n, m) returns log q(y|z): (n,), in nats.
    """

    def log_prob(self, z: Tensor, y: Tensor) -> Tensor: ...

    def parameters(self): ...


@runtime_checkable
class DataSampler(Protocol):
    """Seeded draws of the data distribution p(z_v, x, y).

    ``sampler.sample(n, generator)`` returns a Batch of n iid rows on the
    sampler's device and dtype.
    """

    def sample(self, n: int, generator: torch.Generator) -> Batch: ...


@runtime_checkable
class PriorData(DataSampler, Protocol):
    """Data drawn through the teacher from a prior of known density: ``log_prior(z_v)`` is
    log p_d(z_v) of the distribution the batches' z_v: (n, k) were drawn from, (n,) in nats
    (bounds.md section 3b: what ``teacher_riw`` and ``teacher_iw`` with the data prior need)."""

    def log_prior(self, z_v: Tensor) -> Tensor: ...


@runtime_checkable
class FiniteData(DataSampler, Protocol):
    """A finite data set, sampled uniformly: ``points`` holds all N rows (x: (N, d), y or None)."""

    points: Batch


@dataclasses.dataclass(frozen=True)
class Context:
    """What some estimators need beside the encoder and the data.

    teacher: p(x|z_v) (teacher bounds); q: the inference network q(z_v|z) trained on
    Eq. 5 ("elbo"), q_forward: one trained by maximum likelihood on simulated pairs
    ("forward"); q_fit, q_forward_fit: how each was trained (``q_fit.train_q``'s record,
    summarised in the params of every estimate that used it); label_decoder: q(y|z)
    (Barber-Agakov); h_y: H(Y) in nats.
    """

    teacher: Teacher | None = None
    q: InferenceNet | None = None
    q_fit: dict | None = None
    q_forward: InferenceNet | None = None
    q_forward_fit: dict | None = None
    label_decoder: LabelDecoder | None = None
    h_y: float | None = None


@dataclasses.dataclass(frozen=True)
class Measured:
    """What an estimator function returns before it is summarised: independent terms
    (n,) of one target, in nats, and the parameters that tell this estimate apart (K, N)."""

    target: Target
    terms: Tensor
    params: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """The result of one estimator run.

    value: mean of ``n`` independent terms, in nats; stderr: sd / sqrt(n) of
    those terms (bounds.md section 3); seed: the seed of every random draw the
    run made; params: the estimator's settings (K, N, training steps ...);
    seconds: wall time of the run, training included; skew: the terms' sample
    skewness m3 / m2^(3/2) (0 where the terms are not at hand, e.g. a user's
    estimator), which the one-sided checks correct for (``stats.skew_corrected``).
    """

    estimator: str
    target: Target
    kind: BoundKind
    value: float
    stderr: float
    n: int
    seed: int
    params: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    skew: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Exact:
    """Ground truth of one case, in nats; ``*_se`` is the standard error of a
    value computed by Monte Carlo (0.0 for closed forms); I_YZ is None where the
    case has no labels."""

    I_XZ: float
    I_XZ_se: float = 0.0
    I_YZ: float | None = None
    I_YZ_se: float | None = None


# ---------------------------------------------------------------- records that cross modules and land in files


class ReportRow(TypedDict):
    """One judged estimate of ``ibcheck validate`` (``harness.report.rows``): the terminal table,
    report.md, the figures' CSVs and results.json's ``estimates`` are made from these. In nats;
    ``gap`` = value - exact; ``valid``/``matches_expected`` are the one- and two-sided verdicts,
    None where not tested; ``failed``: a test failed or the result is an error; ``drawable``:
    value, stderr and gap are finite."""

    case: str
    estimator: str
    label: str
    target: Target
    kind: BoundKind
    param: str
    q: str
    value: float
    stderr: float
    n: int
    ci_half_width: float
    exact: float
    exact_se: float
    gap: float
    expected: float | None
    best: float | None
    valid: bool | None
    matches_expected: bool | None
    seconds: float
    params: dict[str, Any]
    seed: int
    error: str | None
    failed: bool
    drawable: bool
    coverage: Coverage | None


class Coverage(TypedDict):
    """How often a user's intervals held the truth on one case (``harness.coverage.judged``): of
    ``calls`` intervals of nominal ``level``, ``contained`` held it; ``p_value`` is the exact
    one-sided binomial test of under-coverage and ``covers`` its verdict at the run's per-test
    level; ``fraction_ci``: the Clopper-Pearson 95% interval on the fraction; ``sides``: "two-sided",
    "lower" ([low, inf)), "upper" ((-inf, high]) or "mixed"; ``mean_width``: of the two-sided
    intervals (None where there are none), in nats."""

    level: float
    calls: int
    contained: int
    fraction: float
    fraction_ci: list[float]
    p_value: float
    covers: bool
    sides: str
    mean_width: float | None


class MeasuredValue(TypedDict):
    """An estimate in a metrics record: mean, standard error (bounds.md section 3) and terms, nats."""

    value: float | None
    stderr: float | None
    n: int


class MetricsRecord(TypedDict, total=False):
    """One line of a training run's metrics.jsonl (``pipeline.training``). A light record (an epoch
    off the tracking schedule) holds only epoch, step, logdet_cov, grad_norm, loss, seconds and
    ln_N; a number that is not finite is null and its key path is listed in ``not_finite``."""

    epoch: float
    step: int
    partial: bool
    I_XZ: dict[str, MeasuredValue]
    I_YZ: dict[str, MeasuredValue]
    population: dict[str, Any]
    q_fit: dict[str, Any]
    accuracy: dict[str, float]
    logdet_cov: float | None
    grad_norm: float | None
    loss: dict[str, float] | None
    seconds: dict[str, float]
    ln_N: float
    not_finite: list[str]


ClaimSide = Literal["above", "below"]
Verdict = Literal["reproduced", "not reproduced", "inconclusive"]


class ClaimPart(TypedDict):
    """One claim part of the paper on one measure and condition, with the statistic S of every
    judged run (``study.claims.table``), before its test."""

    claim: str
    part: str
    statistic: str
    measure: str
    condition: str
    side: ClaimSide
    threshold: float
    values: list[float]
    n: int
    undefined: int
    half_width: float | None


class _Significance(TypedDict, total=False):
    significant: bool  # Holm's decision: only on a row that was tested (two runs or more)


class ClaimRow(ClaimPart, _Significance):
    """A ``ClaimPart`` judged (``study.claims.judge``; a row of claims.json): the mean of S, its sd
    and 95% t interval, the two-sided t test's p, Holm's level and decision, the verdict, and for
    an inconclusive row the runs that would decide it."""

    mean: float | None
    sd: float | None
    ci95: list[float] | None
    p: float | None
    holm_level: float | None
    runs_to_decide: int | None
    verdict: Verdict
    bracket_too_wide: bool


class InputError(ValueError):
    """Bad input from a user: the message is one line naming what is wrong.

    The CLI prints it and exits with status 2, without a traceback.
    """


class Diverged(RuntimeError):
    """Training produced a non-finite loss, gradient or parameter.

    The message is one line saying where; the run keeps its records up to the last finished
    epoch and records the divergence. The CLI exits with status 3.
    """


@dataclasses.dataclass(frozen=True)
class Dims:
    """Sizes that an estimator's cost depends on: x: d, z_v: k, z: m, class count (0: none), the
    floating-point operations of pushing one row through the encoder and the teacher, and the
    size of a finite data set."""

    d: int
    k: int
    m: int
    classes: int = 0
    encoder_flops: float = 0.0
    teacher_flops: float = 0.0
    points: int = 0  # the size of a finite data set, where estimators use one


@dataclasses.dataclass(frozen=True)
class Cost:
    """What one estimator run needs: floating-point operations, peak bytes of memory, and the
    parameter that drives them (named in a refusal)."""

    flops: float
    bytes: float
    blame: str
