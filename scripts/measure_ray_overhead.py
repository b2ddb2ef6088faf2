"""Ray's overhead in `ibcheck study`, measured against the same cells run one after another
through `ibcheck train`, in one measurement on one machine.

Four study-small cells (wide init, Adam, beta 1e-3 and 1e-2, seeds 10 and 11) and their
teacher are run three ways, one after another:
  1. sequential: `ibcheck teacher`, then `ibcheck train` per cell (every process uses all cores);
  2. `ibcheck study --cpus-per-cell N` with N = all cores: Ray runs one cell at a time, so this
     does the same work as 1 and the difference is Ray's start-up and scheduling;
  3. `ibcheck study --cpus-per-cell 1`: one cell per core at a time (the default).
Writes OUT/ray_overhead.json with the wall times, the overhead (2 - 1) / 2 and cells per hour.

    python scripts/measure_ray_overhead.py reports/study-small
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CELLS = [(beta, seed) for beta in (0.001, 0.01) for seed in (10, 11)]
STUDENT = {"std_shift": 0.0, "optimizer": "adam"}


def _run(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ibcheck", *args, "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def sequential(work: Path) -> float:
    teacher_config = work / "teacher.json"
    teacher_config.write_text(json.dumps({"data": {"train_points": 2000}, "teacher": {"epochs": 30, "seed": 0}}))
    total = _run("teacher", "--out", str(work / "teacher"), "--config", str(teacher_config))
    for beta, seed in CELLS:
        config = work / f"cell-{beta}-{seed}.json"
        config.write_text(json.dumps({"student": {**STUDENT, "beta": beta}}))
        total += _run("train", "--preset", "study-small", "--teacher", str(work / "teacher"), "--config",
                      str(config), "--seed", str(seed), "--out", str(work / f"train-{beta}-{seed}"))
    return total


def on_ray(work: Path, cpus: int) -> float:
    spec = work / "spec.json"
    spec.write_text(json.dumps({"preset": "study-small", "grid": {
        "student.std_shift": [STUDENT["std_shift"]], "student.optimizer": [STUDENT["optimizer"]],
        "student.beta": [b for b in (0.001, 0.01)], "seed": [10, 11]}}))
    return _run("study", str(spec), "--out", str(work / f"study-{cpus}"), "--cpus-per-cell", str(cpus))


def main(out: str) -> None:
    cores = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="ibcheck-ray-overhead."))
    try:
        seq = sequential(work)
        ray_serial = on_ray(work, cores)
        ray_parallel = on_ray(work, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"cells": len(CELLS), "cores": cores, "sequential_train_seconds": seq,
              "ray_one_cell_at_a_time_seconds": ray_serial, "ray_one_cell_per_core_seconds": ray_parallel,
              "ray_overhead_fraction": (ray_serial - seq) / ray_serial,
              "cells_per_hour": {"sequential": 3600 * len(CELLS) / seq, "ray_one_at_a_time": 3600 * len(CELLS)
                                 / ray_serial, "ray_one_per_core": 3600 * len(CELLS) / ray_parallel}}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "ray_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "reports/study-small")
