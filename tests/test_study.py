"""``ibcheck study`` and ``ibcheck study-report``: the spec is checked whole before anything runs, a
tiny study runs on local Ray (four smoke cells, one zero-information), a re-run skips finished
cells, a killed study resumes without redoing them, a failed cell is recorded without stopping
the others, and the report is written from the folders."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ibcheck import cli
from ibcheck.interface import InputError
from ibcheck.pipeline import runs
from ibcheck.study import execute, results, spec
from ibcheck.study import report as report_mod

SMOKE = {"preset": "smoke", "grid": [{"seed": [0, 1, 2]}, {"zero_info": ["redraw"], "seed": [0]}]}

BAD_SPECS = [
    ({"preset": "nope", "grid": {"seed": [0]}}, "preset must be one of"),
    ({"preset": "smoke"}, "grid must be a non-empty object"),
    ({"preset": "smoke", "grid": {}}, "grid must be a non-empty object"),
    ({"preset": "smoke", "grid": {"seed": []}}, "grid.seed must be a non-empty list"),
    ({"preset": "smoke", "grid": {"seed": 3}}, "grid.seed must be a non-empty list"),
    ({"preset": "smoke", "grid": {"seed": [1, 1]}}, "grid.seed lists a value twice"),
    ({"preset": "smoke", "grid": {"track.population.q_hidden": [[1] * 100]}}, "more than the 255 a file system"),
    ({"preset": "smoke", "grid": {"student.beta": [0.1, "x"]}}, 'grid.student.beta = "x": student.beta must be'),
    ({"preset": "smoke", "grid": {"student.bogus": [1]}}, "student.bogus unknown key"),
    ({"preset": "smoke", "grid": [{"seed": [0]}, {"zero_info": ["sometimes"]}]}, "grid[1].zero_info"),
    ({"preset": "smoke", "grid": {"teacher_run": ["x"]}}, "the study sets teacher_run itself"),
    ({"preset": "smoke", "base": {"student": {"beta": -1}}, "grid": {"seed": [0]}}, "base: student.beta must be"),
    ({"preset": "smoke", "base": [], "grid": {"seed": [0]}}, "base must be an object"),
    ({"preset": "smoke", "grid": {"seed": [0]}, "grdi": 1}, "grdi: unknown key"),
    ({"preset": "smoke", "grid": {"data.source": ["idx"]}}, "data.source idx needs data.dir"),
    # issue 19: a cell is its config, so a restated default or 1 against 1.0 is the same cell twice
    ({"preset": "smoke", "grid": [{"seed": [0]}, {"seed": [0], "student.beta": [0.001]}]},
     "grid[0] cell seed=0 and grid[1] cell seed=0,student.beta=0.001 are the same run"),
    ({"preset": "smoke", "grid": {"student.beta": [1, 1.0]}},
     "grid cell student.beta=1 and grid cell student.beta=1.0 are the same run"),
    ({"preset": "smoke", "grid": {"student.std_shift": [5, 5.0]}},
     "grid cell student.std_shift=5 and grid cell student.std_shift=5.0 are the same run"),
    ({"preset": "smoke", "grid": [{"seed": [0, 1]}, {"seed": [0]}]},
     "grid[0] cell seed=0 and grid[1] cell seed=0 are the same run"),
]


@pytest.mark.parametrize("bad,message", BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_a_bad_spec_gets_one_line_and_status_2(tmp_path, capsys, bad, message):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(bad))
    assert cli.main(["study", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and str(path) in err
    assert not (tmp_path / "out").exists()  # nothing is written


def test_cells_are_the_union_of_grid_products_and_share_one_teacher():
    study = spec.check({"preset": "smoke", "grid": [{"student.beta": [0.001, 0.01], "seed": [0, 1]},
                                                    {"zero_info": ["redraw"], "seed": [0]}]}, "s")
    assert [c.name for c in study.cells] == ["student.beta=0.001,seed=0", "student.beta=0.001,seed=1",
                                             "student.beta=0.01,seed=0", "student.beta=0.01,seed=1",
                                             "zero_info=redraw,seed=0"]
    assert len(study.teachers) == 1 and {c.config.teacher.seed for c in study.cells} == {0}
    assert [c.config.seed for c in study.cells] == [0, 1, 0, 1, 0]
    other = spec.check({"preset": "smoke", "grid": {"data.train_points": [500, 1000]}}, "s")
    assert len(other.teachers) == 2  # one teacher per distinct data setting


def test_builtin_grids_are_valid_and_sized_as_stated():
    small, paper = spec.load("study-small"), spec.load("study-paper")
    assert len(small.cells) == 30 and len({c.config.seed for c in small.cells}) >= 3
    assert {c.config.student.std_shift for c in small.cells} == {5.0, 0.0}
    assert {c.config.student.optimizer for c in small.cells} == {"adam", "sgd"}
    assert any(c.config.zero_info for c in small.cells)
    assert {c.config.student.beta for c in paper.cells} == {1e-4, 1e-3, 1e-2}
    assert {c.config.student.encoder for c in paper.cells} == {"mlp", "cnn"}
    assert all(c.config.epochs == 200 for c in paper.cells) and len({c.config.seed for c in paper.cells}) == 5


def _ibcheck(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ibcheck", *args], capture_output=True, text=True, timeout=600,
                          **options)


def _write(path: Path, value: dict) -> str:
    path.write_text(json.dumps(value))
    return str(path)


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    """The CI study: four smoke cells (one zero-information) on a local Ray, then its report."""
    root = tmp_path_factory.mktemp("study")
    spec_file = _write(root / "smoke.json", SMOKE)
    done = _ibcheck("study", spec_file, "--out", str(root / "s"), "--quiet")
    report = _ibcheck("study-report", str(root / "s"), "--out", str(root / "report"))
    return root, spec_file, done, report


def test_a_tiny_study_runs_on_local_ray(smoke_study):
    root, _, done, _ = smoke_study
    assert done.returncode == 0, done.stderr
    study = json.loads((root / "s" / results.STUDY_FILE).read_text())
    assert [e["address"] for e in study["executions"]] == ["local"] and study["executions"][0]["cells_to_run"] == 4
    with open(root / "s" / results.SUMMARY_FILE) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"finished"}
    assert {r["zero_info"] for r in rows} == {"", "redraw"} and all(r["epochs_done"] == "3" for r in rows)
    teachers = list((root / "s" / "teachers").iterdir())
    assert len(teachers) == 1 and runs.read_status(teachers[0])["status"] == "finished"
    for cell in study["cells"]:  # each cell is an ordinary run folder that uses the shared teacher
        config = json.loads((root / "s" / cell["name"] / runs.CONFIG).read_text())["config"]
        assert config["teacher_run"] == str(teachers[0])


def test_a_finished_tiny_study_shows_every_epoch_done(smoke_study):
    """The progress bar's numbers: the cells' 4 x 3 epochs and the shared smoke teacher's 3, all on disk."""
    root, spec_file, _, _ = smoke_study
    study = spec.load(spec_file)
    state = execute._state(study, root / "s", {}, {})
    assert (state["epochs"], state["teacher_epochs"], state["done"]) == (12, 3, 4)


