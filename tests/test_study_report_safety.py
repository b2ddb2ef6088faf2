"""``ibcheck study-report --out``: a folder holding anything but a study report is refused before anything
is written; a previous study report is replaced whole (the swap of ``fileio.replacing_folder``), and
an interrupted report leaves it as it was; a value that was not finite never reaches report.md as
nan (hardening issue 19). The study is a small fake one, written as ``ibcheck study`` and
``ibcheck train`` write theirs: three finished cells of four records each."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ibcheck.cli import main
from ibcheck.study import report as report_mod
from ibcheck.study import results

from helpers import fake_study


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return fake_study(tmp_path_factory.mktemp("fake") / "s")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith("."))


def test_a_value_that_was_not_finite_is_left_out_of_the_means_and_counted(study, tmp_path):
    out = tmp_path / "r"
    assert main(["study-report", str(study), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE), text
    found = text.split("## What it found", 1)[1].split("##", 1)[0]
    # the means of the finite values: the start of cells 0 and 1, the peak of all, the end of cells 0 and 2
    assert ("starts at 1.10, peaks at 4.10 and ends at 3.60 nats (means over 3 runs; at the start over 2, as 1 run "
            "has no finite value there; at the end over 2, as 1 run has no finite value there)") in found, found
    assert "ln N = 6.21 nats" in found


def test_the_findings_say_so_where_no_run_has_a_value():
    record = {"epoch": 0, "I_XZ": {"empirical": {"value": None}}, "not_finite": ["I_XZ.empirical.value"]}
    later = {"epoch": 1, "I_XZ": {"empirical": {"value": 2.0}}}
    config = {"seed": 0, "zero_info": None, "student": {"std_shift": 5.0}}
    cells = [results.RunResult(f"c{i}", {}, dict(config, seed=i), "finished", [record, later]) for i in range(2)]
    text = report_mod.findings(cells, {"rows": [], "alpha": 0.05})
    assert "nan" not in text and "ln N = – nats" in text
    assert "starts at –, peaks at 2.00 and ends at 2.00 nats (means over 2 runs; at the start over 0, as 2 runs " \
           "have no finite value there)" in text


def test_a_folder_with_other_files_is_refused_before_anything_is_written(study, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "report.md").write_text("my own report.md")
    assert main(["study-report", str(study), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.txt" in err and "not part of a study report" in err, err
    assert _files(out) == {"notes.txt": b"mine", "report.md": b"my own report.md"} and _hidden(out) == []


def test_a_previous_report_is_replaced_whole_and_an_interrupted_one_leaves_it(study, tmp_path, monkeypatch):
    out = tmp_path / "r"
    assert main(["study-report", str(study), "--out", str(out)]) == 0
    (out / "ray_overhead.json").write_text('{"measured": true}\n')  # scripts/measure_ray_overhead.py's
    (out / "report.md").write_text("an older report.md")
    before = _files(out)
    assert sorted(before) == sorted(report_mod.REPORT_FILES + report_mod.KEPT)

    def interrupted(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(report_mod, "report_markdown", interrupted)  # the last file the report writes
        assert main(["study-report", str(study), "--out", str(out)]) == 130
    assert _files(out) == before and _hidden(out) == []
    assert main(["study-report", str(study), "--out", str(out)]) == 0
    after = _files(out)
    assert sorted(after) == sorted(before) and after["ray_overhead.json"] == b'{"measured": true}\n'
    assert after["report.md"].startswith(b"# Study report") and _hidden(out) == []


def test_a_bracket_width_that_was_not_finite_is_counted_not_averaged():
    from ibcheck.study import population

    def bracket(width):
        end = {"value": 10.0, "stderr": 0.1}
        return {"lower": end, "upper": end, "width": {"value": width, "stderr": 0.05}, "T": 32, "stopped": "target"}

    config = {"seed": 0, "zero_info": None, "student": {"std_shift": 5.0, "beta": 0.001}}
    records = [{"epoch": 0, "population": bracket(0.2)}, {"epoch": 1, "population": bracket(None)},
               {"epoch": 2, "population": bracket(0.4)}]
    found = population.summary([results.RunResult("c0", {}, config, "finished", records)])
    (cond,) = found["conditions"].values()
    assert found["not_finite"] == 1 and cond["records"] == 2 and cond["median_width"] == pytest.approx(0.3)
    text = "\n".join(population.summary_markdown(found))
    assert "nan" not in text.lower() and "1 bracketed records have no finite width" in text
