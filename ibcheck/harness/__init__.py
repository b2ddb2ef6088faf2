"""The validation harness, along its data flow: ``validate`` runs every applicable estimator on
every analytic case (``ibcheck.analytic``) and judges each estimate against the exact value by
the rules of ``bounds.md`` section 5 (``ibcheck.stats``); ``plugin`` calls a user's estimator
beside the built-in ones, whether it is a function, an object with an ``estimate`` method
(``objects``) or a command in another language (``external``): a Python one in a worker process of
its own (``sandbox``), killed at its time limit, its return values read strictly there (``returns``);
``check`` is its public entry, ``check_estimator``; ``coverage`` judges the
intervals a user's estimator returns; ``bracket`` pairs the lower and upper bounds of one case into
a two-sided interval; ``report`` renders a ``ValidationResult`` as a table, JSON, figures and
report.md."""

__all__ = ["bracket", "check", "coverage", "external", "objects", "plugin", "report", "returns", "sandbox", "validate",
           "verdicts"]
