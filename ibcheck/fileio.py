"""Atomic file output: a reader never sees a half-written file, and an interrupted run leaves
whatever was there before intact.

Each file is written to a temporary file beside it, flushed to disk (fsync), given the
permissions the umask allows, renamed over the target, and the folder is synced, so a
power loss leaves either the old file or the new one. A target that is a symbolic link is
written through to the file it points to; one that exists and is not a regular file (a
device, a FIFO, a folder) is refused, never renamed over.

A folder (a report) is replaced whole the same way (``replacing_folder``): it is written into a
hidden staging folder beside it, which then takes its place, so that at every instant the folder
holds either the previous version or the new one, complete (``swap_folder``).
"""
from __future__ import annotations

import contextlib
import csv
import ctypes
import errno
import fcntl
import functools
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ibcheck.interface import InputError

# The names of our temporary files: ".NAME.RANDOM.tmp" beside NAME.
TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.[^.]+\.tmp$")
LOCK = ".lock"  # the file a folder's lock is held on (``FolderLock``)


class FolderLock:
    """An exclusive lock on a folder, held on FOLDER/.lock with ``fcntl.flock`` until ``release``,
    the end of a ``with`` block or of the process (a killed process leaves no stale lock). The
    folder is made if needed. A second process gets an InputError of one line: FOLDER: ``busy``."""

    def __init__(self, folder: str | Path, busy: str):
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
        except OSError as err:
            raise InputError(f"{folder}: cannot be written ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"{folder}: {busy}") from None
        self.fd: int | None = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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
def atomic_path(path: str | Path, previous: Path | None = None, make_parent: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename,
    after ``path`` itself was moved to ``previous`` (if given and ``path`` exists). Without
    ``make_parent``, a missing folder is FileNotFoundError instead of being made (a run folder
    deleted under a running run must not come back without its config)."""
    path = target(path)
    if make_parent:
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


def only_leftovers(folder: Path, names: set[str], recurse: bool = False) -> bool:
    """Whether ``folder`` holds nothing but a lock (``LOCK``) and our temporary files of ``names``:
    what a process killed before it wrote its first file leaves, which counts as empty. With
    ``recurse``, subfolders that hold only the same count as leftovers too."""
    for entry in folder.iterdir():
        match = TEMP_PATTERN.match(entry.name)
        ours = entry.name == LOCK or (match is not None and match["name"] in names and entry.is_file())
        inside = recurse and entry.is_dir() and not entry.is_symlink() and only_leftovers(entry, names, recurse)
        if not ours and not inside:
            return False
    return True


def remove_stale_temporaries(folder: Path, names: set[str]) -> list[Path]:
    """Delete our temporary files of ``names`` left in ``folder`` by a killed process."""
    removed = []
    for entry in folder.iterdir() if folder.is_dir() else []:
        match = TEMP_PATTERN.match(entry.name)
        if match and match["name"] in names and entry.is_file():
            entry.unlink()
            removed.append(entry)
    return removed


# ---- a folder replaced whole -------------------------------------------------------------------

# A folder NAME is staged in ".NAME.RANDOM.tmp" beside it; the fallback swap moves the previous
# NAME into ".NAME.RANDOM.old/NAME" for the moment between its two renames.
STAGING_SUFFIX, BACKUP_SUFFIX = ".tmp", ".old"
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # <linux/fcntl.h>, <linux/fs.h>
_CANNOT_EXCHANGE = (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP)


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """The C library's renameat2 (Linux, glibc 2.28 and later), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names of ``a`` and ``b`` (both exist) in one atomic step: True if done; False, with
    nothing changed, where the system or the file system cannot."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _CANNOT_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(b))


def _hidden(folder: Path, suffix: str) -> list[Path]:
    """Our staging (``.tmp``) or backup (``.old``) folders of ``folder``, beside it."""
    pattern = re.compile(rf"^\.{re.escape(folder.name)}\.[a-z0-9_]+{re.escape(suffix)}$")
    return sorted(p for p in folder.parent.iterdir() if pattern.match(p.name) and p.is_dir() and not p.is_symlink())


def recover_folder(folder: Path) -> None:
    """Tidy what an interrupted ``swap_folder`` left beside ``folder``: where ``folder`` is missing
    (a kill between the fallback's two renames), its previous version is put back from the backup;
    then the staging and backup folders are deleted, as each holds a version that ``folder`` has
    replaced or one that was never swapped in."""
    backups = [b for b in _hidden(folder, BACKUP_SUFFIX) if (b / folder.name).is_dir()]
    if backups and not os.path.lexists(folder):
        newest = max(backups, key=lambda b: b.stat().st_mtime)
        os.rename(newest / folder.name, folder)
        _fsync(folder.parent, folder=True)
    for stale in _hidden(folder, STAGING_SUFFIX) + _hidden(folder, BACKUP_SUFFIX):
        shutil.rmtree(stale)


def swap_folder(staging: Path, folder: Path) -> None:
    """Put the finished ``staging`` folder in the place of ``folder`` (which need not exist) and
    delete the previous version, so that at every instant ``folder`` holds one of the two, complete.

    On Linux the two are exchanged in one step (renameat2 with RENAME_EXCHANGE). Where that is not
    available, ``folder`` is first moved into a hidden backup beside it: an exception before the
    second rename puts it back, and a kill there leaves it for ``recover_folder`` to restore."""
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise InputError(f"{folder}: is not a folder; refusing to replace it")
    _fsync(staging, folder=True)
    if not os.path.lexists(folder):
        os.rename(staging, folder)
        _fsync(folder.parent, folder=True)
        return
    if _exchange(staging, folder):
        _fsync(folder.parent, folder=True)
        shutil.rmtree(staging)  # the previous version, now
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=BACKUP_SUFFIX, dir=folder.parent))
    try:
        os.rename(folder, backup / folder.name)
        try:
            os.rename(staging, folder)
        except BaseException:
            os.rename(backup / folder.name, folder)  # the previous version back
            raise
        _fsync(folder.parent, folder=True)
    finally:
        if os.path.lexists(folder):  # else the backup holds the only copy, for recover_folder
            shutil.rmtree(backup)


