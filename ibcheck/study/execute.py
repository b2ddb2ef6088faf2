"""``ibcheck study``: a study's teachers and cells as Ray tasks, each writing its own run folder.

The driver only schedules and records: every teacher and every cell is an ordinary run
folder (``ibcheck teacher`` / ``ibcheck train``) written by the worker that trains it, so a
killed driver loses nothing but time, and re-running the command skips finished cells,
resumes killed ones and retries failed ones. Ray is local by default (started inside the
process) or an existing cluster by address; on a cluster every node must see the study
folder at the same path (a shared file system) and have ibcheck installed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import math
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ibcheck import fileio, schema
from ibcheck.config import TeacherRunConfig, TrainConfig
from ibcheck.interface import Diverged, InputError
from ibcheck.pipeline import runs
from ibcheck.study import reaper, results, spec, summary
from ibcheck.study.spec import TEACHERS, Cell, Study

LOCK = fileio.LOCK
STATUS_FINISHED = "finished"
_watchdog: reaper.Watchdog | None = None  # kills a local Ray's processes if this driver is killed


@dataclasses.dataclass(frozen=True)
class Resources:
    """What each task declares to Ray: CPU threads, and a GPU fraction where the cluster has
    GPUs (several small cells then share one GPU)."""

    cpus: int = 1
    gpus: float = 0.25


# ---------------------------------------------------------------- tasks (run on the workers)


def _fail(label: str) -> Callable[[str, str], Any]:
    def fail(key: str, why: str):
        raise InputError(f"{label}: {key} {why}")

    return fail


def _device(use_gpu: bool):
    import torch

    return torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")


def teacher_task(config: dict, folder: str, threads: int, use_gpu: bool) -> dict:
    """Train (or finish) one teacher run; returns {"status", "error", "seconds"}."""
    import torch

    from ibcheck.pipeline import data, teacher_run

    torch.set_num_threads(threads)
    started = time.perf_counter()
    try:
        parsed = schema.from_json(TeacherRunConfig, config, "", _fail(folder))
        train, test = data.load_images(parsed.data, parsed.teacher.seed)
        run = teacher_run.teacher_folder(parsed, Path(folder), resume=True)
        teacher_run.fit_teacher(parsed, run, train.as_float(), test.as_float(), _device(use_gpu), lambda e, r: None)
        return {"status": STATUS_FINISHED, "error": None, "seconds": time.perf_counter() - started}
    except (InputError, Diverged) as err:
        return {"status": "failed", "error": f"teacher: {err}", "seconds": time.perf_counter() - started}


def cell_task(config: dict, folder: str, threads: int, use_gpu: bool) -> dict:
    """Train (or resume) one cell's run folder; returns {"status", "error", "seconds"}."""
    import torch

    from ibcheck.pipeline import training

    torch.set_num_threads(threads)
    started = time.perf_counter()
    try:
        parsed = schema.from_json(TrainConfig, config, "", _fail(folder))
        training.train(parsed, folder, _device(use_gpu), resume=True)
        status, error = STATUS_FINISHED, None
    except Diverged as err:
        status, error = "diverged", str(err)
    except InputError as err:
        status, error = "failed", str(err)
    return {"status": status, "error": error, "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------- the driver


def check_folder(study: Study, folder: Path) -> tuple[Study, dict | None]:
    """Refuse a folder that holds another study (other cells, compared by ``spec.identity``) or
    anything else. Returns the study with its cells named as the folder's study.json names them
    (``spec.adopt_names``: a reordered spec finds its finished cells) and that record, None for a
    new folder. Every cell folder already there must hold this cell's run."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    if (folder / results.STUDY_FILE).exists():
        recorded = results.read_study_file(folder)
        study = spec.adopt_names(study, recorded, str(folder))
    elif folder.exists() and not fileio.only_leftovers(folder, LEDGER_FILES):
        raise InputError(f"{folder}: folder is not empty and holds no {results.STUDY_FILE}; choose a new --out")
    else:
        recorded = None
    for cell in study.cells:
        runs.RunDir(folder / cell.name, "train", schema.to_json(cell.with_teacher(folder)), resume=True)
    return study, recorded


# what a driver killed before study.json first existed leaves: its lock, its half-written files
LEDGER_FILES = {results.STUDY_FILE, results.SUMMARY_FILE}


class StudyLock(fileio.FolderLock):
    """The study folder's lock, so that two drivers never run one study; taking it clears what a
    killed driver half wrote."""

    def __init__(self, folder: Path):
        super().__init__(folder, "another ibcheck study is running there; wait for it to end")
        fileio.remove_stale_temporaries(folder, LEDGER_FILES)


def epochs_done(folder: Path) -> int:
    """Whole epochs recorded in a run folder's metrics.jsonl (0 before the first, or where it is
    unreadable)."""
    records = results.read_records(folder)
    return max(0, sum(1 for r in records if not r.get("partial")) - 1)


BEAT_SECONDS = 30.0  # how stale study.json's wall time and summary.csv may be while a study runs


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass
class Ledger:
    """study.json and summary.csv, rewritten atomically after every change."""

    folder: Path
    study: Study
    record: dict
    # the execution being timed (``start``), when it started and when it was last written (perf_counter s)
    execution: dict | None = dataclasses.field(default=None, init=False)
    started: float = dataclasses.field(default=0.0, init=False)
    written: float = dataclasses.field(default=-math.inf, init=False)

    @classmethod
    def open(cls, folder: Path, study: Study, recorded: dict | None) -> Ledger:
        record = recorded or {"kind": "ibcheck-study", "spec": study.canonical, "results": {}, "executions": []}
        record["cells"] = [{"name": c.name, "values": c.values, "teacher": f"{TEACHERS}/{c.teacher}",
                            "config": schema.to_json(c.with_teacher(folder))} for c in study.cells]
        record["description"] = study.description
        record["teachers"] = {key: schema.to_json(config) for key, config in study.teachers.items()}
        return cls(folder, study, record)

    def start(self, execution: dict) -> None:
        """Time ``execution`` (an entry of record["executions"]) from now on, and write it."""
        self.execution, self.started, self.written = execution, time.perf_counter(), -math.inf
        self.beat(force=True)

    def beat(self, force: bool = False) -> None:
        """Rewrite study.json (the execution's wall time so far) and summary.csv (the cells' epochs on disk)
        if BEAT_SECONDS have passed since the last time, or now with ``force``."""
        now = time.perf_counter()
        if self.execution is None or (not force and now - self.written < BEAT_SECONDS):
            return
        self.execution.update(wall_seconds=now - self.started, last_seen=_now())
        self.written = now
        self.write()

    def set(self, name: str, outcome: dict) -> None:
        self.record["results"][name] = {**outcome, "epochs_done": epochs_done(self.folder / name), "at": _now()}
        if self.execution is None:
            self.write()
        else:
            self.beat(force=True)

    def write(self) -> None:
        fileio.write_json(self.folder / results.STUDY_FILE, self.record)
        summary.write_summary(self.folder, self.record)


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """Refuse a HOST:PORT that accepts no connection now, instead of Ray's minutes of retries.
    ``auto`` and ``ray://`` addresses are left to Ray."""
    if address is None or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--address {address}: expected HOST:PORT (e.g. 10.0.0.1:6379), auto or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            speaks_grpc = os.environ.get("RAY_USE_TLS", "0") not in ("0", "") or _answers_http2(conn)
    except OSError as err:
        raise InputError(f"--address {address}: no Ray cluster answers there ({err.strerror or err}); "
                         f"start one with `ray start --head`") from None
    if not speaks_grpc:  # Ray's own client would retry against it for many minutes
        raise InputError(f"--address {address}: something listens there, but it did not answer as Ray's GCS "
                         f"(gRPC) within {timeout:g} s; give the head node's GCS port (6379 by default)")