def test_the_report_of_the_tiny_study(smoke_study):
    root, _, _, report = smoke_study
    assert report.returncode == 0, report.stderr
    out = root / "report"
    for stem in ("fig3_zero_info", "fig4_bounds", "fig5_info_plane", "fig6_logdet", "fig7_grad_norm",
                 "fig8_bracket"):
        assert (out / f"{stem}.png").stat().st_size > 0 and (out / f"{stem}.csv").exists()
    with open(out / "fig8_bracket.csv") as handle:  # every smoke record brackets the population
        bracket = list(csv.DictReader(handle))
    assert len(bracket) == sum(len(runs.read_metrics(root / "s" / c["name"])) for c in
                               json.loads((root / "s" / results.STUDY_FILE).read_text())["cells"])
    assert all(float(r["width"]) == pytest.approx(float(r["upper"]) - float(r["lower"]), abs=1e-4) for r in bracket)
    claims = json.loads((out / "claims.json").read_text())
    assert claims["bracket"]["cost_over_train"]["cells"] == 4
    assert {r["claim"] for r in claims["rows"]} == {"C1", "C2", "C3", "C4", "C5", "C6"}
    assert all(r["verdict"] in ("reproduced", "not reproduced", "inconclusive") for r in claims["rows"])
    text = (out / "report.md").read_text()
    assert "## What it found" in text and "seeds [0, 1, 2]" in text and "![Fig. 3" in text
    assert "## The population bracket" in text and "![Fig. 8" in text
    # a smoke study says, in its claims and its report, that it answers nothing
    assert report_mod.SMOKE_NOTE in (out / "claims.md").read_text() and report_mod.SMOKE_NOTE in text


