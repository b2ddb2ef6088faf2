"""Estimator objects: anything with an ``estimate(a, b)`` method (benchmark-mi's interface) is an
estimator, and its own parameters are recorded with its estimates where it exposes them."""
from __future__ import annotations

import dataclasses
import math

from ibcheck.harness import external
from ibcheck.harness.plugin import Estimator
from ibcheck.harness.returns import exits_caught, failure
from ibcheck.interface import InputError


def as_estimator(obj: object, label: str = "estimator") -> Estimator:
    """The callable of a user's estimator: ``obj`` itself where it is callable, else its
    ``estimate`` method (benchmark-mi's interface); InputError where it has neither."""
    if callable(obj):
        return obj
    method = getattr(obj, "estimate", None)
    if callable(method):
        return method
    raise InputError(f"{label}: {type(obj).__name__} is neither callable nor has an estimate(a, b) method")


def parameters_of(obj: object) -> dict:
    """An estimator object's own parameters, where it exposes them: benchmark-mi's ``parameters()``
    (a pydantic model), scikit-learn's ``get_params()``, or a dataclass's fields; JSON numbers,
    strings, booleans and None as they are, anything else as its ``repr`` (cut to 80 characters).
    {} for a plain function; {"unavailable": why} where asking raised."""
    try:
        with exits_caught():
            found = _raw_parameters(obj)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # the user's code: record why, never fail the run over it
        return {"unavailable": failure(err)}
    return {str(key): _json_safe(value) for key, value in found.items()}


def _raw_parameters(obj: object) -> dict:
    if isinstance(obj, external.Command):
        return {"command": obj.template}
    if callable(obj) and not hasattr(obj, "estimate"):
        return {}
    for name in ("parameters", "get_params"):
        method = getattr(obj, name, None)
        if callable(method):
            value = method()
            dump = getattr(value, "model_dump", None) or getattr(value, "dict", None)
            value = dump() if callable(dump) and not isinstance(value, dict) else value
            return dict(value) if isinstance(value, dict) else {name: value}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return {}


def _json_safe(value: object) -> object:
    if value is None or isinstance(value, (bool, str)) or (isinstance(value, (int, float)) and math.isfinite(value)):
        return value
    return repr(value)[:80]
