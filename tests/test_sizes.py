"""Every size is limited before work (hardening round 3, item 2): each setting that scales memory or
time in ``train``, ``teacher``, ``study``, ``validate`` and ``sample`` is refused in one line that
names it, with exit 2 and nothing written; a validation expected to take more than an hour says so
before it starts. The reproducers are the issue's own numbers."""
from __future__ import annotations

import dataclasses
import json

import pytest

from ibcheck.analytic.casefile import parse_cases
from ibcheck.cli import main
from ibcheck.estimators import limits
from ibcheck.harness import sizes
from ibcheck.interface import InputError

from helpers import one_line_error

ONE_D = {"teacher": {"W": [[1.0]], "noise_std": 0.5}, "encoder": {"A": [[1.0]], "std": [0.5]}}


def _write(tmp_path, name: str, value) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(value))
    return str(path)


@pytest.mark.parametrize("config, path", [
    ({"track": {"q_hidden": 100_000_000}}, "track.q_hidden"),
    ({"track": {"accuracy_draws": 10_000_000_000}}, "track.accuracy_draws"),
    ({"track": {"early_points": 1_000_000_000}}, "track.early_points"),
    ({"teacher": {"hidden": 1_000_000_000}}, "teacher.hidden"),
    ({"teacher": {"latent": 1_000_000_000}}, "teacher.latent"),
    ({"student": {"latent": 1_000_000_000}}, "student.latent"),
    ({"student": {"label_decoder_hidden": 1_000_000_000}}, "student.label_decoder_hidden"),
    ({"track": {"population": {"q_hidden": [64, 100_000_000]}}}, "track.population.q_hidden"),
])
def test_an_oversized_training_setting_is_refused_naming_it(tmp_path, capsys, config, path):
    out = tmp_path / "run"
    code = main(["train", "--preset", "smoke", "--config", _write(tmp_path, "c.json", config), "--out", str(out),
                 "--quiet", "--device", "cpu"])
    assert code == 2
    one_line_error(capsys, path)
    assert not out.exists()


def test_as_many_early_points_as_steps_before_the_last_are_allowed_and_one_more_is_not():
    from ibcheck.config import PRESETS
    from ibcheck.pipeline.sizes import check_early_points
    from ibcheck.pipeline.training import early_steps

    smoke = PRESETS["smoke"]
    config = dataclasses.replace(smoke, track=dataclasses.replace(smoke.track, early_points=19))
    check_early_points(config, 2000)  # 20 steps of 100: 19 before the last
    assert early_steps(config, 20) <= set(range(1, 20))
    with pytest.raises(InputError, match="track.early_points = 19 .* its 18 steps"):
        check_early_points(config, 1900)


def test_an_oversized_teacher_is_refused_by_the_teacher_command(tmp_path, capsys):
    out = tmp_path / "teacher"
    config = _write(tmp_path, "t.json", {"teacher": {"hidden": 1_000_000_000}})
    assert main(["teacher", "--config", config, "--out", str(out), "--quiet", "--device", "cpu"]) == 2
    one_line_error(capsys, "teacher.hidden")
    assert not out.exists()


def test_a_grid_of_a_million_cells_is_refused_before_any_cell_is_built(tmp_path, capsys, monkeypatch):
    from ibcheck.study import spec as spec_mod

    built = []
    real = spec_mod._config
    monkeypatch.setattr(spec_mod, "_config", lambda *a: built.append(a[2]) or real(*a))
    spec = _write(tmp_path, "spec.json", {"preset": "smoke", "grid": {"seed": list(range(1_000_000))}})
    assert main(["study", spec, "--out", str(tmp_path / "s")]) == 2
    one_line_error(capsys, "1,000,000 cells", f"{limits.MAX_CELLS:,}")
    assert not (tmp_path / "s").exists()
    # only the base's config is built (about 1 ms each: a refusal after the cells would take about 1,000 s)
    assert len(built) == 1 and built[0].endswith("base"), built[:3]