def test_a_rerun_skips_finished_cells_and_another_spec_is_refused(smoke_study):
    root, spec_file, _, _ = smoke_study
    stamps = {p: p.stat().st_mtime_ns for p in (root / "s").glob("*/checkpoint.pt")}
    again = _ibcheck("study", spec_file, "--out", str(root / "s"), "--quiet")
    assert again.returncode == 0 and "4 of 4 cells finished (0 run now)" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    other = _write(root / "other.json", {**SMOKE, "grid": {"seed": [5]}})
    refused = _ibcheck("study", other, "--out", str(root / "s"), "--quiet")
    assert refused.returncode == 2 and "holds another study" in refused.stderr


def test_a_rerun_of_the_spec_with_its_keys_reordered_skips_finished_cells(smoke_study):
    """Issue 19: the folder names followed the grid's key order, so a reordered spec ran every
    cell again beside the finished ones."""
    root, _, _, _ = smoke_study
    before = sorted(p.name for p in (root / "s").iterdir())
    stamps = {p: p.stat().st_mtime_ns for p in (root / "s").glob("*/checkpoint.pt")}
    grids: list[dict] = SMOKE["grid"]  # type: ignore[assignment]
    reordered = _write(root / "reordered.json", {**SMOKE, "grid": [dict(reversed(list(g.items()))) for g in grids]})
    again = _ibcheck("study", reordered, "--out", str(root / "s"), "--quiet")
    assert again.returncode == 0 and "4 of 4 cells finished (0 run now)" in again.stdout, again.stderr
    assert sorted(p.name for p in (root / "s").iterdir()) == before
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_finished_cell_whose_metrics_are_emptied_is_rebuilt_by_report_and_study(smoke_study):
    """Issue 19: a finished cell with an empty metrics.jsonl fell out of n silently, and a re-run
    did not notice. The report rebuilds it from the checkpoint; so does a re-run (by resuming)."""
    root, spec_file, _, _ = smoke_study
    cell = root / "s" / "seed=1"
    metrics = cell / runs.METRICS
    text, stamp = metrics.read_text(), (cell / runs.CHECKPOINT).stat().st_mtime_ns
    metrics.write_text("")
    report = _ibcheck("study-report", str(root / "s"), "--out", str(root / "report-rebuilt"))
    assert report.returncode == 0, report.stderr
    assert metrics.read_text() == text
    rebuilt = json.loads((root / "report-rebuilt" / "claims.json").read_text())
    assert rebuilt["rows"] == json.loads((root / "report" / "claims.json").read_text())["rows"]
    assert rebuilt["left_out"] == {} and rebuilt["runs_judged"] == 4
    metrics.write_text("")
    again = _ibcheck("study", spec_file, "--out", str(root / "s"), "--quiet")
    assert again.returncode == 0 and "4 of 4 cells finished (1 run now)" in again.stdout, again.stderr
    assert metrics.read_text() == text and (cell / runs.CHECKPOINT).stat().st_mtime_ns == stamp


