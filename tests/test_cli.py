"""``ibcheck validate`` end to end: exit status 2 with one clear line for bad input, the
documented JSON, report and CSV on random case files it has never seen (each run judged through
the suite's statistical budget), and exit status 1 when a planted wrong bound is caught."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from ibcheck.cli import main
from ibcheck.estimators import registry

from helpers import plant_vib_without_mean, random_case_dict

FAST = {"n_exact": 200000, "q": {"steps": 200},
        "estimators": {"vib": {"n": 4000}, "teacher_elbo": {"n": 4000}, "teacher_iw": {"K": [1, 10], "n": 1000},
                       "teacher_iw_data": {"K": [1, 10], "n": 1000},
                       "loo": {"N": [32, 128], "batches": 24}, "nce": {"N": [32, 128], "batches": 24},
                       "empirical": {"N": 128, "sets": 12, "draws": 2},
                       "barber_agakov": {"steps": 200, "n": 4000}}}
GOOD = {"name": "good", "teacher": {"W": [[1.0, 0.5], [0.2, 1.0], [0.0, 0.3]], "noise_std": 0.5},
        "encoder": {"A": [[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]], "std": [0.5, 0.7]}, "settings": FAST}
BAD = dict(GOOD, name="bad", encoder={"A": [[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]], "std": [0.5, 0.0]})

# case-file.md, "Output": the fields of every estimate, plus the params and seed ibcheck adds.
ESTIMATE_FIELDS = {"estimator", "target", "kind", "value", "stderr", "n", "expected", "best", "gap", "valid",
                   "matches_expected", "seconds"}
EXTRA_FIELDS = {"params", "seed", "error"}
# bounds.md section 3: what each estimator bounds, and how.
KINDS = {"vib": {("upper", "I_XZ")}, "teacher_elbo": {("upper", "I_XZ")}, "teacher_iw": {("upper", "I_XZ")},
         "teacher_iw_data": {("upper", "I_XZ")},
         "teacher_riw": {("lower", "I_XZ")}, "teacher_ais": {("upper", "I_XZ")}, "teacher_rais": {("lower", "I_XZ")},
         "loo": {("upper", "I_XZ")}, "nce": {("lower", "I_XZ")}, "barber_agakov": {("lower", "I_YZ")},
         "empirical": {("lower", "I_XZ"), ("estimate", "I_YZ")}}
REPORT_FILES = ["report.md", "results.json", "estimates.png", "iw_vs_K.png", "batch_vs_N.png", "bracket_vs_K.png",
                "estimates.csv", "iw_vs_K.csv", "batch_vs_N.csv", "bracket_vs_K.csv"]


def write_cases(path, *cases) -> str:
    path.write_text(json.dumps({"cases": list(cases)}))
    return str(path)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_input_error(code: int, out: str, err: str, *words: str) -> None:
    """Exit status 2, nothing on stdout, exactly one line on stderr naming the problem."""
    assert code == 2, (code, err)
    assert out == "", out
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ibcheck: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


def assert_usage_error(capsys, argv, *words: str) -> None:
    """argparse's exit: status 2 and one line, the error and where --help is, with no usage block."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    assert info.value.code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ibcheck") and " error: " in lines[0], err
    assert lines[0].endswith("--help)") and "usage:" not in err, err
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"


# ---- bad input: exit status 2 ----------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    """Paths of a good and a bad case file, a pre-existing --json file and the --out folder."""
    sentinel = tmp_path / "previous.json"
    sentinel.write_text('{"kept": true}\n')
    return {"good": write_cases(tmp_path / "good.json", GOOD), "bad": write_cases(tmp_path / "bad.json", BAD),
            "json": str(sentinel), "out": str(tmp_path / "report"), "tmp": tmp_path}


def _untouched(files) -> None:
    """Bad input writes nothing: the old --json file is unchanged and no report folder appears."""
    assert (files["tmp"] / "previous.json").read_text() == '{"kept": true}\n'
    assert not (files["tmp"] / "report").exists()


def test_bad_case_file(capsys, files):
    code, out, err = run(capsys, "validate", "--cases", files["bad"], "--json", files["json"], "--out", files["out"],
                         "--quiet")
    assert_input_error(code, out, err, "case 'bad'", "field 'encoder.std'")
    _untouched(files)


