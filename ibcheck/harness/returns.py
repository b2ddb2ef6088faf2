"""What a user's Python estimator returned, read strictly, and one guarded call of it.

This module runs inside the estimator's own process (``worker``), so it imports neither torch nor
the rest of ibcheck: a torch tensor is recognised only where the user's code has imported torch.
A return is a finite real number (``real_number``), or an interval ``(estimate, low, high[,
level])`` (``reading``); anything else is a recorded failure with the reason on one line.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np


class Exited(BaseException):
    """A user's call of ``os._exit(code)``, raised instead of ending the process."""

    def __init__(self, code: object) -> None:
        super().__init__(code)
        self.code = code


@contextlib.contextmanager
def exits_caught() -> Iterator[None]:
    """Within the block, ``os._exit`` called in this process raises ``Exited``, so that a user's
    code that ends the process from Python becomes a recorded failure with its reason. A child
    process the user forks keeps the real ``os._exit`` (multiprocessing ends its children with it)."""
    real, owner = os._exit, os.getpid()

    def guarded(code: int) -> None:
        if os.getpid() != owner:
            real(code)
        raise Exited(code)

    os._exit = guarded  # type: ignore[assignment]
    try:
        yield
    finally:
        os._exit = real


def failure(err: BaseException) -> str:
    """Why a user's code failed, on one line: the exit it asked for (``sys.exit``), or the
    exception it raised with its message."""
    if isinstance(err, SystemExit):
        return f"called sys.exit({err.code!r})"
    if isinstance(err, Exited):
        return f"called os._exit({err.code!r})"
    return " ".join(f"raised {type(err).__name__}: {err}".splitlines())


def _torch_tensor() -> Any:
    torch = sys.modules.get("torch")  # a tensor can only come from code that imported torch
    return getattr(torch, "Tensor", None)


def _described(raw: object) -> str:
    """What an estimator returned, for a message: "a str", "None", "a numpy complex128", "a numpy
    array of float64 with shape (2,)", "a torch tensor of torch.bool with shape ()"."""
    if raw is None:
        return "None"
    tensor = _torch_tensor()
    if isinstance(raw, np.ndarray) or (tensor is not None and isinstance(raw, tensor)):
        library = "numpy array" if isinstance(raw, np.ndarray) else "torch tensor"
        return f"a {library} of {raw.dtype} with shape {tuple(raw.shape)}"
    name = ("numpy " if isinstance(raw, np.generic) else "") + type(raw).__name__
    return f"{'an' if name[:1] in tuple('aeiou') else 'a'} {name}"


_REAL = (int, float, np.integer, np.floating)
_NOT_REAL = (bool, np.bool_, np.timedelta64)  # an int and a numpy integer by type, not real numbers


def _scalar(raw: object) -> int | float | np.integer | np.floating | None:
    """The real number ``raw`` is, unconverted: a Python int or float, a numpy integer or floating
    scalar, a 0-d numpy array of one, or a torch tensor of one real element; None for anything
    else (a bool, a complex, a string, None, a list, a longer array)."""
    tensor = _torch_tensor()
    if tensor is not None and isinstance(raw, tensor):
        value: Any = raw
        real = value.numel() == 1 and value.dtype is not sys.modules["torch"].bool and not value.is_complex()
        return value.detach().reshape(()).item() if real else None
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
        if not isinstance(scalar, int):
            raise
        return None, f"returned an int of {scalar.bit_length()} bits, too large for a float"
    return (value, None) if math.isfinite(value) else (None, f"returned {value}")


class Read(NamedTuple):
    """An estimate returned with its interval (nats; an open end is -inf or inf) and, where the
    estimator gave it, the interval's nominal level."""

    value: float
    low: float
    high: float
    level: float | None


def _end(raw: object, name: str) -> tuple[float | None, str | None]:
    scalar = _scalar(raw)
    number = math.nan if scalar is None else float(scalar)
    if math.isnan(number):
        return None, f"returned an interval whose {name} end is {_described(raw)}, not a real number or +-inf"
    return number, None


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
    (low, why_low), (high, why_high) = _end(raw[1], "low"), _end(raw[2], "high")
    if low is None or high is None:
        return None, why_low or why_high
    if low > high:
        return None, f"returned an interval with low > high ({low:g} > {high:g})"
    level = None
    if len(raw) == 4:
        scalar = _scalar(raw[3])
        if scalar is None or not 0 < float(scalar) < 1:  # stats.is_level, without importing scipy here
            return None, f"returned an interval level that is not in (0, 1): {_described(raw[3])}"
        level = float(scalar)
    return Read(value, low, high, level), None


Estimator = Callable[..., object]


def call_here(fn: Estimator, a: np.ndarray, b: np.ndarray,
              time_limit: float) -> tuple[float | Read | None, str | None, float]:
    """fn(a, b) in this process: (value, None, seconds) for a finite real number or a ``Read``;
    (None, why, seconds) for a call that raised, exited (``sys.exit``, ``os._exit`` from Python),
    returned anything else, or took longer than ``time_limit`` seconds (judged after it returns:
    the caller's process boundary is what stops it, ``sandbox``). A KeyboardInterrupt is not the
    estimator's failure: it is raised."""
    started = time.perf_counter()
    try:
        with exits_caught():
            raw = fn(a, b)
            seconds = time.perf_counter() - started
            if seconds > time_limit:
                return None, f"ran past the time limit of {time_limit:g} s ({seconds:.3g} s)", seconds
            # inside the guard: a float subclass's own __float__ is the user's code too
            return (*reading(raw), seconds)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # any failure of the user's code, sys.exit included, is recorded, not raised
        return None, failure(err), time.perf_counter() - started
