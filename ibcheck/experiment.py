"""The paper's experiment: a teacher VAE, the student's data, and a VIB student tracked
in the information plane every epoch (Herwana & Kadian, sections 3-4)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ibcheck import data, runs, student as student_mod, teacher as teacher_mod, tracking
from ibcheck.interface import InputError


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (``config.json``); ``preset`` names the defaults."""

    preset: str = "paper"
    epochs: int = 200
    seed: int = 0
    data: str = "mnist10k"
    data_dir: Optional[str] = None
    test_fraction: float = 0.2
    train_points: Optional[int] = None  # use only the first n training images (None: all)
    zero_info: Optional[str] = None  # None, "redraw" (new independent labels every epoch) or "fixed"
    teacher_run: Optional[str] = None  # a finished ``ibcheck teacher`` run to use instead of training one
    teacher: teacher_mod.TeacherConfig = teacher_mod.TeacherConfig()
    student: student_mod.StudentConfig = student_mod.StudentConfig()
    track: tracking.TrackConfig = tracking.TrackConfig()


PRESETS = {
    "paper": TrainConfig(),
    # about a minute on two CPU cores, teacher included: small data, few epochs, small estimates
    "smoke": TrainConfig(preset="smoke", epochs=3, train_points=2000,
                         teacher=teacher_mod.TeacherConfig(epochs=3),
                         student=student_mod.StudentConfig(hidden=256),
                         track=tracking.TrackConfig(subset=300, test_subset=300, q_steps=10, n_eval=300, iw_n=64,
                                                    batch_N=128, n_batches=4, early_points=3)),
}


def build_config(preset: str, overrides: Optional[dict] = None, **top) -> TrainConfig:
    """A preset with a config file's overrides (nested by section) and command-line values."""
    if preset not in PRESETS:
        raise InputError(f"--preset {preset}: unknown (choose from {', '.join(PRESETS)})")
    config = PRESETS[preset]
    sections = {"teacher": config.teacher, "student": config.student, "track": config.track}
    values = {}
    for key, value in (overrides or {}).items():
        if key in sections:
            if not isinstance(value, dict):
                raise InputError(f"--config: section '{key}' must be an object")
            values[key] = _replace(sections[key], value, key)
        elif key in {f.name for f in dataclasses.fields(TrainConfig)} - {"preset"}:
            values[key] = value
        else:
            raise InputError(f"--config: unknown key '{key}'")
    values.update({k: v for k, v in top.items() if v is not None})
    config = dataclasses.replace(config, **values)
    _check(config)
    return config


def _replace(section, values: dict, name: str):
    fields = {f.name: f for f in dataclasses.fields(section)}
    for key, value in values.items():
        if key not in fields:
            raise InputError(f"--config: unknown key '{name}.{key}'")
        default = getattr(section, key)
        if isinstance(default, tuple):
            value = tuple(value) if isinstance(value, list) else value
        ok = (value is None or isinstance(value, type(default)) or
              (isinstance(default, float) and type(value) is int) or default is None)
        if not ok or isinstance(value, bool) != isinstance(default, bool):
            raise InputError(f"--config: '{name}.{key}' must be like {json.dumps(default)}, got {json.dumps(value)}")
    return dataclasses.replace(section, **values)


def _check(config: TrainConfig) -> None:
    for key, kind in (("train_points", int), ("data_dir", str), ("teacher_run", str)):
        value = getattr(config, key)
        if value is not None and (type(value) is not kind):
            raise InputError(f"--config: '{key}' must be {kind.__name__} or null, got {json.dumps(value)}")
    if config.zero_info not in (None, "redraw", "fixed"):
        raise InputError(f"zero_info must be null, \"redraw\" or \"fixed\", got {json.dumps(config.zero_info)}")
    if type(config.epochs) is not int or config.epochs < 1 or config.teacher.epochs < 1:
        raise InputError(f"epochs and teacher.epochs must be integers >= 1, got {config.epochs}, {config.teacher.epochs}")
    if config.student.batch < 1 or config.track.subset < 2 or config.track.n_batches < 2 or config.track.batch_N < 2:
        raise InputError("student.batch must be >= 1; track.subset, track.n_batches and track.batch_N >= 2")
    if config.student.encoder not in ("mlp", "cnn") or config.student.optimizer not in ("adam", "sgd"):
        raise InputError("student.encoder must be mlp or cnn, student.optimizer adam or sgd")


def load_config_file(path: str) -> dict:
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"--config {path}: cannot be read ({err.__class__.__name__})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"--config {path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(value, dict):
        raise InputError(f"--config {path}: must hold a JSON object")
    return value


def load_images(config: TrainConfig) -> tuple[data.ImageSet, data.ImageSet]:
    """(train, test) images of the run; with ``train_points`` a seeded random subset of the
    training images (the built-in subset is grouped by class, so a prefix would not do)."""
    train, test = data.load(config.data, config.data_dir, config.test_fraction, config.seed)
    if config.train_points is not None:
        if not 2 <= config.train_points <= len(train.labels):
            raise InputError(f"train_points must be in [2, {len(train.labels)}], got {config.train_points}")
        keep = np.sort(np.random.default_rng(config.seed).permutation(len(train.labels))[:config.train_points])
        train = data.ImageSet(train.images[keep], train.labels[keep], f"{train.source}, {config.train_points} points")
    return train, test


def teacher_run_config(config: TrainConfig) -> dict:
    """What a teacher run depends on: its own settings and the training images."""
    return {"teacher": runs.config_dict(config.teacher), "data": config.data, "data_dir": config.data_dir,
            "test_fraction": config.test_fraction, "seed": config.seed, "train_points": config.train_points}


def fit_teacher(config: TrainConfig, folder: Path, resume: bool, train: data.ImageSet, test: data.ImageSet,
                device: torch.device, progress: Callable[[int, dict], None]) -> teacher_mod.VAE:
    """Train (or finish, or reload) the teacher of ``config`` in ``folder``."""
    run = runs.RunDir(folder, "teacher", teacher_run_config(config), resume=resume)
    return teacher_mod.train_teacher(config.teacher, train.as_float(), test.as_float(), run, device, progress)


def finished_teacher(path: str, config: TrainConfig) -> teacher_mod.VAE:
    """The VAE of an existing teacher run, refused unless it is finished and used the same data."""
    folder = Path(path)
    try:
        saved = json.loads((folder / runs.CONFIG).read_text())
    except (OSError, json.JSONDecodeError):
        raise InputError(f"--teacher {path}: not a teacher run (no readable {runs.CONFIG})") from None
    if saved.get("kind") != "teacher" or saved.get("config") != teacher_run_config(config):
        raise InputError(f"--teacher {path}: its teacher settings or data differ from this run's")
    records = (folder / runs.METRICS).read_text().splitlines() if (folder / runs.METRICS).exists() else []
    if len(records) < config.teacher.epochs:
        raise InputError(f"--teacher {path}: unfinished ({len(records)} of {config.teacher.epochs} epochs)")
    return teacher_mod.load_teacher(folder / runs.CHECKPOINT, config.teacher)
