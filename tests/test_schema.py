"""``schema.from_json``'s rules must fit their fields (issue 20): ``min`` on a float was never
applied, so ``track.q.tol = -5.0`` was accepted. Every settings class is checked, and a rule of
the wrong type is a programming error found when the class is first read."""
from __future__ import annotations

import dataclasses

import pytest

from ibcheck import schema
from ibcheck.config import EstimatorSettings, TeacherRunConfig, TrainConfig
from ibcheck.estimators.q_fit import QFitParams
from ibcheck.interface import InputError
from ibcheck.pipeline import configure


@pytest.mark.parametrize("cls", [TrainConfig, TeacherRunConfig, EstimatorSettings])
def test_every_rule_of_every_settings_class_fits_its_field(cls):
    schema.check_metadata(cls)  # raises on a misfit, in nested sections too


def _fail(key: str, why: str):
    raise InputError(f"{key} {why}")


def test_a_negative_tolerance_is_refused():
    with pytest.raises(InputError, match=r"tol must be >= 0, got -5.0"):
        schema.from_json(QFitParams, {"tol": -5.0}, "", _fail)
    with pytest.raises(InputError, match=r"track.q.tol must be >= 0"):
        configure.train_config("smoke", {"track": {"q": {"tol": -5.0}}})
    assert schema.from_json(QFitParams, {"tol": 0.0}, "", _fail).tol == 0.0


@dataclasses.dataclass(frozen=True)
class _Misfit:
    tol: float = dataclasses.field(default=1.0, metadata={"min": 0})


@dataclasses.dataclass(frozen=True)
class _Holds:
    inner: _Misfit = _Misfit()


@pytest.mark.parametrize("cls", [_Misfit, _Holds])
def test_a_rule_that_does_not_fit_its_field_is_a_type_error(cls):
    with pytest.raises(TypeError, match=r"_Misfit.tol: metadata min does not apply to a float"):
        schema.check_metadata(cls)
    with pytest.raises(TypeError, match="does not apply"):
        schema.from_json(cls, {}, "", _fail)
