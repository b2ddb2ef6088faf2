"""``ibcheck train``: the student's data from the teacher, the VIB student, and a metrics
record after every epoch (and at log-spaced steps inside the first), resumable at any point."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ibcheck import experiment, runs, student as student_mod, tracking
from ibcheck.experiment import TrainConfig
from ibcheck.networks import MLPInferenceNet

Tensor = torch.Tensor


@dataclasses.dataclass
class Session:
    """The live objects of a run, saved whole in every checkpoint."""

    student: student_mod.VIBStudent
    optimiser: torch.optim.Optimizer
    schedule: object
    q: MLPInferenceNet
    generators: dict[str, torch.Generator]
    records: list[dict]

    def state(self) -> dict:
        return {"student": self.student.state_dict(), "optimiser": self.optimiser.state_dict(),
                "schedule": self.schedule.state_dict(), "q": self.q.state_dict(), "records": self.records,
                "generators": runs.generator_states(**self.generators)}

    def restore(self, state: dict) -> None:
        self.student.load_state_dict(state["student"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.schedule.load_state_dict(state["schedule"])
        self.q.load_state_dict(state["q"])
        runs.restore_generators(state["generators"], **self.generators)
        self.records = state["records"]

    @property
    def epochs_done(self) -> int:
        return max((r["epoch"] for r in self.records if not r.get("partial")), default=0)


def new_session(config: TrainConfig, device: torch.device) -> Session:
    student = student_mod.VIBStudent(config.student, seed=config.seed).to(device)
    optimiser, schedule = student_mod.make_optimizer(student, config.student)
    q = MLPInferenceNet((config.student.latent, 256), config.teacher.latent, seed=config.seed + 7).to(device)
    generators = {name: torch.Generator(device=device).manual_seed(config.seed * 10 + i)
                  for i, name in enumerate(("train", "track", "labels"))}
    return Session(student, optimiser, schedule, q, generators, [])


def epoch_labels(config: TrainConfig, labels: Tensor, session: Session) -> Tensor:
    """The labels of an epoch: the originals, or for zero-info runs independent ones with the same
    frequencies (a fresh permutation every epoch, or one fixed permutation)."""
    if config.zero_info is None:
        return labels
    if config.zero_info == "fixed":
        perm = np.random.default_rng(config.seed + 3).permutation(len(labels))
        return labels[torch.as_tensor(perm, device=labels.device)]
    return labels[torch.randperm(len(labels), generator=session.generators["labels"], device=labels.device)]


def early_steps(config: TrainConfig, steps_per_epoch: int) -> set[int]:
    """Log-spaced steps inside the first epoch at which to track as well (empty by default)."""
    if config.track.early_points <= 0 or steps_per_epoch < 2:
        return set()
    grid = np.geomspace(1, steps_per_epoch - 1, config.track.early_points)
    return {int(round(s)) for s in grid}


def run_epoch(config: TrainConfig, session: Session, tracker: tracking.Tracker, labels: Tensor, epoch: int,
              steps_per_epoch: int) -> None:
    """Train one epoch, tracking at the early steps of epoch 1, then record the epoch."""
    gen = session.generators
    early = early_steps(config, steps_per_epoch) if epoch == 1 else set()
    partial_seconds = [0.0]

    def on_step(step: int) -> None:
        if step in early:
            record = tracker.measure(session.student, labels, gen["track"])
            partial_seconds[0] += record["seconds_estimate"]
            session.records.append(_record(record, epoch - 1 + step / steps_per_epoch, step, None, None, True))

    started = time.perf_counter()
    losses = student_mod.train_epoch(session.student, session.optimiser, tracker.train_x, labels, config.student,
                                     gen["train"], on_step=on_step)
    train_seconds = time.perf_counter() - started - partial_seconds[0]
    session.schedule.step()
    record = tracker.measure(session.student, labels, gen["track"])
    session.records.append(_record(record, epoch, epoch * steps_per_epoch, losses, train_seconds, False))


def _record(measured: dict, epoch: float, step: int, losses, train_seconds, partial: bool) -> dict:
    estimate_seconds = measured.pop("seconds_estimate")
    record = {"epoch": epoch, "step": step, **measured,
              "grad_norm": None if losses is None else losses["grad_norm"],
              "loss": None if losses is None else {k: losses[k] for k in ("loss", "cross_entropy", "kl")},
              "seconds": {"train": train_seconds, "estimate": estimate_seconds}}
    if partial:
        record["partial"] = True
    return record


def train(config: TrainConfig, out: str | Path, device: torch.device, resume: bool,
          progress: Callable[[str, int, int, dict], None] = lambda stage, done, total, record: None) -> list[dict]:
    """Run (or resume) the whole experiment into ``out``; returns the metrics records."""
    run = runs.RunDir(out, "train", runs.config_dict(config), resume=resume)
    train_set, test_set = experiment.load_images(config)
    if config.teacher_run:
        vae = experiment.finished_teacher(config.teacher_run, config)
    else:
        vae = experiment.fit_teacher(config, Path(out) / "teacher", resume or (Path(out) / "teacher").exists(),
                                     train_set, test_set, device,
                                     lambda e, r: progress("teacher", e, config.teacher.epochs, r))
    vae = vae.to(device).eval()
    with torch.no_grad():  # the student's data: the teacher's mean reconstructions, original labels
        train_x = vae.reconstruct(torch.from_numpy(train_set.as_float()).to(device))
        test_x = vae.reconstruct(torch.from_numpy(test_set.as_float()).to(device))
    train_y = torch.from_numpy(train_set.labels).to(device)
    test_y = torch.from_numpy(test_set.labels).to(device)
    session = new_session(config, device)
    tracker = tracking.Tracker(vae.decoder, session.q, train_x, train_y, test_x, test_y, config.track)
    state = run.load()
    if state is not None:
        session.restore(state)
    else:
        session.records.append(_record(tracker.measure(session.student, epoch_labels(config, train_y, session),
                                                       session.generators["track"]), 0, 0, None, 0.0, False))
        run.save(session.state())
    steps_per_epoch = -(-len(train_x) // config.student.batch)
    for epoch in range(session.epochs_done + 1, config.epochs + 1):
        labels = epoch_labels(config, train_y, session)
        run_epoch(config, session, tracker, labels, epoch, steps_per_epoch)
        run.save(session.state())
        progress("student", epoch, config.epochs, session.records[-1])
    return session.records
