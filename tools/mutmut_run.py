"""``mutmut run`` (3.3.1) with two of its timing faults mended; ``tools/mutation.py`` runs it.

- mutmut records a test's duration in ``pytest_runtest_makereport``, which runs once per phase, so
  the teardown's overwrites the rest and every test reads about 0.1 ms; ``PhaseDurations`` adds
  the three phases instead.
- Its checker judges every test process of a source file against every mutant's estimate of that
  file, so the cheapest mutant's limit applies to all; ``over_time`` times each process against its
  own mutant's tests, 3 x (their clean duration + 5 s) of wall time.

With both, a mutant whose tests need more than 15 s (a fixture that trains a network) no longer
times out for that alone.

``--tests PATH`` (repeatable, before mutmut's own arguments) runs only the tests under those paths
in place of ``[tool.mutmut] tests_dir``, for a quick re-test after a new test: mutmut then records
which of those tests reach each function, and a mutant none of them kills reads "survived" though
another test may kill it, so only such a run's kills count (``tools/mutation.py --tests``).

This module must not import ibcheck: mutmut puts its mutated copy first on the path, and a package
imported before that would be the unmutated one.

    python tools/mutmut_run.py [--tests PATH ...] [mutmut run's arguments]
"""
from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import time

# a mutant times out when its tests run longer than this many times their clean duration, plus a margin
TIME_FACTOR, TIME_MARGIN = 3.0, 5.0


class PhaseDurations:
    """A pytest plugin that adds up each test's setup, call and teardown times, by node id."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration


def time_limit(estimated: float) -> float:
    """Wall seconds a mutant's tests may take, from their clean duration (``estimated``, seconds)."""
    return TIME_FACTOR * (estimated + TIME_MARGIN)


def over_time(files, now: datetime.datetime) -> list[int]:
    """The test processes past their own limit: ``files`` are mutmut's per-file records (each with
    ``start_time_by_pid`` and ``estimated_time_of_tests_by_pid``), possibly listed more than once."""
    late = []
    for record in {id(f): f for f in files}.values():
        for pid, started in dict(record.start_time_by_pid).items():
            if (now - started).total_seconds() > time_limit(record.estimated_time_of_tests_by_pid.get(pid, 0.0)):
                late.append(pid)
    return late


def split_tests(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the paths given by ``--tests PATH``, the other arguments, for mutmut, in their order)."""
    parser = argparse.ArgumentParser(prog="mutmut_run", add_help=False, allow_abbrev=False)
    parser.add_argument("--tests", action="append", default=[], metavar="PATH")
    known, rest = parser.parse_known_args(argv)
    return known.tests, rest


def main(argv: list[str]) -> None:
    import mutmut
    import mutmut.__main__ as cli

    tests, argv = split_tests(argv)
    load = cli.ensure_config_loaded

    def ensure_config_loaded():
        load()
        if tests:
            mutmut.config.tests_dir = tests

    honest = cli.PytestRunner.execute_pytest

    def execute_pytest(self, params, **kwargs):
        durations = PhaseDurations()
        kwargs["plugins"] = [*kwargs.get("plugins", []), durations]
        code = honest(self, params, **kwargs)
        mutmut.duration_by_test.update(durations.seconds)  # before mutmut saves its record of the run
        return code

    def checker(mutants):
        def watch():
            while True:
                time.sleep(1)
                with cli.START_TIMES_BY_PID_LOCK:
                    late = over_time([m for m, _, _ in mutants], datetime.datetime.now())
                for pid in late:
                    try:
                        os.kill(pid, signal.SIGXCPU)  # mutmut reads this signal's exit as a timeout
                    except ProcessLookupError:
                        pass
        return watch

    cli.ensure_config_loaded = ensure_config_loaded
    cli.PytestRunner.execute_pytest = execute_pytest
    cli.timeout_checker = checker
    sys.argv = ["mutmut", "run", *argv]
    cli.cli()


if __name__ == "__main__":
    main(sys.argv[1:])
