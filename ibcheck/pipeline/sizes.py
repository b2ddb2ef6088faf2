"""What a training or teacher run may ask for, checked before its folder is written.

Every width, draw count and record count of ``TrainConfig`` that scales memory or time goes
through ``ibcheck.estimators.limits``: the student's and the teacher's networks, the tracking
q's, the accuracy draws, the early records and every estimator's parameters. A refusal is one
line naming the setting and the limit.
"""
from __future__ import annotations

from typing import Any

import torch

from ibcheck.config import TeacherConfig, TrainConfig
from ibcheck.estimators import limits, registry, teacher_ais
from ibcheck.interface import Cost, Dims, InputError

PIXELS = 784
CLASSES = 10
# a run of more epochs is refused: the epoch lists and the progress bar are built whole
MAX_EPOCHS = 100_000
# training images where the config does not fix them: the built-in subset's 10,000 less its test
# fraction, Fashion-MNIST's and an MNIST-format folder's 60,000 (a study's estimate, before any data are read)
SOURCE_POINTS = {"fashion": 60_000, "idx": 60_000}


def _widest(**widths: int) -> str:
    """The name of the largest of a network's widths: the one a refusal blames."""
    return max(widths, key=lambda name: widths[name])


def teacher_costs(t: TeacherConfig, points: int) -> list[tuple[str, int, Cost]]:
    """The VAE 784-hidden-2·latent, latent-hidden-784 trained one epoch of ``points`` images."""
    cost = limits.network_cost((PIXELS, t.hidden, 2 * t.latent), points, "")
    cost = Cost(cost.flops + limits.network_cost((t.latent, t.hidden, PIXELS), points, "").flops,
                2 * cost.bytes, _widest(hidden=t.hidden, latent=t.latent))
    return [(f"teacher.{cost.blame}", getattr(t, cost.blame), cost)]


def check_teacher(t: TeacherConfig, points: int, device: torch.device | str) -> None:
    """Refuse a teacher whose training cannot fit (``ibcheck teacher``)."""
    limits.refuse_if_too_large(teacher_costs(t, points), device)


def _accuracy_cost(config: TrainConfig) -> Cost:
    """Predictions on the fixed subsets: ``accuracy_draws`` z per row through the label decoder,
    held at once (float32 z, hidden activations and class scores)."""
    s, tr = config.student, config.track
    rows = tr.subset + tr.test_subset
    row = tr.accuracy_draws * limits.mlp_flops((s.latent, s.label_decoder_hidden, CLASSES))
    width = s.latent + s.label_decoder_hidden + CLASSES
    return Cost(rows * row, 4.0 * max(tr.subset, tr.test_subset) * tr.accuracy_draws * width * 2, "accuracy_draws")


def _network_costs(config: TrainConfig, points: int) -> list[tuple[str, int, Cost]]:
    s, tr, pop = config.student, config.track, config.track.population
    k = config.teacher.latent
    encoder = limits.network_cost((PIXELS, s.hidden, s.hidden, 2 * s.latent), points, "")
    blame = _widest(hidden=s.hidden, latent=s.latent)
    costs = [(f"student.{blame}", getattr(s, blame), Cost(encoder.flops, encoder.bytes, blame)),
             ("student.label_decoder_hidden", s.label_decoder_hidden,
              limits.network_cost((s.latent, s.label_decoder_hidden, CLASSES), points, "label_decoder_hidden"))]
    costs += teacher_costs(config.teacher, points)
    costs.append(("track.q_hidden", tr.q_hidden,
                  limits.network_cost((s.latent, tr.q_hidden, 2 * k), tr.q.steps * tr.q.batch, "q_hidden")))
    if pop.K > 0:
        out = k + k * (k + 1) // 2 if pop.q_form == "cholesky" else 2 * k
        costs.append(("track.population.q_hidden", max(pop.q_hidden),
                      limits.network_cost((s.latent, *pop.q_hidden, out), pop.q.steps * pop.q.batch, "q_hidden")))
    costs.append(("track.accuracy_draws", tr.accuracy_draws, _accuracy_cost(config)))
    return costs