# HTTP/2's client preface and an empty SETTINGS frame (RFC 9113 sections 3.4 and 6.5): a gRPC server
# such as Ray's GCS answers with a SETTINGS frame of its own at once, before any request
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _answers_http2(conn: socket.socket) -> bool:
    """Whether the server on ``conn`` answers the HTTP/2 preface with a frame header of type
    SETTINGS (4) before the socket's timeout."""
    try:
        conn.sendall(_HTTP2_PREFACE)
        header = b""
        while len(header) < 9:
            chunk = conn.recv(9 - len(header))
            if not chunk:
                return False
            header += chunk
    except (TimeoutError, ConnectionError):
        return False
    return header[3] == 4


@contextlib.contextmanager
def _quiet_stderr():
    """Hold back what Ray's C++ client writes to stderr while it connects: its retries print a
    line a second; a failure is reported in one line instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


WORKER_NICENESS = "RAY_worker_niceness"  # Ray's own setting (its default is 15), read when a local Ray starts


def connect_ray(address: str | None, runtime_env: dict | None = None):
    """Ray, started inside this process (``address`` None) or connected to the cluster at
    ``address``; a cluster that cannot be reached is an InputError of one line. ``runtime_env``
    (e.g. environment variables) goes to every worker."""
    try:
        import ray
    except ImportError:
        raise InputError("ibcheck needs Ray for this: pip install 'ray>=2.9'") from None
    if address is None:  # a new Ray inside this process (never a cluster that `ray start` left running), on
        # the cores this process may use, not all the machine's
        # Ray starts its workers at nice 15, so on a busy machine a study's cells wait behind everything else;
        # ibcheck's local workers run at the driver's priority unless RAY_worker_niceness says otherwise
        os.environ.setdefault(WORKER_NICENESS, "0")
        ray.init(address="local", num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False,
                 log_to_driver=False, logging_level=logging.ERROR, runtime_env=runtime_env)
        global _watchdog
        if _watchdog is not None:
            _watchdog.stop()
        _watchdog = reaper.start()  # a SIGKILLed driver runs no cleanup: Ray's processes would outlive it
        return ray
    try:
        with _quiet_stderr():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                     runtime_env=runtime_env)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as err:
        hint = ("; if the cluster uses token authentication (the default of `ray start` since Ray 2.59), set "
                "RAY_AUTH_MODE=token here and give this machine its token (`ray get-auth-token` on the head)"
                if os.environ.get("RAY_AUTH_MODE") != "token" else "")
        raise InputError(f"--address {address}: cannot connect to a Ray cluster "
                         f"({str(err).strip().splitlines()[0]}){hint}") from None
    return ray


def shutdown(ray) -> None:
    """``ray.shutdown()``, then stop the watchdog of a local Ray (nothing of Ray is left for it)."""
    global _watchdog
    ray.shutdown()
    if _watchdog is not None:
        _watchdog.stop()
        _watchdog = None


def _outcome(ray, ref) -> dict:
    """A task's result, or a failure naming what Ray reported (a crashed worker, a lost node)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:
        return {"status": "failed", "error": f"{err.__class__.__name__}: {str(err).strip().splitlines()[-1]}",
                "seconds": None}


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """What every task of this execution declares (``ray``) and uses (threads, a GPU or not)."""

    threads: int
    gpus: float

    @property
    def ray(self) -> dict:
        return {"num_cpus": self.threads, "num_gpus": self.gpus, "max_retries": 0}

    @property
    def gpu(self) -> bool:
        return self.gpus > 0


