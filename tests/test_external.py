"""The external-estimator protocol (issue 21, ``ibcheck.harness.external``, ``validate --estimator-cmd``):
an estimator in another process, or another language, gets each sample set as files and writes its
estimate back. Its failures are recorded like a Python estimator's, and a call past its time limit
is killed with everything it started."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ibcheck.cli import main
from ibcheck.estimators import registry
from ibcheck.harness import check, external
from ibcheck.interface import InputError

from helpers import suite_case

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guides" / "external.md"
PY = shlex.quote(sys.executable)


def _python(code: str, *words: str) -> str:
    """A command that runs ``code`` in a fresh interpreter, with ``words`` as its arguments."""
    return f"{PY} -c {shlex.quote(code)} " + " ".join(words)


WRITE = "import json, sys; json.dump({VALUE}, open(sys.argv[-1], 'w'))"


def _writes(value) -> external.Command:
    return external.Command(_python(WRITE.replace("{VALUE}", repr(value)), "{input}", "{output}"))


def _call(command: external.Command, n: int = 50, time_limit: float = 30.0):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, 2))
    return command.for_call("hand-1d", "I_XZ", 7, 0, 3, time_limit)(a, a[:, :1] + rng.normal(size=(n, 1)))


# ---------------------------------------------------------------- the command's text


@pytest.mark.parametrize("template,message", [
    ("", "is empty"),
    ("python3 est.py {input}", "must name {output} and one of {input} or {csv}"),
    ("python3 est.py {header} {output}", "must name {output} and one of {input} or {csv}"),
    ("python3 'est.py {input} {output}", "cannot be split into words"),
])
def test_a_command_that_cannot_work_is_refused_in_one_line(template, message):
    with pytest.raises(InputError, match=re.escape(message)) as err:
        external.Command(template)
    assert "\n" not in str(err.value)


def test_only_the_four_placeholders_are_replaced():
    """An awk program's braces must reach awk as they are."""
    command = external.Command("awk -v out={output} 'NR > 1 { n++ } END { print n > out }' {csv}")
    assert command.named == {"output", "csv"}


def test_long_commands_get_distinct_names():
    first, second = ("python3 " + "x" * 80 + f" {{input}} {{output}} {i}" for i in (1, 2))
    names = {external.default_name(first), external.default_name(second)}
    assert len(names) == 2 and all(len(n) <= external.NAME_CHARS for n in names)


# ---------------------------------------------------------------- what the command gets


def test_the_command_gets_the_pairs_and_the_header_as_files(tmp_path):
    copy = ("import json, shutil, sys; shutil.copy(sys.argv[1], sys.argv[4]); shutil.copy(sys.argv[2], sys.argv[5]);"
            " shutil.copy(sys.argv[3], sys.argv[6]); json.dump({'estimate': 0.5}, open(sys.argv[7], 'w'))")
    kept = [tmp_path / name for name in ("s.npz", "s.csv", "h.json")]
    command = external.Command(_python(copy, "{input}", "{csv}", "{header}", *map(str, kept), "{output}"))
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(30, 2))
    assert command.for_call("some-case", "I_XZ", 11, 4, 20, 30.0)(a, b) == 0.5
    header = json.loads(kept[2].read_text())
    assert header == {"case": "some-case", "target": "I_XZ", "seed": 11, "call": 4, "repeats": 20, "n": 30,
                      "arrays": ["x", "z"], "columns": [3, 2]}
    with np.load(kept[0]) as arrays:
        assert sorted(arrays) == ["header", "x", "z"] and json.loads(str(arrays["header"])) == header
        assert np.array_equal(arrays["x"], a) and np.array_equal(arrays["z"], b)
    table = np.loadtxt(kept[1], delimiter=",", skiprows=1)
    assert kept[1].read_text().splitlines()[0] == "x0,x1,x2,z0,z1"
    assert np.array_equal(table, np.hstack([a, b]))  # %.17g round-trips float64 exactly


def test_labels_are_named_y(tmp_path):
    kept = tmp_path / "h.json"
    copy = "import json, shutil, sys; shutil.copy(sys.argv[1], sys.argv[2]); json.dump({'estimate': 0}, open(sys.argv[3], 'w'))"
    command = external.Command(_python(copy, "{header}", str(kept), "{output}", "{input}"))
    command.for_call("hand-1d", "I_YZ", 0, 0, 2, 30.0)(np.zeros((5, 1)), np.ones((5, 1)))
    assert json.loads(kept.read_text())["arrays"] == ["y", "z"]


# ---------------------------------------------------------------- what it writes back


