"""Run folders: config.json, metrics.jsonl, checkpoints and a status, written so that a run
killed at any moment (SIGKILL included) resumes with no lost and no duplicated epoch.

The checkpoint is the single source of truth: it holds the model and optimiser states, the
generators' states and every metrics record so far. After each epoch it is written to a
temporary file, synced to disk, and renamed over ``checkpoint.pt``, whose previous version
becomes ``checkpoint.prev.pt``; a checkpoint that cannot be read falls back to that one.
metrics.jsonl is then rewritten (atomically) from the records, so a crash between the two
writes is repaired on resume. ``status.json`` says whether the run finished or diverged. A
lock (``.lock``, ``fcntl.flock``) keeps a second process out of a folder in use.
"""
from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ibcheck import fileio, schema
from ibcheck.config import TeacherRunConfig, TrainConfig
from ibcheck.interface import InputError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
STATUS = "status.json"
LOCK = fileio.LOCK
OURS = {CONFIG, METRICS, CHECKPOINT, PREVIOUS, STATUS}
# config keys that say where something is, not what the run is: a moved study folder resumes
# with its teacher at the new path (whose own config is checked when it is loaded)
LOCATIONS = ("teacher_run",)
# the settings each kind of run records; former field names in an old config.json are read as current
CONFIG_TYPES: dict[str, type] = {"train": TrainConfig, "teacher": TeacherRunConfig}
log = logging.getLogger("ibcheck")


class RunDir:
    """One run's folder. ``kind`` ("teacher" or "train") and the config must match on resume.

    The constructor only checks, so a command can validate everything before it writes;
    ``create`` then takes the lock, removes stale temporary files and writes config.json; use the
    returned folder as a context manager to give the lock back."""

    def __init__(self, path: str | Path, kind: str, config: dict, resume: bool):
        self.path, self.kind, self.config = Path(path), kind, config
        self._lock: fileio.FolderLock | None = None
        self._check(resume)

    def _check(self, resume: bool) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path}: exists and is not a folder")
        if (self.path / CONFIG).exists():
            existing = read_config(self.path, str(self.path))
            if existing.get("kind") != self.kind or not same_run(existing.get("config"), self.config, self.kind):
                raise InputError(f"{self.path}: holds another run (different kind or config); choose a new --out")
            if not resume:
                raise InputError(f"{self.path}: a run is already there; pass --resume to continue it")
        elif self.path.exists() and not fileio.only_leftovers(self.path, OURS, recurse=True):
            raise InputError(f"{self.path}: folder is not empty and holds no {CONFIG}; choose a new --out")

    def create(self) -> RunDir:
        """Make the folder, lock it for this process, clean it, and record the config."""
        self._lock = fileio.FolderLock(self.path, "another ibcheck process is using this run; wait for it to end")
        fileio.remove_stale_temporaries(self.path, OURS)
        recorded = {"kind": self.kind, "config": self.config}
        if not (self.path / CONFIG).exists() or read_config(self.path, str(self.path)) != recorded:
            fileio.write_json(self.path / CONFIG, recorded)  # new, or moved (``LOCATIONS`` only differ)
        return self

    def release(self) -> None:
        """Give the lock back (it also goes when the process ends)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def load(self) -> dict | None:
        """The last readable checkpoint (``load_state``), or None for a fresh run; metrics.jsonl
        is rewritten to match it."""
        state = load_state(self.path)
        if state is not None:
            self._write_metrics(state["records"])
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint (which must hold ``records``), keeping the last one as
        checkpoint.prev.pt, then rewrite metrics.jsonl."""
        with self._present(), fileio.atomic_path(self.path / CHECKPOINT, self.path / PREVIOUS, False) as tmp:
            torch.save(state, tmp)
        self._write_metrics(state["records"])

    def set_status(self, status: str, **details: Any) -> None:
        """Record how the run ended: "finished", or "diverged" with the reason."""
        with self._present():
            fileio.write_json(self.path / STATUS, {"status": status, **details}, make_parent=False)

    def _write_metrics(self, records: list[dict]) -> None:
        lines = (json.dumps(r, allow_nan=False) + "\n" for r in records)
        with self._present():
            fileio.write_text(self.path / METRICS, "".join(lines), make_parent=False)

    @contextlib.contextmanager
    def _present(self) -> Iterator[None]:
        """A write into the folder, which must still hold the run: one deleted or moved away
        while the run wrote it is an InputError (never made again without its config.json)."""
        try:
            yield
        except FileNotFoundError:
            if (self.path / CONFIG).is_file():
                raise
            raise InputError(f"{self.path}: the run folder was deleted or moved while the run wrote it; "
                             f"run the command again to start the run anew") from None


def same_run(recorded: object, config: dict, kind: str) -> bool:
    """Whether a recorded config is ``config``'s run: equal but for ``LOCATIONS``, once the former
    field names it may hold are read as current (``schema.current_names``)."""
    if not isinstance(recorded, dict):
        return False
    if kind in CONFIG_TYPES:
        recorded = dict(schema.current_names(CONFIG_TYPES[kind], recorded))
    missing = object()
    keys = (recorded.keys() | config.keys()) - set(LOCATIONS)
    return all(recorded.get(k, missing) == config.get(k, missing) for k in keys)


def load_state(folder: Path) -> dict | None:
    """The last readable checkpoint of a run folder, or None where it has none. A corrupt
    checkpoint.pt falls back to checkpoint.prev.pt, with a warning; both corrupt is an InputError."""
    current, previous = folder / CHECKPOINT, folder / PREVIOUS
    if not current.exists() and not previous.exists():
        return None
    state = _read_checkpoint(current)
    if state is None:
        state = _read_checkpoint(previous)
        if state is None:
            raise InputError(f"{current}: corrupt, and no readable {PREVIOUS} beside it; start again in a new --out")
        log.warning("ibcheck: warning: %s is unreadable; using %s (epoch %s)", current, PREVIOUS,
                    len([r for r in state["records"] if not r.get("partial")]) - 1)
    return state


def _read_checkpoint(path: Path) -> dict | None:
    """A checkpoint's state, or None if it is missing, truncated, zeroed or not ours."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - any unreadable file is the same case: fall back
        return None
    return state if isinstance(state, dict) and isinstance(state.get("records"), list) else None


def read_metrics(folder: Path) -> list[dict] | None:
    """A run folder's metrics records, None where it has no readable metrics.jsonl; InputError
    naming the line that is not JSON."""
    path = folder / METRICS
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    records = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                raise InputError(f"{path}: line {number} is not JSON") from None
    return records


def read_status(folder: Path) -> dict:
    """A run's status.json ({} while it runs or where there is none)."""
    try:
        value = json.loads((folder / STATUS).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_config(folder: Path, label: str) -> dict:
    """A run folder's config.json as {"kind": ..., "config": ...}; InputError if it is unreadable."""
    path = folder / CONFIG
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{label}: not a run folder (no readable {CONFIG}: {err.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise InputError(f"{label}: {CONFIG} does not hold an object")
    return value


def generator_states(**generators: torch.Generator) -> dict[str, torch.Tensor]:
    return {name: g.get_state() for name, g in generators.items()}


def restore_generators(states: dict[str, torch.Tensor], **generators: torch.Generator) -> None:
    for name, g in generators.items():
        g.set_state(states[name])
