"""One validator from JSON to frozen dataclasses, for every settings object of ibcheck.

A case file's ``"settings"``, a ``--config`` file and a teacher run's recorded
config all go through ``from_json``. Each field's Python type says what JSON
value it takes, and its ``metadata`` adds limits:

- ``min``: the smallest allowed integer (of an int, or of each item of a tuple);
- ``positive``: a float must be > 0; ``at_least``: a float must be >= it; ``below``: < it;
- ``choices``: the allowed strings;
- ``sections``: a callable giving ``{key: default dataclass}`` for a mapping field
  whose keys are names (the estimator registry's parameter sections);
- ``was``: the field's former name, still read for one release with a one-line warning
  (``current_names`` renames it silently in what ibcheck itself recorded).

A rule that does not fit its field's type (``min`` on a float) is a TypeError when the class is
first read (``check_metadata``), not a limit silently never applied.

Errors are one line naming the key path: ``student.beta must be a number, got "x"``.

Every JSON file a user gives ibcheck (a case file, a ``--config`` file, a study spec) is parsed by
``loads``, which refuses an object that names a key twice instead of keeping the last value.
"""
from __future__ import annotations

import dataclasses
import errno
import functools
import json
import logging
import math
import os
import stat
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ibcheck.interface import InputError

INT_LIMIT = 2**63
Fail = Callable[[str, str], NoReturn]
log = logging.getLogger("ibcheck")


def show(value: Any) -> str:
    """A value for a one-line message: JSON (control characters escaped), cut to 40 characters."""
    try:
        return json.dumps(value)[:40]
    except (RecursionError, TypeError, ValueError):
        return type(value).__name__


class _Repeated(Exception):
    """A key named twice in one object (internal: ``loads`` turns it into a JSONDecodeError)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The ``object_pairs_hook`` of ``loads``: an object as a dict, refused if a key repeats."""
    found = dict(pairs)
    if len(found) < len(pairs):
        raise _Repeated
    return found


def _blank_end(text: str, at: int) -> int:
    """Where the JSON whitespace from ``at`` ends."""
    while at < len(text) and text[at] in " \t\n\r":
        at += 1
    return at


def _repeated_key(text: str) -> tuple[str, int] | None:
    """The first key (in reading order) that its object names twice, and where it is named again.
    One pass over the text with a stack of the objects open at each point (the key sets; None for
    an array); strings and numbers are read by the ordinary decoder. The text up to that key is
    valid JSON: ``loads`` tried it first."""
    decoder = json.JSONDecoder()
    stack: list[set[str] | None] = []
    at = _blank_end(text, 0)
    want_key = False
    while at < len(text):
        char = text[at]
        if char in "{[":
            stack.append(set() if char == "{" else None)
            want_key, at = char == "{", at + 1
        elif char in "}]":
            stack.pop()
            want_key, at = False, at + 1
        elif char in ",:":
            want_key, at = char == "," and bool(stack) and stack[-1] is not None, at + 1
        else:
            value, end = decoder.raw_decode(text, at)
            keys = stack[-1] if stack else None
            if want_key and keys is not None:
                if value in keys:
                    return value, at
                keys.add(value)
            want_key, at = False, end
        at = _blank_end(text, at)
    return None


