"""The verdicts of a validate run in a few lines: how many tests failed out of how many, and per
estimator on how many cases it was flagged and by which test. The terminal prints them after its
table and report.md at its top, so that a reader sees at once what failed.

Reads the report rows of ``ibcheck.harness.report`` (one dict per estimate) and nothing else.
"""
from __future__ import annotations

from collections.abc import Sequence

from ibcheck.interface import ReportRow


def _failed(row: ReportRow) -> list[str]:
    """The names of the tests this row failed ("bound", "match", "coverage"; "bias" for a point
    estimator's match), and "error" where it gave no number."""
    out = ["bound"] if row["valid"] is False else []
    if row["matches_expected"] is False:
        out.append("bias" if row["kind"] == "point" else "match")
    if row["coverage"] is not None and row["coverage"]["covers"] is False:
        out.append("coverage")
    if row["error"] is not None:
        out.append("error")
    return out


def tests_failed(table: Sequence[ReportRow]) -> int:
    """How many of the run's tests failed (an estimate that failed to run fails each of its tests)."""
    return sum(len([t for t in _failed(row) if t != "error"]) for row in table)


def status_line(passed: bool, tests: int, table: Sequence[ReportRow], alpha: float, test_alpha: float) -> str:
    """"PASSED: all 227 tests passed ..." or "FAILED: 11 of 227 tests failed ...", with the budget."""
    budget = f"at family-wise alpha {alpha:g} ({test_alpha:.2e} each)"
    failed = tests_failed(table)
    if passed:
        return f"PASSED: all {tests} tests passed {budget}"
    errors = sum(row["error"] is not None for row in table)
    note = f"; {errors} estimate{'s' if errors != 1 else ''} failed to run" if errors else ""
    return f"FAILED: {failed} of {tests} tests failed {budget}{note}"


def estimator_lines(table: Sequence[ReportRow]) -> list[str]:
    """One line per estimator: "name (kind): flagged on 9 of 10 cases (bias 9)" or "passed on all 10
    cases"; an estimator with several estimates per case (K, N, T) is flagged on a case where any is."""
    lines = []
    for name in dict.fromkeys(row["estimator"] for row in table):
        mine = [row for row in table if row["estimator"] == name]
        kinds = "/".join(dict.fromkeys(row["kind"] for row in mine))
        cases = list(dict.fromkeys(row["case"] for row in mine))
        counts: dict[str, int] = {}
        flagged = set()
        for row in mine:
            for test in _failed(row):
                counts[test] = counts.get(test, 0) + 1
                flagged.add(row["case"])
        if not flagged:
            lines.append(f"{name} ({kinds}): passed on all {len(cases)} case{'s' if len(cases) != 1 else ''}")
            continue
        why = ", ".join(f"{test} {count}" for test, count in counts.items())
        lines.append(f"{name} ({kinds}): flagged on {len(flagged)} of {len(cases)} cases ({why})")
    return lines