@pytest.mark.parametrize("output,expected", [
    ({"estimate": 0.25}, 0.25),
    ({"estimate": 1}, 1.0),
    ({"estimate": 0.3, "interval": [0.1, 0.5]}, (0.3, 0.1, 0.5)),
    ({"estimate": 0.3, "interval": [None, 0.5], "level": 0.95}, (0.3, -np.inf, 0.5, 0.95)),
    ({"estimate": 0.3, "interval": [0.1, None]}, (0.3, 0.1, np.inf)),
])
def test_a_good_output_is_read(tmp_path, output, expected):
    path = tmp_path / "estimate.json"
    path.write_text(json.dumps(output))
    assert external.read_output(path) == expected


@pytest.mark.parametrize("text,message", [
    (None, "exited 0 but wrote no output file"),
    ("0.5", 'must be a JSON object {"estimate": ...}'),
    ("{'estimate': 1}", "its output is not JSON"),
    ('{"estimate": true}', '"estimate" must be a number'),
    ('{"estimate": NaN}', '"estimate" must be a finite number'),
    ('{"estimate": "0.5"}', '"estimate" must be a number'),
    ('{"estimate": 1, "estimate": 2}', "duplicate key"),
    ('{"estimate": 1, "extra": 2}', '"extra" unknown key'),
    ('{"estimate": 1, "level": 0.9}', 'gives a "level" but no "interval"'),
    ('{"estimate": 1, "interval": [2, 1]}', "LOW > HIGH"),
    ('{"estimate": 1, "interval": [1]}', "must be [LOW, HIGH]"),
    ('{"estimate": 1, "interval": [0, 2], "level": 1.5}', '"level" must be a number in (0, 1)'),
    ('{"estimate": 1, "interval": [0, 2], "level": true}', '"level" must be a number in (0, 1)'),
    ("\xff\xfe", "its output is not JSON"),
])
def test_a_bad_output_is_a_failure_that_says_why(tmp_path, text, message):
    path = tmp_path / "estimate.json"
    if text is not None:
        path.write_bytes(text.encode("latin-1"))
    with pytest.raises(external.CommandFailed, match=re.escape(message)):
        external.read_output(path)


def test_an_output_too_long_to_be_an_answer_is_refused(tmp_path):
    path = tmp_path / "estimate.json"
    path.write_text('{"estimate": 1, "interval": [0, 2]}' + " " * external.MAX_OUTPUT_BYTES)
    with pytest.raises(external.CommandFailed, match="longer than"):
        external.read_output(path)


@pytest.mark.parametrize("command,message", [
    (_python("import sys; print('line one', file=sys.stderr); print('boom', file=sys.stderr); sys.exit(3)",
             "{input}", "{output}"), "exited with status 3; stderr: boom"),
    (_python("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", "{input}", "{output}"),
     "exited with status -15 (killed by SIGTERM)"),
    ("/no/such/program {input} {output}", 'could not start "/no/such/program"'),
])
def test_a_command_that_fails_is_a_recorded_failure(command, message):
    with pytest.raises(external.CommandFailed, match=re.escape(message)):
        _call(external.Command(command))


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped by a container's init, is not alive)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _ends_soon(pid: int, seconds: float = 5.0) -> bool:
    """Whether ``pid`` is gone within ``seconds`` (SIGKILL is delivered at once; reaping may lag)."""
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def test_a_call_past_its_time_limit_is_killed_with_what_it_started(tmp_path):
    """A shell that starts a background sleep, then sleeps: both are killed at the limit."""
    pid_file = tmp_path / "child.pid"
    command = external.Command(f"sh -c 'sleep 60 & echo $! > {pid_file}; sleep 60' sh {{input}} {{output}}")
    started = time.monotonic()
    with pytest.raises(external.TimedOut, match="ran past the time limit of 1 s"):
        _call(command, time_limit=1.0)
    assert time.monotonic() - started < 10
    assert _ends_soon(int(pid_file.read_text()))


def test_what_a_finished_command_left_running_is_killed(tmp_path):
    pid_file = tmp_path / "child.pid"
    starts = ("import json, subprocess, sys; child = subprocess.Popen(['sleep', '60']);"
              " open(sys.argv[2], 'w').write(str(child.pid)); json.dump({'estimate': 1}, open(sys.argv[1], 'w'))")
    assert _call(external.Command(_python(starts, "{output}", str(pid_file), "{input}"))) == 1.0
    assert _ends_soon(int(pid_file.read_text()))


def test_the_call_folder_is_removed_after_each_call(tmp_path):
    where = tmp_path / "where"
    note = ("import json, os, sys; open(sys.argv[2], 'w').write(os.path.dirname(sys.argv[1]));"
            " json.dump({'estimate': 0}, open(sys.argv[1], 'w'))")
    _call(external.Command(_python(note, "{output}", str(where), "{input}")))
    folder = Path(where.read_text())
    assert folder.name.startswith("ibcheck-call-") and not folder.exists()