def loads(text: str) -> Any:
    """``json.loads``, except that an object naming a key twice is refused: a JSONDecodeError
    ("duplicate key "beta"", at where it is named again), which readers report as invalid JSON."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _Repeated:
        try:
            found = _repeated_key(text)
        except (ValueError, IndexError):  # not expected: the text up to the key is valid JSON
            found = None
    key, at = found if found is not None else ("", 0)
    raise json.JSONDecodeError(f"duplicate key {show(key)}", text, at) from None


MAX_JSON_BYTES = 64 << 20  # a user's JSON file: a case file of hundreds of MNIST-sized cases fits


def read_regular(path: Path, label: str) -> bytes:
    """The bytes of a regular file of at most MAX_JSON_BYTES. A FIFO would block the read forever and
    /dev/zero never end, so anything else is refused before it is read (opened without blocking)."""
    handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(handle)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{label}: not a regular file (a pipe, socket or device cannot be read as JSON)")
        if info.st_size > MAX_JSON_BYTES:
            raise InputError(f"{label}: {info.st_size:,} bytes, more than the {MAX_JSON_BYTES >> 20} MiB a JSON "
                             f"file may have here; split it")
        os.set_blocking(handle, True)
        with os.fdopen(handle, "rb", closefd=False) as stream:
            data = stream.read(MAX_JSON_BYTES + 1)
    finally:
        os.close(handle)
    if len(data) > MAX_JSON_BYTES:  # it grew while it was read
        raise InputError(f"{label}: more than the {MAX_JSON_BYTES >> 20} MiB a JSON file may have here; split it")
    return data


def read_json(path: str | Path, label: str, hint: str = "") -> Any:
    """The JSON value of a file a user gives ibcheck (a ``--config`` file, a case file, a study
    spec), by ``loads``; otherwise an InputError of one line that starts with ``label``: it
    "cannot be read" (missing, a folder, not UTF-8; ``hint`` is added), is "not valid JSON" (with
    the line and column), or "cannot be parsed" (an integer of too many digits, nesting too deep)."""
    try:
        text = read_regular(Path(path), label).decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        why = getattr(err, "strerror", None) or err  # UnicodeDecodeError has no strerror
        raise InputError(f"{label}: cannot be read ({err.__class__.__name__}: {why}{'; ' + hint if hint else ''})") \
            from None
    try:
        return loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{label}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except RecursionError:
        raise InputError(f"{label}: cannot be parsed (JSON nested too deeply)") from None
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise InputError(f"{label}: cannot be parsed ({str(err).splitlines()[0]})") from None


def key_text(key: Any) -> str:
    """An object key for a message, escaped where it would break the line."""
    return key if isinstance(key, str) and key.isprintable() else show(key)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    args = typing.get_args(kind)
    origin = typing.get_origin(kind)
    if (origin is typing.Union or origin is types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return kind, False


def _integer(value: Any, path: str, low: int, fail: Fail) -> int:
    if type(value) is not int or not low <= value < INT_LIMIT:
        fail(path, f"must be an integer in [{low}, 2^63), got {show(value)}")
    return value


def number(value: Any, path: str, meta: typing.Mapping[str, Any], fail: Fail) -> float:
    """A finite JSON number as a float, within ``meta``'s limits (``positive``, ``at_least``, ``below``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(path, f"must be a number, got {show(value)}")
    if not finite(value):
        fail(path, f"must be a finite number, got {show(value)}")
    if meta.get("positive") and value <= 0:
        fail(path, f"must be > 0, got {show(value)}")
    if "at_least" in meta and value < meta["at_least"]:
        fail(path, f"must be >= {meta['at_least']:g}, got {show(value)}")
    if "below" in meta and value >= meta["below"]:
        fail(path, f"must be < {meta['below']:g}, got {show(value)}")
    return float(value)


def array(value: Any, shape: tuple, path: str, fail: Fail) -> np.ndarray:
    """A JSON vector (``shape`` (n,)) or matrix ((r, c)) of finite numbers as a read-only float64
    array; None in ``shape`` means any size >= 1."""
    rows = value if len(shape) == 2 else [value]
    if not isinstance(value, list) or not value or not all(isinstance(r, list) and r for r in rows):
        fail(path, f"must be a non-empty {'list of lists' if len(shape) == 2 else 'list'} of numbers")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        fail(path, f"rows have different lengths {sorted(widths)}")
    for r in rows:
        for v in r:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                fail(path, f"must hold only numbers, found {show(v)}")
    if not all(finite(v) for r in rows for v in r):
        fail(path, "must hold only finite float64 numbers")
    arr = np.array(value, dtype=np.float64)
    for want, got in zip(shape, arr.shape):
        if want is not None and want != got:
            fail(path, f"has shape {list(arr.shape)}, expected {[s if s is not None else '*' for s in shape]}")
    arr.setflags(write=False)
    return arr


