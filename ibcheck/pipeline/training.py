"""``ibcheck train``: the student's data from the teacher, the VIB student, and a metrics
record after every epoch (and at log-spaced steps inside the first), resumable at any point."""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ibcheck import schema, seeds
from ibcheck.config import TrainConfig
from ibcheck.interface import Diverged, MetricsRecord
from ibcheck.pipeline import data, runs, sizes, teacher_run, tracking
from ibcheck.pipeline import student as student_mod
from ibcheck.pipeline.networks import MLPCholeskyInferenceNet, MLPInferenceNet
from ibcheck.pipeline.vae import VAE

Tensor = torch.Tensor


@dataclasses.dataclass
class Session:
    """The live objects of a run, saved whole in every checkpoint."""

    student: student_mod.VIBStudent
    optimiser: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    q: MLPInferenceNet
    q_forward: torch.nn.Module
    generators: dict[str, torch.Generator]
    records: list[MetricsRecord]

    def state(self) -> dict:
        return {"student": self.student.state_dict(), "optimiser": self.optimiser.state_dict(),
                "schedule": self.schedule.state_dict(), "q": self.q.state_dict(),
                "q_forward": self.q_forward.state_dict(), "records": self.records,
                "generators": runs.generator_states(**self.generators)}

    def restore(self, state: dict) -> None:
        self.student.load_state_dict(current_keys(state["student"]))
        self.optimiser.load_state_dict(state["optimiser"])
        self.schedule.load_state_dict(state["schedule"])
        self.q.load_state_dict(state["q"])
        if "q_forward" in state:  # checkpoints written before the population bracket have none
            self.q_forward.load_state_dict(state["q_forward"])
        runs.restore_generators(state["generators"], **self.generators)
        self.records = state["records"]

    @property
    def epochs_done(self) -> int:
        return int(max((r["epoch"] for r in self.records if not r.get("partial")), default=0))


GENERATORS = ("train", "track", "labels")
# former names of the student's modules, as checkpoints written before a rename hold them
FORMER_MODULES = {"classifier.": "label_decoder."}


