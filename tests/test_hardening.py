"""What a careless or hostile user can break: each failure found by probing, with the command
that showed it, as a regression test (the hardening issue). Exit status 2 is bad input with
one line on stderr and nothing written; 3 is a diverged training run."""
from __future__ import annotations

import copy
import fcntl
import gzip
import json
import os
import struct
from pathlib import Path

import pytest
import torch

from ibcheck import fileio, stats
from ibcheck.cli import main
from ibcheck.interface import InputError
from ibcheck.pipeline import data, runs, vae

from helpers import one_line_error, plant_vib_without_mean

TINY = {"n_exact": 20000, "q": {"steps": 50},
        "estimators": {"vib": {"n": 500}, "teacher_elbo": {"n": 500}, "teacher_iw": {"K": [1, 4], "n": 200},
                       "loo": {"N": [32], "batches": 8}, "nce": {"N": [32], "batches": 8},
                       "empirical": {"N": 32, "sets": 8, "draws": 1}, "barber_agakov": {"steps": 50, "n": 500}}}
# I(X;Z) = ln(4.41 / 0.25) = 2.87, and the VIB rate's mean term is what separates it from 0.64
CASE = {"name": "mean-matters", "teacher": {"W": [[1.0, 0.0], [0.0, 1.0]], "c": [2.0, -2.0], "noise_std": 0.2},
        "encoder": {"A": [[2.0, 0.0], [0.0, 2.0]], "b": [3.0, -3.0], "std": [0.5, 0.5]},
        "labels": {"kind": "gaussian", "B": [[1.0, 0.0]], "noise_std": 0.5}, "settings": TINY}


def cases_file(tmp_path, **settings) -> str:
    case = copy.deepcopy(CASE)
    for key, value in settings.items():
        target = case["settings"]
        *parents, last = key.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[last] = value
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"cases": [case]}))
    return str(path)


# ---- 1. a tiny --alpha ---------------------------------------------------------------------


def test_quantiles_stay_finite_down_to_tiny_levels():
    assert stats.quantile(1e-20, 10) > stats.quantile(1e-10, 10) > 0
    assert stats.representable(1e-290) and not stats.representable(5e-324) and not stats.representable(0.0)
    # at alpha = 1e-20, 1 - alpha rounds to 1: an implementation taking ppf(1 - alpha) would pass this
    assert not stats.upper_valid(1.0, 0.01, 100, 2.0, 1e-20)


@pytest.mark.power
def test_a_planted_bug_fails_at_alpha_1e_minus_20(tmp_path, monkeypatch, capsys):
    plant_vib_without_mean(monkeypatch)
    out = tmp_path / "result.json"
    code = main(["validate", "--cases", cases_file(tmp_path), "--json", str(out), "--out", str(tmp_path / "rep"),
                 "--alpha", "1e-20", "--quiet", "--device", "cpu"])
    assert code == 1, capsys.readouterr().err
    document = json.loads(out.read_text())
    (row,) = [e for e in document["cases"][0]["estimates"] if e["estimator"] == "vib"]
    assert document["passed"] is False and row["valid"] is False and row["matches_expected"] is False
    assert (tmp_path / "rep" / "report.md").exists()


def test_an_unrepresentable_alpha_is_refused_before_any_work(tmp_path, capsys):
    assert main(["validate", "--cases", cases_file(tmp_path), "--out", str(tmp_path / "rep"), "--alpha", "1e-320",
                 "--quiet"]) == 2
    one_line_error(capsys, "--alpha", "representable")
    assert not (tmp_path / "rep").exists()


# ---- 2. divergence -------------------------------------------------------------------------


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / runs.METRICS).read_text().splitlines()]


def test_a_diverging_student_stops_with_status_3_and_keeps_its_records(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"student": {"lr": 1e6}}))
    out = tmp_path / "run"
    assert main(["train", "--preset", "smoke", "--config", str(config), "--out", str(out), "--quiet"]) == 3
    one_line_error(capsys, "diverged", "epoch 1")
    status = runs.read_status(out)
    assert status["status"] == "diverged" and "loss is nan" in status["reason"]
    records = _records(out)
    assert [r["epoch"] for r in records] == [0] and records[0]["I_XZ"]["vib"]["value"] > 0
    assert main(["plot", str(out), "--out", str(tmp_path / "plots")]) == 0
    rows = (tmp_path / "plots" / "plot_data.csv").read_text().splitlines()
    assert "(diverged after epoch 0)" in rows[1]


