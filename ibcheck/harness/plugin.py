"""Judge anyone's estimator with the harness's statistics (``check_estimator``).

A user's estimator is a plain callable ``fn(a, b) -> float``: numpy arrays a: (n, d) and
b: (n, m) of n iid pairs, and its estimate of I(A;B) in nats; or an object with such an
``estimate(a, b)`` method (benchmark-mi's interface), whose parameters are recorded where it
exposes them (``objects.parameters_of``); or an external command (``external.Command``). It may return
``(estimate, low, high)`` (or ``(estimate, low, high, level)``) instead, an interval whose
coverage of the truth is judged too (``coverage``). For I(X;Z) it gets (x, z); for
I(Y;Z) it gets (y, z), y: (n, p) real labels or (n, 1) class indices. It is called on
``repeats`` independent sample sets of each case, and the mean over the calls, with the
standard error sd / sqrt(repeats), is judged by bounds.md section 5 like any built-in estimate:
a lower or upper bound one-sided against the truth, a point estimator two-sided (its bias
against 0, with its confidence interval). A call that raises or exits (``sys.exit``), returns
anything but a finite real number, or runs past the time limit makes the case's estimate a
recorded failure, and no more calls are made on that case; the run goes on. ``os._exit`` from
Python code in the estimator's own process is caught the same way (``exits_caught``); an exit
from C code ends the process, which only a separate process (not made here) could survive.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from ibcheck import seeds, stats
from ibcheck.analytic import suite
from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.harness import external
from ibcheck.harness.coverage import Intervals
from ibcheck.interface import BoundKind, Estimate, InputError, Target

# returns an estimate in nats, or (estimate, low, high[, level]) with its interval
Estimator = Callable[[np.ndarray, np.ndarray], "float | tuple[float, ...]"]
# a user's kinds, and the kind of estimate each becomes ("point" is judged two-sided against the truth)
UserKind = Literal["lower", "upper", "point"]
KINDS: dict[str, BoundKind] = {"lower": "lower", "upper": "upper", "point": "point"}
# the longest per-call time limit, in seconds (11.6 days): far longer than any call a run can wait for, and far
# below the 2^63 ns (about 9.2e9 s) past which signal.setitimer overflows
MAX_TIME_LIMIT = 1e6


def check_time_limit(seconds: float) -> None:
    """Refuse a per-call time limit that is not a positive number of seconds at most
    ``MAX_TIME_LIMIT`` (inf and NaN included), before any call is made."""
    try:
        ok = 0 < seconds <= MAX_TIME_LIMIT
    except TypeError:
        ok = False
    if not ok:
        raise InputError(f"time limit {seconds!r} (--estimator-time-limit): must be a positive number of seconds, "
                         f"at most {MAX_TIME_LIMIT:.0f} ({MAX_TIME_LIMIT / 86400:.1f} days)")


@dataclasses.dataclass(frozen=True)
class Plugin:
    """A user's estimator as ``validate`` runs it: its name in the tables, the callable, its kind
    ("lower", "upper" or "point"), its target, and the sample sets it gets per case (``repeats``
    sets of ``n`` pairs), with a per-call time limit in seconds."""

    name: str
    fn: Estimator
    kind: UserKind
    target: Target = "I_XZ"
    n: int = 1_000
    repeats: int = 20
    time_limit: float = 60.0
    level: float | None = None  # the nominal level of intervals returned without one
    params: dict = dataclasses.field(default_factory=dict)  # the estimator object's own, where it has them

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"--kind {self.kind}: one of {', '.join(KINDS)}")
        if self.target not in ("I_XZ", "I_YZ"):
            raise InputError(f"target {self.target}: one of I_XZ, I_YZ")
        if self.n < 2 or self.repeats < 2:
            raise InputError(f"{self.name}: n and repeats must be at least 2")
        check_time_limit(self.time_limit)
        if self.level is not None and not stats.is_level(self.level):
            raise InputError(f"{self.name}: interval level {self.level!r} must be in (0, 1)")

    def applies(self, case: LinearGaussianCase) -> bool:
        return self.target == "I_XZ" or case.labels.kind != "none"


def load(spec: str) -> Any:
    """The callable (or estimator object) named by "MODULE:FUNCTION": an importable module, the current folder included
    (as ``python -m`` has it; the ``ibcheck`` script alone would not look there)."""
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise InputError(f"--estimator {spec}: expected MODULE:FUNCTION")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        with exits_caught():
            module = importlib.import_module(module_name)
            fn = getattr(module, attr, None)  # a module's __getattr__ is the user's code too
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # the user's module may fail in any way while it imports, sys.exit included
        raise InputError(f"--estimator {spec}: cannot import {module_name} ({failure(err)})") from None
    if not callable(fn) and not callable(getattr(fn, "estimate", None)):
        raise InputError(f"--estimator {spec}: {module_name} has no callable {attr}, nor an object with an "
                         f"estimate(a, b) method")
    return fn


class _Timeout(BaseException):
    """The alarm of a call past its limit: not an Exception, so that an estimator's own
    ``except Exception`` does not swallow it and run on."""


class _Exited(BaseException):
    """A user's call of ``os._exit(code)``, raised instead of ending the process."""

    def __init__(self, code: object) -> None:
        super().__init__(code)
        self.code = code


