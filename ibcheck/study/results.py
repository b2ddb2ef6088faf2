"""A study's runs read back for the report: each cell's grid values, config and records.

Everything here reads files that ``ibcheck study`` wrote (``study.json`` and every cell's
run folder), so a report can be regenerated from the folders alone.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ibcheck.config import WIDE_STD_SHIFT, StudentConfig
from ibcheck.estimators import registry
from ibcheck.interface import InputError
from ibcheck.pipeline import runs, tracking

STUDY_FILE = "study.json"
SUMMARY_FILE = "summary.csv"
PAPER_MIN = tracking.PAPER_MIN  # the paper's I(X;Z): min(vib, teacher_elbo)
EXACT = registry.EMPIRICAL.name  # the exact I(X;Z) / I(Y;Z) of the training set
POPULATION = "population"  # the annealed bracket on the I(X;Z) of the teacher's model population
INITS = {StudentConfig().std_shift: "vib_demo", WIDE_STD_SHIFT: "wide"}


def init_label(shift: float) -> str:
    """The name of an initialisation: vib_demo (std_shift 5), wide (0), or the shift itself."""
    return INITS.get(float(shift), f"std_shift {float(shift):g}")


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One cell of a study: its name, grid values (dotted keys), the config its run recorded,
    how it ended ("finished", "diverged", "failed", "unfinished") and its metrics records."""

    cell: str
    values: dict[str, Any]
    config: dict
    status: str
    records: list[dict]

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
    """The study.json of a study folder; InputError naming what is wrong."""
    path = folder / STUDY_FILE
    try:
        study = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise InputError(f"{folder}: not a study folder (no readable {STUDY_FILE})") from None
    except ValueError:
        raise InputError(f"{path}: not valid JSON") from None
    if not isinstance(study, dict) or not isinstance(study.get("cells"), list):
        raise InputError(f"{path}: not a study file (no cells)")
    return study


def read_run_status(folder: Path) -> str | None:
    """The status a run folder recorded ("finished", "diverged"), None while it runs or before."""
    return runs.read_status(folder).get("status")


def read_records(folder: Path) -> list[dict]:
    """A run folder's metrics records ([] before its first)."""
    return runs.read_metrics(folder) or []


def load_study(folder: str | Path) -> tuple[dict, list[RunResult]]:
    """study.json and every cell's run (cells that never started have no records)."""
    folder = Path(folder)
    study = read_study_file(folder)
    results = study.get("results", {})
    loaded = []
    for cell in study["cells"]:
        run_folder = folder / cell["name"]
        status = read_run_status(run_folder) or results.get(cell["name"], {}).get("status")
        loaded.append(RunResult(cell["name"], dict(cell["values"]), cell["config"], status or "unfinished",
                                read_records(run_folder)))
    return study, loaded
