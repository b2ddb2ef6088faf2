"""A report folder is replaced whole (``fileio.replacing_folder``): interrupted at any step of the
swap, by an exception or by a kill, ``--out`` holds the previous report or the new one, complete,
and the next run puts its own in place with nothing left beside it (hardening issue 19).

Each step is a file-system change the swap makes (a rename, a replace, an exchange, a deletion);
the tests stop a run before its first, second, ... step until one runs through. Both ways of
swapping are exercised: the atomic exchange (Linux) and the two renames of the fallback."""
from __future__ import annotations

import ctypes
import errno
import json
import os
import time
import warnings
from pathlib import Path

import pytest

from ibcheck import fileio
from ibcheck.cli import main
from ibcheck.harness import report

VERSIONS = {  # three reports; the first has a file the others lack, so a mix would show
    "old": {"report.md": "# old\n", "results.json": '{"run": "old"}\n', "extra.csv": "a\n1\n"},
    "new": {"report.md": "# new\n", "results.json": '{"run": "new"}\n', "fig.png": "new png"},
    "next": {"report.md": "# next\n", "results.json": '{"run": "next"}\n', "fig.png": "next png"},
}
KILLED = 86  # the exit status of a child killed at its step


def publish(out: Path, version: str) -> None:
    with fileio.replacing_folder(out) as staging:
        for name, text in VERSIONS[version].items():
            fileio.write_text(staging / name, text)


def contents(folder: Path) -> dict[str, str] | None:
    return {p.name: p.read_text() for p in folder.iterdir()} if folder.is_dir() else None


def version_at(folder: Path) -> str | None:
    """The report ``folder`` holds whole, None where it holds none or a mix."""
    found = contents(folder)
    return next((name for name, files in VERSIONS.items() if files == found), None)


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith("."))


def restorable(out: Path) -> str | None:
    """The report a killed fallback swap left in a hidden backup (what the next run restores)."""
    backups = [p / out.name for p in out.parent.glob(f".{out.name}.*.old") if (p / out.name).is_dir()]
    return version_at(max(backups, key=lambda b: b.parent.stat().st_mtime)) if backups else None


def exchange_works(tmp_path: Path) -> bool:
    a, b = tmp_path / "probe-a", tmp_path / "probe-b"
    a.mkdir(), b.mkdir()
    try:
        return fileio._exchange(a, b)
    finally:
        a.rmdir(), b.rmdir()


@pytest.fixture(params=["exchange", "fallback"])
def way(request, tmp_path):
    if request.param == "exchange" and not exchange_works(tmp_path):
        pytest.skip("no atomic exchange (renameat2) here")
    return request.param


def choose(mp: pytest.MonkeyPatch, way: str) -> None:
    if way == "fallback":
        mp.setattr(fileio, "_exchange", lambda a, b: False)


class Steps:
    """Counts the swap's file-system changes and calls ``stop`` instead of the ``at``-th one."""

    def __init__(self, mp: pytest.MonkeyPatch, at: int, stop):
        self.at, self.stop, self.done = at, stop, []
        for module, name in ((os, "rename"), (os, "replace"), (os, "unlink"), (os, "rmdir"), (fileio, "_exchange")):
            mp.setattr(module, name, self._counted(name, getattr(module, name)))

    def _counted(self, name, function):
        def step(*args, **kwargs):
            if self.stop is not None and len(self.done) + 1 == self.at:
                stop, self.stop = self.stop, None  # one interruption per run
                stop()
            self.done.append(name)
            return function(*args, **kwargs)
        return step


def interrupt() -> None:
    raise KeyboardInterrupt


def test_an_exception_at_any_step_leaves_a_whole_report_at_out(tmp_path, way):
    swapped = False
    for at in range(1, 100):
        out = tmp_path / str(at) / "rep"
        publish(out, "old")
        with pytest.MonkeyPatch.context() as mp:
            choose(mp, way)
            steps = Steps(mp, at, interrupt)
            try:
                publish(out, "new")
                finished = True
            except KeyboardInterrupt:
                finished = False
        assert version_at(out) in ("old", "new"), (at, steps.done, contents(out))
        if finished:  # no step left to interrupt
            assert version_at(out) == "new" and leftovers(out) == []
            break
        swapped |= version_at(out) == "new"
        publish(out, "next")
        assert version_at(out) == "next" and leftovers(out) == [], (at, leftovers(out))
    else:
        pytest.fail("the swap never finished")
    assert swapped and "_exchange" in steps.done  # the interruptions reached the swap itself
    assert steps.done.count("rename") == (0 if way == "exchange" else 2)