@contextlib.contextmanager
def exits_caught() -> Iterator[None]:
    """Within the block, ``os._exit`` called in this process raises ``_Exited``, so that a user's
    code that ends the process becomes a recorded failure, not a silent exit 0 with no report. A
    child process the user forks keeps the real ``os._exit`` (multiprocessing ends its children
    with it)."""
    real, owner = os._exit, os.getpid()

    def guarded(code: int) -> None:
        if os.getpid() != owner:
            real(code)
        raise _Exited(code)

    os._exit = guarded  # type: ignore[assignment]
    try:
        yield
    finally:
        os._exit = real


def _fire(signum, frame):
    raise _Timeout


@contextlib.contextmanager
def timeouts() -> Iterator[bool]:
    """Install the alarm handler that interrupts a call past its limit, once for many calls; yields
    whether it could (only the main thread receives signals; elsewhere ``call`` checks the elapsed
    time after the call). A call inside C code is interrupted when it returns to Python."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = signal.signal(signal.SIGALRM, _fire)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def failure(err: BaseException) -> str:
    """Why a user's code failed, on one line: the exit it asked for (``sys.exit``), or the
    exception it raised with its message."""
    if isinstance(err, SystemExit):
        return f"called sys.exit({err.code!r})"
    if isinstance(err, _Exited):
        return f"called os._exit({err.code!r})"
    return " ".join(f"raised {type(err).__name__}: {err}".splitlines())


def _described(raw: object) -> str:
    """What an estimator returned, for a message: "a str", "None", "a numpy complex128", "a numpy
    array of float64 with shape (2,)", "a torch tensor of torch.bool with shape ()"."""
    if raw is None:
        return "None"
    if isinstance(raw, (torch.Tensor, np.ndarray)):
        library = "torch tensor" if isinstance(raw, torch.Tensor) else "numpy array"
        return f"a {library} of {raw.dtype} with shape {tuple(raw.shape)}"
    name = ("numpy " if isinstance(raw, np.generic) else "") + type(raw).__name__
    return f"{'an' if name[:1] in tuple('aeiou') else 'a'} {name}"


_REAL = (int, float, np.integer, np.floating)
_NOT_REAL = (bool, np.bool_, np.timedelta64)  # an int and a numpy integer by type, not real numbers


def _scalar(raw: object) -> int | float | np.integer | np.floating | None:
    """The real number ``raw`` is, unconverted: a Python int or float, a numpy integer or floating
    scalar, a 0-d numpy array of one, or a torch tensor of one real element; None for anything
    else (a bool, a complex, a string, None, a list, a longer array)."""
    if isinstance(raw, torch.Tensor):
        real = raw.numel() == 1 and raw.dtype != torch.bool and not raw.is_complex()
        return raw.detach().reshape(()).item() if real else None
    if isinstance(raw, np.ndarray) and raw.ndim == 0 and raw.dtype.kind in "iuf":
        raw = raw[()]
    if isinstance(raw, _NOT_REAL):
        return None
    return raw if isinstance(raw, _REAL) else None