def check_early_points(config: TrainConfig, points: int) -> None:
    """Refuse more early records than epoch 1 has steps to put them after."""
    steps = -(-points // config.student.batch)
    if config.track.early_points > max(steps - 1, 0):
        raise InputError(f"track.early_points = {config.track.early_points} asks for more records inside epoch 1 "
                         f"than its {max(steps - 1, 0)} steps before the last ({points} points in batches of "
                         f"{config.student.batch}); lower it")


def check_epochs(config: TrainConfig) -> None:
    for key, epochs in (("epochs", config.epochs), ("teacher.epochs", config.teacher.epochs)):
        if epochs > MAX_EPOCHS:
            raise InputError(f"{key} = {epochs} is more than the {MAX_EPOCHS:,} epochs a run may have; lower it")


def _dims(config: TrainConfig, points: int) -> Dims:
    s, t = config.student, config.teacher
    return Dims(d=PIXELS, k=t.latent, m=s.latent, classes=CLASSES, points=points,
                encoder_flops=limits.mlp_flops((PIXELS, s.hidden, s.hidden, 2 * s.latent)),
                teacher_flops=limits.mlp_flops((t.latent, t.hidden, PIXELS)))


def check_train(config: TrainConfig, points: int, device: torch.device | str) -> None:
    """Refuse a training run whose networks or tracking settings cannot fit, per epoch or per record."""
    dims = _dims(config, points)
    check_epochs(config)
    check_early_points(config, points)
    # the networks first: an estimator's cost grows with them, and its own setting is then not to blame
    costs = _network_costs(config, points) + _record_costs(config, dims) + _bracket_costs(config, dims)
    limits.refuse_if_too_large(costs, device)


def _record_costs(config: TrainConfig, dims: Dims) -> list[tuple[str, Any, Cost]]:
    """One tracked record's work: q's warm-started fit and every estimator."""
    return (limits.q_costs(config.track.q, dims, "track.q")
            + limits.estimator_costs(config.track.estimators, registry.without_prior(), dims, "track.estimators"))


def _bracket_costs(config: TrainConfig, dims: Dims) -> list[tuple[str, Any, Cost]]:
    """One bracketed record's work: the forward q's fit and the annealed pair (none where K = 0)."""
    pop = config.track.population
    if pop.K == 0:
        return []
    cost = teacher_ais.ais_cost(pop.bracket(), dims)
    blame = "T_max" if cost.blame == "T_max" else ("n" if cost.blame == "n" else "T")
    return limits.q_costs(pop.q, dims, "track.population.q") + [(f"track.population.{blame}", getattr(pop, blame),
                                                                 cost)]


def _flops(costs: list[tuple[str, Any, Cost]], prefix: str = "") -> float:
    return sum(cost.flops for path, _, cost in costs if path.startswith(prefix))


def expected_points(config: TrainConfig) -> int:
    """The training images a run of ``config`` will have, before any data are read."""
    if config.data.train_points is not None:
        return config.data.train_points
    if config.data.source == "mnist10k":
        return round(10_000 * (1.0 - (config.data.test_fraction or 0.0)))
    return SOURCE_POINTS[config.data.source]


def records(config: TrainConfig) -> tuple[int, int]:
    """(records with every estimator, records with the population bracket) of a whole run."""
    count, epochs = config.track.epochs, config.epochs
    tracked = 1 + (epochs if count is None or count >= epochs else count) + config.track.early_points
    pop = config.track.population
    bracketed = 0 if pop.K == 0 else (tracked if pop.epochs is None else min(pop.epochs + 1, tracked))
    return tracked, bracketed


def estimated_seconds(config: TrainConfig, points: int, teacher: bool = True) -> float:
    """Seconds a training run of ``config`` takes on the reference CPU (``limits``' rates per part):
    the student's epochs, the teacher's (where ``teacher``), each tracked record's estimators and q,
    each bracketed record's annealed pair and forward q."""
    dims, networks = _dims(config, points), _network_costs(config, points)
    train = _flops(networks, "student.") * config.epochs / limits.TRAIN_FLOPS_PER_SECOND
    teach = _flops(networks, "teacher.") * config.teacher.epochs / limits.TEACHER_FLOPS_PER_SECOND if teacher else 0.0
    tracked, bracketed = records(config)
    return (train + teach + tracked * _flops(_record_costs(config, dims)) / limits.TRACK_FLOPS_PER_SECOND
            + bracketed * _flops(_bracket_costs(config, dims)) / limits.BRACKET_FLOPS_PER_SECOND)


def train_announcement(config: TrainConfig, device: torch.device | str, points: int) -> str | None:
    """The line a training run of ``points`` images expected to take more than
    ``limits.ANNOUNCE_SECONDS`` on the CPU prints before it starts; None for a shorter one, or on a
    GPU (whose speed the estimate does not know)."""
    if torch.device(device).type != "cpu":
        return None
    seconds = estimated_seconds(config, points, teacher=config.teacher_run is None)
    if seconds <= limits.ANNOUNCE_SECONDS:
        return None
    tracked, bracketed = records(config)
    return (f"train: {limits.about(seconds)} on cpu: {config.epochs:,} epochs, {tracked:,} tracked records, "
            f"{bracketed:,} bracketed (estimated from the reference machine's speed)")


def study_announcement(configs: list[TrainConfig], teachers: list[TeacherConfig], cores: int) -> str | None:
    """The same for a local study of ``configs`` (their teachers trained once each) on ``cores`` CPU
    cores: the reference speed is that of ``limits.REFERENCE_CORES``, and cells run side by side
    share the cores."""
    cells = sum(estimated_seconds(c, expected_points(c), teacher=False) for c in configs)
    points = expected_points(configs[0]) if configs else 0
    teach = sum(_flops(teacher_costs(t, points)) * t.epochs for t in teachers) / limits.TEACHER_FLOPS_PER_SECOND
    seconds = (cells + teach) * limits.REFERENCE_CORES / max(cores, 1)
    if seconds <= limits.ANNOUNCE_SECONDS:
        return None
    return (f"study: {limits.about(seconds)} on cpu: {len(configs):,} cells on {cores} cores "
            f"(estimated from the reference machine's speed)")
