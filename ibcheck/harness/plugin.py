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
recorded failure, and no more calls are made on that case; the run goes on. A Python estimator
runs in a worker process of its own, one per estimator for the whole run (``sandbox``), so it gets
copies of the arrays, and a call past its time limit, an ``os._exit``, a crash or a thread it
leaves running can end only that worker; the return value is read there (``returns``), strictly.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ibcheck import seeds, stats
from ibcheck.analytic import suite
from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.harness import external, returns, sandbox
from ibcheck.harness.coverage import Intervals
from ibcheck.harness.returns import Read, exits_caught, failure
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
    # the worker process that runs a Python estimator (an external command makes its own), kept for all its calls
    _box: sandbox.Sandbox | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

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
        if not isinstance(self.fn, external.Command):
            object.__setattr__(self, "_box", sandbox.Sandbox(self.fn))

    def close(self) -> None:
        """End the estimator's worker process, with whatever it left running (a later call starts another)."""
        if self._box is not None:
            self._box.close()

    def call(self, case: LinearGaussianCase, draw_seed: int, index: int, a: np.ndarray,
             b: np.ndarray) -> tuple[float | Read | None, str | None, float]:
        """Call ``index`` of the estimator on ``case``'s pair (a, b), as ``call`` judges it."""
        if self._box is None:
            assert isinstance(self.fn, external.Command)
            command = self.fn.for_call(case.name, self.target, seeds.seed_of(draw_seed, "call", index), index,
                                       self.repeats, self.time_limit)
            return call(command, a, b, self.time_limit)
        return self._box.call(a, b, self.time_limit)

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


def call(fn: Estimator, a: np.ndarray, b: np.ndarray,
         time_limit: float) -> tuple[float | Read | None, str | None, float]:
    """One call of a user's estimator, judged strictly: (value, None, seconds) for a finite real
    float or a ``Read`` with its interval, else (None, why, seconds). A Python estimator runs in a
    process of its own, started for this call (``sandbox``; ``run`` keeps one for all its calls), an
    external command in its own process group (``external``); either is killed past its time limit."""
    if isinstance(fn, external.Command):  # it enforces its own time limit, and parses its own output
        started = time.perf_counter()
        try:
            raw = fn(a, b)
        except external.CommandFailed as err:  # its message is already the reason
            return None, str(err), time.perf_counter() - started
        return (*returns.reading(raw), time.perf_counter() - started)
    with sandbox.Sandbox(fn) as box:
        return box.call(a, b, time_limit)


@dataclasses.dataclass(frozen=True)
class Run:
    """One plugin on one case: the estimate over the good calls, why calls failed, and the
    calls' intervals where the estimator gave them."""

    estimate: Estimate
    error: str | None
    intervals: Intervals | None = None


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
    sets = suite.sample_sets(case, plugin.target, plugin.n, plugin.repeats, draw_seed)
    for index, (a, b) in enumerate(sets):
        value, failure, took = plugin.call(case, draw_seed, index, a, b)
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
