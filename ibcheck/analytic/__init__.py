"""The linear-Gaussian teacher-student model (``bounds.md`` sections 1-2): ``case`` (what a case
is), ``casefile`` (the parser of case files, ``case-file.md``), ``exact`` (its exact values),
``models`` (the linear modules and samplers that let the generic estimators run on it) and
``suite`` (the built-in suite, and draws of any case for a user's estimator). Only this
subpackage assumes linearity."""

__all__ = ["case", "casefile", "exact", "models", "suite"]
