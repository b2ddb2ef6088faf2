"""The test suite's declared false-failure budget and its statistical checks.

BUDGET is the probability that an honest implementation fails any statistical
check of one full test run. It is split evenly (Bonferroni) over at most
MAX_CHECKS checks, so each check runs at CHECK_ALPHA = BUDGET / MAX_CHECKS;
conftest fails the run if more checks than that were made, so the declaration
cannot silently go stale. Verdicts come from ``ibcheck.stats`` (bounds.md section 5).

``nox -s stats`` reruns the statistical tests with fresh seeds (IBCHECK_SEED)
and IBCHECK_STATS_LOG set: then every check is recorded as a standardised
statistic instead of asserted, and ``stats_summary.py`` prints the observed
failure rates at several levels beside the nominal ones and the family-wise
rate beside BUDGET, which shows the standard errors are honest, not assumed.
"""
from __future__ import annotations

import json
import math
import os
import zlib

from ibcheck import stats
from ibcheck.interface import Estimate

BUDGET = 1e-3
MAX_CHECKS = 5000
CHECK_ALPHA = BUDGET / MAX_CHECKS
SEED_OFFSET = int(os.environ.get("IBCHECK_SEED", "0"))
STATS_LOG = os.environ.get("IBCHECK_STATS_LOG")


def seed_for(*words) -> int:
    """A seed from the run's offset and any labels: fixed in CI, fresh under ``nox -s stats``."""
    text = "/".join(str(w) for w in (SEED_OFFSET,) + words)
    return zlib.crc32(text.encode())


EPS = 2.0**-52


def _standardised(excess: float, se: float, scale: float) -> float:
    """(excess - round-off slack) / se: the statistic a check compares with its quantile, with
    the same slack ``ibcheck.stats`` allows (sqrt(eps) (1 + |scale|)); se = 0 reads as 0 or +inf."""
    beyond = excess - stats.roundoff(scale, EPS)
    if se > 0:
        return max(beyond, 0.0) / se
    return 0.0 if beyond <= 0 else math.inf