def test_a_finished_study_does_not_announce_a_cluster_it_never_asks_for(smoke_study, capsys):
    """The driver said "connecting to the Ray cluster" before it knew that no cell was left to run."""
    root, spec_file, _, _ = smoke_study
    assert cli.main(["study", spec_file, "--out", str(root / "s"), "--address", "ray://127.0.0.1:1"]) == 0
    captured = capsys.readouterr()
    assert "connecting" not in captured.err and "4 of 4 cells finished (0 run now)" in captured.out, captured


def test_a_moved_study_folder_resumes_with_its_teacher_at_the_new_path(smoke_study):
    """Issue 19: the cells' config.json held the teacher's absolute path, so a moved study folder
    was refused with "holds another run"."""
    root, spec_file, _, _ = smoke_study
    moved = root / "moved"
    shutil.copytree(root / "s", moved)  # a copy is a move for the paths, and leaves the fixture whole
    cell = moved / "seed=2"
    (cell / runs.METRICS).write_text("")  # so that one cell resumes at the new place
    again = _ibcheck("study", spec_file, "--out", str(moved), "--quiet")
    assert again.returncode == 0 and "4 of 4 cells finished (1 run now)" in again.stdout, again.stderr
    teacher = json.loads((cell / runs.CONFIG).read_text())["config"]["teacher_run"]
    assert Path(teacher).parent == (moved / spec.TEACHERS).resolve()