@contextlib.contextmanager
def replacing_folder(path: str | Path) -> Iterator[Path]:
    """Yield a new, empty staging folder beside the folder ``path``; when the block ends without an
    exception the staging folder replaces ``path`` whole (``swap_folder``), otherwise it is deleted
    and ``path`` stays as it was. A symbolic link is followed: the folder it points to is replaced.
    What a killed run left beside ``path`` is tidied first (``recover_folder``)."""
    folder = Path(os.path.realpath(path))
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(folder)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=STAGING_SUFFIX, dir=folder.parent))
    try:
        os.chmod(staging, 0o777 & ~umask())
        yield staging
        swap_folder(staging, folder)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)


def refuse_foreign(folder: str | Path, names: set[str] | tuple[str, ...], label: str, what: str) -> None:
    """A folder that a report replaces whole must hold nothing but ``names``: InputError
    (``label``: holds 'x', which is not part of ``what``) otherwise."""
    real = Path(os.path.realpath(folder))
    if real.is_dir():
        foreign = sorted(p.name for p in real.iterdir() if p.name not in names)
        if foreign:
            raise InputError(f"{label}: holds {foreign[0]!r}, which is not part of {what}; choose an empty folder")


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


def write_text(path: str | Path, text: str, make_parent: bool = True) -> None:
    with atomic_path(path, make_parent=make_parent) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, document, make_parent: bool = True) -> None:
    """JSON with non-finite numbers refused (they are not JSON)."""
    write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n", make_parent)


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


def figure(*grid: int, figsize: tuple[float, float], constrained_layout: bool = False, **subplots):
    """(figure, axes) of a new ``grid`` of subplots, as ``pyplot.subplots`` gives them, but made
    with matplotlib's object API: no backend is chosen and pyplot's global list of figures is not
    touched, so importing ibcheck leaves a notebook's backend alone and no figure needs closing."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, constrained_layout=constrained_layout)
    return fig, fig.subplots(*grid, **subplots)


def save_figure(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip("."), dpi=130, bbox_inches="tight")
