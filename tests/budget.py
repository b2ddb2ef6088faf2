"""The test suite's declared false-failure budget and its statistical checks.

BUDGET is the probability that an honest implementation fails any statistical
check of one full test run. It is split evenly (Bonferroni) over at most
MAX_CHECKS checks; conftest fails the run if more checks than that were made,
so the declaration cannot silently go stale. Each check follows bounds.md
section 5 through ``ibcheck.stats``.

``nox -s stats`` reruns the statistical tests with fresh seeds
(IBCHECK_SEED) at a deliberately large per-check level (IBCHECK_CHECK_ALPHA),
records every check instead of asserting (IBCHECK_STATS_LOG), and prints the
observed failure rate beside the level: that is how the standard errors are
shown to be honest, not just assumed.
"""
from __future__ import annotations

import json
import os
import zlib

from ibcheck import stats
from ibcheck.interface import Estimate

BUDGET = 1e-3
MAX_CHECKS = 5000
CHECK_ALPHA = float(os.environ.get("IBCHECK_CHECK_ALPHA", BUDGET / MAX_CHECKS))
SEED_OFFSET = int(os.environ.get("IBCHECK_SEED", "0"))
STATS_LOG = os.environ.get("IBCHECK_STATS_LOG")


def seed_for(*words) -> int:
    """A seed from the run's offset and any labels: fixed in CI, fresh under ``nox -s stats``."""
    text = "/".join(str(w) for w in (SEED_OFFSET,) + words)
    return zlib.crc32(text.encode())


class Checker:
    """Counts, judges and (in calibration mode) records statistical checks."""

    def __init__(self):
        self.count = 0
        self.records: list[dict] = []

    def _judge(self, ok: bool, kind: str, label: str, detail: str, units: int = 1) -> bool:
        self.count += units
        if STATS_LOG:
            self.records.append({"kind": kind, "label": label, "passed": bool(ok), "units": units})
            return True
        assert ok, f"{kind} check failed at level {CHECK_ALPHA:.1e}: {label}: {detail}"
        return True

    def upper(self, est: Estimate, truth: float, truth_se: float = 0.0, label: str = "") -> bool:
        """An upper bound is not significantly below the truth."""
        ok = stats.upper_valid(est.value, est.stderr, est.n, truth, CHECK_ALPHA, truth_se)
        return self._judge(ok, "upper", label or est.estimator, f"{est.value:.5g} ± {est.stderr:.2g} vs {truth:.5g}")

    def lower(self, est: Estimate, truth: float, truth_se: float = 0.0, label: str = "") -> bool:
        """A lower bound is not significantly above the truth."""
        ok = stats.lower_valid(est.value, est.stderr, est.n, truth, CHECK_ALPHA, truth_se)
        return self._judge(ok, "lower", label or est.estimator, f"{est.value:.5g} ± {est.stderr:.2g} vs {truth:.5g}")

    def matches(self, est: Estimate, expected: float, label: str = "") -> bool:
        """Two-sided agreement with an analytic expectation."""
        ok = stats.matches(est.value, est.stderr, est.n, expected, CHECK_ALPHA)
        return self._judge(ok, "match", label or est.estimator, f"{est.value:.5g} ± {est.stderr:.2g} vs {expected:.5g}")

    def same_mean(self, a: Estimate, b: Estimate, label: str = "") -> bool:
        """Two independent estimates of one quantity agree (two-sided, se in quadrature)."""
        se = stats.combined_se(a.stderr, b.stderr)
        ok = abs(a.value - b.value) <= stats.quantile(1 - CHECK_ALPHA / 2, min(a.n, b.n)) * se + 1e-12
        return self._judge(ok, "same", label, f"{a.value:.5g} ± {a.stderr:.2g} vs {b.value:.5g} ± {b.stderr:.2g}")

    def not_below(self, hi: Estimate, lo: Estimate, label: str = "") -> bool:
        """One-sided: ``hi`` estimates a quantity at least as large as ``lo``'s (independent draws)."""
        se = stats.combined_se(hi.stderr, lo.stderr)
        ok = hi.value + stats.quantile(1 - CHECK_ALPHA, min(hi.n, lo.n)) * se + 1e-12 >= lo.value
        return self._judge(ok, "order", label, f"{hi.value:.5g} ± {hi.stderr:.2g} vs {lo.value:.5g} ± {lo.stderr:.2g}")

    def run_alpha(self, units: int, label: str) -> float:
        """Reserve ``units`` checks' share of the budget for a whole ``ibcheck validate`` run."""
        self.count += units
        return units * CHECK_ALPHA

    def record_run(self, passed: bool, units: int, label: str) -> bool:
        """Judge a validate run made at ``run_alpha(units)``."""
        self.count -= units  # run_alpha already counted them
        return self._judge(passed, "validate", label, "a validate run failed", units)

    def dump(self) -> None:
        if STATS_LOG:
            with open(STATS_LOG, "a", encoding="utf-8") as fh:
                for rec in self.records:
                    fh.write(json.dumps(dict(rec, alpha=CHECK_ALPHA, seed=SEED_OFFSET)) + "\n")


def would_pass(kind: str, est: Estimate, target: float) -> bool:
    """The verdict of a check without counting it: for power tests, which expect a failure."""
    if kind == "upper":
        return stats.upper_valid(est.value, est.stderr, est.n, target, CHECK_ALPHA)
    if kind == "lower":
        return stats.lower_valid(est.value, est.stderr, est.n, target, CHECK_ALPHA)
    return stats.matches(est.value, est.stderr, est.n, target, CHECK_ALPHA)
