"""The plugin interface's cost. Issue 23 moved a user's estimator into a worker process of its own
(``sandbox``); its overhead per call must stay below the time to draw one sample set.

Two benchmarks on the built-in suite, 20 sets of 1,000 pairs per case: drawing the sample sets
alone, and ``plugin.run`` of the trivial estimator (the same draws, plus a call each through its
worker, the worker started once). Their ratio in ``reports/bench/benchmarks.json`` is the overhead;
each also checks its result (every draw made; the trivial estimator's mean is exactly 0, none failed).
Then one call through a running worker, beside one set of the same case, on the smallest and the
largest case.
"""
from __future__ import annotations

import pytest

from ibcheck.analytic import suite
from ibcheck.analytic.suite import builtin_suite
from ibcheck.harness import plugin, sandbox

import benchutil
import plugin_estimators as user

pytestmark = pytest.mark.bench
ROUNDS, N, REPEATS = 5, 1_000, 20


@pytest.mark.benchmark(group="plugin")
def test_sampling_alone(benchmark):
    cases = builtin_suite()

    def draw():
        return sum(len(list(suite.sample_sets(case, "I_XZ", N, REPEATS, seed=1))) for case in cases)

    assert benchutil.timed(benchmark, draw, ROUNDS, items=N * REPEATS * len(cases)) == REPEATS * len(cases)


@pytest.mark.benchmark(group="plugin")
def test_plugin_run_of_a_trivial_estimator(benchmark):
    cases, trivial = builtin_suite(), plugin.Plugin("zero", user.zero, "point", n=N, repeats=REPEATS)

    def judge():
        return [plugin.run(trivial, case, seed=1) for case in cases]

    judge()  # the worker starts once per run: time the calls, not its start
    runs = benchutil.timed(benchmark, judge, ROUNDS, items=N * REPEATS * len(cases))
    trivial.close()
    assert all(r.error is None and r.estimate.value == 0.0 and r.estimate.n == REPEATS for r in runs)


# the smallest case (1-d pairs) and the largest (784-d x against a 40-d z): the round trip is a fixed latency plus
# the arrays' bytes, drawing a set grows with the dimensions too
CALL_CASES = ("hand-1d", "mnist-shaped")


def _case(name: str):
    return next(c for c in builtin_suite() if c.name == name)


@pytest.mark.parametrize("name", CALL_CASES)
@pytest.mark.benchmark(group="plugin-call")
def test_one_call_with_its_checks(benchmark, name):
    """One call of the trivial estimator through its running worker (the arrays sent there, the
    reading back): the overhead per call, to set beside the time to draw one set of the same case
    (next benchmark)."""
    a, b = next(suite.sample_sets(_case(name), "I_XZ", N, 1, seed=1))
    with sandbox.Sandbox(user.zero) as box:
        box.call(a, b, 60.0)  # started once per run
        result = benchmark(box.call, a, b, 60.0)
    assert result[:2] == (0.0, None)


@pytest.mark.parametrize("name", CALL_CASES)
@pytest.mark.benchmark(group="plugin-call")
def test_one_set_of_a_case(benchmark, name):
    case = _case(name)
    a, b = benchmark(lambda: next(suite.sample_sets(case, "I_XZ", N, 1, seed=1)))
    assert a.shape == (N, case.d) and b.shape == (N, case.m)
