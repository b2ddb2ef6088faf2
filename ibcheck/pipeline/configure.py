"""From a preset, a ``--config`` file and the command line to one validated config.

The file goes through ``schema.from_json`` (the validator every settings object
shares), then the command-line values apply, then the rules that tie fields
together. With ``--teacher T`` the data and the teacher come from T's recorded
config, so students of any seed can share T when the data settings match.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from ibcheck import schema
from ibcheck.config import PRESETS, DataConfig, TeacherRunConfig, TrainConfig
from ibcheck.interface import InputError
from ibcheck.pipeline import teacher_run


def load_config_file(path: str | None) -> dict:
    """The JSON object of a ``--config`` file ({} without one)."""
    if path is None:
        return {}
    value = schema.read_json(path, f"--config {path}")
    if not isinstance(value, dict):
        raise InputError(f"--config {path}: must hold a JSON object")
    return value


def _parse(cls: type, overrides: dict, base: Any, label: str) -> Any:
    def fail(key: str, why: str):
        raise InputError(f"{label}: {key} {why}" if key else f"{label}: {why}")

    return schema.from_json(cls, overrides, "", fail, base)


def _data(config: DataConfig, overrides: dict, source: str | None, data_dir: str | None) -> DataConfig:
    """Apply --data / --data-dir, then the rules between the data fields."""
    if data_dir is not None:
        config = dataclasses.replace(config, source="idx", dir=data_dir)
    elif source is not None:
        config = dataclasses.replace(config, source=source, dir=None)
    if config.source == "idx" and config.dir is None:
        raise InputError("data.source idx needs data.dir (or --data-dir DIR)")
    if config.source != "idx" and config.dir is not None:
        raise InputError(f"data.dir is only read with data.source idx, not {config.source}")
    if config.source != "mnist10k":
        if "test_fraction" in overrides.get("data", {}):
            raise InputError(f"data.test_fraction splits only the built-in mnist10k; {config.source} has test files")
        config = dataclasses.replace(config, test_fraction=None)
    elif config.test_fraction is None:
        raise InputError("data.test_fraction must be a number for the built-in mnist10k")
    return config


def teacher_config(overrides: dict, *, seed: int | None, data: str | None, data_dir: str | None,
                   epochs: int | None, label: str = "--config", preset: str = "paper") -> TeacherRunConfig:
    """The config of ``ibcheck teacher``: the ``data`` and ``teacher`` sections of ``train``'s preset
    of that name (so that ``train --preset P --teacher`` accepts the run), the file's, then the options."""
    if preset not in PRESETS:
        raise InputError(f"--preset {preset}: unknown (choose from {', '.join(PRESETS)})")
    base = TeacherRunConfig(PRESETS[preset].data, PRESETS[preset].teacher)
    config = _parse(TeacherRunConfig, overrides, base, label)
    teacher = config.teacher
    if seed is not None:
        teacher = dataclasses.replace(teacher, seed=seed)
    if epochs is not None:
        if epochs < 1:
            raise InputError(f"--epochs must be >= 1, got {epochs}")
        teacher = dataclasses.replace(teacher, epochs=epochs)
    return TeacherRunConfig(_data(config.data, overrides, data, data_dir), teacher)


def _first_difference(ours: Any, theirs: Any, path: str = "") -> str | None:
    a, b = schema.to_json(ours), schema.to_json(theirs)
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            found = _first_difference(a[key], b.get(key), schema.join(path, key))
            if found:
                return found
        return None
    return None if a == b else f"{path} is {json.dumps(b)} there, {json.dumps(a)} here"


def _with_teacher_run(config: TrainConfig, overrides: dict, path: str) -> TrainConfig:
    """Take the data and the teacher from the teacher run at ``path``; refuse other data."""
    recorded = teacher_run.read_teacher_run(path)
    differs = _first_difference(config.data, recorded.data, "data")
    if differs:
        raise InputError(f"--teacher {path}: its data differ from this run's ({differs})")
    if "teacher" in overrides:
        raise InputError(f"--teacher {path}: the teacher section comes from that run; remove it from --config")
    return dataclasses.replace(config, teacher_run=path, teacher=recorded.teacher)


def train_config(preset: str, overrides: dict, *, seed: int | None = None, data: str | None = None,
                 data_dir: str | None = None, zero_info: str | None = None,
                 teacher: str | None = None, label: str = "--config") -> TrainConfig:
    """A preset, a config file's overrides (nested by section), then the command-line values.

    Without ``teacher.seed`` in the file, a teacher trained by this run takes the run's seed.
    ``label`` starts the message of an error in ``overrides``."""
    if preset not in PRESETS:
        raise InputError(f"--preset {preset}: unknown (choose from {', '.join(PRESETS)})")
    if "preset" in overrides:
        raise InputError(f"{label}: preset is chosen with --preset, not in the file")
    config = _parse(TrainConfig, overrides, PRESETS[preset], label)
    top = {k: v for k, v in (("seed", seed), ("zero_info", zero_info), ("teacher_run", teacher)) if v is not None}
    config = dataclasses.replace(config, **top, data=_data(config.data, overrides, data, data_dir))
    if "seed" not in overrides.get("teacher", {}):
        config = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, seed=config.seed))
    if config.teacher_run is not None:
        config = _with_teacher_run(config, overrides, config.teacher_run)
    return config
