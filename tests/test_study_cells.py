"""A study's cells are their configs (issue 19): a restated default, 1 against 1.0 and grid key
order make no new cell, a folder keeps its cell names, and reading a study back leaves out (and
names) the runs that did not finish or whose records cannot be read, rebuilding a finished run's
metrics.jsonl from its checkpoint where it can. Fast: no training."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ibcheck import schema
from ibcheck.interface import InputError
from ibcheck.pipeline import runs
from ibcheck.study import execute, results, spec

ROOT = Path(__file__).resolve().parents[1]
BRACKET = ROOT / "runs" / "study-bracket"
SMOKE = {"preset": "smoke", "grid": [{"seed": [0, 1], "student.beta": [0.001, 0.01]}, {"zero_info": ["redraw"],
                                                                                      "seed": [0]}]}


def _reordered(value: dict) -> dict:
    """The spec with every grid's keys in reverse order."""
    return {**value, "grid": [dict(reversed(list(g.items()))) for g in value["grid"]]}


def test_key_order_1_and_1_0_and_a_restated_default_give_the_same_identity():
    cells = spec.check(SMOKE, "s").cells
    same = spec.check({**_reordered(SMOKE), "base": {"student": {"std_shift": 5}}}, "s").cells
    assert sorted(c.identity for c in cells) == sorted(c.identity for c in same)
    assert [c.name for c in cells] != [c.name for c in same]  # the names follow the key order ...
    one = spec.check({"preset": "smoke", "grid": {"student.beta": [1]}}, "s").cells[0]
    assert one.identity == spec.check({"preset": "smoke", "grid": {"student.beta": [1.0]}}, "s").cells[0].identity
    # a study.json's config names its teacher's folder; that is no part of the cell
    assert spec.identity({**_as_json(one), "teacher_run": "/somewhere/teachers/abc"}) == one.identity


def _as_json(cell: spec.Cell) -> dict:
    return schema.to_json(cell.config)


def _recorded(study: spec.Study, folder: Path) -> dict:
    return {"spec": study.canonical, "cells": [{"name": c.name, "values": c.values,
                                                "config": _as_json(c) | {"teacher_run": str(folder)}}
                                               for c in study.cells]}


def test_a_folder_keeps_its_cell_names_for_a_reordered_spec_and_refuses_other_cells(tmp_path):
    first = spec.check(SMOKE, "s")
    (tmp_path / results.STUDY_FILE).write_text(json.dumps(_recorded(first, tmp_path)))
    again, recorded = execute.check_folder(spec.check(_reordered(SMOKE), "s"), tmp_path)
    assert recorded is not None and [c.name for c in again.cells] == [c.name for c in first.cells]
    other = {**SMOKE, "grid": [{"seed": [0, 1, 2], "student.beta": [0.001, 0.01]}, SMOKE["grid"][1]]}
    with pytest.raises(InputError, match=r"holds another study \(2 cells of this spec are not in it, 0 of its"):
        execute.check_folder(spec.check(other, "s"), tmp_path)


@pytest.mark.skipif(not (BRACKET / results.STUDY_FILE).exists(), reason="runs/study-bracket is not here")
def test_the_study_bracket_folder_is_still_this_study_and_finished():
    """Read only: runs/study-bracket, written before cells were compared by config, is accepted by
    its spec (and by the spec with its keys reordered), with its folder names and nothing to run."""
    recorded = [c["name"] for c in results.read_study_file(BRACKET)["cells"]]
    for value in (spec.read_spec("study-bracket"), _reordered(spec.read_spec("study-bracket"))):
        study, _ = execute.check_folder(spec.check(value, "study-bracket"), BRACKET)
        assert [c.name for c in study.cells] == recorded and execute._todo(study, BRACKET) == []


# ---------------------------------------------------------------- reading a study back

EPOCHS = 2
RECORDS: list[dict] = [{"epoch": 0, "step": 0}, {"epoch": 0.5, "step": 5, "partial": True}, {"epoch": 1, "step": 10},
           {"epoch": 2, "step": 20}]


