"""The estimator registry and the configuration tree: one calling convention, kinds set by the
reference the caller states, and configs that read back through the one validator."""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from ibcheck import estimators, schema
from ibcheck.analytic.casefile import parse_cases
from ibcheck.config import PRESETS, TRACK_ESTIMATORS, EstimatorSettings, TeacherRunConfig, TrainConfig
from ibcheck.estimators import registry
from ibcheck.estimators.batch import BatchParams
from ibcheck.estimators.empirical import EmpiricalParams
from ibcheck.estimators.samplers import FiniteSampler
from ibcheck.estimators.vib import VibParams
from ibcheck.harness.validate import applicable, validate
from ibcheck.interface import InputError

from helpers import linear, suite_case


def _fail(key: str, why: str):
    raise InputError(f"{key} {why}")


@pytest.mark.parametrize("name", registry.names())
def test_every_spec_has_frozen_params_that_read_back(name):
    spec = registry.get(name)
    assert dataclasses.is_dataclass(spec.params) and spec.params.__dataclass_params__.frozen
    assert set(spec.targets) <= {"I_XZ", "I_YZ"} and set(spec.kinds) == {"population", "finite"}
    assert schema.from_json(type(spec.params), schema.to_json(spec.params), name, _fail) == spec.params
    assert spec.sweep is None or isinstance(getattr(spec.params, spec.sweep), tuple)


def test_every_track_and_case_setting_names_the_registered_estimators():
    assert set(EstimatorSettings().estimators) == set(registry.names())
    # tracking runs on the finite training set, whose data carry no z_v: every estimator but those needing one
    assert set(TRACK_ESTIMATORS) == set(registry.without_prior()) == set(registry.names()) - {
        "teacher_iw_data", "teacher_riw", "teacher_ais", "teacher_rais"}
    for preset in PRESETS.values():
        assert set(preset.track.estimators) == set(registry.without_prior())


@pytest.mark.parametrize("config", [*PRESETS.values(), TeacherRunConfig()], ids=[*PRESETS, "teacher-run"])
def test_configs_read_back_through_the_validator(config):
    """config.json is schema.to_json of the config; reading it back gives the same config."""
    assert schema.from_json(type(config), schema.to_json(config), "", _fail) == config


def test_the_validator_names_the_key_path():
    with pytest.raises(InputError, match=r'^student\.beta must be a number, got "x"$'):
        schema.from_json(TrainConfig, {"student": {"beta": "x"}}, "", _fail)
    with pytest.raises(InputError, match=r"^track\.estimators\.loo\.N must be a non-empty list of integers in \[2,"):
        schema.from_json(TrainConfig, {"track": {"estimators": {"loo": {"N": [1]}}}}, "", _fail)
    with pytest.raises(InputError, match=r"^track\.estimators\.ksg unknown key"):
        schema.from_json(TrainConfig, {"track": {"estimators": {"ksg": {}}}}, "", _fail)


def test_the_caller_states_the_reference_and_the_kind_follows():
    case = suite_case("ten-classes")
    enc, smp = linear(case)
    population = estimators.run("empirical", enc, smp, EmpiricalParams(N=64, sets=4, draws=1), seed=1)
    assert [(e.target, e.kind) for e in population] == [("I_XZ", "lower"), ("I_YZ", "estimate")]
    points = smp.sample(64, torch.Generator().manual_seed(0))
    finite = estimators.run("empirical", enc, FiniteSampler(points.x, points.y),
                            EmpiricalParams(N=None, sets=None, draws=2), seed=1, reference="finite")
    assert [(e.target, e.kind) for e in finite] == [("I_XZ", "exact"), ("I_YZ", "exact")]
    assert finite[0].params["N"] == 64 and finite[0].n == 128
    for reference in ("population", "finite"):
        assert estimators.run_one("vib", enc, smp, VibParams(n=10), seed=1, reference=reference).kind == "upper"


def test_run_refuses_wrong_params_and_missing_context():
    case = suite_case("hand-1d")
    enc, smp = linear(case)
    with pytest.raises(TypeError, match="^vib takes VibParams, got EmpiricalParams$"):
        estimators.run("vib", enc, smp, EmpiricalParams(), seed=0)
    with pytest.raises(ValueError, match="context.q, context.teacher"):
        estimators.run("teacher_elbo", enc, smp, seed=0)
    known = re.escape(", ".join(registry.names()))
    with pytest.raises(ValueError, match=rf"^unknown estimator 'ksg' \(known: {known}\)$"):
        estimators.run("ksg", enc, smp, seed=0)


def test_a_registered_estimator_reaches_validate(monkeypatch):
    """A new estimator is one spec in the table: case settings take its parameters, and
    validate runs it, judges it by its kind and reports it."""
    extra = dataclasses.replace(registry.VIB, name="vib_copy", params=VibParams(n=500))
    monkeypatch.setattr(registry, "SPECS", {**registry.SPECS, "vib_copy": extra})
    document = {"name": "one", "teacher": {"W": [[1.0]]}, "encoder": {"A": [[1.0]], "std": [1.0]},
                "settings": {"estimators": {"vib_copy": {"n": 300}}}}
    (case,) = parse_cases({"cases": [document]})
    assert "vib_copy" in [s.name for s in applicable(case)]
    result = validate([case], names=["vib_copy"])
    (row,) = result.cases[0].rows
    assert row.estimate.estimator == "vib_copy" and row.estimate.n == 300 and row.valid is True