def real_number(raw: object) -> tuple[float | None, str | None]:
    """(value, None) for a finite real number an estimator returned (``_scalar``), or (None, why):
    not a real number (named by its type), an int too large for a float, or not finite."""
    scalar = raw if type(raw) is float else _scalar(raw)  # the common case, first
    if scalar is None:
        return None, f"returned {_described(raw)}, not a real number"
    try:
        value = float(scalar)
    except OverflowError:
        assert isinstance(scalar, int)
        return None, f"returned an int of {scalar.bit_length()} bits, too large for a float"
    return (value, None) if math.isfinite(value) else (None, f"returned {value}")


class Read(NamedTuple):
    """An estimate returned with its interval (nats; an open end is -inf or inf) and, where the
    estimator gave it, the interval's nominal level."""

    value: float
    low: float
    high: float
    level: float | None


def reading(raw: object) -> tuple[float | Read | None, str | None]:
    """(value, None) for a finite real number (``real_number``); (Read, None) for a tuple
    (estimate, low, high) or (estimate, low, high, level) of real numbers with a finite estimate,
    low <= high (either may be infinite: a one-sided interval) and level in (0, 1); or (None, why)."""
    if not isinstance(raw, tuple):
        return real_number(raw)
    if len(raw) not in (3, 4):
        return None, f"returned a tuple of {len(raw)} items; (estimate, low, high) or (estimate, low, high, level)"
    value, why = real_number(raw[0])
    if value is None:
        return None, f"returned an interval whose estimate is not a finite real number: it {why}"
    ends = []
    for end, name in zip(raw[1:3], ("low", "high")):
        scalar = _scalar(end)
        number = math.nan if scalar is None else float(scalar)
        if math.isnan(number):
            return None, f"returned an interval whose {name} end is {_described(end)}, not a real number or +-inf"
        ends.append(number)
    if ends[0] > ends[1]:
        return None, f"returned an interval with low > high ({ends[0]:g} > {ends[1]:g})"
    level = None
    if len(raw) == 4:
        scalar = _scalar(raw[3])
        if scalar is None or not stats.is_level(scalar):
            return None, f"returned an interval level that is not in (0, 1): {_described(raw[3])}"
        level = float(scalar)
    return Read(value, ends[0], ends[1], level), None


def _armed(fn: Estimator, a: np.ndarray, b: np.ndarray, time_limit: float, alarm: bool) -> object:
    """fn(a, b), interrupted by ``_Timeout`` past ``time_limit`` seconds when ``alarm``."""
    if alarm:
        signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        with exits_caught():
            return fn(a, b)
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)


def call(fn: Estimator, a: np.ndarray, b: np.ndarray, time_limit: float,
         alarm: bool = False) -> tuple[float | Read | None, str | None, float]:
    """(value, None, seconds) for a good call (a float, or a ``Read`` with its interval), or
    (None, why, seconds) for one that raised or exited (``sys.exit``), returned anything else
    (``reading``), or took longer than ``time_limit`` seconds (interrupted there when ``alarm``:
    inside ``timeouts()``; an external command is killed there in any thread). KeyboardInterrupt
    is not the estimator's failure: it interrupts the run."""
    started = time.perf_counter()
    try:
        raw = _armed(fn, a, b, time_limit, alarm)
        seconds = time.perf_counter() - started
        if seconds > time_limit:
            return None, f"ran past the time limit of {time_limit:g} s ({seconds:.3g} s)", seconds
        # inside the guard: a float subclass's own __float__ is the user's code too
        return (*reading(raw), seconds)
    except _Timeout:
        return None, f"ran past the time limit of {time_limit:g} s", time.perf_counter() - started
    except external.CommandFailed as err:  # its message is already the reason
        return None, str(err), time.perf_counter() - started
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # any failure of the user's code, sys.exit included, is recorded, not raised
        return None, failure(err), time.perf_counter() - started


