"""A study's spec: a preset, a ``base`` in the ``--config`` format, and a grid of dotted config
keys to lists of values, checked whole before anything runs.

    {"preset": "study-small",
     "base": {"student": {"hidden": 1024}},
     "grid": [{"student.beta": [0.001, 0.01], "seed": [0, 1, 2]},
              {"zero_info": ["redraw"], "seed": [0, 1, 2]}]}

``grid`` is one object or a list of them; each object's cells are the Cartesian product of
its lists, and the study's cells are the union over the objects (so zero-information cells
need not cross every other factor). Every cell's config goes through the same validator as
``ibcheck train --config``. The teacher of a study is seeded by ``teacher.seed`` (0 unless the
base or the grid sets it), not by the cell's seed, so that one teacher is trained per
distinct data and teacher setting and shared by every cell that uses it.

A cell *is* its resolved config (``identity``): grid key order, 1 against 1.0 and a restated
default do not make another cell. A spec whose grids give one config twice is refused, and a
study folder keeps the cell names it was first run with (``adopt_names``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from ibcheck import schema
from ibcheck.config import PRESETS, TeacherRunConfig, TrainConfig
from ibcheck.estimators import limits
from ibcheck.interface import InputError
from ibcheck.pipeline import configure

TOP_KEYS = ("description", "preset", "base", "grid")
MANAGED = ("preset", "teacher_run")  # chosen by the study itself, never by a grid
BUILTIN_GRIDS = ("study-smoke", "study-small", "study-bracket", "study-paper")
TEACHERS = "teachers"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a study: its folder name, its grid values (dotted keys), its config (whose
    ``teacher_run`` is filled in by ``with_teacher``) and the key of its teacher."""

    name: str
    values: dict[str, Any]
    config: TrainConfig
    teacher: str

    @property
    def identity(self) -> str:
        """What makes two cells the same run: ``identity`` of the config."""
        return identity(schema.to_json(self.config))

    def with_teacher(self, folder: Path) -> TrainConfig:
        """The cell's config with its teacher run at ``folder / teachers / key``, absolute."""
        return dataclasses.replace(self.config, teacher_run=str((folder / TEACHERS / self.teacher).resolve()))


@dataclasses.dataclass(frozen=True)
class Study:
    """A checked spec (``canonical`` is what study.json records and compares) and its cells."""

    canonical: dict
    cells: tuple[Cell, ...]
    teachers: dict[str, TeacherRunConfig]
    description: str = ""


def spec_path(name: str) -> Path:
    """The spec file ``name``: a path, or one of the built-in grids (``study-small`` ...)."""
    if Path(name).exists() or name not in BUILTIN_GRIDS:
        return Path(name)
    return Path(str(resources.files("ibcheck.study") / "grids" / f"{name}.json"))


def read_spec(name: str) -> dict:
    """The spec's JSON object; InputError on an unreadable or non-JSON file."""
    value = schema.read_json(spec_path(name), name, hint=f"built-in grids: {', '.join(BUILTIN_GRIDS)}")
    if not isinstance(value, dict):
        raise InputError(f"{name}: a study spec must be a JSON object")
    return value


def _grids(spec: dict, label: str) -> list[dict[str, list]]:
    grid = spec.get("grid")
    grids: list = grid if isinstance(grid, list) else [grid]
    if not grids or not all(isinstance(g, dict) and g for g in grids):
        raise InputError(f"{label}: grid must be a non-empty object of key: [values], or a non-empty list of them")
    for number, g in enumerate(grids):
        where = "grid" if len(grids) == 1 else f"grid[{number}]"
        for key, values in g.items():
            top = key.split(".")[0]
            if top in MANAGED:
                raise InputError(f"{label}: {where}.{schema.key_text(key)}: the study sets {top} itself")
            if not isinstance(values, list) or not values:
                raise InputError(f"{label}: {where}.{schema.key_text(key)} must be a non-empty list of values")
    # counted before any value is looked at: a grid of a million seeds is refused at once
    limits.refuse_count(f"{label}: grid", sum(math.prod(len(v) for v in g.values()) for g in grids),
                        limits.MAX_CELLS, "cells")
    for number, g in enumerate(grids):
        where = "grid" if len(grids) == 1 else f"grid[{number}]"
        for key, values in g.items():
            seen = [json.dumps(v, sort_keys=True) for v in values]
            if len(set(seen)) != len(seen):
                raise InputError(f"{label}: {where}.{schema.key_text(key)} lists a value twice")
    return grids


def nested(values: dict[str, Any]) -> dict:
    """{"student.beta": 0.1} -> {"student": {"beta": 0.1}}."""
    out: dict = {}
    for key, value in values.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InputError(f"grid key {key}: {part} is not a section")
        node[last] = value
    return out


def merged(base: Any, changes: Any) -> Any:
    """``changes`` laid over ``base``, section by section."""
    if not isinstance(base, dict) or not isinstance(changes, dict):
        return changes
    return {**base, **{k: merged(base.get(k), v) for k, v in changes.items()}}


NAME_BYTES = 255  # the longest file name of ext4, XFS, btrfs and APFS


def cell_name(values: dict[str, Any]) -> str:
    """A folder name from grid values: ``student.beta=0.001,seed=1`` (unsafe characters become _)."""
    parts = [f"{key}={v if isinstance(v, str) else json.dumps(v)}" for key, v in values.items()]
    name = ",".join(parts)
    return "".join(c if c.isalnum() or c in "._-=,+" else "_" for c in name)