def test_loo_and_nce_run_together_from_the_same_draws():
    """Together they reuse each batch; each is then exactly what it is alone with the same seed."""
    case = suite_case("high-mi")
    enc, smp = linear(case)
    params = BatchParams(N=(32, 64), batches=4)
    together = estimators.run_together(("loo", "nce"), enc, smp, params, seed=5)
    for name in ("loo", "nce"):
        alone = estimators.run(name, enc, smp, params, seed=5)
        assert [(e.value, e.stderr, e.params["N"]) for e in together[name]] == [
            (e.value, e.stderr, e.params["N"]) for e in alone]
    # refused unless every one shares the first one's joint function: none has one, or they differ
    for names in (("vib", "nce"), ("vib", "teacher_elbo"), ("nce", "teacher_ais"), ("loo", "nce", "vib")):
        with pytest.raises(ValueError, match=f"^{', '.join(names)} cannot run together: they share no joint function$"):
            estimators.run_together(names, enc, smp, params, seed=5)


def test_groups_gather_only_estimators_with_a_joint_function_and_equal_params():
    same = {name: registry.get(name).params for name in registry.names()}
    found = registry.groups(registry.names(), same)
    assert ("loo", "nce") in found and ("teacher_ais", "teacher_rais") in found
    assert len(found) == len(registry.names()) - 2
    other = dict(same, nce=BatchParams(N=(64,), batches=2),
                 teacher_rais=dataclasses.replace(same["teacher_rais"], K=2))
    assert all(len(group) == 1 for group in registry.groups(registry.names(), other))


def test_a_one_kind_spec_has_that_kind_against_both_references():
    """``registry._spec`` (the table is built with it at import): the same kind against the population
    and the finite set, every field passed through."""
    def terms(*args):
        return []

    params = VibParams()
    spec = registry._spec("x", "upper", "I_XZ", params, terms, "a source", needs=("teacher", "q"), sweep="K",
                          needs_prior=True)
    assert spec == registry.Spec("x", {"population": {"I_XZ": "upper"}, "finite": {"I_XZ": "upper"}}, params,
                                 terms, frozenset(("teacher", "q")), "a source", sweep="K", needs_prior=True)
    assert spec.kind("I_XZ", "population") == spec.kind("I_XZ", "finite") == "upper" and spec.targets == ("I_XZ",)
    assert registry._spec("y", "lower", "I_YZ", params, None, "s").needs == frozenset()
    # the registry's own entries are what _spec gives for them now
    nce = registry.get("nce")
    assert registry._spec("nce", "lower", "I_XZ", nce.params, None, nce.source, sweep="N", joint=nce.joint,
                          variant=False, cost=nce.cost) == nce


SMALL = {"n": 64, "K": 2, "N": 16, "batches": 2, "sets": 2, "draws": 2, "steps": 5, "batch": 32, "T": 3, "pilot": 4,
         "pilot_steps": 2, "select_n": 8, "T_max": 6}


def _small(params):
    """The estimator's parameters at SMALL sizes (a swept one as a one-value tuple)."""
    values = {field.name: getattr(params, field.name) for field in dataclasses.fields(params)}
    return dataclasses.replace(params, **{key: (size,) if isinstance(values[key], tuple) else size
                                          for key, size in SMALL.items() if key in values})


@pytest.mark.parametrize("case_name, name", [(case_name, spec.name) for case_name in ("hand-1d", "shifted-data-prior")
                                             for spec in applicable(suite_case(case_name))])
def test_an_estimate_is_a_function_of_its_seed_alone(case_name, name):
    """Every estimator draws from the generator it is given: the same seed gives the same terms however
    torch's global stream stands (a draw from it in between changes nothing), another seed other terms."""
    from helpers import trained_context

    case = suite_case(case_name)
    encoder, sampler = linear(case)
    params = _small(registry.get(name).params)

    def estimate(seed: int, disturb: int):
        torch.manual_seed(0)  # the label decoder's initial weights; the context is fresh each time
        context = trained_context(case, encoder, sampler, seed=3, steps=20)
        torch.rand(disturb)
        return estimators.run(name, encoder, sampler, params, seed=seed, context=context)

    first, again, other = estimate(1, 1), estimate(1, 7), estimate(2, 1)
    assert [(e.value, e.stderr, e.skew) for e in first] == [(e.value, e.stderr, e.skew) for e in again]
    assert [e.value for e in first] != [e.value for e in other]


def test_run_one_refuses_a_sweep_of_several_estimates_by_name_and_count():
    case = suite_case("hand-1d")
    encoder, sampler = linear(case)
    with pytest.raises(ValueError, match=r"^nce made 2 estimates, not one$"):
        registry.run_one("nce", encoder, sampler, BatchParams(N=(16, 32), batches=2), seed=0)
    assert registry.run_one("nce", encoder, sampler, BatchParams(N=(16,), batches=2), seed=0).params["N"] == 16