@pytest.mark.parametrize("content, words", [
    pytest.param("{not json", "not valid JSON", id="not-json"),
    pytest.param('{"cases": []}', "non-empty list", id="no-cases"),
    pytest.param(json.dumps({"cases": [dict(GOOD, name="x\ny")]}), "field 'name'", id="name-with-newline"),
    pytest.param('{"cases": [{"name": "nan", "teacher": {"W": [[NaN]]}, "encoder": {"A": [[1]], "std": [1]}}]}',
                 "field 'teacher.W'", id="NaN"),
    pytest.param('{"cases": [{"name": "big", "teacher": {"W": [[1e200]]}, "encoder": {"A": [[1e200]], "std": [1]}}]}',
                 "field 'teacher.W'", id="overflows-float64"),
])
def test_bad_case_file_contents(capsys, files, content, words):
    (files["tmp"] / "case.json").write_text(content)
    code, out, err = run(capsys, "validate", "--cases", str(files["tmp"] / "case.json"), "--json", files["json"],
                         "--out", files["out"], "--quiet")
    assert_input_error(code, out, err, words)
    _untouched(files)


def test_missing_case_file(capsys, files):
    missing = str(files["tmp"] / "missing.json")
    code, out, err = run(capsys, "validate", "--cases", missing, "--json", files["json"], "--out", files["out"])
    assert_input_error(code, out, err, missing, "cannot be read")
    _untouched(files)


@pytest.mark.parametrize("device, words", [
    pytest.param("nonsense", "is not a device", id="nonsense"),
    pytest.param("cuda:x", "is not a device", id="cuda-bad-index"),
    pytest.param("meta", "only cpu and cuda", id="meta"),
])
def test_bad_device(capsys, files, device, words):
    code, out, err = run(capsys, "validate", "--cases", files["good"], "--device", device, "--json", files["json"],
                         "--out", files["out"], "--quiet")
    assert_input_error(code, out, err, "--device", device, words)
    _untouched(files)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda(capsys, files):
    code, out, err = run(capsys, "validate", "--cases", files["good"], "--device", "cuda", "--json", files["json"],
                         "--out", files["out"], "--quiet")
    assert_input_error(code, out, err, "--device cuda", "CUDA is not available")
    _untouched(files)


@pytest.mark.parametrize("option, words", [
    pytest.param(["--out", "{file}"], "--out", id="out-is-a-file"),
    pytest.param(["--out", "{file}/sub"], "is not a folder", id="out-under-a-file"),
    pytest.param(["--json", "{tmp}"], "--json", id="json-is-a-folder"),
    pytest.param(["--json", "{file}/x.json"], "is not a folder", id="json-under-a-file"),
])
def test_unwritable_outputs_are_refused_before_the_run(capsys, files, option, words):
    paths = {"file": files["json"], "tmp": str(files["tmp"])}
    option = [option[0], option[1].format(**paths)]
    argv = ["validate", "--cases", files["good"], "--json", files["json"], "--out", files["out"], "--quiet"]
    code, out, err = run(capsys, *argv, *option)
    assert_input_error(code, out, err, words)
    _untouched(files)


@pytest.mark.parametrize("argv, words", [
    pytest.param(["--alpha", "0"], "--alpha", id="alpha-0"),
    pytest.param(["--alpha", "1"], "--alpha", id="alpha-1"),
    pytest.param(["--alpha", "2"], "--alpha", id="alpha-2"),
    pytest.param(["--alpha", "-0.1"], "--alpha", id="alpha-negative"),
    pytest.param(["--alpha", "x"], "--alpha", id="alpha-x"),
    pytest.param(["--alpha", "nan"], "--alpha", id="alpha-nan"),
    pytest.param(["--seed", "-1"], "--seed", id="seed-negative"),
    pytest.param(["--seed", "1.5"], "--seed", id="seed-fraction"),
    pytest.param(["--seed", str(2**63)], "--seed", id="seed-too-big"),
    pytest.param(["--dtype", "float16"], "--dtype", id="dtype"),
    pytest.param(["--bogus"], "--bogus", id="unknown-option"),
    pytest.param(["--alpha"], "--alpha", id="alpha-without-value"),
])
def test_bad_options(capsys, files, argv, words):
    assert_usage_error(capsys, ["validate", "--cases", files["good"], "--json", files["json"], "--out", files["out"],
                                *argv], words)
    _untouched(files)


@pytest.mark.parametrize("argv", [pytest.param([], id="no-command"), pytest.param(["check"], id="unknown-command"),
                                  pytest.param(["study"], id="study-without-spec"),
                                  pytest.param(["train", "--out", "x", "--preset", "nope"], id="train-bad-preset")])
def test_bad_command(capsys, argv):
    assert_usage_error(capsys, argv)


