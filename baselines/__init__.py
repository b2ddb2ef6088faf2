"""The built-in analytic suite (installed as ``ibcheck.baselines``).

``suite.json`` holds the cases (written by ``make_suite.py``), ``reference.json``
the committed results of ``ibcheck validate --json`` on them; regenerate it with
``ibcheck validate --json baselines/reference.json`` (never edit its numbers by hand).
"""
