"""A study's runs read back for the report: each cell's grid values, config and records.

Everything here reads files that ``ibcheck study`` wrote (``study.json`` and every cell's
run folder), so a report can be regenerated from the folders alone. The one write: a finished
cell whose metrics.jsonl is missing, unreadable or cut short gets it rewritten from its
checkpoint, as resuming the run would. The claims use only the runs that finished with
readable records (``usable``); ``left_out`` says which others there are, and why.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ibcheck import schema
from ibcheck.config import WIDE_STD_SHIFT, StudentConfig, TrainConfig
from ibcheck.estimators import registry
from ibcheck.interface import InputError
from ibcheck.pipeline import runs, tracking
from ibcheck.study import spec

STUDY_FILE = "study.json"
SUMMARY_FILE = "summary.csv"
PAPER_MIN = tracking.PAPER_MIN  # the paper's I(X;Z): min(vib, teacher_elbo)
EXACT = registry.EMPIRICAL.name  # the exact I(X;Z) / I(Y;Z) of the training set
POPULATION = "population"  # the annealed bracket on the I(X;Z) of the teacher's model population
INITS = {StudentConfig().std_shift: "vib_demo", WIDE_STD_SHIFT: "wide"}
FINISHED = "finished"
UNREADABLE = "unreadable records"
DUPLICATE = "duplicate"
# why the claims leave a run out, in the order ``left_out`` lists them (any other status follows)
LEFT_OUT = {
    "unfinished": "not finished: killed, still running or never started",
    "diverged": "diverged",
    "failed": "failed",
    UNREADABLE: "finished, but metrics.jsonl is missing, unreadable or cut short and checkpoint.pt cannot rebuild it",
    DUPLICATE: "the same config as an earlier cell (a study folder made before cells were compared by config)",
}


def init_label(shift: float) -> str:
    """The name of an initialisation: vib_demo (std_shift 5), wide (0), or the shift itself."""
    return INITS.get(float(shift), f"std_shift {float(shift):g}")


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One cell of a study: its name, grid values (dotted keys), the config its run recorded,
    how it ended ("finished", "diverged", "failed", "unfinished"), its metrics records, and
    ``problem``, a reason of ``LEFT_OUT`` (UNREADABLE, DUPLICATE) that keeps a finished run out
    of the claims, None where there is none."""

    cell: str
    values: dict[str, Any]
    config: dict
    status: str
    records: list[dict]
    problem: str | None = None

    def setting(self, key: str) -> Any:
        """A config value by dotted key, e.g. ``student.beta``."""
        value: Any = self.config
        for part in key.split("."):
            value = value[part]
        return value

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def zero_info(self) -> bool:
        return self.config.get("zero_info") is not None

    def tracked(self) -> list[dict]:
        """The records holding estimates (epoch 0, the early points, the tracked epochs)."""
        return [r for r in self.records if "I_XZ" in r]

    def epochs(self) -> list[dict]:
        """One record per whole epoch (0, 1, ...), light or tracked, without the early points."""
        return [r for r in self.records if not r.get("partial")]


def value(record: dict, target: str, name: str, key: str = "value") -> float:
    """An estimate's value (or ``key``) in a record; NaN where it is missing or was not finite."""
    entry = (record.get(target) or {}).get(name)
    found = None if entry is None else entry.get(key)
    return math.nan if found is None else float(found)


def series(records: list[dict], target: str, name: str, key: str = "value") -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of one estimator over the records that hold estimates."""
    tracked = [r for r in records if target in r]
    return (np.array([r["epoch"] for r in tracked], dtype=float),
            np.array([value(r, target, name, key) for r in tracked], dtype=float))


def population_series(records: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, midpoints, stderrs, widths) of the population bracket over the records that have one.
    The midpoint's se is the mean of the two ends' (an upper bound on it: the ends share their z), and
    half the paired width is added to it in quadrature, as the extra uncertainty of a value known only
    to lie in the bracket (a crossed bracket, width < 0 by noise, adds nothing)."""
    bracketed = [r for r in records if r.get("population")]
    epochs = np.array([r["epoch"] for r in bracketed], dtype=float)
    ends = {end: (np.array([value(r, "population", end) for r in bracketed], dtype=float),
                  np.array([value(r, "population", end, "stderr") for r in bracketed], dtype=float))
            for end in ("lower", "upper")}
    widths = np.array([value(r, "population", "width") for r in bracketed], dtype=float)
    middle = (ends["lower"][0] + ends["upper"][0]) / 2
    se = np.hypot((ends["lower"][1] + ends["upper"][1]) / 2, np.clip(widths, 0.0, None) / 2)
    return epochs, middle, se, widths


