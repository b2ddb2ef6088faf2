"""A study folder survives what happens to folders (issue 19): a driver killed before study.json
first existed leaves a folder the same command takes up again; a run folder deleted under a
running run is not made again without its config.json; a moved study folder resumes (a teacher's
path is where it is, its settings what it is). Fast: no training."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from ibcheck import schema
from ibcheck.interface import InputError
from ibcheck.pipeline import runs, teacher_run
from ibcheck.study import execute, results, spec

SMOKE = {"preset": "smoke", "grid": {"seed": [0, 1]}}


def _state() -> dict:
    return {"records": [{"epoch": 0}], "weights": torch.zeros(2)}


# ---------------------------------------------------------------- a driver killed before study.json


@pytest.mark.parametrize("left", [[], [execute.LOCK], [execute.LOCK, ".study.json.k2j8x0.tmp"],
                                  [".summary.csv.a1b2c3.tmp"]])
def test_a_folder_a_killed_driver_left_before_study_json_is_taken_up(tmp_path, left):
    folder = tmp_path / "s"
    folder.mkdir()
    for name in left:
        (folder / name).write_text("{half")
    study, recorded = execute.check_folder(spec.check(SMOKE, "s"), folder)
    assert recorded is None and len(study.cells) == 2
    with execute.StudyLock(folder):  # the lock clears what the killed driver half wrote
        assert sorted(p.name for p in folder.iterdir()) == [execute.LOCK]


@pytest.mark.parametrize("left", [["notes.txt"], [execute.LOCK, ".other.json.k2j8x0.tmp"], ["seed=0"]])
def test_a_folder_with_anything_else_is_still_refused(tmp_path, left):
    folder = tmp_path / "s"
    folder.mkdir()
    for name in left:
        (folder / name).write_text("mine")
    with pytest.raises(InputError, match="folder is not empty and holds no study.json"):
        execute.check_folder(spec.check(SMOKE, "s"), folder)


# ---------------------------------------------------------------- a run folder deleted mid-run


def _created(path: Path, config: dict) -> runs.RunDir:
    return runs.RunDir(path, "train", config, resume=True).create()


@pytest.mark.parametrize("write", ["save", "set_status"])
def test_a_run_folder_deleted_while_it_runs_is_not_made_again(tmp_path, write):
    path = tmp_path / "s" / "seed=0"
    run = _created(path, {"seed": 0})
    shutil.rmtree(path)
    with pytest.raises(InputError, match="the run folder was deleted or moved while the run wrote it"):
        run.save(_state()) if write == "save" else run.set_status("finished")
    assert not path.exists()
    run.release()
    again = _created(path, {"seed": 0})  # the next run starts it anew, with its config
    again.save(_state())
    assert runs.read_config(path, "x")["config"] == {"seed": 0} and runs.load_state(path) is not None


def test_a_missing_file_in_a_present_run_folder_is_not_blamed_on_the_folder(tmp_path, monkeypatch):
    run = _created(tmp_path / "r", {"seed": 0})

    def missing(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "elsewhere")

    monkeypatch.setattr(torch, "save", missing)
    with pytest.raises(FileNotFoundError):
        run.save(_state())


# ---------------------------------------------------------------- a moved study folder


def _cells_at(folder: Path) -> spec.Study:
    """SMOKE's study with its study.json and cell folders (config and a checkpoint) as at ``folder``."""
    study = spec.check(SMOKE, "s")
    execute.Ledger.open(folder, study, None).write()
    for cell in study.cells:
        with _created(folder / cell.name, schema.to_json(cell.with_teacher(folder))) as run:
            run.save(_state())
    return study


def test_a_moved_study_folder_is_its_study_and_its_cells_take_the_new_teacher_path(tmp_path):
    study = _cells_at(tmp_path / "old")
    (tmp_path / "old").rename(tmp_path / "new")
    new = tmp_path / "new"
    found, _ = execute.check_folder(study, new)  # was "holds another run": the configs held the old path
    cell = found.cells[0]
    with _created(new / cell.name, schema.to_json(cell.with_teacher(new))):
        recorded = runs.read_config(new / cell.name, "x")["config"]
    assert recorded["teacher_run"] == str((new / spec.TEACHERS / cell.teacher).resolve())


def test_a_run_of_other_settings_is_still_another_run(tmp_path):
    study = _cells_at(tmp_path / "s")
    cell = study.cells[0]
    other = dataclasses.replace(cell, config=dataclasses.replace(cell.config, epochs=cell.config.epochs + 1))
    with pytest.raises(InputError, match="holds another run"):
        runs.RunDir(tmp_path / "s" / cell.name, "train", schema.to_json(other.with_teacher(tmp_path / "s")), True)


def test_a_teacher_folder_of_other_settings_is_refused_when_loaded(tmp_path):
    config = spec.check(SMOKE, "s").cells[0].config.teacher_run_config
    other = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, seed=config.teacher.seed + 1))
    with runs.RunDir(tmp_path / "t", teacher_run.KIND, schema.to_json(other), resume=False).create():
        pass
    with pytest.raises(InputError, match="holds a teacher of other settings"):
        teacher_run.finished_teacher(str(tmp_path / "t"), config)


def test_the_ledger_records_the_new_teacher_paths(tmp_path):
    study = _cells_at(tmp_path / "old")
    (tmp_path / "old").rename(tmp_path / "new")
    found, recorded = execute.check_folder(study, tmp_path / "new")
    execute.Ledger.open(tmp_path / "new", found, recorded).write()
    cells = json.loads((tmp_path / "new" / results.STUDY_FILE).read_text())["cells"]
    assert all(c["config"]["teacher_run"].startswith(str((tmp_path / "new").resolve())) for c in cells)


# ---------------------------------------------------------------- the teachers' wait is reported


class _SlowRay:
    """The Ray calls ``_teachers`` makes, with tasks that are ready one per three waits."""

    class exceptions:  # noqa: N801 (Ray's own name)
        RayError = RuntimeError

    class _Task:
        def options(self, **kw):
            return self

        def remote(self, *args):
            return object()  # a task's reference

    def __init__(self) -> None:
        self.waits = 0

    def remote(self, fn):
        return self._Task()

    def wait(self, refs, num_returns, timeout):
        self.waits += 1
        return (refs[:1], refs[1:]) if self.waits % 3 == 0 else ([], refs)

    def get(self, ref):
        return {"status": execute.STATUS_FINISHED, "error": None, "seconds": 1.0}


def test_the_driver_says_that_it_waits_for_the_teachers(tmp_path):
    """A teacher trains for minutes before the first cell starts: progress hears of it."""
    two = spec.check({"preset": "smoke", "grid": {"data.train_points": [500, 1000]}}, "s")
    heard: list[dict] = []
    failed = execute._teachers(_SlowRay(), two, tmp_path, execute.TaskOptions(1, 0.0), heard.append)
    assert failed == {} and [h["teachers"] for h in heard] == [2, 2, 2, 1, 1, 1]
