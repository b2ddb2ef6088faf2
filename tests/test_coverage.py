"""Interval coverage (issue 21, ``ibcheck.harness.coverage``): an estimator that returns intervals has
the fraction of them that hold the truth tested against their nominal level, by an exact one-sided
binomial test in the run's budget. A calibrated interval passes, one at half its stated width is
caught, and a one-sided interval is judged one-sided. Objects with an ``estimate`` method are
estimators too, with their parameters recorded."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ibcheck.analytic.exact import exact_values
from ibcheck.cli import main
from ibcheck.harness import check, coverage, report, returns
from ibcheck.interface import InputError

import budget
import plugin_estimators as user
from helpers import suite_case

Z90, Z90_ONE_SIDED = float(scipy_stats.norm.ppf(0.95)), float(scipy_stats.norm.ppf(0.9))


def _truth(name: str) -> float:
    return exact_values(suite_case(name)).I_XZ


def _uniform(a: np.ndarray) -> float:
    """A uniform draw that is a function of the sample (so of the run's seed), independent between sets."""
    return int.from_bytes(hashlib.sha256(a.tobytes()).digest()[:8], "little") / 2.0**64


def _oracle(truth: float, level: float = 0.9):
    """The exact truth as its estimate, with an interval that holds it with probability exactly
    ``level``: a perfectly calibrated interval, whatever the estimator."""
    def fn(a, b):
        holds = _uniform(a) < level
        return truth, truth - 1.0 if holds else truth + 1.0, truth + 1.0 if holds else truth + 2.0

    return fn


def _gaussian_1d(scale: float = Z90, sides: str = "two"):
    """The bias-corrected Gaussian estimate for 1-d pairs with its asymptotic interval (delta
    method: sd = |rho| / sqrt(n), Fisher 1921), ``scale`` sds wide on each side."""
    def fn(a, b):
        estimate = user.gaussian_mi(a, b)
        rho = np.corrcoef(a[:, 0], b[:, 0])[0, 1]
        sd = abs(rho) / math.sqrt(len(a))
        low = -math.inf if sides == "upper" else estimate - scale * sd
        high = math.inf if sides == "lower" else estimate + scale * sd
        return estimate, low, high

    return fn


def _row(result):
    (row,) = [r for c in result.cases for r in c.rows]
    return row


# ---------------------------------------------------------------- the statistic


def test_coverage_counts_intervals_that_hold_the_truth():
    found = coverage.Intervals(0.9, (0.0, 0.0, 2.0, -math.inf), (1.0, 0.4, 3.0, 0.55))
    cov = coverage.judged(found, 0.5, 1e-3)
    assert (cov["contained"], cov["calls"], cov["sides"]) == (2, 4, "mixed")
    assert cov["p_value"] == pytest.approx(scipy_stats.binom.cdf(2, 4, 0.9))
    assert cov["mean_width"] == pytest.approx((1.0 + 0.4 + 1.0) / 3)  # the open interval has no width
    low, high = cov["fraction_ci"]
    assert low < 0.5 < high and cov["covers"] is (cov["p_value"] >= 1e-3)
    assert coverage.Intervals(0.9, (1.0,), (math.inf,)).sides == "lower"
    assert coverage.Intervals(0.9, (-math.inf,), (1.0,)).sides == "upper"


def test_all_intervals_holding_the_truth_is_never_flagged():
    cov = coverage.judged(coverage.Intervals(0.99, (0.0,) * 5, (1.0,) * 5), 0.5, 0.5)
    assert cov["p_value"] == 1.0 and cov["covers"] and cov["fraction_ci"][1] == 1.0


# ---------------------------------------------------------------- judged in a run


@pytest.mark.statistical
def test_a_calibrated_interval_passes(stat):
    cases = ["hand-1d", "high-mi"]
    seed = budget.seed_for("coverage", "oracle")
    results = [check.check_estimator(_oracle(_truth(name)), "point", [suite_case(name)], n=20, repeats=200,
                                     seed=seed, level=0.9, alpha=stat.run_alpha(1)) for name in cases]
    for name, result in zip(cases, results):
        row = _row(result)
        assert row.coverage is not None and row.coverage["calls"] == 200 and row.matches_expected
        stat.record_run(result.passed, 1, f"coverage: an exactly calibrated 90% interval on {name}")


@pytest.mark.statistical
def test_an_asymptotic_interval_of_a_real_estimator_passes(stat):
    result = check.check_estimator(_gaussian_1d(), "point", [suite_case("hand-1d")], repeats=60, level=0.9,
                                   seed=budget.seed_for("coverage", "asymptotic"), alpha=stat.run_alpha(2))
    assert _row(result).coverage["sides"] == "two-sided"
    stat.record_run(result.passed, 2, "coverage: the Gaussian estimate's 90% delta-method interval on hand-1d")


@pytest.mark.power
def test_an_interval_at_half_its_stated_width_is_flagged():
    result = check.check_estimator(_gaussian_1d(Z90 / 2), "point", [suite_case("hand-1d")], repeats=60, level=0.9,
                                   seed=budget.seed_for("coverage", "half"))
    row = _row(result)
    assert row.covers is False and row.coverage["fraction"] < 0.8 and not result.passed
    assert row.matches_expected  # the estimate itself is right: only its interval is judged wrong


@pytest.mark.power
def test_a_one_sided_interval_is_judged_one_sided():
    """An upper end at the one-sided 90% quantile covers; the same end read as the two-sided 90%
    interval (-inf, e + 1.645 sd] would over-cover, and an end 1.645 sd too low is caught."""
    case = [suite_case("hand-1d")]
    seed = budget.seed_for("coverage", "one-sided")
    good = _row(check.check_estimator(_gaussian_1d(Z90_ONE_SIDED, "upper"), "point", case, repeats=60, level=0.9,
                                      seed=seed))
    assert good.coverage["sides"] == "upper" and good.covers and 0.75 < good.coverage["fraction"] < 1.0
    low = _row(check.check_estimator(_gaussian_1d(-Z90_ONE_SIDED, "upper"), "point", case, repeats=60, level=0.9,
                                     seed=seed))
    assert low.covers is False and low.coverage["fraction"] < 0.3


def test_the_coverage_test_is_in_the_budget():
    result = check.check_estimator(_oracle(_truth("hand-1d")), "point", [suite_case("hand-1d")], n=20, repeats=5,
                                   level=0.9)
    assert result.tests == 2 and result.test_alpha == pytest.approx(result.alpha / 2)


# ---------------------------------------------------------------- what an estimator may return


@pytest.mark.parametrize("raw,message", [
    ((1.0, 2.0), "a tuple of 2 items"),
    ((math.nan, 0.0, 1.0), "estimate is not a finite real number"),
    ((0.5, 1.0, 0.0), "low > high"),
    ((0.5, "0", 1.0), "low end is a str"),
    ((0.5, math.nan, 1.0), "low end is a float"),
    ((0.5, 0.0, 1.0, 1.5), "not in (0, 1)"),
    ((0.5, 0.0, 1.0, True), "not in (0, 1)"),
])
def test_a_malformed_interval_is_refused_with_its_reason(raw, message):
    value, why = returns.reading(raw)
    assert value is None and message in why


def test_intervals_in_some_calls_only_are_a_failure():
    calls = iter(range(100))

    def sometimes(a, b):
        return (0.3, 0.0, 1.0) if next(calls) % 2 else 0.3

    row = _row(check.check_estimator(sometimes, "point", [suite_case("hand-1d")], n=20, repeats=4, level=0.9))
    assert row.error == "returned an interval in 2 of 4 calls; give one in every call or none"


def test_an_interval_without_its_level_is_a_failure():
    row = _row(check.check_estimator(lambda a, b: (0.3, 0.0, 1.0), "point", [suite_case("hand-1d")], n=20,
                                     repeats=3))
    assert "without their level" in row.error


def test_levels_that_disagree_are_a_failure():
    row = _row(check.check_estimator(lambda a, b: (0.3, 0.0, 1.0, 0.95), "point", [suite_case("hand-1d")], n=20,
                                     repeats=3, level=0.9))
    assert "different levels [0.9, 0.95]" in row.error


# ---------------------------------------------------------------- in the report


def test_the_report_shows_coverage_only_where_there_are_intervals(tmp_path):
    truth = _truth("hand-1d")
    result = check.check_estimator(_oracle(truth), "point", [suite_case("hand-1d")], n=20, repeats=10, level=0.9,
                                   name="oracle")
    table = report.rows(result)
    written = report.write_report(result, tmp_path / "r", table)
    assert {p.name for p in written} >= {"coverage.csv", "coverage.png", "report.md"}
    estimate = json.loads((tmp_path / "r" / "results.json").read_text())["cases"][0]["estimates"][0]
    assert estimate["coverage"]["calls"] == 10 and estimate["coverage"]["level"] == 0.9
    text = (tmp_path / "r" / "report.md").read_text()
    assert "## Interval coverage" in text and "| hand-1d | oracle | 0.9 | two-sided |" in text
    assert "coverage hand-1d oracle:" in report.terminal_table(result, table)
    plain = check.check_estimator(lambda a, b: 0.0, "lower", [suite_case("hand-1d")], n=20, repeats=3)
    written = report.write_report(plain, tmp_path / "p")
    assert not {"coverage.csv", "coverage.png"} & {p.name for p in written}
    estimate = json.loads((tmp_path / "p" / "results.json").read_text())["cases"][0]["estimates"][0]
    assert "coverage" not in estimate and "Interval coverage" not in (tmp_path / "p" / "report.md").read_text()


def test_validate_takes_the_interval_level_from_the_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "coverage_user.py").write_text("def wide(a, b):\n    return 0.3, -100.0, 100.0\n")
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({"cases": [{"name": "one", "teacher": {"W": [[1.0]]},
                                            "encoder": {"A": [[1.0]], "std": [1.0]}}]}))
    code = main(["validate", "--cases", str(cases), "--out", str(tmp_path / "r"), "--quiet", "--estimator",
                 "coverage_user:wide", "--kind", "lower", "--interval-level", "0.8", "--estimator-repeats", "4",
                 "--estimator-n", "20"])
    assert code == 0, capsys.readouterr()
    estimates = json.loads((tmp_path / "r" / "results.json").read_text())["cases"][0]["estimates"]
    (mine,) = [e for e in estimates if e["estimator"] == "coverage_user:wide"]
    assert mine["coverage"]["level"] == 0.8 and mine["coverage"]["contained"] == 4