def test_bad_case_file_as_a_real_process(tmp_path):
    bad = write_cases(tmp_path / "bad.json", BAD)
    proc = subprocess.run([sys.executable, "-m", "ibcheck", "validate", "--cases", bad], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("ibcheck: error: case 'bad'")
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.json"]  # nothing written


# ---- good input: the documented JSON, report and CSV --------------------------------------


def random_case(rng: np.random.Generator, name: str, labels: str) -> dict:
    """A small valid case at moderate scales (so the FAST settings' short training stays stable)."""
    return dict(random_case_dict(rng, labels, name, spread=0.3), settings=dict(FAST, seed=int(rng.integers(0, 2**31))))


def _check_document(data: dict, cases: list[dict], alpha: float) -> None:
    """The --json document follows case-file.md field for field."""
    assert {"alpha", "passed", "cases"} <= set(data) and data["alpha"] == alpha
    assert [c["name"] for c in data["cases"]] == [c["name"] for c in cases]
    flags = []
    for entry, case in zip(data["cases"], cases):
        labels = case.get("labels", {"kind": "none"})["kind"]
        ex = entry["exact"]
        assert set(ex) == {"I_XZ", "I_XZ_se", "I_YZ", "I_YZ_se"} and math.isfinite(ex["I_XZ"])
        assert (ex["I_YZ"] is None and ex["I_YZ_se"] is None) if labels == "none" else math.isfinite(ex["I_YZ"])
        assert ex["I_XZ_se"] >= 0 and (ex["I_XZ_se"] > 0) == (labels == "classes")
        seen = {}
        for est in entry["estimates"]:
            assert set(est) == ESTIMATE_FIELDS | EXTRA_FIELDS, set(est) ^ (ESTIMATE_FIELDS | EXTRA_FIELDS)
            name = est["estimator"]
            seen.setdefault(name, []).append(est)
            assert (est["kind"], est["target"]) in KINDS[name]
            assert math.isfinite(est["value"]) and est["stderr"] >= 0 and est["seconds"] >= 0
            assert type(est["n"]) is int and est["n"] >= 2 and isinstance(est["params"], dict)
            assert type(est["seed"]) is int and est["error"] is None
            assert est["gap"] == est["value"] - ex[est["target"]]
            assert (est["expected"] is not None) == (name in ("vib", "teacher_elbo") or
                                                    (name == "barber_agakov" and labels == "gaussian") or
                                                    (name in ("teacher_iw", "teacher_iw_data")
                                                     and est["params"]["K"] == 1 and
                                                     (name == "teacher_iw" or labels != "classes")) or
                                                    (name == "teacher_riw" and est["params"]["K"] == 0
                                                     and labels != "classes"))
            assert (est["best"] is not None) == (name == "teacher_elbo")
            assert (est["matches_expected"] is None) == (est["expected"] is None)
            assert (est["valid"] is None) == (est["kind"] == "estimate")
            flags += [f for f in (est["valid"], est["matches_expected"]) if f is not None]
            assert all(isinstance(f, bool) for f in flags)
        trusted = {kind: [e["value"] for e in entry["estimates"] if e["target"] == "I_XZ" and e["kind"] == kind
                          and e["valid"] is True] for kind in ("lower", "upper")}
        bracket = entry["bracket"]  # the largest trusted lower bound, the smallest trusted upper one
        assert bracket["lower"]["value"] == max(trusted["lower"]) and bracket["upper"]["value"] == min(trusted["upper"])
        assert bracket["width"] == bracket["upper"]["value"] - bracket["lower"]["value"]
        # the data-prior teacher_iw only where the data prior is not the model prior N(0, I)
        shifted = "data_prior" in case or labels == "classes"
        applies = (set(registry.names()) - ({"barber_agakov"} if labels == "none" else set())
                   - (set() if shifted else {"teacher_iw_data"}))
        assert set(seen) == applies
        assert [e["params"]["K"] for e in seen["teacher_iw"]] == FAST["estimators"]["teacher_iw"]["K"]
        assert [e["params"]["N"] for e in seen["loo"]] == [e["params"]["N"] for e in seen["nce"]] == [32, 128]
        # empirical I(Y;Z) needs the class-y points of a finite data set: class labels only
        assert [e["target"] for e in seen["empirical"]] == ["I_XZ"] + (["I_YZ"] if labels == "classes" else [])
    assert flags and data["passed"] == all(flags)


def _csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _check_report(folder, data: dict) -> None:
    """Every report file is there, and each CSV's rows are the JSON's estimates."""
    for name in REPORT_FILES:
        assert (folder / name).stat().st_size > 0, name
    for name in ("estimates.png", "iw_vs_K.png", "batch_vs_N.png"):
        assert (folder / name).read_bytes().startswith(b"\x89PNG"), name
    assert json.loads((folder / "results.json").read_text()) == data
    text = (folder / "report.md").read_text()
    assert all(f"## {c['name']}" in text for c in data["cases"])
    flat = [(c["name"], e) for c in data["cases"] for e in c["estimates"]]
    rows = _csv(folder / "estimates.csv")
    assert len(rows) == len(flat)
    show = {None: "", True: "True", False: "False"}
    for row, (case, est) in zip(rows, flat):
        assert (row["case"], row["estimator"], row["target"], row["kind"]) == (case, est["estimator"], est["target"],
                                                                             est["kind"])
        assert float(row["value"]) == est["value"] and float(row["stderr"]) == est["stderr"]
        assert int(row["n"]) == est["n"] and float(row["gap"]) == est["gap"]
        assert row["valid"] == show[est["valid"]] and row["matches_expected"] == show[est["matches_expected"]]
        assert row["expected"] == ("" if est["expected"] is None else str(est["expected"]))
    iw = [(case, e) for case, e in flat if e["estimator"] == "teacher_iw"]
    rows = _csv(folder / "iw_vs_K.csv")
    assert len(rows) == len(iw) > 0
    for row, (case, est) in zip(rows, iw):
        assert (row["case"], int(row["K"]), float(row["value"]), float(row["stderr"])) == (
            case, est["params"]["K"], est["value"], est["stderr"])
    batch = [(case, e) for case, e in flat if e["estimator"] in ("loo", "nce", "empirical") and e["target"] == "I_XZ"]
    rows = _csv(folder / "batch_vs_N.csv")
    assert len(rows) == len(batch) > 0
    for row, (case, est) in zip(rows, batch):
        assert (row["case"], row["estimator"], int(row["N"]), float(row["value"])) == (
            case, est["estimator"], est["params"]["N"], est["value"])
        assert float(row["ln_N"]) == pytest.approx(math.log(est["params"]["N"]), rel=1e-12)


@pytest.mark.statistical
@pytest.mark.parametrize("labels", ["gaussian", "classes", "none"])
def test_validate_on_a_new_case_file(capsys, tmp_path, stat, seed, labels):
    rng = np.random.default_rng(seed)
    cases = [random_case(rng, f"random-{labels}", labels)]
    path = write_cases(tmp_path / "cases.json", *cases)
    out_json, out_dir = tmp_path / "result.json", tmp_path / "report"
    units = 40
    alpha = stat.run_alpha(units, f"validate random {labels} case")
    code, out, err = run(capsys, "validate", "--cases", path, "--json", str(out_json), "--out", str(out_dir),
                         "--alpha", repr(alpha), "--seed", str(seed % 2**31), "--quiet", "--device", "cpu")
    assert code in (0, 1), err
    assert "Traceback" not in err and ("PASSED" if code == 0 else "FAILED") in out
    data = json.loads(out_json.read_text())
    stat.record_run(code == 0, units, f"validate random {labels} case: {json.dumps(cases[0])[:2000]}")
    assert data["passed"] == (code == 0)
    _check_document(data, cases, alpha)
    _check_report(out_dir, data)


# ---- a failed test: exit status 1 ------------------------------------------------------


@pytest.mark.power
def test_planted_wrong_bound_exits_1(capsys, tmp_path, monkeypatch):
    # Cov(z) = 4.41 I and mz = (7, -7): I(X;Z) = ln(4.41/0.25) = 2.87 nats, while the planted
    # rate is the constant 1/2 [tr D - m - logdet D] = 0.64 (standard error 0).
    case = {"name": "mean-matters", "teacher": {"W": [[1.0, 0.0], [0.0, 1.0]], "c": [2.0, -2.0], "noise_std": 0.2},
            "encoder": {"A": [[2.0, 0.0], [0.0, 2.0]], "b": [3.0, -3.0], "std": [0.5, 0.5]}, "settings": FAST}
    path = write_cases(tmp_path / "cases.json", case)
    plant_vib_without_mean(monkeypatch)
    out_json = tmp_path / "result.json"
    code, out, err = run(capsys, "validate", "--cases", path, "--json", str(out_json), "--out", str(tmp_path / "rep"),
                         "--alpha", "0.001", "--quiet", "--device", "cpu")
    assert code == 1, err
    assert "FAILED" in out and "Traceback" not in err
    data = json.loads(out_json.read_text())
    assert data["passed"] is False
    (row,) = [e for e in data["cases"][0]["estimates"] if e["estimator"] == "vib"]
    assert row["valid"] is False and row["matches_expected"] is False
    assert row["value"] < data["cases"][0]["exact"]["I_XZ"] - 2.0 and row["stderr"] < 1e-12
    assert (tmp_path / "rep" / "report.md").read_text().count("**NO**") >= 2
