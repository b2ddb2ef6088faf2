"""An estimator in any language: for each call ibcheck writes one sample set to files, runs a
command, and reads the estimate back (the external-estimator protocol, docs/guides/external.md).

``Command("Rscript est.R {input} {output}")`` is an estimator like any callable ``fn(a, b)``;
``validate --estimator-cmd`` and ``check_estimator`` run it. The command's text is split as a
POSIX shell splits it (``shlex``) but run without a shell, each of four placeholders replaced
by a path in a fresh folder of its own per call (other braces are left alone):

- ``{input}``: an ``.npz`` file with the arrays keyed as ``ibcheck sample`` keys them, without
  the case prefix (``x`` and ``z``, or ``y`` and ``z``), and ``header``, the header's JSON text;
- ``{csv}``: the same pairs as CSV, one row a pair, columns ``x0, x1, ..., z0, ...`` (written only
  when the command names it: a wide case's CSV costs more than its npz);
- ``{header}``: the header as a JSON file (``header``);
- ``{output}``: where the command writes ``{"estimate": E}`` in nats, optionally with
  ``"interval": [LOW, HIGH]`` (null for an open end) and its ``"level"`` in (0, 1).

The command must name ``{output}`` and one of ``{input}`` or ``{csv}``. A non-zero exit status, a
missing or malformed output, or a run past the time limit is a failure of the call
(``CommandFailed``); the command's whole process group is killed when the call ends, so that
neither it nor anything it started outlives the call.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ibcheck import schema, stats
from ibcheck.interface import InputError, Target

PLACEHOLDERS = ("input", "csv", "header", "output")
PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
FILES = {"input": "sample.npz", "csv": "sample.csv", "header": "header.json", "output": "estimate.json"}
OUTPUT_KEYS = ("estimate", "interval", "level")
MAX_OUTPUT_BYTES = 1 << 20  # an estimate is a few numbers; more is not an answer
NAME_CHARS = 48
# an estimate, or (estimate, low, high) with an interval, or (estimate, low, high, level) with its level
Reading = float | tuple[float, ...]


class CommandFailed(Exception):
    """A call of an external command that gave no estimate; its message says why, on one line."""


class TimedOut(CommandFailed):
    """A call of an external command killed at its time limit."""


def parse_template(template: str) -> list[str]:
    """The command's words (``shlex.split``), or an InputError of one line: it cannot be split, or
    it lacks ``{output}`` or an input. Only the four placeholders are replaced; any other brace
    (an awk program's, say) is left as it is."""
    label = f"--estimator-cmd {schema.show(template)}"
    try:
        words = shlex.split(template)
    except ValueError as err:
        raise InputError(f"{label}: cannot be split into words ({err})") from None
    if not words:
        raise InputError(f"{label}: is empty")
    named = {match[1] for word in words for match in PLACEHOLDER.finditer(word)}
    if "output" not in named or not named & {"input", "csv"}:
        raise InputError(f"{label}: must name {{output}} and one of {{input}} or {{csv}}")
    return words


def _filled(word: str, paths: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda match: paths[match[1]], word)


def default_name(template: str) -> str:
    """A command's name in the tables: its text with runs of blanks as one space; a text longer
    than ``NAME_CHARS`` is cut and ends in a hash of the whole, so that two commands never share
    a name by being cut alike."""
    text = " ".join(template.split())
    if len(text) <= NAME_CHARS and text.isprintable():
        return text
    digest = hashlib.sha256(template.encode()).hexdigest()[:8]
    shown = "".join(c if c.isprintable() else "?" for c in text[:NAME_CHARS - 12])  # "...#" and 8 hex digits
    return f"{shown}...#{digest}"


class Command:
    """An external command as an estimator (see the module docstring): ``Command(template)(a, b)``
    writes a: (n, d) and b: (n, m) to files, runs the command and returns its estimate in nats
    (``read_output``: a float, or a tuple with its interval). ``for_call`` binds the
    header of one call of a run; ``time_limit`` (seconds) kills a call that runs longer."""

    def __init__(self, template: str, name: str | None = None, time_limit: float = 60.0):
        self.words = parse_template(template)
        self.template, self.name, self.time_limit = template, name or default_name(template), time_limit
        self.named = {match[1] for word in self.words for match in PLACEHOLDER.finditer(word)}
        self.header: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Command({self.template!r})"

    def for_call(self, case: str, target: Target, seed: int, call: int, repeats: int,
                 time_limit: float) -> Command:
        """A copy that writes this header (case name, target, seed, call index of ``repeats``)
        and runs for at most ``time_limit`` seconds."""
        bound = copy.copy(self)
        bound.time_limit = time_limit
        bound.header = {"case": case, "target": target, "seed": seed, "call": call, "repeats": repeats}
        return bound

    def __call__(self, a: np.ndarray, b: np.ndarray) -> Reading:
        with _call_folder() as folder:
            paths = {key: str(folder / name) for key, name in FILES.items()}
            self._write_inputs(a, b, paths)
            argv = [_filled(word, paths) for word in self.words]
            _run(argv, folder, self.time_limit)
            return read_output(Path(paths["output"]))

    def _write_inputs(self, a: np.ndarray, b: np.ndarray, paths: dict[str, str]) -> None:
        names = ("y" if self.header.get("target") == "I_YZ" else "x", "z")
        header = {**self.header, "n": int(a.shape[0]), "arrays": list(names),
                  "columns": [int(a.shape[1]), int(b.shape[1])]}
        text = json.dumps(header)
        Path(paths["header"]).write_text(text + "\n")
        if "input" in self.named:
            arrays: dict[str, Any] = {names[0]: a, names[1]: b, "header": np.array(text)}
            np.savez(paths["input"], **arrays)
        if "csv" in self.named:
            columns = [f"{names[0]}{i}" for i in range(a.shape[1])] + [f"{names[1]}{i}" for i in range(b.shape[1])]
            np.savetxt(paths["csv"], np.hstack([a, b]), delimiter=",", fmt="%.17g", header=",".join(columns),
                       comments="")


@contextlib.contextmanager
def _call_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="ibcheck-call-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(argv: list[str], folder: Path, time_limit: float) -> None:
    """Run ``argv`` in its own session (stdin empty, stdout and stderr to files in ``folder``);
    CommandFailed where it cannot start, exits non-zero or outlives ``time_limit``. Whatever
    ends the call (an interrupt included), the process group is killed before this returns."""
    with open(folder / "stdout", "wb") as out, open(folder / "stderr", "wb") as err:
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                       start_new_session=True)
        except OSError as error:
            raise CommandFailed(f"could not start {schema.show(argv[0])}: {error.strerror or error}") from None
        try:
            code = process.wait(timeout=time_limit)
        except subprocess.TimeoutExpired:
            raise TimedOut(f"ran past the time limit of {time_limit:g} s; its processes were killed") from None
        finally:
            _kill_group(process)
    if code != 0:
        raise CommandFailed(f"exited with status {_status(code)}{_last_line(folder / 'stderr')}")


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the command's process group (what it started too), then reap the command."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _status(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"{code} (killed by {signal.Signals(-code).name})"
    return str(code)


