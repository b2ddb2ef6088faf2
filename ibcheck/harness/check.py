"""``check_estimator``: a user's estimator judged on analytic cases as ``validate`` judges the
built-in ones, from Python (the CLI's ``--estimator`` does the same through ``validate``)."""
from __future__ import annotations

from collections.abc import Sequence

from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.analytic.suite import builtin_suite
from ibcheck.harness import validate
from ibcheck.harness.plugin import Estimator, Plugin, UserKind
from ibcheck.interface import Target

__all__ = ["check_estimator"]


def check_estimator(fn: Estimator, kind: UserKind, cases: Sequence[LinearGaussianCase] | None = None, *, n: int = 1_000,
                    repeats: int = 20, seed: int = 0, target: Target = "I_XZ", alpha: float = 1e-3,
                    time_limit: float = 60.0, name: str | None = None) -> validate.ValidationResult:
    """Judge ``fn`` on ``cases`` (default: the built-in suite) as ``validate`` judges its own
    estimators, with the family-wise budget ``alpha`` over its tests. Returns the
    ``validate.ValidationResult`` (``report.rows``/``to_json``/``write_report`` render it)."""
    plugin = Plugin(name or str(getattr(fn, "__name__", "estimator")), fn, kind, target, n, repeats, time_limit)
    return validate.validate(list(cases) if cases is not None else builtin_suite(), alpha=alpha, seed=seed,
                             names=(), plugins=(plugin,))