def _cell(folder: Path, name: str, status: str | None, metrics: str | None, checkpoint: bool,
          seed: int = 0) -> dict:
    """A hand-made run folder (config.json, status.json, metrics.jsonl and checkpoint.pt as given);
    its entry in study.json."""
    config = {"seed": seed, "epochs": EPOCHS, "zero_info": None, "teacher_run": str(folder / "teachers" / "t")}
    run = folder / name
    run.mkdir(parents=True)
    (run / runs.CONFIG).write_text(json.dumps({"kind": "train", "config": config}))
    if status is not None:
        (run / runs.STATUS).write_text(json.dumps({"status": status}))
    if metrics is not None:
        (run / runs.METRICS).write_text(metrics)
    if checkpoint:
        torch.save({"records": RECORDS}, run / runs.CHECKPOINT)
    return {"name": name, "values": {"seed": seed}, "config": config}


def _study(folder: Path, *cells: dict) -> None:
    (folder / results.STUDY_FILE).write_text(json.dumps({"spec": {}, "cells": list(cells), "results": {}}))


def _lines(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.mark.parametrize("metrics", [None, "", "{not json\n", _lines(RECORDS[:2])],
                         ids=["missing", "empty", "corrupt", "cut short"])
def test_a_finished_cell_without_its_metrics_is_rebuilt_from_its_checkpoint(tmp_path, metrics):
    _study(tmp_path, _cell(tmp_path, "seed=0", "finished", metrics, checkpoint=True))
    _, [run] = results.load_study(tmp_path)
    assert run.records == RECORDS and run.problem is None and results.usable(run)
    assert runs.read_metrics(tmp_path / "seed=0") == RECORDS  # metrics.jsonl itself is rebuilt


def test_runs_left_out_are_named_with_the_reason(tmp_path):
    _study(tmp_path, _cell(tmp_path, "seed=0", "finished", _lines(RECORDS), checkpoint=False),
           _cell(tmp_path, "seed=1", "finished", "", checkpoint=False, seed=1),
           _cell(tmp_path, "seed=2", None, _lines(RECORDS[:2]), checkpoint=True, seed=2),
           _cell(tmp_path, "seed=3", "diverged", _lines(RECORDS[:3]), checkpoint=True, seed=3),
           _cell(tmp_path, "again", "finished", _lines(RECORDS), checkpoint=False))  # seed=0's config
    _, loaded = results.load_study(tmp_path)
    assert [r.cell for r in loaded if results.usable(r)] == ["seed=0"]
    left = results.left_out(loaded)
    assert left == {"unfinished": ["seed=2"], "diverged": ["seed=3"], results.UNREADABLE: ["seed=1"],
                    results.DUPLICATE: ["again"]}
    assert results.left_out_text(left) == ("4 runs are left out of the claims, findings and figures: unfinished (1): "
                                           "seed=2; diverged (1): seed=3; unreadable records (1): seed=1; duplicate "
                                           "(1): again.")
    assert set(left) <= set(results.LEFT_OUT) and results.left_out_text({}) == ""


def test_a_rerun_resumes_a_finished_cell_whose_metrics_are_gone(tmp_path):
    study = spec.check({"preset": "smoke", "grid": {"seed": [0, 1]}}, "s")
    for cell, metrics in zip(study.cells, ("", _lines([*RECORDS[:-1], {"epoch": 3, "step": 30}]))):
        run = tmp_path / cell.name
        run.mkdir()
        (run / runs.STATUS).write_text(json.dumps({"status": "finished"}))
        (run / runs.METRICS).write_text(metrics)
    assert [c.name for c in execute._todo(study, tmp_path)] == ["seed=0"]  # smoke runs 3 epochs: seed=1 is done


def test_a_report_of_a_study_where_no_run_finished_is_refused_in_one_line(tmp_path):
    """The figures and findings show the runs the claims judge; with none, there is no report."""
    from ibcheck.study import report

    _study(tmp_path, _cell(tmp_path, "seed=2", None, _lines(RECORDS[:2]), checkpoint=True, seed=2),
           _cell(tmp_path, "seed=3", "diverged", _lines(RECORDS[:3]), checkpoint=True, seed=3))
    with pytest.raises(InputError, match=r"no cell has finished yet \(2 cells\)"):
        report.write(tmp_path, tmp_path / "report")
    assert not (tmp_path / "report").exists()
