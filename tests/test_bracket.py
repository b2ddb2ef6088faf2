"""The bracket of a validate run (ibcheck.harness.bracket) on hand-made report rows: which estimates
count as its ends, and the width of each pair of bounds against K and N."""
from __future__ import annotations

import math

import pytest

from ibcheck.harness import bracket


def row(estimator, kind, value, valid=True, param=None, target="I_XZ", case="c", error=None):
    params = {} if param is None else dict([param])
    label = f"{estimator} {param[0]}={param[1]}" if param else estimator
    return {"case": case, "estimator": estimator, "label": label, "kind": kind, "target": target, "value": value,
            "stderr": 0.01, "valid": valid, "error": error, "exact": 5.0, "ci_half_width": 0.05, "params": params}


def test_the_ends_are_the_tightest_trusted_bounds():
    rows = [row("nce", "lower", 4.0, param=("N", 64)), row("teacher_riw", "lower", 4.9, param=("K", 100)),
            row("teacher_riw", "lower", 5.6, valid=False, param=("K", 10)),  # failed its test: not a bound
            row("loo", "upper", 5.3, param=("N", 64)), row("teacher_iw", "upper", 5.1, param=("K", 100)),
            row("vib", "upper", float("nan"), valid=None, error="not finite"),
            row("barber_agakov", "lower", 9.0, target="I_YZ")]
    found = bracket.case_bracket(rows)
    assert found["lower"]["estimator"] == "teacher_riw K=100" and found["upper"]["estimator"] == "teacher_iw K=100"
    assert found["width"] == pytest.approx(0.2) and found["contains_exact"]


def test_no_bracket_without_both_ends():
    assert bracket.case_bracket([row("vib", "upper", 7.0)]) is None
    assert bracket.case_bracket([row("nce", "lower", 3.0), row("vib", "upper", 7.0, valid=False)]) is None


def test_an_end_that_misses_the_truth_by_more_than_its_test_allows_is_reported():
    found = bracket.case_bracket([row("nce", "lower", 4.0), row("vib", "upper", 4.9)])
    assert found["contains_exact"] is False  # 4.9 + 0.05 < 5.0


def test_widths_pair_the_values_both_bounds_ran_with():
    rows = [row("teacher_iw", "upper", 6.0, param=("K", 1)), row("teacher_iw", "upper", 5.2, param=("K", 10)),
            row("teacher_riw", "lower", 4.0, param=("K", 0)), row("teacher_riw", "lower", 4.8, param=("K", 10)),
            row("loo", "upper", 5.5, param=("N", 64)), row("nce", "lower", 3.9, param=("N", 64))]
    found = {(w["upper"], w["value"]): w["width"] for w in bracket.widths(rows)}
    assert found == {("teacher_iw", 10): pytest.approx(0.4), ("loo", 64): pytest.approx(1.6)}
    assert all(math.isfinite(w) for w in found.values())
