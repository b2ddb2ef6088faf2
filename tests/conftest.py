"""Test configuration: hypothesis profiles, opt-in markers, global seeds and the
statistical budget of ``budget.py``."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

import budget  # tests/ is on sys.path: pyproject's pytest pythonpath

# "ci" is derandomised (the habit of scipy, JAX and TFP): the same examples every run.
settings.register_profile("ci", derandomize=True, max_examples=50, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("stats", derandomize=False, max_examples=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CHECKER = budget.Checker()


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")
    parser.addoption("--run-gpu", action="store_true", help="run tests marked gpu (needs CUDA)")
    parser.addoption("--run-bench", action="store_true", help="run the benchmarks (tests marked bench)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(pytest.mark.skip(reason="slow: opt in with --run-slow"))
        if "bench" in item.keywords and not config.getoption("--run-bench"):
            item.add_marker(pytest.mark.skip(reason="bench: opt in with --run-bench (nox -s bench)"))
        if "gpu" in item.keywords:
            if not config.getoption("--run-gpu"):
                item.add_marker(pytest.mark.skip(reason="gpu: opt in with --run-gpu"))
            elif not torch.cuda.is_available():
                item.add_marker(pytest.mark.skip(reason="gpu: no CUDA device here"))


@pytest.fixture(autouse=True, scope="session")
def _global_seeds():
    """Only conftest (and the CLI) touch global seeds; library code takes explicit generators."""
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - the one place global seeds are set


def pytest_sessionstart(session):
    """Each session counts its own checks, also where one process runs several (mutmut's runs)."""
    global CHECKER
    CHECKER = budget.Checker()


@pytest.fixture(scope="session")
def stat() -> budget.Checker:
    return CHECKER


@pytest.fixture
def seed(request) -> int:
    return budget.seed_for(request.node.nodeid)


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(
        f"statistical checks: {CHECKER.count} of at most {budget.MAX_CHECKS} declared, each at level "
        f"{budget.CHECK_ALPHA:.1e} (suite false-failure budget {budget.BUDGET:g})")


def pytest_sessionfinish(session, exitstatus):
    CHECKER.dump()
    if CHECKER.count > budget.MAX_CHECKS:
        print(f"\nstatistical budget exceeded: {CHECKER.count} checks > MAX_CHECKS = {budget.MAX_CHECKS}",
              file=sys.stderr)
        session.exitstatus = 1