def killed_at(at: int, out: Path, version: str, way: str) -> bool:
    """``publish`` in a child process that dies (no cleanup at all) instead of its ``at``-th step;
    True if it died there, False if it ran through."""
    with warnings.catch_warnings():  # Python 3.12 warns of fork in a process with threads; the child only
        warnings.simplefilter("ignore", DeprecationWarning)  # renames and deletes files, then exits
        pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            with pytest.MonkeyPatch.context() as mp:
                choose(mp, way)
                Steps(mp, at, lambda: os._exit(KILLED))
                publish(out, version)
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail(f"the child killed at step {at} hung")
        time.sleep(0.01)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, KILLED), code
    return code == KILLED


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_kill_at_any_step_loses_nothing_even_twice(tmp_path, way):
    """A killed run cleans nothing up. With the exchange ``--out`` holds a whole report at every
    instant; with the fallback a kill between its renames leaves the previous report in a hidden
    backup, which the next run restores before anything else (the bug: it deleted it)."""
    seen = set()  # (whether --out was there, the report there or in the backup) after each kill
    for at in range(1, 100):
        out = tmp_path / str(at) / "rep"
        publish(out, "old")
        if not killed_at(at, out, "new", way):
            assert version_at(out) == "new" and leftovers(out) == []
            break
        for _ in range(2):  # killed, then killed again at the same step of the next run
            now = version_at(out) if out.exists() else restorable(out)
            assert now in ("old", "new"), (at, contents(out), leftovers(out))
            seen.add((out.exists(), now))
            if not killed_at(at, out, "new", way):
                break
        publish(out, "next")  # the next run that finishes
        assert version_at(out) == "next" and leftovers(out) == [], (at, leftovers(out))
    else:
        pytest.fail("the swap never finished")
    # the kills fell before and after the swap; only the fallback ever leaves --out missing
    assert {(True, "old"), (True, "new")} <= seen
    assert ((False, "old") in seen) == (way == "fallback") and ((False, "new") in seen) == (way == "fallback")


def test_a_report_left_in_a_backup_by_a_killed_run_is_restored_not_deleted(tmp_path):
    """What a run killed between the two renames leaves (the layout of earlier versions too):
    ``--out`` missing, the report in ``.rep.RANDOM.old/rep``. The next run interrupted before
    its own swap must leave that report at ``--out``."""
    out = tmp_path / "rep"
    publish(out, "old")
    backup = tmp_path / ".rep.k2j4h5g6.old"
    backup.mkdir()
    os.rename(out, backup / "rep")
    with pytest.raises(KeyboardInterrupt):
        with fileio.replacing_folder(out) as staging:
            fileio.write_text(staging / "report.md", "# half\n")
            raise KeyboardInterrupt
    assert version_at(out) == "old" and leftovers(out) == []


def test_the_swap_follows_a_symlinked_out_and_refuses_a_file(tmp_path):
    real, link = tmp_path / "real", tmp_path / "link"
    publish(real, "old")
    link.symlink_to(real)
    publish(link, "new")
    assert link.is_symlink() and version_at(real) == "new" and leftovers(real) == []
    (tmp_path / "file").write_text("mine")
    with pytest.raises(fileio.InputError, match="not a folder"):
        publish(tmp_path / "file", "new")
    assert (tmp_path / "file").read_text() == "mine"


def test_an_exchange_the_file_system_cannot_do_falls_back_to_renames(tmp_path, monkeypatch):
    def cannot(*args):  # renameat2 on a file system without RENAME_EXCHANGE
        ctypes.set_errno(errno.EINVAL)
        return -1

    monkeypatch.setattr(fileio, "_renameat2", lambda: cannot)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert fileio._exchange(a, b) is False and a.is_dir() and b.is_dir()
    out = tmp_path / "rep"
    publish(out, "old")
    publish(out, "new")
    assert version_at(out) == "new" and leftovers(out) == []


# ---- the two reports that use it --------------------------------------------------------------

CASE = {"name": "swap", "teacher": {"W": [[1.0, 0.0], [0.0, 1.0]], "noise_std": 0.3},
        "encoder": {"A": [[1.0, 0.0], [0.0, 1.0]], "std": [0.5, 0.5]},
        "settings": {"n_exact": 2000, "q": {"steps": 20},
                     "estimators": {"vib": {"n": 200}, "teacher_elbo": {"n": 200}, "teacher_iw": {"K": [1, 4], "n": 100},
                                    "loo": {"N": [16], "batches": 4}, "nce": {"N": [16], "batches": 4},
                                    "empirical": {"N": 16, "sets": 4, "draws": 1},
                                    "teacher_riw": {"K": [0, 1, 4], "n": 100},
                                    "teacher_ais": {"T": [1, 4], "K": 2, "n": 50, "pilot_steps": 4},
                                    "teacher_rais": {"T": [1, 4], "K": 2, "n": 50, "pilot_steps": 4},
                                    "barber_agakov": {"steps": 20, "n": 200}}}}


def cases_file(tmp_path: Path) -> str:
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"cases": [CASE]}))
    return str(path)



def test_validate_restores_the_report_a_killed_swap_left_hidden(tmp_path, monkeypatch):
    """The probe's case: a run killed between the two renames left no ``--out`` and the report in
    a hidden backup; the next run, interrupted before its own swap, deleted it (now: restores it)."""
    out, backup = tmp_path / "rep", tmp_path / ".rep.a1b2c3d4.old"
    (backup / "rep").mkdir(parents=True)
    before = {name: f"previous {name}\n".encode() for name in report.REPORT_FILES}
    for name, data in before.items():
        (backup / "rep" / name).write_bytes(data)
    monkeypatch.setattr(report, "markdown", lambda *args: interrupt())  # the last file the report writes
    argv = ["validate", "--cases", cases_file(tmp_path), "--out", str(out), "--quiet", "--device", "cpu"]
    assert main(argv) == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and leftovers(out) == []
