"""A hostile user's estimator (issue 19): one that exits, one that never runs, one that returns
something other than a real number, and a time limit setitimer cannot hold. None may make
``validate`` pass; each is a recorded failure of the estimator or a one-line refusal (exit 2)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ibcheck.cli import main
from ibcheck.harness import check, plugin, returns, sandbox

from helpers import suite_case

SUITE = Path(__file__).parent.parent / "baselines" / "suite.json"
HOSTILE = '''\
import os
import sys

def exits(a, b):
    sys.exit(0)

def raises(a, b):
    raise RuntimeError("broken")

def interrupted(a, b):
    raise KeyboardInterrupt

def os_exits(a, b):
    os._exit(0)

def forks(a, b):
    # a child that ends with os._exit, as multiprocessing's do: it must really exit, with its code
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    _, status = os.waitpid(pid, 0)
    return float(os.waitstatus_to_exitcode(status))
'''


def _case_file(tmp_path: Path, names: list[str]) -> str:
    suite = json.loads(SUITE.read_text())
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"cases": [c for c in suite["cases"] if c["name"] in names]}))
    return str(path)


@pytest.fixture
def hostile(tmp_path, monkeypatch) -> str:
    """A module of hostile estimators, importable as ``hostile_estimators``."""
    (tmp_path / "hostile_estimators.py").write_text(HOSTILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hostile_estimators", raising=False)
    return "hostile_estimators"


def _validate(tmp_path: Path, argv: list[str]) -> int:
    return main(["validate", "--out", str(tmp_path / "r"), "--json", str(tmp_path / "r.json"), "--quiet", *argv])


def _refused(tmp_path: Path, capsys, message: str) -> None:
    """A one-line refusal naming ``message``, and nothing written."""
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.json").exists()


# ---------------------------------------------------------------- an estimator that exits


def _exits(a, b):
    sys.exit(0)


def test_an_estimator_that_exits_is_a_recorded_failure():
    result = check.check_estimator(_exits, "point", [suite_case("hand-1d")], n=10, repeats=3)
    (row,) = result.cases[0].rows
    assert not result.passed and row.matches_expected is False
    assert row.error == "called sys.exit(0) (call 1 of 3; no more calls were made)"


def test_validate_with_an_estimator_that_exits_fails_with_its_table_and_report(hostile, tmp_path, capsys):
    code = _validate(tmp_path, ["--cases", _case_file(tmp_path, ["hand-1d"]), "--estimator", f"{hostile}:exits",
                                "--kind", "point", "--estimator-n", "10", "--estimator-repeats", "2"])
    assert code == 1
    assert f"{hostile}:exits" in capsys.readouterr().out and (tmp_path / "r" / "report.md").exists()
    rows = json.loads((tmp_path / "r.json").read_text())["cases"][0]["estimates"]
    (mine,) = [r for r in rows if r["estimator"] == f"{hostile}:exits"]
    assert mine["matches_expected"] is False and "called sys.exit(0)" in json.dumps(mine)


def test_an_estimator_that_calls_os_exit_fails_validate_with_its_report(hostile, tmp_path):
    # in a separate process: were os._exit not caught, it would end pytest itself
    argv = [sys.executable, "-m", "ibcheck", "validate", "--out", str(tmp_path / "r"), "--json",
            str(tmp_path / "r.json"), "--quiet", "--cases", _case_file(tmp_path, ["hand-1d"]),
            "--estimator", f"{hostile}:os_exits", "--kind", "point", "--estimator-n", "10",
            "--estimator-repeats", "2"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 1, done.stderr
    rows = json.loads((tmp_path / "r.json").read_text())["cases"][0]["estimates"]
    (mine,) = [r for r in rows if r["estimator"] == f"{hostile}:os_exits"]
    assert mine["matches_expected"] is False and "called os._exit(0)" in json.dumps(mine)
    assert (tmp_path / "r" / "report.md").exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_of_an_estimator_still_exits_with_its_code(hostile):
    fn = plugin.load(f"{hostile}:forks")
    assert plugin.call(fn, np.zeros((2, 1)), np.zeros((2, 1)), time_limit=60)[:2] == (3.0, None)


@pytest.mark.parametrize("body", ["import os\nos._exit(0)\n", "import sys\nsys.exit(0)\n",
                                  "raise SystemExit('bye')\n"])
def test_a_module_that_exits_at_import_is_one_line_and_exit_2(body, tmp_path, monkeypatch, capsys):
    (tmp_path / "exits_on_import.py").write_text(body + "def fn(a, b):\n    return 0.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _validate(tmp_path, ["--estimator", "exits_on_import:fn", "--kind", "point"]) == 2
    _refused(tmp_path, capsys, "cannot import exits_on_import (called ")


def test_keyboard_interrupt_still_interrupts(hostile, tmp_path, capsys):
    fn = plugin.load(f"{hostile}:interrupted")
    handler = signal.getsignal(signal.SIGALRM)
    with pytest.raises(KeyboardInterrupt):
        check.check_estimator(fn, "point", [suite_case("hand-1d")], n=10, repeats=2)
    assert signal.getsignal(signal.SIGALRM) is handler  # the alarm handler is put back
    assert _validate(tmp_path, ["--cases", _case_file(tmp_path, ["hand-1d"]), "--estimator", f"{hostile}:interrupted",
                                "--kind", "point"]) == 130
    assert not (tmp_path / "r").exists()


class _Fatal(BaseException):
    pass


def _raises_base_exception(a, b):
    raise _Fatal("not an Exception")


def test_any_other_base_exception_is_a_recorded_failure():
    value, why, _ = plugin.call(_raises_base_exception, np.zeros((2, 1)), np.zeros((2, 1)), 60.0)
    assert value is None and why == "raised _Fatal: not an Exception"


# ---------------------------------------------------------------- an estimator that never runs


def test_an_estimator_for_labels_on_cases_without_labels_is_one_line_and_exit_2(hostile, tmp_path, capsys):
    code = _validate(tmp_path, ["--cases", _case_file(tmp_path, ["high-mi", "noisy-teacher"]), "--estimator",
                                f"{hostile}:raises", "--kind", "point", "--estimator-target", "I_YZ"])
    assert code == 2
    _refused(tmp_path, capsys, f"estimator {hostile}:raises would never be called: no case has labels, "
                               f"which target I_YZ needs (cases: 2)")


def test_check_estimator_refuses_an_estimator_that_applies_to_no_case():
    with pytest.raises(ValueError, match="would never be called: no case has labels"):
        check.check_estimator(_exits, "point", [suite_case("high-mi")], target="I_YZ")
    with pytest.raises(ValueError, match="would never be called: there are no cases"):
        check.check_estimator(_exits, "point", [])


# ---------------------------------------------------------------- returns that are not real numbers


def _call(raw) -> tuple[float | None, str | None]:
    """How a return is read: the reading itself, in this process (the worker runs the same
    ``returns.call_here``; ``test_sandbox`` checks that what it reads comes back unchanged)."""
    value, why, _ = returns.call_here(lambda a, b: raw, np.zeros((2, 1)), np.zeros((2, 1)), 60.0)
    return value, why


@pytest.mark.parametrize("raw, why", [
    (np.complex128(0.34 + 5j), "returned a numpy complex128, not a real number"),
    (0.34 + 0j, "returned a complex, not a real number"),
    ("0.34", "returned a str, not a real number"),
    (b"0.34", "returned a bytes, not a real number"),
    (True, "returned a bool, not a real number"),
    (np.bool_(True), "returned a numpy bool, not a real number"),
    (None, "returned None, not a real number"),
    ([0.34], "returned a list, not a real number"),
    (np.array([0.34]), "returned a numpy array of float64 with shape (1,), not a real number"),
    (np.array(0.34 + 1j), "returned a numpy array of complex128 with shape (), not a real number"),
    (np.array("0.34"), "returned a numpy array of <U4 with shape (), not a real number"),
    (np.timedelta64(3, "s"), "returned a numpy timedelta64, not a real number"),
    (torch.tensor([0.3, 0.4]), "returned a torch tensor of torch.float32 with shape (2,), not a real number"),
    (torch.tensor(True), "returned a torch tensor of torch.bool with shape (), not a real number"),
    (torch.tensor(0.3 + 1j), "returned a torch tensor of torch.complex64 with shape (), not a real number"),
    (10**400, "returned an int of 1329 bits, too large for a float"),
])
def test_a_return_that_is_not_a_real_number_is_a_recorded_failure(raw, why):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning, no silent cast
        assert _call(raw) == (None, why)


@pytest.mark.parametrize("raw, value", [
    (0.34, 0.34), (2, 2.0), (np.float64(0.34), 0.34), (np.float32(0.5), 0.5), (np.int64(2), 2.0),
    (np.uint8(7), 7.0), (np.array(0.25), 0.25), (np.array(3), 3.0), (torch.tensor(0.5), 0.5),
    (torch.tensor([0.5], dtype=torch.float64), 0.5), (torch.tensor([[4]]), 4.0),
    (torch.tensor(0.5, requires_grad=True) * 1, 0.5),
])
def test_a_real_number_is_accepted(raw, value):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about a tensor that requires grad
        got, why = _call(raw)
    assert why is None and got == value and type(got) is float


@pytest.mark.parametrize("raw, why", [(math.nan, "returned nan"), (np.float64(math.inf), "returned inf"),
                                      (torch.tensor(-math.inf), "returned -inf"), (np.array(math.nan), "returned nan")])
def test_a_non_finite_return_is_still_a_recorded_failure(raw, why):
    assert _call(raw) == (None, why)


class _Sneaky(float):
    def __float__(self):
        sys.exit(3)


def test_a_float_whose_conversion_exits_is_a_recorded_failure():
    assert _call(_Sneaky(0.34)) == (None, "called sys.exit(3)")


def test_a_complex_return_fails_the_case_in_check_estimator():
    result = check.check_estimator(lambda a, b: np.complex128(0.34 + 5j), "point", [suite_case("hand-1d")], n=10,
                                    repeats=2)
    (row,) = result.cases[0].rows
    assert not result.passed
    assert row.error == "returned a numpy complex128, not a real number (call 1 of 2; no more calls were made)"


# ---------------------------------------------------------------- time limits setitimer cannot hold


@pytest.mark.parametrize("limit", ["inf", "1e10", "1000001", "1e400"])
def test_a_time_limit_setitimer_cannot_hold_is_one_line_and_exit_2(limit, hostile, tmp_path, capsys):
    code = _validate(tmp_path, ["--cases", _case_file(tmp_path, ["hand-1d"]), "--estimator", f"{hostile}:raises",
                                "--kind", "point", "--estimator-time-limit", limit])
    assert code == 2
    _refused(tmp_path, capsys, "(--estimator-time-limit): must be a positive number of seconds, at most 1000000")


def test_a_bad_time_limit_is_refused_without_an_estimator_too(tmp_path, capsys):
    assert _validate(tmp_path, ["--cases", _case_file(tmp_path, ["hand-1d"]), "--estimator-time-limit", "inf"]) == 2
    _refused(tmp_path, capsys, "time limit inf (--estimator-time-limit)")


@pytest.mark.parametrize("limit", [math.inf, 1e10, math.nan, 0.0, -1.0, "60"])
def test_check_estimator_refuses_a_bad_time_limit(limit):
    with pytest.raises(ValueError, match=r"\(--estimator-time-limit\): must be a positive number of seconds"):
        check.check_estimator(_exits, "point", [suite_case("hand-1d")], time_limit=limit)


def test_the_longest_time_limit_is_accepted_and_a_call_runs():
    assert plugin.MAX_TIME_LIMIT == 1e6
    value, why, _ = plugin.call(lambda a, b: 0.5, np.zeros((2, 1)), np.zeros((2, 1)), plugin.MAX_TIME_LIMIT)
    assert (value, why) == (0.5, None)



# ---------------------------------------------------------------- names, and an estimator that swallows errors


def test_two_estimators_of_one_name_are_refused_in_one_line(hostile, tmp_path, capsys):
    argv = ["--estimator", f"{hostile}:raises", "--kind", "point", "--estimator", f"{hostile}:raises", "--kind", "upper"]
    assert _validate(tmp_path, argv) == 2
    _refused(tmp_path, capsys, f"estimator {hostile}:raises is given twice")


def test_an_estimator_named_as_a_built_in_one_is_refused():
    with pytest.raises(ValueError, match="estimator vib is given twice, or is the name of a built-in"):
        check.check_estimator(_exits, "upper", [suite_case("hand-1d")], name="vib")


def _swallows(a, b):
    """Catches every Exception and goes on (for 3 s at most, so that a regression fails, not hangs):
    the time limit must still end it."""
    ends = time.monotonic() + 3.0
    while time.monotonic() < ends:
        try:
            time.sleep(0.01)
        except Exception:
            pass
    return 1.0


def test_an_estimator_that_catches_every_exception_is_still_stopped_at_its_time_limit():
    value, why, seconds = plugin.call(_swallows, np.zeros((2, 1)), np.zeros((2, 1)), time_limit=0.2)
    assert value is None and why == "ran past the time limit of 0.2 s" and seconds < 0.2 + sandbox.GRACE + 1
