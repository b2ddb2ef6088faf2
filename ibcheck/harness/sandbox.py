"""A user's Python estimator in a process of its own, which ibcheck can kill (issue 23).

``Sandbox(fn)`` starts one worker process per estimator, lazily, and keeps it for every call of a
run (a persistent worker: the interpreter, numpy and the user's module are loaded once). Each call
sends the pair of arrays to it (so the estimator gets copies: what it does to them in place never
reaches ibcheck's data) and reads back what ``returns.call_here`` made of the return value there: a
finite real float, an interval, or why not. Nothing the estimator does can outlive or end the run:

- past its time limit (plus ``GRACE`` seconds for the transfer) the worker's whole process group
  is killed with SIGKILL, so an estimator that catches every exception stops all the same;
- ``sys.exit`` and ``os._exit`` from Python are recorded failures in the worker; an exit from C
  code, a crash or a signal ends only the worker, and is recorded as such;
- threads and child processes the estimator leaves behind die with the worker's process group
  when the sandbox closes (``close``, at the latest when the interpreter exits), and a worker
  whose parent died exits within a second.

The arrays go through a memory-mapped file the two processes share (unlinked at once; in /dev/shm where
there is one), not through the pipe: a 784-dimensional set then costs two copies, not a pickle and a
pipe's many small writes. A worker that ended is started again for the next call. ``fn`` travels to the worker by
cloudpickle: a module's function by reference (the worker imports its module, with the parent's
``sys.path``), a lambda, closure or ``__main__`` function by value. This module imports neither
torch nor the rest of ibcheck, because the worker imports it too.
"""
from __future__ import annotations

import mmap
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from multiprocessing.connection import Connection
from pathlib import Path

import cloudpickle
import numpy as np

from ibcheck.harness import returns
from ibcheck.interface import InputError

# seconds a worker may take to start and load the estimator (its module's imports: torch alone takes 3 s quiet,
# and 30 s on a loaded machine), and the allowance over a call's time limit for moving the arrays and the answer
STARTUP_SECONDS = 300.0
GRACE = 0.5
_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the ibcheck package
_REAL_EXIT = os._exit  # the worker's watchdog exits for real even inside exits_caught

Answer = tuple["float | returns.Read | None", "str | None", float]
Layout = tuple[tuple[int, ...], str, int]  # an array's shape, dtype and byte offset in the shared file
_ALIGN = 64