class Checker:
    """Counts, judges and (under IBCHECK_STATS_LOG) records statistical checks."""

    def __init__(self):
        self.count = 0
        self.records: list[dict] = []

    def _judge(self, ok: bool, kind: str, label: str, detail: str, t: float, n: int, sided: int) -> bool:
        self.count += 1
        if STATS_LOG:
            self.records.append({"kind": kind, "label": label, "t": t, "df": max(n - 1, 1), "sided": sided,
                                 "seed": SEED_OFFSET})
            return True
        assert ok, f"{kind} check failed at level {CHECK_ALPHA:.1e}: {label}: {detail}"
        return True

    def upper(self, est: Estimate, truth: float, truth_se: float = 0.0, label: str = "") -> bool:
        """An upper bound is not significantly below the truth."""
        ok = stats.upper_valid(est.value, est.stderr, est.n, truth, CHECK_ALPHA, truth_se, skew=est.skew)
        t = _standardised(truth - est.value, stats.combined_se(est.stderr, truth_se), truth)
        return self._judge(ok, "upper", label or est.estimator,
                           f"{est.value:.5g} ± {est.stderr:.2g} vs {truth:.5g}", t, est.n, 1)

    def lower(self, est: Estimate, truth: float, truth_se: float = 0.0, label: str = "") -> bool:
        """A lower bound is not significantly above the truth."""
        ok = stats.lower_valid(est.value, est.stderr, est.n, truth, CHECK_ALPHA, truth_se, skew=est.skew)
        t = _standardised(est.value - truth, stats.combined_se(est.stderr, truth_se), truth)
        return self._judge(ok, "lower", label or est.estimator,
                           f"{est.value:.5g} ± {est.stderr:.2g} vs {truth:.5g}", t, est.n, 1)

    def matches(self, est: Estimate, expected: float, label: str = "", expected_se: float = 0.0) -> bool:
        """Two-sided agreement with an analytic expectation (itself Monte Carlo where expected_se > 0)."""
        ok = stats.matches(est.value, est.stderr, est.n, expected, CHECK_ALPHA, expected_se=expected_se)
        t = _standardised(abs(est.value - expected), stats.combined_se(est.stderr, expected_se), expected)
        return self._judge(ok, "match", label or est.estimator,
                           f"{est.value:.5g} ± {est.stderr:.2g} vs {expected:.5g}", t, est.n, 2)

    def observe(self, observations) -> None:
        """Judge ``match_checks.Observation``s, each by its kind ("match", "upper" or "lower")."""
        for o in observations:
            if o.kind == "match":
                self.matches(o.estimate, o.reference, o.label, o.reference_se)
            elif o.kind == "upper":
                self.upper(o.estimate, o.reference, o.reference_se, o.label)
            else:
                self.lower(o.estimate, o.reference, o.reference_se, o.label)

    def same_mean(self, a: Estimate, b: Estimate, label: str = "") -> bool:
        """Two independent estimates of one quantity agree (two-sided, errors in quadrature)."""
        se, n, scale = stats.combined_se(a.stderr, b.stderr), min(a.n, b.n), max(abs(a.value), abs(b.value))
        ok = abs(a.value - b.value) <= stats.quantile(CHECK_ALPHA / 2, n) * se + stats.roundoff(scale, EPS)
        t = _standardised(abs(a.value - b.value), se, scale)
        return self._judge(ok, "same", label, f"{a.value:.5g} ± {a.stderr:.2g} vs {b.value:.5g} ± {b.stderr:.2g}",
                           t, n, 2)

    def not_below(self, hi: Estimate, lo: Estimate, label: str = "") -> bool:
        """One-sided: ``hi`` estimates a quantity at least as large as ``lo``'s (independent draws)."""
        se, n, scale = stats.combined_se(hi.stderr, lo.stderr), min(hi.n, lo.n), max(abs(hi.value), abs(lo.value))
        ok = hi.value + stats.quantile(CHECK_ALPHA, n) * se + stats.roundoff(scale, EPS) >= lo.value
        t = _standardised(lo.value - hi.value, se, scale)
        return self._judge(ok, "order", label, f"{hi.value:.5g} ± {hi.stderr:.2g} vs {lo.value:.5g} ± {lo.stderr:.2g}",
                           t, n, 1)

    def caught(self, kind: str, est: Estimate, target: float, label: str) -> bool:
        """Power: the ``kind`` check ("upper", "lower" or "match") must FAIL on a planted wrong
        estimate. Not counted against the budget (a failure here is the expected outcome)."""
        if kind == "match":
            passes = stats.matches(est.value, est.stderr, est.n, target, CHECK_ALPHA)
        else:
            check = stats.upper_valid if kind == "upper" else stats.lower_valid
            passes = check(est.value, est.stderr, est.n, target, CHECK_ALPHA, skew=est.skew)
        if STATS_LOG:
            self.records.append({"kind": "power", "label": label, "caught": not passes, "seed": SEED_OFFSET})
            return True
        assert not passes, (f"planted bug not caught by the {kind} check: {label}: "
                            f"{est.value:.5g} ± {est.stderr:.2g} vs {target:.5g}")
        return True

    def run_alpha(self, units: int, label: str = "") -> float:
        """The family-wise level for a whole ``ibcheck validate`` run worth ``units`` checks."""
        return units * CHECK_ALPHA

    def record_run(self, passed: bool, units: int, label: str) -> bool:
        """Judge a validate run made at ``run_alpha(units)``: it counts as ``units`` checks."""
        self.count += units - 1
        t = 0.0 if passed else math.inf
        return self._judge(passed, "validate", label, "a validate run failed", t, 10**9, 1)

    def dump(self) -> None:
        if STATS_LOG:
            with open(STATS_LOG, "a", encoding="utf-8") as fh:
                for rec in self.records:
                    fh.write(json.dumps(rec) + "\n")
