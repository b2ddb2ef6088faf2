"""The built-in suite and the draws every check and every user's estimator is given
(``ibcheck.analytic.suite``): the installed suite is the committed one, a case's draws follow its
chain z_v -> x -> z (and y), sets are seeded and independent, and ``ibcheck sample``'s arrays carry
the truth that ``validate`` judges against."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ibcheck.analytic import suite
from ibcheck.analytic.casefile import load_cases

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = json.loads((ROOT / "baselines" / "reference.json").read_text())


def _case(name: str):
    return next(case for case in suite.builtin_suite() if case.name == name)


def test_the_installed_suite_is_the_committed_one():
    installed, committed = suite.builtin_suite(), load_cases(ROOT / "baselines" / "suite.json")
    assert [case.name for case in installed] == [case.name for case in committed]
    assert [case.name for case in installed] == [case["name"] for case in REFERENCE["cases"]]
    for mine, theirs in zip(installed, committed):
        assert np.array_equal(mine.W, theirs.W) and np.array_equal(mine.A, theirs.A)
        assert mine.noise_std == theirs.noise_std and mine.labels.kind == theirs.labels.kind


def test_draws_follow_the_cases_chain():
    case = _case("deterministic-teacher")  # noise-free teacher: x = W z_v + c exactly
    draws = list(suite._draws(case, 3000, 2, seed=4))
    assert len(draws) == 2 and not np.array_equal(draws[0]["z"].numpy(), draws[1]["z"].numpy())
    for drawn in draws:
        z_v, x, z, y = (drawn[key].numpy() for key in ("z_v", "x", "z", "y"))
        assert z_v.shape == (3000, case.k) and x.shape == (3000, case.d) and z.shape == (3000, case.m)
        np.testing.assert_allclose(x, z_v @ case.W.T + case.c, rtol=0, atol=1e-12)
        # z | x ~ N(A x + b, diag(std^2)): whitened residuals have mean 0 and variance 1, within 6
        # standard errors of 3,000 draws (0.11 and 0.16)
        white = (z - x @ case.A.T - case.b) / case.std
        assert np.abs(white.mean(0)).max() < 0.11 and np.abs(white.var(0) - 1).max() < 0.16
        # y = B z_v + 0.3 eps
        resid = (y - z_v @ case.labels.B.T) / case.labels.noise_std
        assert y.shape == (3000, 2) and np.abs(resid.mean(0)).max() < 0.11 and np.abs(resid.var(0) - 1).max() < 0.16
    assert next(suite._draws(_case("noisy-teacher"), 5, 1, seed=0))["y"] is None


@pytest.mark.parametrize("name, target, width", [("hand-1d", "I_XZ", 1), ("hand-1d", "I_YZ", 1),
                                                  ("ten-classes", "I_XZ", 8), ("ten-classes", "I_YZ", 1)])
def test_sample_sets_are_seeded_pairs_of_the_target(name, target, width):
    case = _case(name)
    sets = list(suite.sample_sets(case, target, 40, 3, seed=7))
    assert len(sets) == 3 and all(a.shape == (40, width) and z.shape == (40, case.m) for a, z in sets)
    again, other = list(suite.sample_sets(case, target, 40, 3, seed=7)), list(suite.sample_sets(case, target, 40, 3, 8))
    assert all(np.array_equal(a, b) and np.array_equal(z, w) for (a, z), (b, w) in zip(sets, again))
    assert not np.array_equal(sets[0][1], other[0][1]) and not np.array_equal(sets[0][1], sets[1][1])
    # both targets' sets come from the same draws: the same z, and a or y as they were drawn
    drawn = next(suite._draws(case, 40, 1, seed=7))
    key = "x" if target == "I_XZ" else "y"
    assert np.array_equal(sets[0][1], drawn["z"].numpy())
    assert np.array_equal(sets[0][0], drawn[key].numpy().reshape(40, -1))
    if case.labels.kind == "classes" and target == "I_YZ":
        assert set(np.unique(sets[0][0])) <= set(range(len(case.labels.probs)))


def test_sample_arrays_carry_the_draws_and_the_truth_validate_judges_against():
    cases = [_case("hand-1d"), _case("noisy-teacher"), _case("ten-classes")]
    arrays = suite.sample_arrays(cases, 25, seed=0)
    assert list(arrays["cases"]) == ["hand-1d", "noisy-teacher", "ten-classes"]
    for case in cases:
        keys = {"z_v", "x", "z"} | ({"y"} if case.labels.kind != "none" else set())
        assert {key.split("/")[1] for key in arrays if key.startswith(case.name + "/")} == keys
        assert arrays[f"{case.name}/x"].shape == (25, case.d) and arrays[f"{case.name}/z"].shape == (25, case.m)
    # the exact values are those of the committed validate run at the same seed (baselines/reference.json)
    truths = json.loads(str(arrays["exact"]))
    reference = {case["name"]: case["exact"] for case in REFERENCE["cases"]}
    assert REFERENCE["seed"] == 0
    for case in cases:
        for key, value in reference[case.name].items():
            assert truths[case.name][key] == pytest.approx(value, rel=1e-9, abs=1e-12) if value is not None \
                else truths[case.name][key] is None
    # seeded, and not the first draws of the plain seed: each case has its own stream
    assert np.array_equal(suite.sample_arrays(cases, 25, seed=0)["hand-1d/z"], arrays["hand-1d/z"])
    assert not np.array_equal(suite.sample_arrays(cases, 25, seed=1)["hand-1d/z"], arrays["hand-1d/z"])
    assert not np.array_equal(next(suite._draws(cases[0], 25, 1, seed=0))["z"].numpy(), arrays["hand-1d/z"])


def test_each_case_draws_from_a_stream_of_its_own_name_and_seed():
    """Two cases alike but for their name, or for their own seed setting, get different draws."""
    import dataclasses

    case = _case("noisy-teacher")
    renamed = dataclasses.replace(case, name="noisy-teacher-copy")
    reseeded = dataclasses.replace(case, settings=dataclasses.replace(case.settings, seed=case.settings.seed + 1))
    z = {name: suite.sample_arrays([c], 20, seed=0)[f"{c.name}/z"] for name, c in
         (("case", case), ("renamed", renamed), ("reseeded", reseeded))}
    assert not np.array_equal(z["case"], z["renamed"]) and not np.array_equal(z["case"], z["reseeded"])
