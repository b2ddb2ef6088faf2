"""A study's ``summary.csv``: one row per cell, from its run folder and the driver's record."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ibcheck import fileio
from ibcheck.study import results

COLUMNS = ("status", "epochs_done", "epochs", "I_XZ_exact_first", "I_XZ_exact_max", "epoch_of_max",
           "I_XZ_exact_last", "I_XZ_paper_last", "I_YZ_barber_agakov_last", "accuracy_test_last",
           "seconds_train", "seconds_estimate", "estimate_over_train", "error")


def _numbers(records: list[dict]) -> list:
    """The numeric columns of one run (empty where it has no records yet)."""
    tracked = [r for r in records if "I_XZ" in r]
    if not tracked:
        return [None] * 10
    epochs, exact = results.series(tracked, "I_XZ", results.EXACT)
    peak = int(np.nanargmax(exact)) if not np.isnan(exact).all() else None
    last = tracked[-1]
    train = sum(results.seconds(r, "train") for r in records)
    estimate = sum(results.seconds(r, "estimate") for r in records)
    return [exact[0], None if peak is None else exact[peak], None if peak is None else epochs[peak], exact[-1],
            results.value(last, "I_XZ", results.PAPER_MIN), results.value(last, "I_YZ", "barber_agakov"),
            (last.get("accuracy") or {}).get("test"), train, estimate, estimate / train if train > 0 else None]


def _clean(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_summary(folder: Path, record: dict) -> Path:
    """summary.csv beside the cells: name, grid values, status and the run's headline numbers."""
    keys = list(dict.fromkeys(k for cell in record["cells"] for k in cell["values"]))
    rows = []
    for cell in record["cells"]:
        outcome = record["results"].get(cell["name"], {})
        run_records = results.read_records(folder / cell["name"])
        status = (results.read_run_status(folder / cell["name"]) or outcome.get("status")
                  or ("running" if run_records else "not started"))
        done = max((r["epoch"] for r in run_records if not r.get("partial")), default=0)
        row = [cell["name"], *(cell["values"].get(k) for k in keys), status, done, cell["config"]["epochs"]]
        row += _numbers(run_records) + [outcome.get("error")]
        rows.append([_clean(v) for v in row])
    path = folder / results.SUMMARY_FILE
    fileio.write_csv(path, ["cell", *keys, *COLUMNS], rows)
    return path
