"""Files ibcheck reads back are checked (hardening round 3, item 3): a corrupt study.json is refused
in one line naming the file and the key; a cell whose metrics.jsonl or status.json is corrupt, a
pipe or not a metrics record is left out of the report and named, never a traceback; ``Infinity``
in a record reads back as null with a ``not_finite`` note. The study is ``helpers.fake_study``."""
from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from ibcheck.cli import main
from ibcheck.interface import InputError
from ibcheck.pipeline import runs
from ibcheck.study import results

from helpers import fake_study, one_line_error


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return fake_study(tmp_path_factory.mktemp("fake") / "s")


@pytest.fixture
def study(pristine, tmp_path):
    shutil.copytree(pristine, tmp_path / "s")
    return tmp_path / "s"


def _edit_study(folder, change) -> None:
    path = folder / results.STUDY_FILE
    doc = json.loads(path.read_text())
    path.write_text(json.dumps(change(doc)))


def _set(doc: dict, path: str, value):
    target = doc
    *parents, last = path.split("/")
    for key in parents:
        target = target[int(key) if key.isdigit() else key]
    target[int(last) if last.isdigit() else last] = value
    return doc


@pytest.mark.parametrize("path, value, words", [
    ("cells/0/config", 5, ["cells[0].config must be an object"]),
    ("cells/1", 5, ["cells[1] must be an object"]),
    ("cells/0/name", "../../elsewhere", ["cells[0].name must be a folder name"]),
    ("cells/0/values", [], ["cells[0].values"]),
    ("cells/2/config/student/beta", "much", ["cells[2].config.student.beta"]),
    ("executions", 5, ["executions"]),
    ("executions/0/wall_seconds", "long", ["executions"]),
    ("results", [], ["results"]),
    ("spec", 5, ["spec"]),
    ("description", 5, ["description"]),
])
def test_a_corrupt_study_file_is_refused_naming_the_key(study, tmp_path, capsys, path, value, words):
    _edit_study(study, lambda doc: _set(doc, path, value))
    assert main(["study-report", str(study), "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys, str(study / results.STUDY_FILE), *words)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("content, words", [
    ("[]", ["not a study file"]),
    ("{\"cells\": 5}", ["not a study file"]),
    ("[[[[" * 10_000, ["not valid JSON"]),
    ("FIFO", ["not a regular file"]),
    ("HUGE", ["MiB"]),
])
def test_a_study_file_that_is_not_one_is_refused_in_one_line(study, tmp_path, capsys, content, words):
    path = study / results.STUDY_FILE
    path.unlink()
    if content == "FIFO":
        os.mkfifo(path)  # a read would block forever
    elif content == "HUGE":
        with open(path, "wb") as handle:
            handle.truncate(65 << 20)  # sparse: past the cap without the disk
    else:
        path.write_text(content)
    assert main(["study-report", str(study), "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys, *words)


def test_ibcheck_study_refuses_a_folder_whose_study_file_is_a_list_and_changes_nothing(study, tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(json.loads((study / results.STUDY_FILE).read_text())["spec"]))
    (study / results.STUDY_FILE).write_text("[]")
    before = sorted(str(p) for p in study.rglob("*"))
    assert main(["study", str(spec), "--out", str(study)]) == 2
    one_line_error(capsys, "not a study file")
    assert sorted(str(p) for p in study.rglob("*")) == before


def _corrupt_metrics(cell, how: str) -> None:
    path = cell / runs.METRICS
    lines = path.read_text().splitlines()
    if how == "a number":
        lines.append("5")
    elif how == "seconds a string":
        lines[1] = json.dumps(dict(json.loads(lines[1]), seconds="slow"))
    elif how == "no epoch":
        lines[1] = json.dumps({k: v for k, v in json.loads(lines[1]).items() if k != "epoch"})
    elif how == "an estimate a list":
        lines[2] = json.dumps(dict(json.loads(lines[2]), I_XZ={"vib": [1.0]}))
    elif how == "a bracket without its ends":
        lines[2] = json.dumps(dict(json.loads(lines[2]), population={"width": {"value": 0.1, "stderr": 0.0}}))
    elif how == "a pipe":
        path.unlink()
        os.mkfifo(path)
        return
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("how", ["a number", "seconds a string", "no epoch", "an estimate a list",
                                 "a bracket without its ends", "a pipe"])
def test_a_cell_with_corrupt_records_is_left_out_and_named(study, tmp_path, how):
    _corrupt_metrics(study / "seed=1", how)
    out = tmp_path / "r"
    assert main(["study-report", str(study), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "unreadable records (1): seed=1" in text, text[:2000]


def test_a_record_that_is_not_a_metrics_record_names_its_file_line_and_key(study):
    _corrupt_metrics(study / "seed=0", "seconds a string")
    with pytest.raises(InputError, match=r"line 2: \"seconds\" must be a number or an object of numbers"):
        runs.read_metrics(study / "seed=0")


def test_infinity_in_a_record_reads_back_as_null_with_a_note_and_never_reaches_the_report(study, tmp_path):
    path = study / "seed=0" / runs.METRICS
    lines = path.read_text().splitlines()
    assert '"logdet_cov": -12.0' in lines[2]
    lines[2] = lines[2].replace('"logdet_cov": -12.0', '"logdet_cov": Infinity')
    path.write_text("\n".join(lines) + "\n")
    record = runs.read_metrics(study / "seed=0")[2]
    assert record["logdet_cov"] is None and record["not_finite"][-1] == "logdet_cov"
    assert main(["study-report", str(study), "--out", str(tmp_path / "r")]) == 0
    for name in ("report.md", "fig6_logdet.csv"):
        text = (tmp_path / "r" / name).read_text()
        assert not re.search(r"\b(nan|inf|infinity)\b", text, re.IGNORECASE), name
    assert "unreadable" not in (tmp_path / "r" / "report.md").read_text()


def test_a_status_file_that_is_a_pipe_reads_as_no_status(study, tmp_path):
    status = study / "seed=2" / runs.STATUS
    status.unlink()
    os.mkfifo(status)
    assert runs.read_status(study / "seed=2") == {}
    assert main(["study-report", str(study), "--out", str(tmp_path / "r")]) == 0
    assert "unfinished (1): seed=2" in (tmp_path / "r" / "report.md").read_text()
