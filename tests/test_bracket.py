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


def test_a_bracket_is_exactly_the_documented_record():
    rows = [row("nce", "lower", 4.0, param=("N", 64)), row("loo", "upper", 5.5, param=("N", 64))]
    assert bracket.case_bracket(rows) == {
        "lower": {"estimator": "nce N=64", "value": 4.0, "stderr": 0.01},
        "upper": {"estimator": "loo N=64", "value": 5.5, "stderr": 0.01},
        "width": 1.5, "contains_exact": True, "annealed": None}


@pytest.mark.parametrize("low, high, half, inside", [
    (5.25, 6.0, 0.25, True),  # the lower end's interval reaches the truth exactly
    (4.0, 4.75, 0.25, True),  # the upper end's interval reaches it exactly
    (5.25, 6.0, 0.125, False),  # the lower end misses it by more than its own half-width
    (4.0, 4.75, 0.125, False),  # the upper end misses it
])
def test_contains_exact_allows_each_end_its_own_half_width_and_no_more(low, high, half, inside):
    # binary fractions: the sums at the edges are exact, so the comparisons decide, not round-off
    rows = [dict(row("nce", "lower", low), ci_half_width=half), dict(row("loo", "upper", high), ci_half_width=half)]
    assert bracket.case_bracket(rows)["contains_exact"] is inside


def test_widths_rows_hold_every_field_of_the_csv():
    rows = [row("teacher_iw", "upper", 5.5, param=("K", 10), case="a"), row("teacher_riw", "lower", 5.0, param=("K", 10),
                                                                         case="a")]
    (found,) = bracket.widths(rows)
    assert found == {"case": "a", "upper": "teacher_iw", "lower": "teacher_riw", "param": "K", "value": 10,
                     "upper_value": 5.5, "lower_value": 5.0, "width": 0.5}
    assert list(found) == bracket.WIDTH_FIELDS


def _annealed(name, T, value, width=0.25, valid=True, error=None, target="I_XZ", half=0.25):
    kind = "upper" if name == "teacher_ais" else "lower"
    r = row(name, kind, value, valid=valid, param=("T", T), target=target, error=error)
    r["ci_half_width"] = half
    r["params"].update(paired_width=width, paired_width_se=width / 4)
    return r


def test_the_annealed_pair_is_taken_at_its_largest_t_where_both_ends_passed():
    rows = [_annealed("teacher_ais", 10, 6.0, width=2.0), _annealed("teacher_rais", 10, 4.0, width=2.0),
            _annealed("teacher_ais", 100, 5.25, width=0.5), _annealed("teacher_rais", 100, 4.75, width=0.5),
            _annealed("teacher_ais", 1000, 5.0, valid=False), _annealed("teacher_rais", 1000, 5.0),  # failed a test
            _annealed("teacher_ais", 5000, 5.0), _annealed("teacher_rais", 5000, 5.0, error="diverged"),
            _annealed("teacher_ais", 7000, 5.0), _annealed("teacher_rais", 7000, float("inf")),
            _annealed("teacher_ais", 9000, 5.0)]  # an end without its partner
    assert bracket.annealed(rows) == {
        "T": 100, "lower": {"estimator": "teacher_rais T=100", "value": 4.75, "stderr": 0.01},
        "upper": {"estimator": "teacher_ais T=100", "value": 5.25, "stderr": 0.01}, "width": 0.5,
        "width_se": 0.125, "contains_exact": True}
    assert bracket.case_bracket(rows)["annealed"]["T"] == 100


@pytest.mark.parametrize("low, high, half, inside", [(5.25, 6.0, 0.25, True), (4.0, 4.75, 0.25, True),
                                                     (5.25, 6.0, 0.125, False), (4.0, 4.75, 0.125, False)])
def test_the_annealed_pair_contains_the_truth_within_each_ends_half_width(low, high, half, inside):
    rows = [_annealed("teacher_ais", 10, high, half=half), _annealed("teacher_rais", 10, low, half=half)]
    assert bracket.annealed(rows)["contains_exact"] is inside


def test_no_annealed_pair_without_two_passing_ends_on_i_xz():
    assert bracket.annealed([]) is None
    assert bracket.annealed([_annealed("teacher_ais", 10, 5.0), _annealed("teacher_rais", 10, 5.0,
                                                                          target="I_YZ")]) is None
    assert bracket.annealed([_annealed("teacher_ais", 10, 5.0, valid=None), _annealed("teacher_rais", 10, 5.0)]) is None