# ---------------------------------------------------------------- judged as any estimator


def test_a_failing_command_is_recorded_and_the_run_goes_on():
    fails = external.Command(_python("import sys; sys.exit(4)", "{input}", "{output}"))
    result = check.check_estimator(fails, "lower", [suite_case("hand-1d")], n=50, repeats=3)
    (row,) = [r for c in result.cases for r in c.rows]
    assert not result.passed and row.error.startswith("exited with status 4 (call 1 of 3")


def test_a_command_past_its_time_limit_is_a_recorded_failure():
    slow = external.Command(_python("import time; time.sleep(30)", "{input}", "{output}"))
    started = time.monotonic()
    result = check.check_estimator(slow, "point", [suite_case("hand-1d")], n=50, repeats=3, time_limit=0.5)
    (row,) = [r for c in result.cases for r in c.rows]
    assert "ran past the time limit of 0.5 s" in row.error and time.monotonic() - started < 15


def _guide_commands() -> list[tuple[str, str]]:
    """The (command, kind) of each ``--estimator-cmd '...' --kind KIND`` in the guide."""
    return re.findall(r"^ibcheck validate --estimator-cmd '([^']+)' --kind (lower|upper|point)$", GUIDE.read_text(),
                      flags=re.MULTILINE)


def test_the_guide_shows_commands_in_three_languages():
    commands = _guide_commands()
    assert {shlex.split(c)[0] for c, _ in commands} >= {"python3", "Rscript", "awk"}


@pytest.mark.parametrize("command,kind", _guide_commands())
def test_the_guides_examples_pass_on_a_gaussian_case(command, kind, monkeypatch):
    """Each example estimator of the guide is judged on hand-1d as its --kind says; with 0.1 nats
    added (through the same files) the judgement would fail, as tests/test_plugin.py shows for a
    Python estimator."""
    monkeypatch.chdir(ROOT)
    words = shlex.split(command)
    if shutil.which(words[0]) is None:
        pytest.skip(f"{words[0]} is not installed here (Debian: r-base-core for Rscript)")
    if words[0] == "python3":
        command = shlex.join([sys.executable, *words[1:]])  # the interpreter the tests run on has numpy
    result = check.check_estimator(external.Command(command), kind, [suite_case("hand-1d")], n=500, repeats=10)
    (row,) = [r for c in result.cases for r in c.rows]
    assert row.error is None and result.passed, row


def test_validate_runs_commands_beside_python_estimators(tmp_path, capsys, monkeypatch):
    """--estimator-cmd is repeatable, mixes with --estimator, and --kind pairs with them in order."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "external_user.py").write_text("def zero(a, b):\n    return 0.0\n")
    zero = _python(WRITE.replace("{VALUE}", "{'estimate': 0.0}"), "{input}", "{output}")
    huge = _python(WRITE.replace("{VALUE}", "{'estimate': 1e6}"), "{input}", "{output}")
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({"cases": [{"name": "one", "teacher": {"W": [[1.0]]},
                                            "encoder": {"A": [[1.0]], "std": [1.0]}}]}))
    code = main(["validate", "--cases", str(cases), "--out", str(tmp_path / "r"), "--quiet",
                 "--estimator-cmd", zero, "--kind", "lower", "--estimator", "external_user:zero", "--kind", "lower",
                 "--estimator-cmd", huge, "--kind", "upper", "--estimator-repeats", "3", "--estimator-n", "20"])
    assert code == 0, capsys.readouterr()
    rows = json.loads((tmp_path / "r" / "results.json").read_text())["cases"][0]["estimates"]
    mine = {r["estimator"]: (r["kind"], r["valid"]) for r in rows if r["estimator"] not in registry.names()}
    assert mine == {external.default_name(zero): ("lower", True), "external_user:zero": ("lower", True),
                    external.default_name(huge): ("upper", True)}


def test_validate_refuses_a_bad_command_in_one_line(tmp_path, capsys):
    assert main(["validate", "--out", str(tmp_path / "r"), "--estimator-cmd", "python3 x.py {input}",
                 "--kind", "lower"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "must name {output}" in err and not (tmp_path / "r").exists()


def test_os_environment_is_passed_on(monkeypatch):
    monkeypatch.setenv("IBCHECK_TEST_VALUE", "0.75")
    command = external.Command(_python("import json, os, sys; json.dump({'estimate': "
                                       "float(os.environ['IBCHECK_TEST_VALUE'])}, open(sys.argv[1], 'w'))",
                                       "{output}", "{input}"))
    assert _call(command) == 0.75
    assert os.environ["IBCHECK_TEST_VALUE"] == "0.75"
