"""The verdict lines of a validate run (``ibcheck.harness.verdicts``): failures counted as tests, not as
rows or cases, and a line per estimator saying where it was flagged and by which test."""
from __future__ import annotations

from ibcheck.harness import verdicts


def _row(case: str, estimator: str, kind: str, valid=None, match=None, covers=None, error=None) -> dict:
    coverage = None if covers is None else {"covers": covers}
    return {"case": case, "estimator": estimator, "kind": kind, "valid": valid, "matches_expected": match,
            "coverage": coverage, "error": error}


TABLE = [
    _row("a", "vib", "upper", valid=True, match=True),
    _row("b", "vib", "upper", valid=True, match=True),
    _row("a", "teacher_iw", "upper", valid=True, match=False),  # K = 1
    _row("a", "teacher_iw", "upper", valid=False),               # K = 10: the same case again
    _row("b", "teacher_iw", "upper", valid=True),
    _row("a", "mine", "point", match=False, covers=False),
    _row("b", "mine", "point", match=False, error="raised ValueError"),
]


def test_failures_are_counted_as_tests():
    assert verdicts.tests_failed(TABLE) == 5  # teacher_iw 2, mine 3 (bias, coverage, bias)
    line = verdicts.status_line(False, 12, TABLE, 1e-3, 1e-3 / 12)
    assert line == "FAILED: 5 of 12 tests failed at family-wise alpha 0.001 (8.33e-05 each); 1 estimate failed to run"
    assert verdicts.status_line(True, 12, TABLE[:2], 1e-3, 1e-3 / 12).startswith("PASSED: all 12 tests passed at")


def test_each_estimator_gets_a_line_with_its_flagged_cases_and_tests():
    assert verdicts.estimator_lines(TABLE) == [
        "vib (upper): passed on all 2 cases",
        "teacher_iw (upper): flagged on 1 of 2 cases (match 1, bound 1)",
        "mine (point): flagged on 2 of 2 cases (bias 2, coverage 1, error 1)",
    ]