def test_a_diverging_teacher_is_recorded_and_refused_as_a_teacher(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(vae.VAE, "neg_elbo", lambda self, x, g: torch.full((len(x),), float("nan"), requires_grad=True))
    out = tmp_path / "teacher"
    assert main(["teacher", "--out", str(out), "--epochs", "1", "--quiet"]) == 3
    one_line_error(capsys, "teacher diverged")
    assert runs.read_status(out)["status"] == "diverged"
    monkeypatch.undo()
    assert main(["train", "--preset", "smoke", "--teacher", str(out), "--out", str(tmp_path / "s"), "--quiet"]) == 2
    one_line_error(capsys, "diverged")


def test_non_finite_numbers_in_a_record_are_listed_never_silent():
    from ibcheck.pipeline.runs import with_finite_numbers

    record = with_finite_numbers({"I_XZ": {"vib": {"value": float("nan"), "stderr": 1.0}}, "logdet_cov": float("-inf")})
    assert record["I_XZ"]["vib"]["value"] is None and record["logdet_cov"] is None
    assert record["not_finite"] == ["I_XZ.vib.value", "logdet_cov"]
    assert "not_finite" not in with_finite_numbers({"a": 1.0})


# ---- 3. and 4. nothing is written for bad input; killed-before-config folders ---------------


@pytest.mark.parametrize("extra, words", [
    (["--teacher", "/nonexistent"], ["--teacher"]),
    (["--data-dir", "/nonexistent"], ["not a folder"]),
    (["--config", "TRAIN_POINTS"], ["train_points"]),
    (["--config", "NEGATIVE_LR"], ["student.lr", "> 0"]),
    (["--config", "EMPTY_TEST"], ["test set is empty"]),
])
def test_bad_train_input_leaves_no_folder(tmp_path, capsys, extra, words):
    configs = {"TRAIN_POINTS": {"data": {"train_points": 100_000}}, "NEGATIVE_LR": {"student": {"lr": -1}},
               "EMPTY_TEST": {"data": {"test_fraction": 1e-9}}}
    extra = list(extra)
    for i, word in enumerate(extra):
        if word in configs:
            path = tmp_path / f"{word}.json"
            path.write_text(json.dumps(configs[word]))
            extra[i] = str(path)
    out = tmp_path / "run"
    assert main(["train", "--preset", "smoke", "--out", str(out), "--quiet", *extra]) == 2
    one_line_error(capsys, *words)
    assert not out.exists()


SMOKE_ONE = {"epochs": 1, "teacher": {"epochs": 1}}


def _smoke(tmp_path, out, *extra, config=None) -> int:
    path = tmp_path / "smoke1.json"
    path.write_text(json.dumps(config or SMOKE_ONE))
    return main(["train", "--preset", "smoke", "--config", str(path), "--out", str(out), "--quiet", "--device", "cpu",
                 *extra])


def test_a_folder_of_our_leftover_temporaries_counts_as_empty(tmp_path):
    out = tmp_path / "run"
    (out / "teacher").mkdir(parents=True)
    (out / ".config.json.k2j3.tmp").write_text("{")
    (out / "teacher" / ".checkpoint.pt.x9.tmp").write_bytes(b"\0" * 10)
    assert _smoke(tmp_path, out, "--seed", str(10**18)) == 0  # and a huge seed is fine
    leftovers = [p.name for p in out.rglob("*.tmp")]
    assert leftovers == [] and runs.read_status(out)["status"] == "finished"


# ---- 5. corrupt checkpoints ----------------------------------------------------------------


def test_a_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, capsys):
    config = {"epochs": 2, "teacher": {"epochs": 1}}
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert _smoke(tmp_path, whole, config=config) == 0
    assert _smoke(tmp_path, broken, config=config) == 0
    assert (broken / runs.PREVIOUS).exists()
    (broken / runs.CHECKPOINT).write_bytes((broken / runs.CHECKPOINT).read_bytes()[:100])  # truncated
    assert _smoke(tmp_path, broken, "--resume", config=config) == 0
    assert "unreadable" in caplog.text
    strip = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    assert strip(_records(broken)) == strip(_records(whole))
    for name in (runs.CHECKPOINT, runs.PREVIOUS):
        (broken / name).write_bytes(b"\0" * 64)  # zeroed
    assert _smoke(tmp_path, broken, "--resume", config=config) == 2
    one_line_error(capsys, "corrupt", runs.PREVIOUS)


