"""A user's estimator in a process of its own (issue 23, item 1): nothing it does can hang, end or
corrupt the run. Each reproducer of the issue gives a recorded failure and a finished report, or
a one-line refusal; the worker process and what it started are gone afterwards."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ibcheck.harness import check, plugin, sandbox

from helpers import suite_case

SUITE = Path(__file__).parent.parent / "baselines" / "suite.json"
HOSTILE = '''\
import ctypes
import os
import signal
import sys
import threading
import time

def swallows(a, b):
    while True:
        try:
            time.sleep(1)
        except BaseException:
            pass

def leaves_a_thread(a, b):
    with open(os.environ["IBCHECK_TEST_PID_FILE"], "a") as out:
        out.write(f"{os.getpid()}\\n")
    threading.Thread(target=time.sleep, args=(1e6,)).start()
    return 0.0

def exits_3(a, b):
    sys.exit(3)

def exits_from_c_on_one_dimension(a, b):
    if a.shape[1] == 1:
        ctypes.CDLL(None)._exit(4)
    return 0.0

def kills_itself(a, b):
    os.kill(os.getpid(), signal.SIGKILL)

def zeroes_its_input(a, b):
    value = float(a.sum())
    a *= 0
    b *= 0
    return value

class BadFloat(float):
    def __float__(self):
        return 1 / 0

def bad_float(a, b):
    return BadFloat(1.0)

def huge_int(a, b):
    return 10**400

def _cannot_load():
    raise RuntimeError("not here")

class LoadsNowhere:
    def __reduce__(self):
        return (_cannot_load, ())

    def __call__(self, a, b):
        return 0.0

loads_nowhere = LoadsNowhere()

class HoldsALock:
    def __init__(self):
        self.lock = threading.Lock()

    def __call__(self, a, b):
        return 0.0

holds_a_lock = HoldsALock()
'''


@pytest.fixture
def hostile(tmp_path, monkeypatch) -> str:
    """A module of hostile estimators, importable as ``sandboxed_hostile`` (here and in a worker,
    which gets this process's sys.path)."""
    (tmp_path / "sandboxed_hostile.py").write_text(HOSTILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sandboxed_hostile", raising=False)
    return "sandboxed_hostile"


def _pair(d: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(10, d)), rng.normal(size=(10, d))


def _gone(pid: int, within: float = 5.0) -> bool:
    ends = time.monotonic() + within
    while time.monotonic() < ends:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _validate_in_a_process(tmp_path: Path, estimator: str, limit: str = "5") -> subprocess.CompletedProcess:
    cases = tmp_path / "cases.json"
    suite = json.loads(SUITE.read_text())
    cases.write_text(json.dumps({"cases": [c for c in suite["cases"] if c["name"] == "hand-1d"]}))
    argv = [sys.executable, "-m", "ibcheck", "validate", "--out", str(tmp_path / "r"), "--json", str(tmp_path / "r.json"),
            "--quiet", "--only-estimators", "--cases", str(cases), "--estimator", estimator, "--kind", "point", "--estimator-n", "10",
            "--estimator-repeats", "2", "--estimator-time-limit", limit]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "IBCHECK_TEST_PID_FILE": str(tmp_path / "pids")}
    return subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)


def _user_row(tmp_path: Path, estimator: str) -> dict:
    rows = json.loads((tmp_path / "r.json").read_text())["cases"][0]["estimates"]
    (mine,) = [r for r in rows if r["estimator"] == estimator]
    return mine


# ---------------------------------------------------------------- the reproducers, through the CLI


def test_an_estimator_that_swallows_its_time_limit_is_killed_and_the_report_written(hostile, tmp_path):
    started = time.monotonic()
    done = _validate_in_a_process(tmp_path, f"{hostile}:swallows", limit="0.5")
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 120  # one time limit, not forever
    assert "ran past the time limit of 0.5 s" in json.dumps(_user_row(tmp_path, f"{hostile}:swallows"))
    assert (tmp_path / "r" / "report.md").exists()


def test_a_thread_left_running_does_not_keep_ibcheck_alive(hostile, tmp_path):
    done = _validate_in_a_process(tmp_path, f"{hostile}:leaves_a_thread")
    assert done.returncode == 1, done.stderr  # it ran and was judged: 0.0 against the truth 0.35 is flagged
    row = _user_row(tmp_path, f"{hostile}:leaves_a_thread")
    assert "error" in row and row["error"] is None
    (pid,) = {int(line) for line in (tmp_path / "pids").read_text().split()}
    assert pid != os.getpid() and _gone(pid)  # its worker, thread and all, ended with the run
    assert (tmp_path / "r" / "report.md").exists()


def test_sys_exit_3_is_a_recorded_failure_not_ibcheck_s_exit_status(hostile, tmp_path):
    done = _validate_in_a_process(tmp_path, f"{hostile}:exits_3")
    assert done.returncode == 1, done.stderr
    assert "called sys.exit(3)" in json.dumps(_user_row(tmp_path, f"{hostile}:exits_3"))


