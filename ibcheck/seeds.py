"""The seed tree: every random draw of ibcheck comes from a root seed and a path of names.

``seed_of(root, "student", "encoder")`` is a 63-bit integer derived with numpy's
``SeedSequence``: the root is its entropy and the path its spawn key. Two
different paths give independent streams, whatever the root, so no two draws
share a seed by accident (an ad-hoc ``seed + 1`` can collide with the next
run's ``seed``). Names are encoded exactly, not hashed, so distinct paths never
collide; a path element is a name (str) or an index (int >= 0).

The trees in use (README, "Seeds"):
- ``ibcheck validate``: root = ``--seed``; path (case name, case seed, estimator, index).
- a teacher run: root = ``teacher.seed``; paths ``data/split``, ``data/subset``,
  ``teacher/init``, ``teacher/train``, ``teacher/eval``.
- a student run: root = ``seed``; paths ``student/encoder``, ``student/classifier`` (the label
  decoder, under its former name: renaming the path would change every run's weights),
  ``track/q``, ``track/subsets``, ``train``, ``track``, ``labels``.
"""
from __future__ import annotations

import numpy as np
import torch

Name = str | int
SEED_BITS = 63


def _key(path: tuple[Name, ...]) -> list[int]:
    """The spawn key of a path: each element as (tag, value), strings as the integer of their
    UTF-8 bytes, so that "a" and 97 and "b" all differ."""
    key: list[int] = []
    for name in path:
        if isinstance(name, bool) or not isinstance(name, (str, int)):
            raise TypeError(f"a seed path holds names and indices, got {name!r}")
        if isinstance(name, int):
            if name < 0:
                raise ValueError(f"a seed path index must be >= 0, got {name}")
            key += [0, name]
        else:
            key += [1, int.from_bytes(b"\x01" + name.encode("utf-8"), "little")]
    return key


def seed_of(root: int, *path: Name) -> int:
    """The seed at ``path`` under ``root``: an integer in [0, 2^63)."""
    if isinstance(root, bool) or not isinstance(root, int) or root < 0:
        raise ValueError(f"a root seed must be an integer >= 0, got {root!r}")
    sequence = np.random.SeedSequence(root, spawn_key=tuple(_key(path)))
    # shifted as a Python int: numpy 1.x refuses to shift a uint64 by a (signed) int
    return int(sequence.generate_state(1, dtype=np.uint64)[0]) >> (64 - SEED_BITS)


def generator(root: int, *path: Name, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded at ``path`` under ``root``."""
    return torch.Generator(device=torch.device(device)).manual_seed(seed_of(root, *path))


def rng(root: int, *path: Name) -> np.random.Generator:
    """A numpy generator seeded at ``path`` under ``root``."""
    return np.random.default_rng(seed_of(root, *path))
