"""Argument types and checks the commands share: nothing here parses at import time."""
from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ibcheck import fileio
from ibcheck.interface import InputError

BUILTIN_SUITE = "built-in"


def number_arg(kind: type, ok: Callable[[Any], bool], must: str) -> Callable[[str], Any]:
    """An argparse type: ``kind`` (int or float) of the text, refused unless ``ok`` (``must`` says how)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {must}, got {text}")
        return value
    return parse


positive_fraction = number_arg(float, lambda v: 0.0 < v < 1.0, "in (0, 1)")
seed_arg = number_arg(int, lambda v: 0 <= v < 2**63, "in [0, 2^63)")
at_least_two = number_arg(int, lambda v: v >= 2, "at least 2")
positive_float = number_arg(float, lambda v: v > 0, "positive")


def resolve_device(name: str):
    """'auto' -> cuda when available, else cpu; anything else must name an available device."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise InputError(f"--device {name}: only cpu and cuda devices are supported")
    return device


def check_output(option: str, path: str, folder: bool) -> None:
    """Refuse an output path that cannot be written now, not after the whole run: an empty
    path, a file where a folder is wanted, a folder, device or FIFO where a file is wanted
    (a symbolic link is followed), and a place where no file can be created (a read-only
    mount, missing permissions)."""
    if not path:
        raise InputError(f"{option}: the path is empty")
    if folder:
        target = Path(os.path.realpath(path))
        if target.exists() and not target.is_dir():
            raise InputError(f"{option} {path}: is not a folder")
    else:
        target = fileio.target(path, f"{option} {path}")
    home = target if folder and target.exists() else next(p for p in target.parents if p.exists())
    if not home.is_dir():
        raise InputError(f"{option} {path}: {home} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".ibcheck-probe.", dir=home)
    except OSError as err:
        raise InputError(f"{option} {path}: cannot write in {home} ({err.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def load_cases_arg(cases_path: str):
    from ibcheck.analytic.casefile import load_cases
    from ibcheck.analytic.suite import builtin_suite

    return builtin_suite() if cases_path == BUILTIN_SUITE else load_cases(cases_path)
