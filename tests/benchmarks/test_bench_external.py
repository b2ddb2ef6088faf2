"""The external protocol's cost per call (issue 21: under 20 ms beyond the command's own run time).

Three benchmarks with the same trivial shell command (it writes a fixed estimate and reads
nothing, so that its own time, about a millisecond, hides nothing): the bare process (``subprocess.run``), the same command through ``external.Command``
with the npz input of 1,000 pairs of the smallest case, and with the CSV input too. The differences
of their means in ``reports/bench/benchmarks.json`` are the protocol's overhead; each benchmark
checks its result.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from pathlib import Path

import pytest

from ibcheck.analytic import suite
from ibcheck.analytic.suite import builtin_suite
from ibcheck.harness import external

pytestmark = pytest.mark.bench
N = 1_000
WRITE = 'printf \'{"estimate": 0.25}\' > "$1"'


def _pairs():
    return next(suite.sample_sets(builtin_suite()[0], "I_XZ", N, 1, seed=1))


@pytest.mark.benchmark(group="external-call")
def test_the_bare_command(benchmark):
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "estimate.json"

        def run():
            subprocess.run(["sh", "-c", WRITE, "sh", str(out)], check=True, stdin=subprocess.DEVNULL)
            return json.loads(out.read_text())["estimate"]

        assert benchmark(run) == 0.25


@pytest.mark.parametrize("inputs", ["{input}", "{input} {csv}"])
@pytest.mark.benchmark(group="external-call")
def test_the_command_through_the_protocol(benchmark, inputs):
    command = external.Command(shlex.join(["sh", "-c", WRITE, "sh", "{output}", *inputs.split()]))
    bound = command.for_call("hand-1d", "I_XZ", 1, 0, 1, 60.0)
    a, b = _pairs()
    assert benchmark(bound, a, b) == 0.25