def test_a_failed_cell_is_recorded_and_the_others_finish(tmp_path):
    bad = {"preset": "smoke", "base": {"student": {"optimizer": "sgd"}}, "grid": {"student.sgd_lr": [0.01, 1e12]}}
    done = _ibcheck("study", _write(tmp_path / "bad.json", bad), "--out", str(tmp_path / "s"), "--quiet")
    assert done.returncode == 1 and "diverged" in done.stderr
    with open(tmp_path / "s" / results.SUMMARY_FILE) as handle:
        rows = {r["cell"]: r for r in csv.DictReader(handle)}
    assert rows["student.sgd_lr=0.01"]["status"] == "finished"
    assert rows["student.sgd_lr=1000000000000.0"]["status"] == "diverged"
    assert "diverged" in rows["student.sgd_lr=1000000000000.0"]["error"]
    # issue 19: the claims judge the finished cell alone and name the diverged one
    report = _ibcheck("study-report", str(tmp_path / "s"), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    claims = json.loads((tmp_path / "report" / "claims.json").read_text())
    assert claims["left_out"] == {"diverged": ["student.sgd_lr=1000000000000.0"]} and claims["runs_judged"] == 1
    assert all(r["n"] + r["undefined"] <= 1 for r in claims["rows"])
    # ... and so do the figures and the findings, and the report names the one left out
    with open(tmp_path / "report" / "fig8_bracket.csv") as handle:
        assert {r["cell"] for r in csv.DictReader(handle)} == {"student.sgd_lr=0.01"}
    with open(tmp_path / "report" / "fig4_bounds.csv") as handle:
        assert {r["n"] for r in csv.DictReader(handle)} == {"1"}
    text = (tmp_path / "report" / "report.md").read_text()
    assert "1 run is left out of the claims, findings and figures: diverged (1)" in text


def test_a_killed_study_resumes_without_redoing_finished_cells(tmp_path):
    spec_file = _write(tmp_path / "smoke.json", SMOKE)
    folder = tmp_path / "s"
    driver = subprocess.Popen([sys.executable, "-m", "ibcheck", "study", spec_file, "--out", str(folder), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    finished: list[Path] = []
    while not finished and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        finished = [p.parent for p in folder.glob("*/status.json") if p.parent.name != "teachers"
                    and runs.read_status(p.parent).get("status") == "finished"]
    still_running = driver.poll() is None
    if still_running:
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert finished and still_running, f"no cell finished while the driver ran (exit status {driver.returncode})"
    (killed,) = json.loads((folder / results.STUDY_FILE).read_text())["executions"]  # recorded from its start
    assert killed["ended"] is None and killed["wall_seconds"] >= 0 and killed["cells_to_run"] == 4
    stamps = {p: (p / runs.CHECKPOINT).stat().st_mtime_ns for p in finished}
    again = _ibcheck("study", spec_file, "--out", str(folder), "--quiet")
    assert again.returncode == 0, again.stderr
    first, second = json.loads((folder / results.STUDY_FILE).read_text())["executions"]
    assert first["started"] == killed["started"] and first["ended"] is None
    assert second["ended"] is not None and second["wall_seconds"] > 0 and second["cells_to_run"] < 4
    assert {p: (p / runs.CHECKPOINT).stat().st_mtime_ns for p in stamps} == stamps
    for cell in spec.check(SMOKE, "s").cells:
        records = results.read_records(folder / cell.name)
        whole = [r["epoch"] for r in records if not r.get("partial")]
        assert whole == [0, 1, 2, 3], cell.name  # no lost and no repeated epoch


def test_report_refuses_a_folder_that_is_not_a_study(tmp_path, capsys):
    assert cli.main(["study-report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "not a study folder" in capsys.readouterr().err


def test_spec_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="cannot be read"):
        spec.load(str(tmp_path / "missing.json"))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        spec.load(str(tmp_path / "broken.json"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_study_runs_on_an_existing_cluster_by_address(tmp_path):
    """`ray start --head` (token authentication, Ray's default since 2.59), then --address."""
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             f"--port={port}", "--num-cpus=2", "--include-dashboard=false"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        spec_file = _write(tmp_path / "two.json", {"preset": "smoke", "grid": {"seed": [0, 1]}})
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the head answers
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        done = _ibcheck("study", spec_file, "--out", str(tmp_path / "s"), "--address", address, "--quiet", env=env)
        assert done.returncode == 0, done.stderr
        study = json.loads((tmp_path / "s" / results.STUDY_FILE).read_text())
        assert study["executions"][0]["address"] == address
    finally:
        if head.poll() is None:
            os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)


def test_a_port_that_is_not_ray_is_refused_within_seconds(tmp_path, capsys):
    """A listener that accepts and says nothing: Ray's own client retried for more than 330 s."""
    spec_file = _write(tmp_path / "smoke.json", SMOKE)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        started = time.monotonic()
        code = cli.main(["study", spec_file, "--out", str(tmp_path / "s"), "--quiet",
                         "--address", f"127.0.0.1:{server.getsockname()[1]}"])
        waited = time.monotonic() - started
    assert code == 2 and waited < 60, waited
    assert "did not answer as Ray" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_more_cpus_per_cell_than_any_node_has_is_refused(tmp_path, capsys):
    """Ray queues a task that fits no node forever, silently."""
    spec_file = _write(tmp_path / "smoke.json", SMOKE)
    assert cli.main(["study", spec_file, "--out", str(tmp_path / "s"), "--quiet", "--cpus-per-cell", "100"]) == 2
    err = capsys.readouterr().err
    assert "--cpus-per-cell 100" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("address,message", [("nonsense", "expected HOST:PORT"),
                                             ("127.0.0.1:1", "no Ray cluster answers there")])
def test_a_bad_address_is_refused_before_anything_is_written(tmp_path, capsys, address, message):
    spec_file = _write(tmp_path / "smoke.json", SMOKE)
    assert cli.main(["study", spec_file, "--out", str(tmp_path / "s"), "--address", address, "--quiet"]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_the_old_name_of_study_report_still_works_with_a_warning(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    warning, error = capsys.readouterr().err.splitlines()
    assert warning == ("ibcheck: warning: `ibcheck report` is now `ibcheck study-report`; the old name goes in a "
                       "later release")
    assert "not a study folder" in error


def test_a_local_rays_workers_run_at_the_drivers_priority():
    """Ray's default puts its workers at nice 15: on a busy machine a study's cells would wait for minutes."""
    code = ("import os; from ibcheck.study import execute; ray = execute.connect_ray(None); "
            "work = ray.remote(lambda: os.nice(0)); print(ray.get(work.remote()), os.nice(0)); execute.shutdown(ray)")
    env = {k: v for k, v in os.environ.items() if k != execute.WORKER_NICENESS}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    worker, driver = map(int, done.stdout.split()[-2:])
    assert worker == driver
