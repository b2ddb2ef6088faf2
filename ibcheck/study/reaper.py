"""A watchdog that kills what a local Ray leaves behind when its driver is killed.

``ray.init(address="local")`` starts gcs_server, a raylet, agents, a log monitor and workers as
descendants of the driver. A driver killed with SIGKILL runs no cleanup, and those processes
outlive it (some ignore SIGTERM). So right after a local ``ray.init`` the driver starts this
module as a separate process, in a session of its own (a Ctrl-C to the terminal's process
group does not reach it). Every ``PERIOD`` seconds it records the driver's descendants (pid and
start time, from /proc); once the driver is gone it stops and SIGKILLs every recorded process
still alive with the same start time (a reused pid is left alone), and the descendants of those,
a few times over ``SWEEP_SECONDS``, then exits. A driver that shuts Ray down normally stops the
watchdog (``Watchdog.stop``). Linux only: elsewhere ``start`` returns a watchdog that does nothing.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

PERIOD = 0.5  # seconds between two looks at the driver and its descendants
SWEEP_SECONDS = 3.0  # how long to keep killing after the driver is gone: children may be reparented
_PROC = "/proc"


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time in clock ticks since boot) of ``pid`` from /proc/PID/stat, or None
    where it is gone. The command name (field 2) may hold spaces and parentheses, hence rpartition."""
    try:  # os.read, not open(): half the CPU of a scan
        fd = os.open(f"{_PROC}/{pid}/stat", os.O_RDONLY)
        try:
            fields = os.read(fd, 4096).rpartition(b")")[2].split()
        finally:
            os.close(fd)
        return fields[0].decode(), int(fields[1]), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _table() -> dict[int, tuple[int, int]]:
    """{pid: (ppid, start time)} of every live (not zombie) process."""
    table = {}
    for name in os.listdir(_PROC):
        if name.isdigit() and (stat := _stat(int(name))) is not None and stat[0] not in "ZX":
            table[int(name)] = stat[1], stat[2]
    return table


def _tree(roots: dict[int, int], table: dict[int, tuple[int, int]]) -> dict[int, int]:
    """{pid: start time} of the live processes among ``roots`` (where their start time still
    matches) and of all their descendants in ``table``."""
    found = {pid: start for pid, start in roots.items() if table.get(pid, (0, -1))[1] == start}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = table[child][1]
                todo.append(child)
    return found


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot), None where it is gone or a zombie."""
    stat = _stat(pid)
    return stat[2] if stat is not None and stat[0] not in "ZX" else None


def descendants(pid: int | None = None) -> dict[int, int]:
    """{pid: start time} of every live descendant of ``pid`` (default: this process); {} off Linux."""
    pid = os.getpid() if pid is None else pid
    if not os.path.isdir(f"{_PROC}/self") or (start := start_time(pid)) is None:
        return {}
    return {p: s for p, s in _tree({pid: start}, _table()).items() if p != pid}


def _signal(procs: dict[int, int], sig: int) -> None:
    for pid, start in procs.items():
        if start_time(pid) == start:  # never a process that took over a dead one's pid
            with contextlib.suppress(OSError):
                os.kill(pid, sig)


def _sweep(known: dict[int, int]) -> None:
    """Stop the known processes and their descendants until no new one appears (a stopped process
    forks no more), then SIGKILL them all."""
    stopped: dict[int, int] = {}
    while new := {p: s for p, s in _tree({**known, **stopped}, _table()).items()
                  if p not in stopped and p != os.getpid()}:
        _signal(new, signal.SIGSTOP)
        stopped.update(new)
    _signal(stopped, signal.SIGKILL)


def watch(driver: int, driver_start: int, known: dict[int, int]) -> None:
    """Record the driver's descendants while it lives (one /proc scan per PERIOD), then kill them."""
    me = os.getpid()
    while start_time(driver) == driver_start:
        known = _tree({**known, driver: driver_start}, _table())
        known.pop(me, None)
        time.sleep(PERIOD)
    known.pop(driver, None)
    deadline = time.monotonic() + SWEEP_SECONDS
    while True:
        _sweep(known)
        if time.monotonic() >= deadline:
            return
        time.sleep(PERIOD)


class Watchdog:
    """The watchdog process of one driver (None off Linux); ``stop`` ends it, as does leaving a
    ``with`` block."""

    def __init__(self, process: subprocess.Popen | None):
        self.process = process

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM's default action: it exits at once, killing nothing
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(pid: int | None = None) -> Watchdog:
    """Start a watchdog over ``pid`` (default: this process). Its current descendants go on the
    command line, so that those are killed even if the driver dies before the watchdog's first scan.
    The watchdog runs this file by path in isolated mode (``-I``): it needs only the standard library."""
    pid = os.getpid() if pid is None else pid
    if not os.path.isdir(f"{_PROC}/self") or (start := start_time(pid)) is None:
        return Watchdog(None)
    known = [f"{p}:{s}" for p, s in descendants(pid).items()]
    process = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), str(pid), str(start), *known],
                               start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, close_fds=True)
    return Watchdog(process)


if __name__ == "__main__":  # python reaper.py DRIVER_PID DRIVER_START_TIME [PID:START_TIME ...]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pairs = (arg.split(":") for arg in sys.argv[3:])
    watch(int(sys.argv[1]), int(sys.argv[2]), {int(p): int(s) for p, s in pairs})
