"""A JSON object that names a key twice is refused, not read as its last value (hardening issue 19):
``schema.loads`` for every file a user gives ibcheck (a case file, a ``--config`` file, a study spec),
with one line naming the file, the key and where it is named again. And a file that is not a regular one
(a FIFO, a device) or is too large is refused before it is read (hardening issue 23)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ibcheck import schema
from ibcheck.cli import main

REPEATED = [  # text, the key, line and column where it is named again
    ('{"a": 1, "a": 2}', "a", 1, 10),
    ('{"x": {"b": 1},\n "y": [{"c": 1,\n  "c": 2}]}', "c", 3, 3),
    ('{"a": 1,\n "\\u0061": 2}', "a", 2, 2),  # the same key, spelled otherwise
    ('{"s": "{\\"s\\": 1, \\"t\\": [", "t": {}, "s": 2}', "s", 1, 39),  # braces and quotes in a string
    ('{"k": [1, {"k": 2}], "k": null}', "k", 1, 22),  # an outer repeat, found before nothing inner
    ('[{"": 1, "": 2}]', "", 1, 10),
]


@pytest.mark.parametrize("text,key,line,column", REPEATED)
def test_a_repeated_key_is_refused_where_it_is_named_again(text, key, line, column):
    with pytest.raises(json.JSONDecodeError) as caught:
        schema.loads(text)
    assert caught.value.msg == f"duplicate key {json.dumps(key)}"
    assert (caught.value.lineno, caught.value.colno) == (line, column)


@pytest.mark.parametrize("text", ['{"a": {"b": 1}, "c": {"b": 2}}', '[{"a": 1}, {"a": 2}]', '{"a": {"a": {"a": 1}}}',
                                  '{"a": ["a", "a"], "b": "a"}', '  {"x" : 1 , "y" : [ ] }  ', "3", '"a"', "[]"])
def test_json_without_repeats_reads_as_json_loads_reads_it(text):
    assert schema.loads(text) == json.loads(text)


def _one_line(capsys, *words: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


def test_every_user_json_file_refuses_a_repeated_key(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    # the last values are bad, so that code that keeps them fails at once instead of running a study
    spec.write_text('{"preset": "smoke",\n "grid": {"seed": [0]},\n "preset": "none"}')
    assert main(["study", str(spec), "--out", str(tmp_path / "s"), "--quiet"]) == 2
    _one_line(capsys, str(spec), 'duplicate key "preset"', "line 3")
    config = tmp_path / "config.json"
    config.write_text('{"student": {"beta": 0.1, "beta": -1}}')
    assert main(["train", "--preset", "smoke", "--config", str(config), "--out", str(tmp_path / "t")]) == 2
    _one_line(capsys, str(config), 'duplicate key "beta"')
    cases = tmp_path / "cases.json"
    cases.write_text('{"cases": [{"name": "a", "name": "b"}]}')
    assert main(["validate", "--cases", str(cases), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    _one_line(capsys, str(cases), 'duplicate key "name"')
    assert not any((tmp_path / name).exists() for name in ("s", "t", "r"))


@pytest.mark.parametrize("option", ["cases", "config", "spec"])
@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_a_file_that_is_not_a_regular_json_file_is_refused_at_once(tmp_path, option, kind):
    """A FIFO would block the read forever, /dev/zero never end, and a huge file fill the memory: each is
    refused in one line, exit 2, before it is read (in a subprocess, so that a hang fails the test)."""
    if kind == "fifo":
        path = tmp_path / "input.json"
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    else:
        path = tmp_path / "input.json"
        with open(path, "wb") as handle:
            handle.truncate(schema.MAX_JSON_BYTES + 1)  # sparse: no disk used
    argv = {"cases": ["validate", "--cases", str(path), "--out", str(tmp_path / "r")],
            "config": ["train", "--config", str(path), "--out", str(tmp_path / "t")],
            "spec": ["study", str(path), "--out", str(tmp_path / "s")]}[option]
    done = subprocess.run([sys.executable, "-m", "ibcheck", *argv], capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert ("not a regular file" if kind != "huge" else "more than the 64 MiB") in lines[0], lines[0]
    assert not (tmp_path / "r").exists() and not (tmp_path / "t").exists() and not (tmp_path / "s").exists()
