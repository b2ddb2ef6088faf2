"""Atomic file output: a reader never sees a half-written file, and an interrupted run leaves
whatever was there before intact.

Each file is written to a temporary file beside it, flushed to disk (fsync), given the
permissions the umask allows, renamed over the target, and the folder is synced, so a
power loss leaves either the old file or the new one. A target that is a symbolic link is
written through to the file it points to; one that exists and is not a regular file (a
device, a FIFO, a folder) is refused, never renamed over.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ibcheck.interface import InputError

# The names of our temporary files: ".NAME.RANDOM.tmp" beside NAME.
TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.[^.]+\.tmp$")


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def target(path: str | Path, label: str | None = None) -> Path:
    """The file a write to ``path`` replaces: symbolic links resolved; refused unless it is a
    regular file or does not exist yet (``label`` names it in the message, default the path)."""
    real = Path(os.path.realpath(path))
    if real.exists() and not real.is_file():
        kind = "a folder" if real.is_dir() else "not a regular file"
        raise InputError(f"{label or path}: is {kind}; refusing to replace it")
    return real


def _fsync(path: Path, folder: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if folder else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, previous: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename,
    after ``path`` itself was moved to ``previous`` (if given and ``path`` exists)."""
    path = target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync(Path(tmp))
        os.chmod(tmp, 0o666 & ~umask())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
        _fsync(path.parent, folder=True)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temporaries(folder: Path, names: set[str]) -> list[Path]:
    """Delete our temporary files of ``names`` left in ``folder`` by a killed process."""
    removed = []
    for entry in folder.iterdir() if folder.is_dir() else []:
        match = TEMP_PATTERN.match(entry.name)
        if match and match["name"] in names and entry.is_file():
            entry.unlink()
            removed.append(entry)
    return removed


def finite_or_none(value):
    """JSON has no NaN or infinity: non-finite floats become None, recursively (callers that
    must not lose the fact say why beside it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, document) -> None:
    """JSON with non-finite numbers refused (they are not JSON)."""
    write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def write_csv(path: str | Path, header: list[str], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def write_npz(path: str | Path, arrays: dict) -> None:
    """numpy arrays (and strings) by name into one uncompressed .npz file."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def save_figure(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip("."), dpi=130, bbox_inches="tight")
