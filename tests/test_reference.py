"""The committed reference results (baselines/reference.json, a full ``ibcheck validate``
run of the built-in suite) against what the code computes now."""
from __future__ import annotations

import json
from importlib import resources

import pytest

from ibcheck.analytic import exact
from ibcheck.interface import Estimate

from helpers import SUITE_NAMES, suite_case


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((resources.files("ibcheck.baselines") / "reference.json").read_text())


def test_reference_covers_the_suite_and_passed(reference):
    assert [c["name"] for c in reference["cases"]] == SUITE_NAMES
    assert reference["passed"] is True
    assert reference["tests"] == sum(e[flag] is not None for c in reference["cases"] for e in c["estimates"]
                                     for flag in ("valid", "matches_expected"))


@pytest.mark.statistical
@pytest.mark.parametrize("name", SUITE_NAMES)
def test_exact_values_are_unchanged(reference, name, stat):
    """Closed forms to round-off; Monte Carlo truths (class labels) within their standard errors."""
    ref = next(c for c in reference["cases"] if c["name"] == name)["exact"]
    case = suite_case(name)
    now = exact.exact_values(case, seed=case.settings.seed + 1)
    for key in ("I_XZ", "I_YZ"):
        value, se = getattr(now, key), getattr(now, key + "_se")
        if value is None:
            assert ref[key] is None
        elif se:
            stat.same_mean(Estimate("now", key, "exact", value, se, case.settings.n_exact, 0),
                           Estimate("ref", key, "exact", ref[key], ref[key + "_se"], case.settings.n_exact, 0),
                           label=f"{name} {key} against the reference")
        else:
            assert value == pytest.approx(ref[key], rel=1e-9, abs=1e-12)
