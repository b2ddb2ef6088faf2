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


# ---------------------------------------------------------------- renamed fields (issue 20, point 4)

def test_a_former_name_still_works_with_one_warning_line(caplog):
    caplog.set_level("WARNING", logger="ibcheck")
    config = configure.train_config("smoke", {"student": {"classifier_hidden": 17}})
    assert config.student.label_decoder_hidden == 17
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["ibcheck: warning: student.classifier_hidden is now student.label_decoder_hidden; "
                     "the former name goes in a later release"]


def test_a_setting_under_both_names_is_refused():
    with pytest.raises(InputError, match=r"student.classifier_hidden is the former name of "
                                         r"student.label_decoder_hidden; give only label_decoder_hidden"):
        configure.train_config("smoke", {"student": {"classifier_hidden": 17, "label_decoder_hidden": 17}})


def test_a_recorded_config_of_an_earlier_release_is_the_same_run_and_cell(caplog):
    from ibcheck.pipeline import runs
    from ibcheck.study import spec

    caplog.set_level("WARNING", logger="ibcheck")
    current = schema.to_json(configure.train_config("smoke", {}))
    old = {**current, "student": {("classifier_hidden" if k == "label_decoder_hidden" else k): v
                                  for k, v in current["student"].items()}}
    assert old != current and "classifier_hidden" in old["student"]
    assert schema.current_names(TrainConfig, old) == current
    assert runs.same_run(old, current, "train")
    assert spec.identity(old) == spec.identity(current)
    assert not caplog.records  # what ibcheck itself recorded is migrated silently
    changed = {**old, "student": {**old["student"], "classifier_hidden": 1}}
    assert not runs.same_run(changed, current, "train")  # the migration does not blur real differences


def test_a_checkpoint_of_an_earlier_release_loads_into_the_renamed_student():
    import torch

    from ibcheck.config import StudentConfig
    from ibcheck.pipeline import training
    from ibcheck.pipeline.student import VIBStudent

    small = StudentConfig(latent=2, hidden=3, label_decoder_hidden=4)
    weights = VIBStudent(small, seed=1).state_dict()
    old = {k.replace("label_decoder.", "classifier.", 1): v for k, v in weights.items()}
    assert any(k.startswith("classifier.") for k in old)
    student = VIBStudent(small, seed=2)
    student.load_state_dict(training.current_keys(old))
    assert all(torch.equal(student.state_dict()[k], v) for k, v in weights.items())