def _config(preset: str, overrides: dict, where: str) -> TrainConfig:
    """The config of ``overrides`` over ``preset``; an error reads ``WHERE: key path why``."""
    teacher = overrides.get("teacher")
    if not isinstance(teacher, dict) or "seed" not in teacher:
        overrides = merged(overrides, {"teacher": {"seed": 0}})
    try:
        return configure.train_config(preset, overrides, label=_LABEL)
    except InputError as err:
        raise InputError(f"{where}: {str(err).removeprefix(_LABEL + ': ')}") from None


_LABEL = "spec"


def teacher_key(config: TeacherRunConfig) -> str:
    """A stable folder name for a teacher setting: a hash of its canonical JSON."""
    text = json.dumps(schema.to_json(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check(spec: dict, label: str) -> Study:
    """Every cell of ``spec`` with its config, or an InputError of one line naming the key path."""
    unknown = [k for k in spec if k not in TOP_KEYS]
    if unknown:
        raise InputError(f"{label}: {schema.key_text(unknown[0])}: unknown key (allowed: {', '.join(TOP_KEYS)})")
    preset = spec.get("preset")
    if preset not in PRESETS:
        raise InputError(f"{label}: preset must be one of {', '.join(PRESETS)}, got {schema.show(preset)}")
    base = spec.get("base", {})
    if not isinstance(base, dict):
        raise InputError(f"{label}: base must be an object in the --config format")
    if "description" in spec and not isinstance(spec["description"], str):
        raise InputError(f"{label}: description must be a string")
    _config(preset, base, f"{label}: base")
    grids = _grids(spec, label)
    for number, g in enumerate(grids):
        where = "grid" if len(grids) == 1 else f"grid[{number}]"
        for key, values in g.items():
            for v in values:
                _config(preset, merged(base, nested({key: v})), f"{label}: {where}.{key} = {schema.show(v)}")
    cells = _cells(preset, base, grids, label)
    teachers = {c.teacher: c.config.teacher_run_config for c in cells}
    canonical = {"preset": preset, "base": base, "grid": grids}
    return Study(canonical, cells, teachers, spec.get("description", ""))


def _cells(preset: str, base: dict, grids: list[dict[str, list]], label: str) -> tuple[Cell, ...]:
    """The union of the grids' products; InputError where two of them are one run (the same
    ``identity``) or two runs would share a folder name."""
    by_identity: dict[str, tuple[str, Cell]] = {}
    names: set[str] = set()
    for number, g in enumerate(grids):
        where = "grid" if len(grids) == 1 else f"grid[{number}]"
        for combo in itertools.product(*g.values()):
            chosen = dict(zip(g, combo))
            name = cell_name(chosen)
            if len(name.encode()) > NAME_BYTES:  # found before the teacher trains, not when the cell starts
                raise InputError(f"{label}: {where} cell {name[:60]}...: its folder name is {len(name.encode())} "
                                 f"bytes, more than the {NAME_BYTES} a file system allows; use shorter values")
            config = _config(preset, merged(base, nested(chosen)), f"{label}: cell {name}")
            cell = Cell(name, chosen, config, teacher_key(config.teacher_run_config))
            if cell.identity in by_identity:
                first, other = by_identity[cell.identity]
                raise InputError(f"{label}: {first} cell {other.name} and {where} cell {name} are the same run "
                                 f"(the same config); list it once")
            if name in names:
                raise InputError(f"{label}: two grids give cell {name} different configs; add a key that tells "
                                 f"them apart")
            by_identity[cell.identity] = (where, cell)
            names.add(name)
    return tuple(cell for _, cell in by_identity.values())


def identity(config: dict) -> str:
    """A cell's identity, from its resolved config (as ``schema.to_json`` writes it, or as study.json
    records it): the JSON with sorted keys, every number a float (1 and 1.0 alike, -0.0 as 0.0),
    without ``teacher_run`` (a path inside the study folder, fixed by the data and teacher settings),
    and with former field names read as current (a study.json of an earlier release)."""
    config = schema.current_names(TrainConfig, config)
    return json.dumps(_normal({k: v for k, v in config.items() if k != "teacher_run"}), sort_keys=True)


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) + 0.0
    return value


def adopt_names(study: Study, recorded: dict, label: str) -> Study:
    """``study`` with each cell named as the study.json ``recorded`` names the cell of the same
    identity, and in its order, so that a spec with its keys reordered (or 1 written 1.0) finds its
    finished folders; InputError where the two studies do not have the same cells."""
    names: dict[str, str] = {}  # identity: the first recorded name, in the recorded order
    for c in recorded.get("cells", []):
        if isinstance(c, dict) and isinstance(c.get("config"), dict) and "name" in c:
            names.setdefault(identity(c["config"]), c["name"])
    ours, theirs = {c.identity for c in study.cells}, set(names)
    if ours != theirs:
        raise InputError(f"{label}: holds another study ({len(ours - theirs)} cells of this spec are not in it, "
                         f"{len(theirs - ours)} of its cells are not in this spec); choose a new --out")
    order = {key: number for number, key in enumerate(names)}
    cells = sorted(study.cells, key=lambda c: order[c.identity])
    return dataclasses.replace(study, cells=tuple(dataclasses.replace(c, name=names[c.identity]) for c in cells))


def load(name: str) -> Study:
    """Read and check a spec file (or a built-in grid)."""
    return check(read_spec(name), name)