def current_keys(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    """A student state dict with the former module names (``FORMER_MODULES``) replaced."""
    out = {}
    for key, value in weights.items():
        for old, new in FORMER_MODULES.items():
            if key.startswith(old):
                key = new + key.removeprefix(old)
        out[key] = value
    return out


def new_session(config: TrainConfig, device: torch.device) -> Session:
    """A fresh student, optimiser, q and generators, all from the seed tree of ``config.seed``."""
    student = student_mod.VIBStudent(config.student, seed=seeds.seed_of(config.seed, "student")).to(device)
    optimiser, schedule = student_mod.make_optimizer(student, config.student)
    q = MLPInferenceNet((config.student.latent, config.track.q_hidden), config.teacher.latent,
                        seed=seeds.seed_of(config.seed, "track", "q")).to(device)
    pop = config.track.population
    forward_net = MLPCholeskyInferenceNet if pop.q_form == "cholesky" else MLPInferenceNet
    q_forward = forward_net((config.student.latent, *pop.q_hidden), config.teacher.latent,
                            seed=seeds.seed_of(config.seed, "track", "q_forward")).to(device)
    generators = {name: seeds.generator(config.seed, name, device=device) for name in GENERATORS}
    return Session(student, optimiser, schedule, q, q_forward, generators, [])


def epoch_labels(config: TrainConfig, labels: Tensor, session: Session) -> Tensor:
    """The labels of an epoch: the originals, or for zero-info runs independent ones with the same
    frequencies (a fresh permutation every epoch, or one fixed permutation)."""
    if config.zero_info is None:
        return labels
    if config.zero_info == "fixed":
        perm = seeds.rng(config.seed, "labels", "fixed").permutation(len(labels))
        return labels[torch.as_tensor(perm, device=labels.device)]
    return labels[torch.randperm(len(labels), generator=session.generators["labels"], device=labels.device)]


def early_steps(config: TrainConfig, steps_per_epoch: int) -> set[int]:
    """Log-spaced steps inside the first epoch at which to track as well (empty by default)."""
    if config.track.early_points <= 0 or steps_per_epoch < 2:
        return set()
    grid = np.geomspace(1, steps_per_epoch - 1, config.track.early_points)
    return {int(round(s)) for s in grid}


def tracked_epochs(epochs: int, count: int | None) -> set[int]:
    """The epochs after which every estimator runs: all of them (``count`` None), or ``count``
    distinct log-spaced epochs from 1 to ``epochs``, both ends included (all of them when
    ``count >= epochs``). Rounding merges early points, so the grid is refined until ``count``
    distinct epochs remain."""
    if count is None or count >= epochs:
        return set(range(1, epochs + 1))
    points = count
    while True:
        chosen = {int(round(e)) for e in np.geomspace(1, epochs, points)}
        if len(chosen) >= count:
            return chosen
        points += 1


def population_epochs(epochs: int, track) -> frozenset[int] | None:
    """The epochs whose records bracket the population: None (every record) where
    ``track.population.epochs`` is null, else epoch 0 and, for each of that many log-spaced epochs
    from 1 to ``epochs``, the tracked epoch nearest to it on a log scale."""
    count = track.population.epochs
    if count is None:
        return None
    tracked = sorted(tracked_epochs(epochs, track.epochs))
    targets = np.geomspace(1, epochs, count) if count > 1 else [epochs]
    chosen = {min(tracked, key=lambda e: (abs(math.log(e) - math.log(t)), e)) for t in targets}
    return frozenset({0} | chosen)


def run_epoch(config: TrainConfig, session: Session, tracker: tracking.Tracker, labels: Tensor, epoch: int,
              steps_per_epoch: int) -> None:
    """Train one epoch, tracking at the early steps of epoch 1, then record the epoch: every
    estimator on a tracked epoch (``tracked_epochs``), the light record otherwise."""
    gen = session.generators
    early = early_steps(config, steps_per_epoch) if epoch == 1 else set()
    partial_seconds = [0.0]

    def on_step(step: int) -> None:
        if step in early:
            record = tracker.measure(session.student, labels, gen["track"], epoch - 1 + step / steps_per_epoch)
            partial_seconds[0] += record["seconds_estimate"]
            session.records.append(_record(record, epoch - 1 + step / steps_per_epoch, step, None, None, True))

    started = time.perf_counter()
    losses = student_mod.train_epoch(session.student, session.optimiser, tracker.train_x, labels, config.student,
                                     gen["train"], on_step=on_step)
    train_seconds = time.perf_counter() - started - partial_seconds[0]
    session.schedule.step()
    if epoch in tracked_epochs(config.epochs, config.track.epochs):
        record = tracker.measure(session.student, labels, gen["track"], epoch)
    else:
        record = tracker.measure_light(session.student)
    session.records.append(_record(record, epoch, epoch * steps_per_epoch, losses, train_seconds, False))


def _record(measured: dict, epoch: float, step: int, losses, train_seconds, partial: bool) -> MetricsRecord:
    """One metrics record (``interface.MetricsRecord``): the tracker's ``measured`` values between
    the epoch and step and the training's losses and times, with non-finite numbers made null."""
    estimate_seconds = measured.pop("seconds_estimate")
    population_seconds = measured.pop("seconds_population", None)  # part of estimate_seconds
    record = {"epoch": epoch, "step": step, **measured,
              "grad_norm": None if losses is None else losses["grad_norm"],
              "loss": None if losses is None else {k: losses[k] for k in ("loss", "cross_entropy", "kl")},
              "seconds": {"train": train_seconds, "estimate": estimate_seconds,
                          **({} if population_seconds is None else {"population": population_seconds})}}
    if partial:
        record["partial"] = True
    return cast(MetricsRecord, runs.with_finite_numbers(record))


def _student_data(vae: VAE, train_set: data.ImageSet, test_set: data.ImageSet,
                  device: torch.device) -> dict[str, Tensor]:
    """The teacher's mean reconstructions of the images, with their original labels."""
    vae = vae.to(device).eval()
    with torch.no_grad():
        return {"train_x": vae.reconstruct(torch.from_numpy(train_set.as_float()).to(device)),
                "test_x": vae.reconstruct(torch.from_numpy(test_set.as_float()).to(device)),
                "train_y": torch.from_numpy(train_set.labels).to(device),
                "test_y": torch.from_numpy(test_set.labels).to(device)}


def train(config: TrainConfig, out: str | Path, device: torch.device, resume: bool,
          progress: Callable[[str, int, int, dict], None] = lambda stage, done, total, record: None,
          notice: Callable[[str], None] = lambda line: None) -> list[MetricsRecord]:
    """Run (or resume) the whole experiment into ``out``; returns the metrics records.

    Everything is checked and the data are loaded before the run folder is written; a run expected
    to take more than an hour on the CPU says so through ``notice`` first. The teacher
    comes from ``config.teacher_run`` or is trained into OUT/teacher. A divergence is recorded in
    status.json and raised as ``Diverged``; the records up to the last epoch are kept."""
    out = Path(out)
    run = runs.RunDir(out, "train", schema.to_json(config), resume=resume)
    teacher_dir = None if config.teacher_run else teacher_run.teacher_folder(
        config.teacher_run_config, out / "teacher", resume or (out / "teacher").exists())
    train_set, test_set = data.load_images(config.data, config.teacher.seed)
    sizes.check_train(config, len(train_set.labels), device)
    if (line := sizes.train_announcement(config, device, len(train_set.labels))) is not None:
        notice(line)
    vae = teacher_run.finished_teacher(config.teacher_run, config.teacher_run_config) if config.teacher_run else None
    with run.create():
        try:
            if teacher_dir is not None:
                vae = teacher_run.fit_teacher(config.teacher_run_config, teacher_dir, train_set.as_float(),
                                              test_set.as_float(), device,
                                              lambda e, r: progress("teacher", e, config.teacher.epochs, r))
            assert vae is not None
            records = _train_student(config, run, vae, _student_data(vae, train_set, test_set, device), device,
                                     progress)
        except Diverged as err:
            run.set_status("diverged", reason=str(err))
            raise
        run.set_status("finished")
    return records


def _train_student(config: TrainConfig, run: runs.RunDir, vae: VAE, d: dict[str, Tensor], device: torch.device,
                   progress: Callable[[str, int, int, dict], None]) -> list[MetricsRecord]:
    """The student's epochs, from the last checkpoint of ``run`` if there is one."""
    session = new_session(config, device)
    tracker = tracking.Tracker(vae.generative, session.q, session.q_forward, d["train_x"], d["train_y"],
                               d["test_x"], d["test_y"], config.track, config.seed,
                               population_epochs(config.epochs, config.track))
    state = run.load()
    if state is not None:
        session.restore(state)
    else:
        labels = epoch_labels(config, d["train_y"], session)
        progress("measuring", 0, config.epochs, {})  # the first record's estimates can take minutes: say so
        measured = tracker.measure(session.student, labels, session.generators["track"])
        session.records.append(_record(measured, 0, 0, None, 0.0, False))
        run.save(session.state())
    steps_per_epoch = -(-len(d["train_x"]) // config.student.batch)
    for epoch in range(session.epochs_done + 1, config.epochs + 1):
        labels = epoch_labels(config, d["train_y"], session)
        try:
            run_epoch(config, session, tracker, labels, epoch, steps_per_epoch)
        except Diverged as err:
            raise Diverged(f"in epoch {epoch}, {err} (records up to epoch {epoch - 1} kept)") from None
        run.save(session.state())
        progress("student", epoch, config.epochs, dict(session.records[-1]))
    return session.records