def _teachers(ray, study: Study, folder: Path, options: TaskOptions,
              progress: Callable[[dict], None]) -> dict[str, dict]:
    """Train every teacher not finished yet, in parallel; {key: outcome} of the ones that failed.
    ``progress`` hears about once a second how many teachers are still training."""
    task = ray.remote(teacher_task).options(**options.ray)
    pending = {}
    for key, config in study.teachers.items():
        path = folder / TEACHERS / key
        if runs.read_status(path).get("status") != STATUS_FINISHED:
            pending[task.remote(schema.to_json(config), str(path.resolve()), options.threads, options.gpu)] = key
    outcomes = {}
    while pending:
        progress({**_state(study, folder, {}, {}), "teachers": len(pending)})
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in ready:
            outcomes[pending.pop(ref)] = _outcome(ray, ref)
    return {key: o for key, o in outcomes.items() if o["status"] != STATUS_FINISHED}


def _todo(study: Study, folder: Path) -> list[Cell]:
    """The cells to run: those not finished, and finished ones whose metrics.jsonl is missing,
    unreadable or cut short (resuming rewrites it from the checkpoint, or trains the cell again
    where it has none)."""
    return [c for c in study.cells if not results.finished(folder / c.name, c.config.epochs)]


def run_study(study: Study, folder: Path, address: str | None, resources: Resources,
              progress: Callable[[dict], None] = lambda state: None,
              connecting: Callable[[str], None] = lambda address: None) -> dict[str, dict]:
    """Run every unfinished cell of ``study`` into ``folder`` on Ray; returns {cell: outcome}
    for the cells run now. ``progress`` gets {"epochs", "done", "running", "failed"} about
    once a second, and "teachers" (how many still train) while the teachers train;
    ``connecting`` gets ``address`` just before a cluster is asked for, only if a cell is to run."""
    folder = folder.resolve()
    check_address(address)
    study, recorded = check_folder(study, folder)
    todo = _todo(study, folder)
    if todo and address:
        connecting(address)  # Ray may take a while to answer: the caller can say what is awaited
    ray = connect_ray(address) if todo else None  # connect before anything is written
    if ray is not None:
        try:
            check_resources(ray, resources)
        except InputError:
            shutdown(ray)
            raise
    try:
        lock = StudyLock(folder)
    except InputError:  # another driver runs there: leave nothing of our Ray behind
        if ray is not None:
            shutdown(ray)
        raise
    with lock:
        ledger = Ledger.open(folder, study, recorded)
        ledger.write()
        progress(_state(study, folder, {}, {}))  # a finished study shows as finished, not as 0 epochs
        if ray is None:
            return {}
        # recorded now and kept up to date (``Ledger.beat``): a driver killed mid-run leaves its execution, with
        # the wall time it had run ("ended" null), and a summary.csv at most BEAT_SECONDS old
        execution = {"started": _now(), "ended": None, "address": address or "local", "cpus_per_cell": resources.cpus,
                     "cells_to_run": len(todo), "wall_seconds": 0.0}
        ledger.record["executions"].append(execution)
        ledger.start(execution)
        try:
            outcomes = _run_cells(ray, study, folder, todo, resources, ledger, progress, execution)
        finally:
            ledger.beat(force=True)
            execution["ended"] = execution["last_seen"]
            ledger.write()
            shutdown(ray)
    return outcomes