@dataclasses.dataclass(frozen=True)
class Run:
    """One plugin on one case: the estimate over the good calls, why calls failed, and the
    calls' intervals where the estimator gave them."""

    estimate: Estimate
    error: str | None
    intervals: Intervals | None = None


def _for_call(plugin: Plugin, case: LinearGaussianCase, draw_seed: int, index: int) -> Estimator:
    """What one call runs: an external command with this call's header and time limit bound."""
    if isinstance(plugin.fn, external.Command):
        return plugin.fn.for_call(case.name, plugin.target, seeds.seed_of(draw_seed, "call", index), index,
                                  plugin.repeats, plugin.time_limit)
    return plugin.fn


def _intervals(plugin: Plugin, reads: list[float | Read]) -> tuple[Intervals | None, str | None]:
    """The calls' intervals at one level, None where no call gave one, or why they cannot be judged:
    some calls gave an interval and others not, or the level is unknown or not the same for all."""
    given = [r for r in reads if isinstance(r, Read)]
    if not given:
        return None, None
    if len(given) < len(reads):
        return None, f"returned an interval in {len(given)} of {len(reads)} calls; give one in every call or none"
    levels = {r.level for r in given if r.level is not None}
    if plugin.level is not None:
        levels.add(plugin.level)
    if len(levels) != 1:
        why = (f"gave intervals at different levels {sorted(levels)}" if levels else
               "returned intervals without their level: give it (--interval-level, level=) or return it")
        return None, why
    return Intervals(levels.pop(), tuple(r.low for r in given), tuple(r.high for r in given)), None


def run(plugin: Plugin, case: LinearGaussianCase, seed: int) -> Run:
    """Call ``plugin`` on its sample sets of ``case``; the estimate is the mean of the calls with
    se = sd / sqrt(repeats). A failed call makes the estimate NaN with its reason, and ends the
    case (no more calls: a slow estimator costs one time limit per case, not ``repeats``)."""
    # not the estimator's name: every user's estimator of a run, and the same one named differently by the CLI
    # (module:function) and the API (function), gets the same sample sets for one seed, so that verdicts agree
    # and two estimators are compared on the same draws (paired)
    draw_seed = seeds.seed_of(seed, case.name, case.settings.seed, "plugin")
    reads: list[float | Read] = []
    failure: str | None = None
    seconds = 0.0
    with timeouts() as alarm:
        sets = suite.sample_sets(case, plugin.target, plugin.n, plugin.repeats, draw_seed)
        for index, (a, b) in enumerate(sets):
            value, failure, took = call(_for_call(plugin, case, draw_seed, index), a, b, plugin.time_limit, alarm)
            seconds += took
            if failure is not None:  # the case's estimate is a failure whatever the other calls return
                failure = f"{failure} (call {index + 1} of {plugin.repeats}; no more calls were made)"
                break
            assert value is not None
            reads.append(value)
    intervals, why = _intervals(plugin, reads) if failure is None else (None, None)
    failure = failure or why
    params = {"n": plugin.n, "repeats": plugin.repeats, "time_limit": plugin.time_limit,
              "failed_calls": int(failure is not None), **({"estimator": plugin.params} if plugin.params else {})}
    values = [float(r.value if isinstance(r, Read) else r) for r in reads]
    if failure is not None:
        estimate = Estimate(plugin.name, plugin.target, KINDS[plugin.kind], math.nan, math.nan, plugin.repeats,
                            draw_seed, params, seconds)
        return Run(estimate, failure)
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    estimate = Estimate(plugin.name, plugin.target, KINDS[plugin.kind], mean, sd / math.sqrt(len(values)),
                        len(values), draw_seed, params, seconds)
    return Run(estimate, None, intervals)
