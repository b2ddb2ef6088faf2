"""The built-in analytic suite and draws from any case: the data every check and every user's
estimator is given.

``builtin_suite`` reads ``baselines/suite.json`` (installed as ``ibcheck.baselines``);
``sample_sets`` draws the independent sets of pairs a user's estimator is called on;
``sample_arrays`` the draws that ``ibcheck sample`` writes for tools in other languages.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from importlib import resources

import numpy as np
import torch

from ibcheck import seeds
from ibcheck.analytic import exact, models
from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.analytic.casefile import load_cases
from ibcheck.gaussian import rsample
from ibcheck.interface import Target


def builtin_suite() -> list[LinearGaussianCase]:
    """The built-in analytic suite (``baselines/suite.json``, installed as ``ibcheck.baselines``)."""
    with resources.as_file(resources.files("ibcheck.baselines") / "suite.json") as path:
        return load_cases(path)


def _draws(case: LinearGaussianCase, n: int, repeats: int, seed: int) -> Iterator[dict[str, torch.Tensor | None]]:
    """``repeats`` independent draws of n rows of the case's whole chain, {"z_v", "x", "z", "y"}
    (y None without labels), float64, from a generator seeded by ``seed``."""
    encoder, sampler = models.encoder_for(case), models.CaseSampler(case)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(repeats):
        # no_grad only around the draws: a generator suspended inside it would leave gradients off while
        # the caller runs, and a user's estimator that trains a network would fail there
        with torch.no_grad():
            batch = sampler.sample(n, generator)
            mean, std = encoder(batch.x)
            z = rsample(mean, std, generator)
        yield {"z_v": batch.z_v, "x": batch.x, "z": z, "y": batch.y}


def sample_sets(case: LinearGaussianCase, target: Target, n: int, repeats: int,
                seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``repeats`` independent sets of n pairs, (x, z) or (y, z) (class labels as an (n, 1)
    column), numpy, drawn from the case with a generator seeded by ``seed``."""
    for drawn in _draws(case, n, repeats, seed):
        a, z = drawn["x" if target == "I_XZ" else "y"], drawn["z"]
        assert a is not None and z is not None
        yield (a.reshape(n, -1) if a.dim() == 1 else a).numpy(), z.numpy()


def sample_arrays(cases: Sequence[LinearGaussianCase], n: int, seed: int) -> dict[str, np.ndarray]:
    """n draws of (z_v, x, z) and y where a case has labels, keyed "CASE/NAME", with "cases" (the
    names in order) and "exact" (a JSON string: each case's exact values, in nats)."""
    out: dict[str, np.ndarray] = {}
    truths = {}
    for case in cases:
        ex = exact.exact_values(case, seed=seeds.seed_of(seed, case.name, case.settings.seed, "exact"))
        truths[case.name] = {"I_XZ": ex.I_XZ, "I_XZ_se": ex.I_XZ_se, "I_YZ": ex.I_YZ, "I_YZ_se": ex.I_YZ_se}
        drawn = next(_draws(case, n, 1, seeds.seed_of(seed, case.name, case.settings.seed, "sample")))
        out.update({f"{case.name}/{key}": value.numpy() for key, value in drawn.items() if value is not None})
    out["cases"] = np.array([case.name for case in cases])
    out["exact"] = np.array(json.dumps(truths))
    return out