def _last_line(path: Path) -> str:
    """``"; stderr: LAST LINE"`` of what the command printed there (cut to 200 characters), or ""."""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 4096))
        lines = [line for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        return ""
    last = "".join(c if c.isprintable() else "?" for c in lines[-1].strip())
    return f"; stderr: {last[:200]}"


def read_output(path: Path) -> Reading:
    """The estimate a command wrote to ``path``: E, or (E, LOW, HIGH) with an interval (an open end
    null in the JSON, -inf or inf here), or (E, LOW, HIGH, LEVEL) where it gives the interval's
    level. CommandFailed says what is wrong."""
    try:
        raw = schema.read_regular(path, "its output")  # a FIFO left there would block the read forever
    except FileNotFoundError:
        raise CommandFailed("exited 0 but wrote no output file") from None
    except OSError as err:
        raise CommandFailed(f"its output cannot be read ({err.strerror or err})") from None
    except InputError as err:
        raise CommandFailed(str(err)) from None
    if len(raw) > MAX_OUTPUT_BYTES:
        raise CommandFailed(f"its output is longer than {MAX_OUTPUT_BYTES} bytes")
    try:
        value = schema.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise CommandFailed(f"its output is not JSON ({' '.join(str(err).split())[:120]})") from None
    return _parsed(value)


def _fail(path: str, message: str) -> NoReturn:
    raise CommandFailed(f'its output\'s "{path}" {message}')


def _parsed(value: Any) -> Reading:
    """The output's JSON, checked by the validator ibcheck's own files use (``schema``)."""
    if not isinstance(value, dict) or "estimate" not in value:
        raise CommandFailed(f'its output must be a JSON object {{"estimate": ...}}, got {schema.show(value)}')
    schema.check_keys(value, OUTPUT_KEYS, ("estimate",), "", _fail)
    estimate = schema.number(value["estimate"], "estimate", {}, _fail)
    if "interval" not in value:
        if "level" in value:
            raise CommandFailed('its output gives a "level" but no "interval"')
        return estimate
    interval = value["interval"]
    if not isinstance(interval, list) or len(interval) != 2:
        raise CommandFailed(f'its "interval" must be [LOW, HIGH], got {schema.show(interval)}')
    low, high = (bound if end is None else schema.number(end, "interval", {}, _fail)
                 for end, bound in zip(interval, (-math.inf, math.inf)))
    if not low <= high:
        raise CommandFailed(f'its "interval" has LOW > HIGH: {schema.show(interval)}')
    level = value.get("level")
    if level is not None and not stats.is_level(level):
        raise CommandFailed(f'its "level" must be a number in (0, 1), got {schema.show(level)}')
    return (estimate, low, high) if level is None else (estimate, low, high, float(level))
