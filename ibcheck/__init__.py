"""ibcheck: checks mutual-information bounds against exact values, and tracks a network in the information plane."""
__version__ = "0.1.0"
__all__ = ["check_estimator"]


def __getattr__(name: str):
    # torch loads only when the API is used, so `import ibcheck` stays cheap for the CLI
    if name == "check_estimator":
        from ibcheck.harness.check import check_estimator

        return check_estimator
    raise AttributeError(f"module 'ibcheck' has no attribute {name!r}")
