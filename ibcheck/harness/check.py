"""``check_estimator``: a user's estimator judged on analytic cases as ``validate`` judges the
built-in ones, from Python (the CLI's ``--estimator`` and ``--estimator-cmd`` do the same through
``validate``)."""
from __future__ import annotations

from collections.abc import Sequence

from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.analytic.suite import builtin_suite
from ibcheck.harness import objects, plugin, validate
from ibcheck.harness.plugin import Estimator, UserKind
from ibcheck.interface import Target

__all__ = ["check_estimator"]


def check_estimator(fn: Estimator | object, kind: UserKind, cases: Sequence[LinearGaussianCase] | None = None, *,
                    n: int = 1_000, repeats: int = 20, seed: int = 0, target: Target = "I_XZ", alpha: float = 1e-3,
                    time_limit: float = 60.0, name: str | None = None,
                    level: float | None = None) -> validate.ValidationResult:
    """Judge ``fn`` on ``cases`` (default: the built-in suite) as ``validate`` judges its own
    estimators, with the family-wise budget ``alpha`` over its tests. ``fn`` is a callable
    ``fn(a, b)``, an object with an ``estimate(a, b)`` method (its parameters are recorded), or an
    ``external.Command``; it returns an estimate in nats or ``(estimate, low, high)``, an interval
    of nominal ``level`` whose coverage is tested too. Returns the ``validate.ValidationResult``
    (``report.rows``/``to_json``/``write_report`` render it)."""
    call = objects.as_estimator(fn)
    label = name or str(getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__)
    user = plugin.Plugin(label, call, kind, target, n, repeats, time_limit, level, objects.parameters_of(fn))
    return validate.validate(list(cases) if cases is not None else builtin_suite(), alpha=alpha, seed=seed,
                             names=(), plugins=(user,))