def dense(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of a per-epoch number (``logdet_cov``, ``grad_norm``) over whole epochs,
    NaN where it is null (epoch 0 has no gradient norm)."""
    whole = [r for r in records if not r.get("partial")]
    return (np.array([r["epoch"] for r in whole], dtype=float),
            np.array([math.nan if r.get(key) is None else float(r[key]) for r in whole], dtype=float))


def read_study_file(folder: Path) -> dict:
    """The study.json of a study folder, checked (``check_study_file``); InputError naming the file
    and the key that is wrong."""
    path = folder / STUDY_FILE
    try:
        text = runs.read_text(path)  # bounded, and never a FIFO
    except OSError:
        raise InputError(f"{folder}: not a study folder (no readable {STUDY_FILE})") from None
    try:
        study = json.loads(text)
    except (ValueError, RecursionError):
        raise InputError(f"{path}: not valid JSON") from None
    return check_study_file(study, path)


def _plain_name(name: Any) -> bool:
    """A cell's folder name: one path component, so that a study.json cannot point outside its folder."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


def _check_cell(cell: Any, where: str) -> dict:
    """A recorded cell with its config read through the config validator, as a resolved config."""
    if not isinstance(cell, dict):
        raise InputError(f"{where} must be an object")
    if not _plain_name(cell.get("name")):
        raise InputError(f"{where}.name must be a folder name inside the study, got {schema.show(cell.get('name'))}")
    if not isinstance(cell.get("values"), dict):
        raise InputError(f"{where}.values must be an object of grid values")

    def fail(key: str, why: str):
        raise InputError(f"{where}.config{'.' + key if key else ''} {why}")

    config = schema.from_json(TrainConfig, schema.current_names(TrainConfig, cell.get("config")), "", fail)
    return {**cell, "config": schema.to_json(config)}


def check_study_file(study: Any, path: Path) -> dict:
    """``study`` (study.json's value) if what the reports and ``ibcheck study`` read of it has the
    shape ``ibcheck study`` writes, its cells' configs resolved; else an InputError of one line."""
    if not isinstance(study, dict) or not isinstance(study.get("cells"), list):
        raise InputError(f"{path}: not a study file (no cells)")
    cells = [_check_cell(cell, f"{path}: cells[{i}]") for i, cell in enumerate(study["cells"])]
    spec_doc = study.get("spec")
    if not isinstance(spec_doc, dict) or not isinstance(spec_doc.get("grid", []), list):
        raise InputError(f"{path}: spec must be the study's checked spec (an object; its grid a list)")
    outcomes = study.get("results", {})
    if not isinstance(outcomes, dict) or not all(isinstance(v, dict) for v in outcomes.values()):
        raise InputError(f"{path}: results must be an object of one object per cell")
    executions = study.get("executions", [])
    if not isinstance(executions, list) or not all(
            isinstance(e, dict) and runs.number_or_null(e.get("wall_seconds")) for e in executions):
        raise InputError(f"{path}: executions must be a list of objects with a wall_seconds number")
    if not isinstance(study.get("description", ""), str):
        raise InputError(f"{path}: description must be a string")
    return {**study, "cells": cells}


def seconds(record: dict, part: str) -> float:
    """A record's seconds spent on ``part`` ("train", "estimate"): 0 where it has none."""
    spent = record.get("seconds")
    return (spent.get(part) or 0.0) if isinstance(spent, dict) else 0.0


def read_run_status(folder: Path) -> str | None:
    """The status a run folder recorded ("finished", "diverged"), None while it runs or before."""
    return runs.read_status(folder).get("status")


def _metrics(folder: Path) -> list | None:
    """A run folder's metrics records, None where metrics.jsonl is missing or a line is not JSON."""
    try:
        return runs.read_metrics(folder)
    except InputError:
        return None


def read_records(folder: Path) -> list[dict]:
    """A run folder's metrics records ([] before its first, or where metrics.jsonl is unreadable)."""
    return _metrics(folder) or []


def complete(records: list | None, epochs: int | None) -> bool:
    """Whether ``records`` can be a finished run's of ``epochs`` epochs: objects, the last whole
    epoch's (not an early point's) at ``epochs``."""
    if not records or not all(isinstance(r, dict) for r in records):
        return False
    whole = [r.get("epoch") for r in records if not r.get("partial")]
    return bool(whole) and whole[-1] == epochs


def finished(folder: Path, epochs: int) -> bool:
    """Whether a run folder finished and its metrics.jsonl holds all its records (read only)."""
    return read_run_status(folder) == FINISHED and complete(_metrics(folder), epochs)


def rebuild_metrics(folder: Path) -> list[dict] | None:
    """metrics.jsonl rewritten from the run's checkpoint (``runs.RunDir.load``, under the run's
    lock, as resuming the run would); its records, or None where that cannot be done (no readable
    config.json or checkpoint, a folder locked by another process or not writable)."""
    try:
        recorded = runs.read_config(folder, str(folder))
        run = runs.RunDir(folder, str(recorded.get("kind")), recorded.get("config") or {}, resume=True)
        with run.create():
            state = run.load()
    except InputError:
        return None
    return None if state is None else state["records"]


def finished_records(folder: Path, epochs: int | None) -> tuple[list[dict], str | None]:
    """A finished run's records, with metrics.jsonl rebuilt from checkpoint.pt where it is missing,
    unreadable or cut short: (records, None), or (what could be read, UNREADABLE) where the
    checkpoint cannot rebuild it either."""
    records = _metrics(folder)
    if complete(records, epochs):
        return records or [], None
    rebuilt = rebuild_metrics(folder)
    if complete(rebuilt, epochs):
        return rebuilt or [], None
    found = next((r for r in (rebuilt, records) if r), [])
    return [r for r in found if isinstance(r, dict)], UNREADABLE


def _load_cell(folder: Path, cell: dict, outcome: dict) -> RunResult:
    status = read_run_status(folder) or outcome.get("status") or "unfinished"
    if status == FINISHED:
        records, problem = finished_records(folder, cell["config"].get("epochs"))
    else:
        records, problem = read_records(folder), None
    return RunResult(cell["name"], dict(cell["values"]), cell["config"], status, records, problem)


def _mark_duplicates(loaded: list[RunResult]) -> list[RunResult]:
    """Every usable run whose config (``spec.identity``) an earlier usable run has, marked DUPLICATE."""
    seen: set[str] = set()
    marked = []
    for run in loaded:
        if usable(run):
            key = spec.identity(run.config)
            if key in seen:
                run = dataclasses.replace(run, problem=DUPLICATE)
            seen.add(key)
        marked.append(run)
    return marked


def load_study(folder: str | Path) -> tuple[dict, list[RunResult]]:
    """study.json and every cell's run (cells that never started have no records). A finished
    cell's metrics.jsonl is rebuilt where needed (``finished_records``); ``left_out(runs)`` says
    which runs the claims leave out, and why."""
    folder = Path(folder)
    study = read_study_file(folder)
    outcomes = study.get("results", {})
    loaded = [_load_cell(folder / cell["name"], cell, outcomes.get(cell["name"], {})) for cell in study["cells"]]
    return study, _mark_duplicates(loaded)


def why_left_out(run: RunResult) -> str | None:
    """Why the claims leave ``run`` out: its status where it did not finish, else its problem; None
    where they use it."""
    return run.status if run.status != FINISHED else run.problem


def usable(run: RunResult) -> bool:
    """Whether the claims use ``run``: it finished, with readable records, and repeats no other."""
    return why_left_out(run) is None


def left_out(loaded: Iterable[RunResult]) -> dict[str, list[str]]:
    """{reason: cell names} of the runs the claims leave out, reasons in the order of ``LEFT_OUT``
    (what each means), e.g. {"unfinished": ["seed=2"], "diverged": ["seed=0", "seed=1"]}; {} where none."""
    found: dict[str, list[str]] = {}
    for run in loaded:
        reason = why_left_out(run)
        if reason is not None:
            found.setdefault(reason, []).append(run.cell)
    order = [*LEFT_OUT, *sorted(set(found) - set(LEFT_OUT))]
    return {reason: found[reason] for reason in order if reason in found}


def left_out_text(found: dict[str, list[str]]) -> str:
    """``left_out`` as one sentence for a report, e.g. "3 runs are left out of the claims, findings
    and figures: unfinished (1): seed=2; diverged (2): seed=0, seed=1."; "" where none is."""
    count = sum(len(names) for names in found.values())
    if not count:
        return ""
    parts = "; ".join(f"{reason} ({len(names)}): {', '.join(names)}" for reason, names in found.items())
    return f"{count} run{'s are' if count > 1 else ' is'} left out of the claims, findings and figures: {parts}."
