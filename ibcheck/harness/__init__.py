"""The validation harness, along its data flow: ``sizes`` checks what a run asks for before any
work (costs, sample sizes, case counts, its expected time); ``validate`` runs every applicable
estimator on every analytic case (``ibcheck.analytic``) and judges each estimate against the exact value by
the rules of ``bounds.md`` section 5 (``ibcheck.stats``); ``plugin`` calls a user's estimator
beside the built-in ones, whether it is a function, an object with an ``estimate`` method
(``objects``) or a command in another language (``external``): a Python one in a worker process of
its own (``sandbox``), killed at its time limit, its return values read strictly there (``returns``);
``check`` is its public entry, ``check_estimator``; ``coverage`` judges the
intervals a user's estimator returns; ``bracket`` pairs the lower and upper bounds of one case into
a two-sided interval; ``report`` renders a ``ValidationResult`` as a table, JSON and report.md,
and ``figures`` draws its figures."""

__all__ = ["bracket", "check", "coverage", "external", "figures", "objects", "plugin", "report", "returns", "sandbox",
           "sizes", "validate", "verdicts"]
