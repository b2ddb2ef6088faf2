"""The plugin interface's cost (issue 10: at most 5% of the sampling time on a trivial estimator).

Two benchmarks on the built-in suite, 20 sets of 1,000 pairs per case: drawing the sample sets
alone, and ``plugin.run`` of the trivial estimator (the same draws, plus a call each with its time
limit and checks). Their ratio in ``reports/bench/benchmarks.json`` is the overhead; each also
checks its result (every draw made; the trivial estimator's mean is exactly 0, none failed).
"""
from __future__ import annotations

import pytest

from ibcheck.analytic import suite
from ibcheck.analytic.suite import builtin_suite
from ibcheck.harness import plugin

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

    runs = benchutil.timed(benchmark, judge, ROUNDS, items=N * REPEATS * len(cases))
    assert all(r.error is None and r.estimate.value == 0.0 and r.estimate.n == REPEATS for r in runs)


@pytest.mark.benchmark(group="plugin-call")
def test_one_call_with_its_checks(benchmark):
    """One call of the trivial estimator with the time limit armed: the overhead per call, to set
    beside the time to draw one set of the smallest case (next benchmark)."""
    a, b = next(suite.sample_sets(builtin_suite()[0], "I_XZ", N, 1, seed=1))
    with plugin.timeouts() as alarm:
        result = benchmark(plugin.call, user.zero, a, b, 60.0, alarm)
    assert result[:2] == (0.0, None)


@pytest.mark.benchmark(group="plugin-call")
def test_one_set_of_the_smallest_case(benchmark):
    case = builtin_suite()[0]
    a, b = benchmark(lambda: next(suite.sample_sets(case, "I_XZ", N, 1, seed=1)))
    assert a.shape == (N, case.d) and b.shape == (N, case.m)