class _Shared:
    """A file both processes map, grown as arrays need: the parent writes a call's arrays into it,
    the worker copies them out. Unlinked as soon as it is made, so nothing is left on disk."""

    def __init__(self, fd: int | None = None) -> None:
        if fd is None:
            folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
            fd, path = tempfile.mkstemp(prefix="ibcheck-sandbox-", dir=folder)
            os.unlink(path)
        self.fd, self.size = fd, 0
        self.map: mmap.mmap | None = None

    def fit(self, size: int) -> None:
        """Map at least ``size`` bytes (the parent grows the file first, ``grow``)."""
        if size > self.size:
            if self.map is not None:
                self.map.close()
            self.map, self.size = mmap.mmap(self.fd, size), size

    def grow(self, size: int) -> None:
        if size > self.size:
            size = max(size, 2 * self.size)
            os.ftruncate(self.fd, size)
            self.fit(size)

    def put(self, arrays: tuple[np.ndarray, ...]) -> tuple[list[Layout], int]:
        """Write ``arrays`` one after another; their layouts and the bytes used."""
        layouts, offset = [], 0
        for array in arrays:
            layouts.append((tuple(array.shape), array.dtype.str, offset))
            offset += -(-array.nbytes // _ALIGN) * _ALIGN
        self.grow(offset)
        for array, (shape, dtype, start) in zip(arrays, layouts):
            np.ndarray(shape, dtype, buffer=self.map, offset=start)[...] = array
        return layouts, offset

    def take(self, layouts: list[Layout], size: int) -> list[np.ndarray]:
        """Copies of the arrays the parent put (the estimator's own, to change as it likes)."""
        self.fit(size)
        return [np.ndarray(shape, dtype, buffer=self.map, offset=start).copy() for shape, dtype, start in layouts]

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
        os.close(self.fd)


class SandboxError(InputError):
    """The estimator cannot be sent to a process of its own (it does not pickle)."""


def _pickled(fn: object) -> bytes:
    try:
        return cloudpickle.dumps(fn)
    except Exception as err:  # the user's object: whatever its __reduce__ raises
        raise SandboxError(f"estimator {getattr(fn, '__name__', type(fn).__name__)} cannot be sent to a process of "
                           f"its own: {' '.join(str(err).splitlines()) or type(err).__name__} (define it at the top "
                           f"level of a module, or make its object picklable)") from None


def _ended(status: int | None) -> str:
    """Why a worker process is gone, from its exit status (negative: the signal that killed it)."""
    if status is not None and status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"ended its process: killed by {name}"
    return f"ended its process with exit status {status} (an exit from C code, or a crash)"


def _kill_group(process: subprocess.Popen) -> int | None:
    """SIGKILL the worker's process group (it leads its own session) and reap the worker."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return process.wait()


class _Worker:
    """One running worker process and its two pipes."""

    def __init__(self, payload: bytes) -> None:
        to_child, from_parent = os.pipe()
        to_parent, from_child = os.pipe()
        self.shared = _Shared()
        code = f"import sys; sys.path.insert(0, {_ROOT!r}); from ibcheck.harness.sandbox import serve; serve()"
        fds = (to_child, from_child, self.shared.fd)
        try:
            self.process = subprocess.Popen([sys.executable, "-u", "-c", code, *map(str, fds)], pass_fds=fds,
                                            start_new_session=True, stdin=subprocess.DEVNULL)
        finally:
            os.close(to_child)
            os.close(from_child)
        self.send = Connection(from_parent, readable=False)
        self.receive = Connection(to_parent, writable=False)
        self._reaper = weakref.finalize(self, _kill_group, self.process)
        self.send.send((list(sys.path), payload))

    def wait_ready(self) -> str | None:
        """None once the estimator is loaded there, else why it could not be."""
        if not self.receive.poll(STARTUP_SECONDS):
            self.stop()
            return f"its process did not start within {STARTUP_SECONDS:.0f} s"
        try:
            kind, why = self.receive.recv()
        except EOFError:
            return _ended(self.stop())
        return None if kind == "ready" else f"could not be loaded in its own process: it {why}"

    def stop(self) -> int | None:
        """Kill the worker and everything it started; its exit status."""
        status = _kill_group(self.process)
        self._reaper.detach()
        self.send.close()
        self.receive.close()
        self.shared.close()
        return status


class Sandbox:
    """``fn(a, b)`` called in a worker process of its own (module docstring); a context manager
    that kills the worker on exit. SandboxError where ``fn`` does not pickle."""

    def __init__(self, fn: object) -> None:
        self._payload = _pickled(fn)
        self._worker: _Worker | None = None
        self._cannot_start: str | None = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The running worker's process id, None when none runs."""
        return self._worker.process.pid if self._worker else None

    def close(self) -> None:
        """Kill the worker, if one runs, with its threads and child processes."""
        if self._worker is not None:
            worker, self._worker = self._worker, None
            worker.stop()

    def _started(self) -> _Worker | str:
        if self._cannot_start is not None:
            return self._cannot_start
        if self._worker is None:
            worker = _Worker(self._payload)
            why = worker.wait_ready()
            if why is not None:
                worker.stop()
                self._cannot_start = why  # loading it again would fail again, and cost the wait again
                return why
            self._worker = worker
        return self._worker

    def call(self, a: np.ndarray, b: np.ndarray, time_limit: float) -> Answer:
        """(value, None, seconds) or (None, why, seconds), as ``returns.call_here`` in the worker;
        a call past ``time_limit`` (+ ``GRACE``), or one that ends the worker, kills it and is a
        failure. A KeyboardInterrupt here or in the estimator is raised, with the worker killed."""
        worker = self._started()
        if isinstance(worker, str):
            return None, worker, 0.0
        started = time.perf_counter()
        try:
            return self._exchange(worker, a, b, time_limit, started)
        except BaseException:
            self.close()
            raise

    def _exchange(self, worker: _Worker, a: np.ndarray, b: np.ndarray, time_limit: float, started: float) -> Answer:
        try:
            worker.send.send((*worker.shared.put((a, b)), time_limit))
            answered = worker.receive.poll(time_limit + GRACE)
            message = worker.receive.recv() if answered else None
        except (EOFError, BrokenPipeError):
            self._worker = None
            return None, _ended(worker.stop()), time.perf_counter() - started
        if message is None:
            self.close()
            return None, f"ran past the time limit of {time_limit:g} s", time.perf_counter() - started
        if message[0] == "interrupted":
            raise KeyboardInterrupt
        _, value, why, seconds = message
        return value, why, seconds


# ---------------------------------------------------------------- the worker's side


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone (the worker is then adopted), whatever the estimator is doing."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        _REAL_EXIT(1)

    threading.Thread(target=watch, name="ibcheck-parent-watch", daemon=True).start()


def _load(receive: Connection) -> returns.Estimator:
    path, payload = receive.recv()
    sys.path[:] = path
    with returns.exits_caught():
        return cloudpickle.loads(payload)


def serve() -> None:
    """The worker's loop: load the estimator, then answer each (a, b, time_limit) with
    ``("done", value, why, seconds)`` until the parent closes the pipe."""
    receive = Connection(int(sys.argv[1]), writable=False)
    send = Connection(int(sys.argv[2]), readable=False)
    shared = _Shared(int(sys.argv[3]))
    _watch_parent(os.getppid())
    try:
        fn = _load(receive)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # the user's module, imported here again, fails in any way
        send.send(("failed", returns.failure(err)))
        return
    send.send(("ready", None))
    while True:
        try:
            layouts, size, time_limit = receive.recv()
        except EOFError:
            return
        a, b = shared.take(layouts, size)
        try:
            send.send(("done", *returns.call_here(fn, a, b, time_limit)))
        except KeyboardInterrupt:
            send.send(("interrupted",))