def check_resources(ray, resources: Resources) -> None:
    """Refuse a task size that no live node can hold: Ray would queue such tasks silently forever."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    if resources.cpus > cpus:
        raise InputError(f"--cpus-per-cell {resources.cpus}: no node of the Ray cluster has that many CPUs "
                         f"(the largest has {cpus:g}); lower it")
    gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    if gpus > 0 and resources.gpus > gpus:
        raise InputError(f"--gpus-per-cell {resources.gpus:g}: no node of the Ray cluster has that many GPUs "
                         f"(the largest has {gpus:g}); lower it")


def _run_cells(ray, study: Study, folder: Path, todo: list[Cell], resources: Resources, ledger: Ledger,
               progress: Callable[[dict], None], execution: dict) -> dict[str, dict]:
    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    gpus = resources.gpus if has_gpu else 0.0
    execution.update(gpus_per_cell=gpus, ray_version=ray.__version__,
                     cluster_cpus=ray.cluster_resources().get("CPU", 0))
    options = TaskOptions(resources.cpus, gpus)
    outcomes: dict[str, dict] = {}
    failed_teachers = _teachers(ray, study, folder, options, progress)
    task = ray.remote(cell_task).options(**options.ray)
    pending = {}
    for cell in todo:
        if cell.teacher in failed_teachers:
            outcomes[cell.name] = failed_teachers[cell.teacher]
            ledger.set(cell.name, outcomes[cell.name])
            continue
        config = schema.to_json(cell.with_teacher(folder))
        pending[task.remote(config, str(folder / cell.name), options.threads, options.gpu)] = cell
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in ready:
            cell = pending.pop(ref)
            outcomes[cell.name] = _outcome(ray, ref)
            ledger.set(cell.name, outcomes[cell.name])
        progress(_state(study, folder, outcomes, pending))
        ledger.beat()
    progress(_state(study, folder, outcomes, {}))
    return outcomes


def _state(study: Study, folder: Path, outcomes: dict[str, dict], pending: dict) -> dict:
    """What the progress bar shows: the cells' whole epochs on disk and the teachers' (a teacher run's
    metrics.jsonl has one record per epoch), cells done, running and failed."""
    done = sum(1 for c in study.cells if runs.read_status(folder / c.name).get("status") == STATUS_FINISHED)
    teacher_epochs = sum(min(len(results.read_records(folder / TEACHERS / key)), config.teacher.epochs)
                         for key, config in study.teachers.items())
    return {"epochs": sum(epochs_done(folder / c.name) for c in study.cells), "teacher_epochs": teacher_epochs,
            "done": done, "running": len(pending),
            "failed": sum(1 for o in outcomes.values() if o["status"] != STATUS_FINISHED)}