def test_the_grids_of_a_list_count_together(tmp_path, capsys):
    half = list(range(limits.MAX_CELLS // 2 + 1))
    spec = _write(tmp_path, "spec.json", {"preset": "smoke", "grid": [{"seed": half}, {"seed": half, "zero_info":
                                                                                     ["redraw"]}]})
    assert main(["study", spec, "--out", str(tmp_path / "s")]) == 2
    one_line_error(capsys, f"{2 * len(half):,} cells")


@pytest.mark.parametrize("argv, words", [
    (["validate", "--estimator", "plugin_estimators:zero", "--kind", "point", "--estimator-n", str(10**12)],
     ["--estimator-n", "GiB"]),
    (["sample", "--n", str(10**12), "--out", "OUT/s.npz"], ["--n", "GiB"]),
])
def test_a_sample_size_that_cannot_fit_is_refused_naming_its_option(tmp_path, capsys, argv, words):
    cases = _write(tmp_path, "c.json", {"cases": [dict(ONE_D, name="one")]})
    argv = [a.replace("OUT", str(tmp_path)) for a in argv] + ["--cases", cases]
    if argv[0] == "validate":
        argv += ["--out", str(tmp_path / "rep"), "--quiet"]
    assert main(argv) == 2
    one_line_error(capsys, *words)
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # no report, no archive


def test_a_case_file_over_the_case_limit_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(limits, "MAX_CASES", 3)
    cases = _write(tmp_path, "c.json", {"cases": [dict(ONE_D, name=f"c{i}") for i in range(4)]})
    assert main(["validate", "--cases", cases, "--out", str(tmp_path / "rep"), "--quiet"]) == 2
    one_line_error(capsys, "4 cases", "limit of 3")
    assert main(["sample", "--cases", cases, "--n", "10", "--out", str(tmp_path / "s.npz")]) == 2
    one_line_error(capsys, "4 cases")


def test_ten_thousand_small_cases_announce_their_time_before_they_start():
    cases = parse_cases({"cases": [dict(ONE_D, name=f"c{i}") for i in range(10_000)]})
    line = sizes.announcement(cases, (), True, "cpu")
    assert line is not None and line.startswith("validate: about ") and " h " in line
    assert f"{sizes.total_runs(cases):,} estimator runs on 10,000 cases" in line
    # the estimate is linear in the cases: one case is a hundredth of a hundred
    assert sizes.estimated_seconds(cases[:100]) == pytest.approx(100 * sizes.estimated_seconds(cases[:1]))
    assert sizes.announcement(cases[:10], (), True, "cpu") is None  # well under an hour: no line
    assert sizes.announcement(cases, (), True, "cuda") is None  # no reference speed for a GPU


def test_the_long_run_line_is_printed_before_the_run_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(limits, "ANNOUNCE_SECONDS", 0.0)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt  # the run itself: the line must already be out

    monkeypatch.setattr("ibcheck.harness.validate.validate", stop)
    cases = _write(tmp_path, "c.json", {"cases": [dict(ONE_D, name="one")]})
    assert main(["validate", "--cases", cases, "--out", str(tmp_path / "rep"), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "validate: about " in err and "on cpu: " in err and "estimator runs on 1 case" in err


@pytest.mark.parametrize("seconds, text", [(40.2, "about 40 s"), (0.2, "about 1 s"), (725, "about 12 min"),
                                           (3600, "about 1 h"), (17_400, "about 4 h 50 min")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert limits.about(seconds) == text


@pytest.mark.parametrize("config, key", [({"epochs": 10**9}, "epochs"), ({"teacher": {"epochs": 10**9}},
                                                                       "teacher.epochs")])
def test_a_run_of_a_billion_epochs_is_refused_before_its_epoch_list_is_built(tmp_path, capsys, config, key):
    out = tmp_path / "run"
    assert main(["train", "--preset", "smoke", "--config", _write(tmp_path, "c.json", config), "--out", str(out),
                 "--quiet"]) == 2
    one_line_error(capsys, f"{key} = {10**9}", "100,000")
    assert not out.exists()


def test_a_study_cell_that_cannot_fit_is_refused_before_any_teacher_trains(tmp_path, capsys):
    spec = _write(tmp_path, "spec.json", {"preset": "smoke", "grid": {"student.hidden": [256, 10_000_000]}})
    assert main(["study", spec, "--out", str(tmp_path / "s")]) == 2
    one_line_error(capsys, "cell student.hidden=10000000", "student.hidden")
    assert not (tmp_path / "s").exists()


def test_a_long_training_run_says_how_long_before_it_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(limits, "ANNOUNCE_SECONDS", 0.0)
    out = tmp_path / "run"
    config = _write(tmp_path, "c.json", {"epochs": 1, "teacher": {"epochs": 1}})
    assert main(["train", "--preset", "smoke", "--config", config, "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "train: about " in err and "on cpu: 1 epochs" in err, err


def test_the_time_estimates_grow_with_the_work_and_share_the_cores():
    from ibcheck.config import PRESETS
    from ibcheck.pipeline import sizes as train_sizes

    paper = PRESETS["paper"]
    longer = dataclasses.replace(paper, epochs=400)
    assert train_sizes.estimated_seconds(longer, 8000) > train_sizes.estimated_seconds(paper, 8000)
    tracked, bracketed = train_sizes.records(paper)
    assert (tracked, bracketed) == (201, 11)  # every epoch and epoch 0; epoch 0 and 10 log-spaced epochs
    configs = [paper] * 10
    two = train_sizes.study_announcement(configs, [paper.teacher], 2)
    assert two is not None and "10 cells on 2 cores" in two
    # twice the cells on twice the cores (each teacher once): the same time, read back from the line
    four = train_sizes.study_announcement(configs * 2, [paper.teacher] * 2, 4)
    assert four is not None and four.split(" on cpu")[0] == two.split(" on cpu")[0]
