"""Every setting of ibcheck: frozen dataclasses with named defaults, and the presets.

Two trees, both read from JSON by the one validator of ``ibcheck.schema``:

- ``EstimatorSettings``: a linear-Gaussian case's ``"settings"`` (``ibcheck validate``);
- ``TrainConfig``: the paper's pipeline (``ibcheck train``; its ``data`` and ``teacher``
  sections form ``TeacherRunConfig``, what ``ibcheck teacher`` records).

Every number the pipeline uses is a field here; a run's ``config.json`` is
``schema.to_json`` of what it used, and reads back through the same validator.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ibcheck.estimators import QFitParams, default_params, registry
from ibcheck.estimators.barber_agakov import BarberAgakovParams
from ibcheck.estimators.batch import BatchParams
from ibcheck.estimators.empirical import EmpiricalParams
from ibcheck.estimators.teacher_ais import STARTS, TeacherAISParams
from ibcheck.estimators.teacher_bounds import TeacherElboParams, TeacherIWParams
from ibcheck.estimators.vib import VibParams


def _field(default: Any, **meta: Any) -> Any:
    return dataclasses.field(default=default, metadata=meta)


def _sections(default: Callable[[], Mapping[str, Any]]) -> Any:
    """A mapping field of estimator parameters, one section per registered estimator."""
    return dataclasses.field(default_factory=lambda: dict(default()), metadata={"sections": default_params})


# ---------------------------------------------------------------- validate


@dataclasses.dataclass(frozen=True)
class EstimatorSettings:
    """Sample sizes, training budgets and seeds of one validation run of a case.

    seed: added to the case's seed path; n_exact: Monte Carlo draws behind a
    "numerically exact" value (class labels); q: training of the teacher bounds'
    q(z_v|z); estimators: each registered estimator's parameters; skip: estimators not
    to run on this case (say the paper's ``teacher_iw`` or ``teacher_iw_data``). Defaults keep the
    built-in suite well under two minutes on two CPU cores while every standard error
    stays small next to the gaps it has to resolve.
    """

    seed: int = _field(0)
    n_exact: int = _field(1_000_000, min=2)
    q: QFitParams = QFitParams()
    estimators: Mapping[str, Any] = _sections(default_params)
    skip: tuple[str, ...] = _field((), choices=registry.names())

    def params(self, name: str) -> Any:
        return self.estimators[name]

    def replace(self, **changes: Any) -> EstimatorSettings:
        """A copy with fields changed; ``estimators`` changes are merged by name."""
        if "estimators" in changes:
            changes["estimators"] = {**self.estimators, **changes["estimators"]}
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------- the paper's pipeline


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The images: ``source`` mnist10k (built in), fashion (Debian's package) or idx (the
    MNIST-format folder ``dir``). ``test_fraction`` splits the built-in subset, which has no
    test file (null for the other sources); ``train_points`` keeps a seeded random subset."""

    source: str = _field("mnist10k", choices=("mnist10k", "fashion", "idx"))
    dir: str | None = None
    test_fraction: float | None = _field(0.2, positive=True, below=1.0)
    train_points: int | None = _field(None, min=2)


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    """The teacher VAE: MLP 784-hidden-2·latent and latent-hidden-784, Bernoulli pixels,
    Adam(lr), ``batch``, ``epochs`` (Herwana & Kadian, section 4). ``seed`` roots the
    teacher run's seed tree: its data split, initial weights and shuffling."""

    seed: int = _field(0)
    latent: int = _field(20, min=1)
    hidden: int = _field(400, min=1)
    epochs: int = _field(100, min=1)
    batch: int = _field(128, min=1)
    lr: float = _field(1e-3, positive=True)


@dataclasses.dataclass(frozen=True)
class TeacherRunConfig:
    """What a teacher run depends on, and what its ``config.json`` records."""

    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    """The VIB student. Defaults are vib_demo's (Alemi et al.): encoder 784-hidden-hidden-2·latent,
    beta 1e-3, Adam(1e-4, betas (0.5, 0.999)), x ``decay`` every ``decay_epochs`` epochs, batch
    100. The label decoder q(y|z) is latent-``label_decoder_hidden``-10 (the paper gives no width;
    ``classifier_hidden`` is its former name).
    SGD's lr 0.01 and momentum 0.9 have no source; they are settings. ``std_shift``: the
    encoder's std is softplus(rho - std_shift); vib_demo's 5 starts it near 0.007 (nearly
    deterministic), 0 starts it wide, near 0.7 (``WIDE_STD_SHIFT``)."""

    encoder: str = _field("mlp", choices=("mlp", "cnn"))
    latent: int = _field(40, min=1)
    hidden: int = _field(1024, min=1)
    label_decoder_hidden: int = _field(256, min=1, was="classifier_hidden")
    beta: float = _field(1e-3, at_least=0.0)
    optimizer: str = _field("adam", choices=("adam", "sgd"))
    lr: float = _field(1e-4, positive=True)
    adam_beta1: float = _field(0.5, at_least=0.0, below=1.0)
    adam_beta2: float = _field(0.999, at_least=0.0, below=1.0)
    decay: float = _field(0.97, positive=True)
    decay_epochs: int = _field(2, min=1)
    sgd_lr: float = _field(0.01, positive=True)
    sgd_momentum: float = _field(0.9, at_least=0.0, below=1.0)
    batch: int = _field(100, min=1)
    std_shift: float = _field(5.0)


WIDE_STD_SHIFT = 0.0

# Per-record estimator sizes, chosen so that estimating costs about as much as an epoch of
# training on two CPU cores; none of them comes from the paper.
TRACK_ESTIMATORS: dict[str, Any] = {
    registry.VIB.name: VibParams(n=1000),
    registry.TEACHER_ELBO.name: TeacherElboParams(n=1000),
    # the Eq. 5 q, as in the runs reported before the forward q existed
    registry.TEACHER_IW.name: TeacherIWParams(K=(16,), n=256, q="elbo"),
    registry.LOO.name: BatchParams(N=(500,), batches=8),
    registry.NCE.name: BatchParams(N=(500,), batches=8),
    registry.EMPIRICAL.name: EmpiricalParams(N=None, sets=None, draws=1, points=1000),
    registry.BARBER_AGAKOV.name: BarberAgakovParams(steps=0, n=1000),
}


@dataclasses.dataclass(frozen=True)
class PopulationParams:
    """The bracket on the I(X;Z) of the teacher's model population (fresh z_v ~ N(0, I) through the
    teacher): the annealed pair ``teacher_rais`` below and ``teacher_ais`` above (bounds.md section 3c)
    on the same n z, K forward chains each and one reverse chain, HMC with ``leapfrog`` steps per
    transition, started from the forward q with ``tails`` (0: Gaussian). T doubles from ``T`` on
    ``select_n`` z of their own until the mean paired width is at most ``target`` nats, or up to
    ``T_max`` (``TeacherAISParams``), from q's start or a per-z Laplace one, whichever is narrower
    at the first T (``start`` "best"). The forward q is a ``q_form`` MLP latent-``q_hidden``-k,
    warm-started and trained per record by ``q``. epochs: null brackets every record; n brackets epoch
    0 and the tracked epochs nearest to n log-spaced epochs from the first to the last. K = 0 leaves
    the bracket out."""

    K: int = _field(2, min=0)
    n: int = _field(64, min=2)
    T: int = _field(32, min=1)
    T_max: int = _field(512, min=1)
    target: float = _field(0.5, at_least=0.0)
    leapfrog: int = _field(2, min=1)
    tails: int = _field(0, min=0)
    select_n: int = _field(16, min=2)
    start: str = _field("best", choices=STARTS)
    epochs: int | None = _field(10, min=1)
    q_form: str = _field("cholesky", choices=("cholesky", "diagonal"))
    q_hidden: tuple[int, ...] = _field((512, 512), min=1)
    q: QFitParams = QFitParams(steps=2000, batch=256, lr=1e-3, window=50, holdout=1024, pool=8192)

    def bracket(self) -> TeacherAISParams:
        """The annealed bounds' parameters."""
        return TeacherAISParams(T=(self.T,), K=max(self.K, 1), n=self.n, leapfrog=self.leapfrog, tails=self.tails,
                                target=self.target, T_max=self.T_max, select_n=self.select_n, q="forward",
                                start=self.start)


@dataclasses.dataclass(frozen=True)
class TrackConfig:
    """What each metrics record measures, on the student's training distribution.

    subset / test_subset: fixed points for the accuracies and the log-determinant;
    accuracy_draws: z draws averaged per prediction (vib_demo's 12); q_hidden: width of
    q(z_v|z), an MLP latent-q_hidden-2·k; q: its warm-started training per record (the
    paper's steps 1-8); population: the population bracket and its forward q;
    early_points: extra log-spaced records inside epoch 1;
    epochs: null estimates after every epoch; an integer n estimates after n log-spaced
    epochs from the first to the last (dense early, where fitting happens), and every other
    epoch gets a light record (losses, gradient norm, log-determinant) only;
    estimators: each estimator's parameters (``empirical`` with N null: the training set)."""

    subset: int = _field(1000, min=1)
    test_subset: int = _field(1000, min=1)
    accuracy_draws: int = _field(12, min=1)
    q_hidden: int = _field(256, min=1)
    early_points: int = _field(0, min=0)
    epochs: int | None = _field(None, min=2)
    q: QFitParams = QFitParams(steps=15, batch=128, lr=1e-3, window=15, holdout=256)
    population: PopulationParams = PopulationParams()
    estimators: Mapping[str, Any] = _sections(lambda: TRACK_ESTIMATORS)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (its ``config.json``).

    seed roots the student's seed tree (its weights, shuffling, tracking and label
    draws); the data and the teacher come from ``teacher.seed``'s tree, so students of
    several seeds can share one teacher run (``teacher_run``)."""

    preset: str = _field("paper", choices=("paper", "smoke", "study-small", "study-paper"))
    seed: int = _field(0)
    epochs: int = _field(200, min=1)
    zero_info: str | None = _field(None, choices=("redraw", "fixed"))
    teacher_run: str | None = None
    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()
    student: StudentConfig = StudentConfig()
    track: TrackConfig = TrackConfig()

    @property
    def teacher_run_config(self) -> TeacherRunConfig:
        return TeacherRunConfig(self.data, self.teacher)


SMOKE_TRACK = TrackConfig(
    subset=300, test_subset=300, early_points=3, q=QFitParams(steps=10, batch=128, lr=1e-3, window=10, holdout=256),
    # every record bracketed, at sizes that check the machinery, not that the bracket closes
    population=PopulationParams(K=2, n=16, T=4, T_max=8, select_n=4, epochs=None, q_hidden=(64,),
                                q=QFitParams(steps=20, batch=128, lr=1e-3, window=10, holdout=256, pool=512)),
    estimators={registry.VIB.name: VibParams(n=300), registry.TEACHER_ELBO.name: TeacherElboParams(n=300),
                registry.TEACHER_IW.name: TeacherIWParams(K=(16,), n=64, q="elbo"),
                registry.LOO.name: BatchParams(N=(128,), batches=4),
                registry.NCE.name: BatchParams(N=(128,), batches=4),
                registry.EMPIRICAL.name: EmpiricalParams(N=None, sets=None, draws=1, points=300),
                registry.BARBER_AGAKOV.name: BarberAgakovParams(steps=0, n=300)})

# The study presets' tracking: every record costs about half of the default's on two CPU
# cores (the encoder's forward passes dominate, so fewer points per estimator and smaller
# fixed subsets), so that estimating costs at most half of training over a run; empirical
# (the exact value) keeps its 1,000 points. The annealed population bracket runs at epoch 0 and 8
# log-spaced epochs (README, "The certified information plane").
STUDY_TRACK = TrackConfig(
    subset=500, test_subset=500, early_points=3, q=QFitParams(steps=10, batch=128, lr=1e-3, window=10, holdout=256),
    population=PopulationParams(epochs=8, T_max=256),
    estimators={**TRACK_ESTIMATORS, registry.VIB.name: VibParams(n=500),
                registry.TEACHER_ELBO.name: TeacherElboParams(n=500),
                registry.TEACHER_IW.name: TeacherIWParams(K=(16,), n=128, q="elbo"),
                registry.LOO.name: BatchParams(N=(500,), batches=2),
                registry.NCE.name: BatchParams(N=(500,), batches=2),
                registry.BARBER_AGAKOV.name: BarberAgakovParams(steps=0, n=500)})

PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(),
    # a few seconds on two CPU cores, teacher included: small data, few epochs, small estimates
    "smoke": TrainConfig(preset="smoke", epochs=3, data=DataConfig(train_points=2000),
                         teacher=TeacherConfig(epochs=3), student=StudentConfig(hidden=256), track=SMOKE_TRACK),
    # two CPU cores, one thread per cell: 2,000 training points, 120 epochs, 20 tracked epochs
    "study-small": TrainConfig(preset="study-small", epochs=120, data=DataConfig(train_points=2000),
                               teacher=TeacherConfig(epochs=30),
                               track=dataclasses.replace(STUDY_TRACK, epochs=20)),
    # the paper's settings (all training points, 200 epochs), estimated after 50 log-spaced epochs
    "study-paper": TrainConfig(preset="study-paper", track=dataclasses.replace(STUDY_TRACK, epochs=50)),
}