def test_a_second_process_on_the_same_run_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert _smoke(tmp_path, out) == 0
    with open(out / runs.LOCK, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert _smoke(tmp_path, out, "--resume") == 2
    one_line_error(capsys, "another ibcheck process")


# ---- 6. and 7. the report folder, special files and symlinks -------------------------------


def test_an_interrupted_report_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    from ibcheck.harness import report

    out = tmp_path / "rep"
    argv = ["validate", "--cases", cases_file(tmp_path), "--out", str(out), "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "markdown", interrupted)  # the last file the report writes
    assert main([*argv, "--seed", "7"]) == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_report_folder_with_foreign_files_is_refused(tmp_path, capsys):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["validate", "--cases", cases_file(tmp_path), "--out", str(out), "--quiet"]) == 2
    one_line_error(capsys, "notes.txt")


def test_json_onto_a_fifo_is_refused_and_through_a_symlink_reaches_its_target(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    argv = ["validate", "--cases", cases_file(tmp_path), "--out", str(tmp_path / "rep"), "--quiet", "--device", "cpu"]
    assert main([*argv, "--json", str(fifo)]) == 2
    one_line_error(capsys, "not a regular file")
    assert fifo.is_fifo()
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text("old")
    link.symlink_to(real)
    assert main([*argv, "--json", str(link)]) == 0
    assert link.is_symlink() and json.loads(real.read_text())["passed"] is True


@pytest.mark.parametrize("option, value, words", [
    ("--json", "", ["--json", "empty"]),
    ("--out", "/proc/ibcheck-probe/out", ["--out", "cannot write"]),
])
def test_outputs_that_cannot_be_written_are_refused_first(tmp_path, capsys, option, value, words):
    argv = ["validate", "--cases", cases_file(tmp_path), "--quiet", option, value]
    if option == "--json":
        argv += ["--out", str(tmp_path / "rep")]
    assert main(argv) == 2
    one_line_error(capsys, *words)


def test_written_files_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        fileio.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


def test_a_special_file_is_never_renamed_over(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        fileio.write_text(fifo, "x")
    assert fifo.is_fifo()


# ---- 8. accepted input that used to crash later ---------------------------------------------


def test_non_finite_results_are_failures_with_their_reason(tmp_path):
    out = tmp_path / "r.json"
    path = cases_file(tmp_path, **{"q.lr": 1e6, "estimators.barber_agakov.lr": 1e300})
    assert main(["validate", "--cases", path, "--json", str(out), "--out", str(tmp_path / "rep"), "--quiet",
                 "--device", "cpu"]) == 1
    document = json.loads(out.read_text())
    errors = {e["estimator"]: e["error"] for e in document["cases"][0]["estimates"] if e["error"]}
    assert document["passed"] is False and errors, document
    assert all("not finite" in why for why in errors.values())
    assert (tmp_path / "rep" / "estimates.png").read_bytes().startswith(b"\x89PNG")
    assert "failed**" in (tmp_path / "rep" / "report.md").read_text()


def test_a_case_file_with_a_5000_digit_integer_is_bad_input(tmp_path, capsys):
    path = tmp_path / "cases.json"
    path.write_text('{"cases": [{"name": "x", "teacher": {"W": [[' + "1" * 5000 + "]]}}]}")
    assert main(["validate", "--cases", str(path), "--out", str(tmp_path / "rep"), "--quiet"]) == 2
    one_line_error(capsys, "cannot be parsed")


def test_a_corrupt_deflate_stream_is_bad_input(tmp_path):
    raw = gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 100) + bytes(100))
    broken = raw[:12] + bytes(b ^ 0x5A for b in raw[12:-8]) + raw[-8:]
    (tmp_path / "x.gz").write_bytes(broken)
    with pytest.raises(InputError, match="cannot be read"):
        data.read_idx(tmp_path / "x.gz")


def test_an_overflowing_idx_header_reports_a_positive_size():
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    with pytest.raises(InputError, match=r"needs 79228162458924105385300197375 data bytes"):
        data.parse_idx(header + bytes(10), "big")


# ---- 9. settings too large to run ------------------------------------------------------------


@pytest.mark.parametrize("key, value, path", [
    ("estimators.vib.n", 2**62, "settings.estimators.vib.n"),
    ("n_exact", 10**13, "settings.n_exact"),
    ("estimators.loo", {"N": [10**6], "batches": 64}, "settings.estimators.loo.N"),
    ("estimators.teacher_iw.K", [1, 2**40], "settings.estimators.teacher_iw.K"),
    ("estimators.empirical.N", 2**40, "settings.estimators.empirical.N"),
    ("q.steps", 10**12, "settings.q.steps"),
])
def test_oversized_settings_are_refused_naming_the_setting_and_the_limit(tmp_path, capsys, key, value, path):
    case = dict(CASE, labels={"kind": "classes", "means": [[0.0, 0.0], [1.0, 1.0]], "probs": [0.5, 0.5]})
    file = tmp_path / "cases.json"
    settings = copy.deepcopy(TINY)
    *parents, last = key.split(".")
    target = settings
    for p in parents:
        target = target[p]
    target[last] = value
    file.write_text(json.dumps({"cases": [dict(case, settings=settings)]}))
    assert main(["validate", "--cases", str(file), "--out", str(tmp_path / "rep"), "--quiet"]) == 2
    one_line_error(capsys, path, "limit")


def test_oversized_tracking_settings_are_refused(tmp_path, capsys):
    assert _smoke(tmp_path, tmp_path / "run", config={"track": {"estimators": {"teacher_iw": {"K": [2**40]}}}}) == 2
    one_line_error(capsys, "track.estimators.teacher_iw.K", "limit")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("section, path", [({"student": {"hidden": 10**7}}, "student.hidden"),
                                           ({"teacher": {"hidden": 10**8}}, "teacher.hidden")])
def test_an_oversized_network_is_blamed_not_an_estimator_setting(tmp_path, capsys, section, path):
    # every estimator's cost grows with the networks: the refusal must name the width, not track.q.steps
    assert _smoke(tmp_path, tmp_path / "run", config=section) == 2
    one_line_error(capsys, path, "lower it")
    assert not (tmp_path / "run").exists()


# ---- 10. small things ------------------------------------------------------------------------


def test_plot_names_the_bad_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    good = json.dumps({"epoch": 0, "step": 0, "I_XZ": {}, "I_YZ": {}})
    (run / runs.METRICS).write_text(f"{good}\n{good}\nnot json\n")
    assert main(["plot", str(run), "--out", str(tmp_path / "p")]) == 2
    one_line_error(capsys, "line 3")


def test_a_bad_test_fraction_is_blamed_on_itself(tmp_path, capsys):
    assert _smoke(tmp_path, tmp_path / "run", config={"data": {"test_fraction": 1.5}}) == 2
    one_line_error(capsys, "data.test_fraction")


def test_a_teacher_with_corrupt_checkpoints_is_refused_in_one_line(tmp_path, capsys):
    config = tmp_path / "data.json"
    config.write_text(json.dumps({"data": {"train_points": 400}}))
    teacher = tmp_path / "teacher"
    assert main(["teacher", "--out", str(teacher), "--epochs", "1", "--config", str(config), "--quiet"]) == 0
    for name in (runs.CHECKPOINT, runs.PREVIOUS):
        (teacher / name).write_bytes(b"\0" * 64)
    assert main(["train", "--preset", "smoke", "--teacher", str(teacher), "--config", str(config),
                 "--out", str(tmp_path / "s"), "--quiet"]) == 2
    one_line_error(capsys, "corrupt")
    assert not (tmp_path / "s").exists()