def test_an_estimator_that_does_not_pickle_is_one_line_and_exit_2(hostile, tmp_path):
    done = _validate_in_a_process(tmp_path, f"{hostile}:holds_a_lock")
    assert done.returncode == 2
    err = done.stderr.strip()
    assert "cannot be sent to a process of its own" in err and "\n" not in err, err
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- what a worker survives, through the API


def test_an_exit_from_c_code_ends_only_the_worker_and_the_next_case_runs(hostile):
    fn = plugin.load(f"{hostile}:exits_from_c_on_one_dimension")
    result = check.check_estimator(fn, "point", [suite_case("hand-1d"), suite_case("high-mi")], n=10, repeats=2)
    first, second = (case.rows[0] for case in result.cases)
    assert first.error == ("ended its process with exit status 4 (an exit from C code, or a crash) "
                           "(call 1 of 2; no more calls were made)")
    assert second.error is None and second.estimate.value == 0.0  # a new worker took the next case


def test_a_signal_that_kills_the_worker_is_named(hostile):
    value, why, _ = plugin.call(plugin.load(f"{hostile}:kills_itself"), *_pair(), 60.0)
    assert value is None and why == "ended its process: killed by SIGKILL"


def test_the_estimator_gets_copies_so_its_in_place_changes_never_reach_the_data(hostile):
    a, b = _pair(3)
    kept = a.copy(), b.copy()
    with sandbox.Sandbox(plugin.load(f"{hostile}:zeroes_its_input")) as box:
        first, second = box.call(a, b, 60.0), box.call(a, b, 60.0)
    assert first[:2] == second[:2] == (float(kept[0].sum()), None)  # the second call saw the data, not zeros
    assert np.array_equal(a, kept[0]) and np.array_equal(b, kept[1])


@pytest.mark.parametrize("name, why", [
    ("bad_float", "raised ZeroDivisionError: division by zero"),
    ("huge_int", "returned an int of 1329 bits, too large for a float"),
])
def test_hostile_returns_are_read_in_the_worker_and_recorded(hostile, name, why):
    assert plugin.call(plugin.load(f"{hostile}:{name}"), *_pair(), 60.0)[:2] == (None, why)


def test_an_estimator_that_cannot_be_loaded_there_fails_each_case_without_waiting_again(hostile):
    fn = plugin.load(f"{hostile}:loads_nowhere")
    result = check.check_estimator(fn, "point", [suite_case("hand-1d"), suite_case("high-mi")], n=10, repeats=2)
    for case in result.cases:
        assert case.rows[0].error == ("could not be loaded in its own process: it raised RuntimeError: not here "
                                      "(call 1 of 2; no more calls were made)")


def test_an_unpicklable_estimator_is_refused_by_check_estimator(hostile):
    with pytest.raises(ValueError, match="holds_a_lock|HoldsALock.*cannot be sent to a process of its own"):
        check.check_estimator(plugin.load(f"{hostile}:holds_a_lock"), "point", [suite_case("hand-1d")])


def test_check_estimator_ends_its_worker(tmp_path):
    pids = tmp_path / "pids"

    def tells_its_pid(a, b):
        with open(pids, "a") as out:
            out.write(f"{os.getpid()}\n")
        return 0.3

    check.check_estimator(tells_its_pid, "point", [suite_case("hand-1d")], n=10, repeats=2)
    (pid,) = {int(line) for line in pids.read_text().split()}  # one worker for both calls
    assert pid != os.getpid() and _gone(pid)


def test_a_lambda_and_a_closure_run_there_with_their_state():
    offset = 0.25
    with sandbox.Sandbox(lambda a, b: float(a.shape[0]) + offset) as box:
        assert box.call(*_pair(), 60.0)[:2] == (10.25, None)
        pid = box.pid
    assert pid is not None and _gone(pid)


def test_a_worker_whose_parent_is_killed_exits(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\nimport numpy as np\nfrom ibcheck.harness import sandbox\n"
        "box = sandbox.Sandbox(lambda a, b: time.sleep(1e6))\n"
        "threading = __import__('threading')\n"
        "threading.Thread(target=box.call, args=(np.zeros((2, 1)), np.zeros((2, 1)), 1e6), daemon=True).start()\n"
        "while box.pid is None:\n    time.sleep(0.01)\n"
        "print(box.pid, flush=True)\ntime.sleep(1e6)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        worker = int(parent.stdout.readline())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        parent.stdout.close()
    assert _gone(worker, within=10.0)


def test_a_keyboard_interrupt_in_the_estimator_interrupts_the_run_and_ends_the_worker():
    box = sandbox.Sandbox(_interrupts)
    with pytest.raises(KeyboardInterrupt):
        box.call(*_pair(), 60.0)
    assert box.pid is None


def _interrupts(a, b):
    raise KeyboardInterrupt


def test_threads_here_are_not_left_behind():
    before = threading.active_count()
    with sandbox.Sandbox(lambda a, b: 0.0) as box:
        box.call(*_pair(), 60.0)
    assert threading.active_count() == before