def check_keys(obj: Any, allowed: typing.Collection[str], required: typing.Collection[str], path: str,
               fail: Fail) -> dict:
    """``obj`` if it is a JSON object with no key outside ``allowed`` and every key of ``required``;
    otherwise ``fail`` names the first wrong key (in sorted order)."""
    if not isinstance(obj, dict):
        fail(path, f"must be an object, got {type(obj).__name__}")
    unknown = sorted((k for k in obj if k not in allowed), key=str)
    if unknown:
        fail(join(path, key_text(unknown[0])), f"unknown key (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(set(required) - set(obj)):
        fail(join(path, key), "is required")
    return obj


# the metadata each kind of field can take; any other key is a programming error (``check_metadata``)
_META: dict[str, frozenset[str]] = {"int": frozenset({"min"}), "tuple": frozenset({"min"}),
                                    "tuple of str": frozenset({"choices"}),
                                    "float": frozenset({"positive", "at_least", "below"}),
                                    "str": frozenset({"choices"}), "bool": frozenset(),
                                    "dataclass": frozenset(), "sections": frozenset({"sections"})}


def _kind_name(kind: Any, meta: typing.Mapping[str, Any]) -> str:
    kind, _ = _unwrap_optional(kind)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return "dataclass"
    if typing.get_origin(kind) is tuple:
        return "tuple of str" if typing.get_args(kind)[0] is str else "tuple"
    if "sections" in meta:
        return "sections"
    return getattr(kind, "__name__", repr(kind))


def check_metadata(cls: type) -> None:
    """Refuse (TypeError) a field of ``cls`` or of a dataclass inside it whose metadata does not
    fit its type, such as ``min`` (an integer rule) on a float, which would never be applied."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = _kind_name(hints[field.name], field.metadata)
        allowed = _META.get(kind)
        if allowed is None:
            raise TypeError(f"{cls.__name__}.{field.name}: no JSON rule for {kind}")
        wrong = sorted(set(field.metadata) - allowed - {"was"})
        if wrong:
            raise TypeError(f"{cls.__name__}.{field.name}: metadata {', '.join(wrong)} does not apply to a {kind} "
                            f"(allowed: {', '.join(sorted(allowed)) or 'none'})")
        inner, _ = _unwrap_optional(hints[field.name])
        if kind == "dataclass":
            check_metadata(inner)
        if kind == "sections":
            for section in field.metadata["sections"]().values():
                check_metadata(type(section))


def _value(kind: Any, meta: typing.Mapping[str, Any], value: Any, base: Any, path: str, fail: Fail) -> Any:
    kind, optional = _unwrap_optional(kind)
    if value is None:
        if optional:
            return None
        fail(path, "must not be null")
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return from_json(kind, value, path, fail, base if base is not None else kind())
    if kind is bool:
        if not isinstance(value, bool):
            fail(path, f"must be true or false, got {show(value)}")
        return value
    if kind is int:
        return _integer(value, path, meta.get("min", 0), fail)
    if kind is float:
        return number(value, path, meta, fail)
    if kind is str:
        choices = meta.get("choices")
        if not isinstance(value, str) or (choices and value not in choices):
            allowed = f"one of {', '.join(choices)}" if choices else "a string"
            fail(path, f"must be {allowed}, got {show(value)}")
        return value
    origin = typing.get_origin(kind)
    if origin is tuple and typing.get_args(kind)[0] is str:
        return _names(value, meta.get("choices", ()), path, fail)
    if origin is tuple:
        low = meta.get("min", 0)
        if not isinstance(value, list) or not value or not all(type(v) is int and low <= v < INT_LIMIT for v in value):
            fail(path, f"must be a non-empty list of integers in [{low}, 2^63), got {show(value)}")
        return tuple(value)
    if "sections" in meta:
        return _sections(meta["sections"](), value, base, path, fail)
    raise TypeError(f"{path}: no JSON rule for {kind!r}")  # a programming error, not bad input


def _names(value: Any, choices: typing.Collection[str], path: str, fail: Fail) -> tuple[str, ...]:
    """A list of distinct names, each one of ``choices`` (empty allowed)."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v in choices for v in value):
        fail(path, f"must be a list of names among {', '.join(choices)}, got {show(value)}")
    if len(set(value)) < len(value):
        fail(path, f"names an entry twice, got {show(value)}")
    return tuple(value)


def _sections(defaults: dict[str, Any], value: Any, base: Any, path: str, fail: Fail) -> dict[str, Any]:
    if not isinstance(value, dict):
        fail(path, f"must be an object, got {type(value).__name__}")
    out = dict(base if base is not None else defaults)
    for key, section in value.items():
        if key not in defaults:
            fail(join(path, key_text(key)), f"unknown key (allowed: {', '.join(sorted(defaults))})")
        out[key] = from_json(type(defaults[key]), section, join(path, key), fail, out[key])
    return out


def from_json(cls: type, obj: Any, path: str, fail: Fail, base: Any | None = None) -> Any:
    """``base`` (default ``cls()``) with the fields that ``obj``, a JSON object, names.

    Nested dataclasses are merged key by key, so ``{"student": {"beta": 0.01}}``
    changes one field. Unknown keys, wrong types and values out of range fail
    with the key path."""
    if not isinstance(obj, dict):
        fail(path, f"must be an object, got {type(obj).__name__}")
    _checked(cls)
    obj = _current(cls, obj, path, fail)
    base = cls() if base is None else base
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(obj, fields, (), path, fail)
    hints = typing.get_type_hints(cls)
    changes = {}
    for key, value in obj.items():
        changes[key] = _value(hints[key], fields[key].metadata, value, getattr(base, key), join(path, key), fail)
    try:
        return dataclasses.replace(base, **changes)
    except ValueError as err:  # a rule between fields, checked by the dataclass itself
        fail(path, f"is inconsistent: {err}")


def _former(cls: type) -> dict[str, str]:
    """``{former name: current name}`` of ``cls``'s renamed fields (metadata ``was``)."""
    return {f.metadata["was"]: f.name for f in dataclasses.fields(cls) if "was" in f.metadata}


def _current(cls: type, obj: dict, path: str, fail: Fail) -> dict:
    """``obj`` with the former names of ``cls``'s fields replaced, each with a one-line warning;
    a key given under both names is refused."""
    renamed = _former(cls)
    if not renamed.keys() & obj.keys():
        return obj
    out = dict(obj)
    for old, new in renamed.items():
        if old in out:
            if new in out:
                fail(join(path, old), f"is the former name of {join(path, new)}; give only {new}")
            log.warning("ibcheck: warning: %s is now %s; the former name goes in a later release",
                        join(path, old), join(path, new))
            out[new] = out.pop(old)
    return out


def current_names(cls: type, doc: Any) -> Any:
    """A JSON value recorded for ``cls`` (a run's config.json) with former field names replaced
    by current ones, through nested dataclasses and silently: ibcheck wrote it, not the user.
    Values that do not fit ``cls`` are returned as they are, for ``from_json`` to refuse."""
    if not isinstance(doc, dict):
        return doc
    renamed = _former(cls)
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for key, value in doc.items():
        name = renamed[key] if key in renamed and renamed[key] not in doc else key
        kind, _ = _unwrap_optional(hints[name]) if name in fields else (None, False)
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            value = current_names(kind, value)
        out[name] = value
    return out


@functools.cache
def _checked(cls: type) -> None:
    check_metadata(cls)  # once per class: its rules are fixed when it is defined


def to_json(instance: Any) -> Any:
    """A (nested) frozen dataclass as JSON-ready data: tuples become lists, mappings objects."""
    if dataclasses.is_dataclass(instance) and not isinstance(instance, type):
        return {f.name: to_json(getattr(instance, f.name)) for f in dataclasses.fields(instance)}
    if isinstance(instance, dict):
        return {k: to_json(v) for k, v in instance.items()}
    if isinstance(instance, (list, tuple)):
        return [to_json(v) for v in instance]
    return instance
