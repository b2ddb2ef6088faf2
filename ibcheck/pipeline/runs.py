"""Run folders: config.json, metrics.jsonl and a checkpoint, written so that a run killed
at any moment (SIGKILL included) resumes with no lost and no duplicated epoch.

The checkpoint is the single source of truth: it holds the model and optimiser
states, the generators' states and every metrics record so far, and is replaced
atomically after each epoch. metrics.jsonl is then rewritten (atomically) from
those records, so a crash between the two writes is repaired on resume.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ibcheck import fileio
from ibcheck.interface import InputError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"


class RunDir:
    """One run's folder. ``kind`` ("teacher" or "train") and the config must match on resume."""

    def __init__(self, path: str | Path, kind: str, config: dict, resume: bool):
        self.path, self.kind, self.config = Path(path), kind, config
        self._claim(resume)

    def _claim(self, resume: bool) -> None:
        config_path = self.path / CONFIG
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path}: exists and is not a folder")
        if config_path.exists():
            existing = read_config(self.path, str(self.path))
            if existing.get("kind") != self.kind or existing.get("config") != self.config:
                raise InputError(f"{self.path}: holds another run (different kind or config); choose a new --out")
            if not resume:
                raise InputError(f"{self.path}: a run is already there; pass --resume to continue it")
        elif self.path.exists() and any(self.path.iterdir()):
            raise InputError(f"{self.path}: folder is not empty and holds no {CONFIG}; choose a new --out")
        else:
            fileio.write_json(config_path, {"kind": self.kind, "config": self.config})

    def load(self) -> dict | None:
        """The last checkpoint, or None for a fresh run; metrics.jsonl is rewritten to match it."""
        path = self.path / CHECKPOINT
        if not path.exists():
            return None
        state = torch.load(path, map_location="cpu", weights_only=False)
        self._write_metrics(state["records"])
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Atomically replace the checkpoint (which must hold ``records``), then metrics.jsonl."""
        with fileio.atomic_path(self.path / CHECKPOINT) as tmp:
            torch.save(state, tmp)
        self._write_metrics(state["records"])

    def _write_metrics(self, records: list[dict]) -> None:
        lines = (json.dumps(fileio.finite_or_none(r), allow_nan=False) + "\n" for r in records)
        fileio.write_text(self.path / METRICS, "".join(lines))

    def file(self, name: str) -> Path:
        return self.path / name


def read_config(folder: Path, label: str) -> dict:
    """A run folder's config.json as {"kind": ..., "config": ...}; InputError if it is unreadable."""
    path = folder / CONFIG
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{label}: not a run folder (no readable {CONFIG}: {err.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise InputError(f"{label}: {CONFIG} does not hold an object")
    return value


def generator_states(**generators: torch.Generator) -> dict[str, torch.Tensor]:
    return {name: g.get_state() for name, g in generators.items()}


def restore_generators(states: dict[str, torch.Tensor], **generators: torch.Generator) -> None:
    for name, g in generators.items():
        g.set_state(states[name])
