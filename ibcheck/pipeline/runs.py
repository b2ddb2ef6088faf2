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
import math
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


def with_finite_numbers(record: dict) -> dict:
    """The record with each non-finite number (an estimator that overflowed, or ``Infinity`` in a
    file read back) replaced by null, and the key paths of those numbers listed under
    ``not_finite`` (after any listed before): JSON has no NaN, and a null must not pass for a
    measurement."""
    bad: list[str] = []

    def clean(value, path: str):
        if isinstance(value, dict):
            return {k: clean(v, f"{path}.{k}" if path else k) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, float) and not math.isfinite(value):
            bad.append(path)
            return None
        return value

    cleaned = clean(record, "")
    if bad:
        before = cleaned.get("not_finite")
        cleaned["not_finite"] = [*(before if isinstance(before, list) else []), *bad]
    return cleaned


def number_or_null(value: Any) -> bool:
    """A JSON number (not a boolean) or null."""
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _measured(value: Any) -> bool:
    """A measured value as records hold it: {"value": x, "stderr": s, ...}, x and s numbers or null."""
    return isinstance(value, dict) and number_or_null(value.get("value")) and number_or_null(value.get("stderr"))


def _estimates(value: Any) -> bool:
    return isinstance(value, dict) and all(_measured(v) for v in value.values())


def _numbers(value: Any) -> bool:
    return isinstance(value, dict) and all(number_or_null(v) for v in value.values())


def _population(value: Any) -> bool:
    return isinstance(value, dict) and ("width" not in value or (
        all(_measured(value.get(end)) for end in ("lower", "upper", "width")) and number_or_null(value.get("T"))))


# what each key of a metrics record must hold where it is present (``interface.MetricsRecord``); the
# reports index these without looking, so a record read back is checked first
RECORD_KEYS: dict[str, tuple[Any, str]] = {
    "epoch": (lambda v: v is not None and number_or_null(v), "a number"),
    "step": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "partial": (lambda v: isinstance(v, bool), "true or false"),
    "I_XZ": (_estimates, 'an object of {"value", "stderr"} objects'),
    "I_YZ": (_estimates, 'an object of {"value", "stderr"} objects'),
    "population": (_population, 'an object with "lower", "upper" and "width" estimates and "T"'),
    "q_fit": (lambda v: isinstance(v, dict), "an object"),
    "accuracy": (_numbers, "an object of numbers"),
    "logdet_cov": (number_or_null, "a number or null"),
    "grad_norm": (number_or_null, "a number or null"),
    "loss": (lambda v: number_or_null(v) or _numbers(v), "a number, null or an object of numbers"),
    "seconds": (lambda v: number_or_null(v) or _numbers(v), "a number or an object of numbers"),  # a teacher's: one
    "ln_N": (number_or_null, "a number or null"),
    "not_finite": (lambda v: isinstance(v, list) and all(isinstance(k, str) for k in v), "a list of key paths"),
}
REQUIRED_KEYS = ("epoch",)  # a teacher run's records have no step


def check_record(record: Any, where: str) -> dict:
    """``record`` if it is a metrics record of the right shape (``RECORD_KEYS``; other keys are
    left alone), else an InputError naming ``where`` and the key."""
    if not isinstance(record, dict):
        raise InputError(f"{where} is not a JSON object (a metrics record)")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise InputError(f"{where} has no \"{missing[0]}\"")
    for key, (ok, what) in RECORD_KEYS.items():
        if key in record and not ok(record[key]):
            raise InputError(f"{where}: \"{key}\" must be {what}, got {schema.show(record[key])[:80]}")
    return record


def read_text(path: Path) -> str:
    """A file of a run folder read back, bounded (``schema.read_regular``: a regular file of at
    most ``schema.MAX_JSON_BYTES``); OSError where it is missing or unreadable."""
    try:
        return schema.read_regular(path, str(path)).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


def read_metrics(folder: Path) -> list[dict] | None:
    """A run folder's metrics records, None where it has no readable metrics.jsonl; InputError
    naming the line that is not a metrics record (``check_record``). Non-finite numbers (``Infinity``, ``NaN``) read
    back as null, listed under ``not_finite`` (``with_finite_numbers``)."""
    path = folder / METRICS
    try:
        lines = read_text(path).splitlines()
    except OSError:
        return None
    records = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                raise InputError(f"{path}: line {number} is not JSON") from None
            records.append(check_record(with_finite_numbers(record) if isinstance(record, dict) else record,
                                        f"{path}: line {number}"))
    return records


def read_status(folder: Path) -> dict:
    """A run's status.json ({} while it runs or where there is none, or none readable)."""
    try:
        value = json.loads(read_text(folder / STATUS))
    except (OSError, ValueError, RecursionError, InputError):
        return {}
    return value if isinstance(value, dict) else {}


def read_config(folder: Path, label: str) -> dict:
    """A run folder's config.json as {"kind": ..., "config": ...}; InputError if it is unreadable."""
    path = folder / CONFIG
    try:
        value = json.loads(read_text(path))
    except (OSError, ValueError, RecursionError) as err:
        raise InputError(f"{label}: not a run folder (no readable {CONFIG}: {err.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise InputError(f"{label}: {CONFIG} does not hold an object")
    return value


def generator_states(**generators: torch.Generator) -> dict[str, torch.Tensor]:
    return {name: g.get_state() for name, g in generators.items()}


def restore_generators(states: dict[str, torch.Tensor], **generators: torch.Generator) -> None:
    for name, g in generators.items():
        g.set_state(states[name])