# ---------------------------------------------------------------- objects as estimators


class _Parameters:
    """Stands in for benchmark-mi's pydantic parameters."""

    def model_dump(self):
        return {"neighbors": 5, "standardize": True, "metric": object()}


class _BmiLike:
    def estimate(self, x, y):
        return user.gaussian_mi(x, y)

    def parameters(self):
        return _Parameters()


class _SklearnLike:
    def estimate(self, x, y):
        return 0.0

    def get_params(self):
        return {"k": 3}


@dataclasses.dataclass
class _Plain:
    k: int = 4

    def estimate(self, x, y):
        return 0.0


class _Broken:
    def estimate(self, x, y):
        return 0.0

    def parameters(self):
        raise RuntimeError("no")


@pytest.mark.parametrize("obj,params", [
    (_BmiLike(), {"neighbors": 5, "standardize": True}),
    (_SklearnLike(), {"k": 3}),
    (_Plain(), {"k": 4}),
    (_Broken(), {"unavailable": "raised RuntimeError: no"}),
])
def test_an_object_with_an_estimate_method_is_an_estimator_with_its_parameters(obj, params):
    result = check.check_estimator(obj, "lower", [suite_case("hand-1d")], n=50, repeats=3)
    row = _row(result)
    assert row.error is None and row.estimate.estimator == type(obj).__name__
    recorded = row.estimate.params["estimator"]
    assert {k: v for k, v in recorded.items() if k != "metric"} == params
    if "metric" in recorded:
        assert recorded["metric"].startswith("<object object")  # not JSON: its repr


def test_an_object_that_is_no_estimator_is_refused():
    with pytest.raises(InputError, match="neither callable nor has an estimate"):
        check.check_estimator(object(), "lower", [suite_case("hand-1d")])
