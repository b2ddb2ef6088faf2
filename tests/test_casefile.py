"""The case-file parser (``case-file.md``): every bad input gets a one-line InputError naming
the case and the field, good input comes back as checked float64 arrays, and no JSON value
whatever makes it raise anything else (hypothesis fuzz)."""
from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibcheck.analytic import exact
from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.analytic.casefile import load_cases, parse_case, parse_cases
from ibcheck.config import EstimatorSettings
from ibcheck.estimators import registry
from ibcheck.estimators.q_fit import QFitParams
from ibcheck.estimators.teacher_bounds import TeacherIWParams
from ibcheck.estimators.vib import VibParams
from ibcheck.interface import InputError

NAN, INF = json.loads("NaN"), json.loads("Infinity")
HUGE_INT = 10**400  # a JSON integer no float64 holds

# d = 3, k = 2, m = 2; one Gaussian label.
GAUSSIAN = {
    "name": "base",
    "teacher": {"W": [[1.0, 0.5], [0.2, 1.0], [0.0, 0.3]], "c": [0.1, 0.2, 0.3], "noise_std": 0.5},
    "data_prior": {"mean": [0.1, -0.2], "cov": [[1.0, 0.2], [0.2, 0.5]]},
    "encoder": {"A": [[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]], "b": [0.0, 0.1], "std": [0.5, 0.7]},
    "labels": {"kind": "gaussian", "B": [[1.0, 0.0]], "noise_std": 0.3},
    "settings": {"q": {"lr": 0.02}, "estimators": {"vib": {"n": 1000}, "teacher_iw": {"K": [1, 10]}}},
}
CLASSES = dict(copy.deepcopy(GAUSSIAN), labels={"kind": "classes", "means": [[0.0, 0.0], [1.0, -1.0], [0.5, 2.0]],
                                                "probs": [0.2, 0.3, 0.5]})
MINIMAL = {"name": "base", "teacher": {"W": [[1.0, 0.5], [0.2, 1.0], [0.0, 0.3]]},
           "encoder": {"A": [[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]], "std": [0.5, 0.7]}}
BASES = {"gaussian": GAUSSIAN, "classes": CLASSES, "minimal": MINIMAL}


def document(*cases: dict) -> dict:
    return {"cases": [copy.deepcopy(c) for c in cases]}


def _walk(obj, path):
    """The container of the last key of ``path``, creating missing objects on the way."""
    for key in path[:-1]:
        obj = obj.setdefault(key, {}) if isinstance(obj, dict) else obj[key]
    return obj


def put(path: str, value, base: str = "gaussian"):
    """A mutation: set the value at a dotted path ('teacher.W.1.0'; digits index lists)."""
    keys = [int(p) if p.isdigit() else p for p in path.split(".")]

    def mutate() -> dict:
        case = copy.deepcopy(BASES[base])
        _walk(case, keys)[keys[-1]] = value
        return case
    return mutate


def drop(path: str, base: str = "gaussian"):
    """A mutation: delete the key at a dotted path."""
    keys = path.split(".")

    def mutate() -> dict:
        case = copy.deepcopy(BASES[base])
        del _walk(case, keys)[keys[-1]]
        return case
    return mutate


# (id, mutation, field named in the message, further words the message must hold)
BAD = [
    # wrong shapes
    ("W-ragged", put("teacher.W", [[1.0, 0.5], [0.2], [0.0, 0.3]]), "teacher.W", "different lengths"),
    ("W-vector", put("teacher.W", [1.0, 0.5]), "teacher.W", "list of lists"),
    ("W-empty-row", put("teacher.W", [[]]), "teacher.W", ""),
    ("c-short", put("teacher.c", [0.1, 0.2]), "teacher.c", "shape"),
    ("c-long", put("teacher.c", [0.1, 0.2, 0.3, 0.4]), "teacher.c", "shape"),
    ("c-matrix", put("teacher.c", [[0.1, 0.2, 0.3]]), "teacher.c", ""),
    ("A-columns-not-d", put("encoder.A", [[1.0, 0.0], [0.0, 1.0]]), "encoder.A", "shape"),
    ("A-ragged", put("encoder.A", [[1.0, 0.0, 0.5], [0.0, 1.0]]), "encoder.A", "different lengths"),
    ("b-wrong-length", put("encoder.b", [0.0, 0.1, 0.2]), "encoder.b", "shape"),
    ("std-wrong-length", put("encoder.std", [0.5]), "encoder.std", "shape"),
    ("prior-mean-wrong-length", put("data_prior.mean", [0.1, -0.2, 0.3]), "data_prior.mean", "shape"),
    ("prior-cov-3x3", put("data_prior.cov", np.eye(3).tolist()), "data_prior.cov", "shape"),
    ("prior-cov-2x3", put("data_prior.cov", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), "data_prior.cov", "shape"),
    ("prior-cov-vector", put("data_prior.cov", [1.0, 1.0]), "data_prior.cov", "list of lists"),
    ("labels-B-wrong-width", put("labels.B", [[1.0, 0.0, 0.0]]), "labels.B", "shape"),
    ("class-means-wrong-width", put("labels.means", [[0.0], [1.0], [0.5]], "classes"), "labels.means", "shape"),
    ("probs-short", put("labels.probs", [0.5, 0.5], "classes"), "labels.probs", "shape"),
    ("probs-long", put("labels.probs", [0.2, 0.3, 0.25, 0.25], "classes"), "labels.probs", "shape"),
    # non-finite numbers
    ("W-NaN", put("teacher.W.1.0", NAN), "teacher.W", "finite"),
    ("c-Infinity", put("teacher.c.0", INF), "teacher.c", "finite"),
    ("std-minus-Infinity", put("encoder.std.1", -INF), "encoder.std", "finite"),
    ("A-huge-int", put("encoder.A.0.0", HUGE_INT), "encoder.A", "finite"),
    ("b-NaN", put("encoder.b.0", NAN), "encoder.b", "finite"),
    ("noise-NaN", put("teacher.noise_std", NAN), "teacher.noise_std", "finite"),
    ("noise-huge-int", put("teacher.noise_std", HUGE_INT), "teacher.noise_std", "finite"),
    ("prior-cov-NaN", put("data_prior.cov.0.1", NAN), "data_prior.cov", "finite"),
    ("prior-mean-Infinity", put("data_prior.mean.0", INF), "data_prior.mean", "finite"),
    ("label-noise-Infinity", put("labels.noise_std", INF), "labels.noise_std", "finite"),
    ("B-huge-int", put("labels.B.0.1", HUGE_INT), "labels.B", "finite"),
    ("probs-NaN", put("labels.probs.0", NAN, "classes"), "labels.probs", "finite"),
    ("means-Infinity", put("labels.means.1.1", INF, "classes"), "labels.means", "finite"),
    ("settings-lr-NaN", put("settings.q.lr", NAN), "settings.q.lr", "finite"),
    ("settings-lr-huge-int", put("settings.q.lr", HUGE_INT), "settings.q.lr", "finite"),
    # finite one by one, but the model overflows float64 (or std^2 underflows to 0)
    ("W-1e200", put("teacher.W.0.0", 1e200), "teacher.W", "float64"),
    ("c-1e300", put("teacher.c.0", 1e300), "teacher.c", "float64"),
    ("std-1e-200", put("encoder.std.0", 1e-200), "encoder.std", "float64"),
    ("std-subnormal", put("encoder.std.0", 5e-324), "encoder.std", "float64"),
    ("std-1e200", put("encoder.std.0", 1e200), "encoder.std", "float64"),
    ("prior-cov-1e308", put("data_prior.cov", [[1e308, 0.0], [0.0, 1e308]]), "data_prior.cov", "float64"),
    ("label-noise-1e200", put("labels.noise_std", 1e200), "labels.noise_std", "float64"),
    ("B-1e200", put("labels.B", [[1e200, 1e200]]), "labels.B", "float64"),
    ("means-1e300", put("labels.means.1.0", 1e300, "classes"), "labels.means", "float64"),
    # covariance
    ("prior-cov-not-symmetric", put("data_prior.cov", [[1.0, 0.2], [0.3, 0.5]]), "data_prior.cov", "symmetric"),
    ("prior-cov-huge-asymmetric", put("data_prior.cov", [[1.0, 1e308], [-1e308, 1.0]]), "data_prior.cov",
     "symmetric"),
    ("prior-cov-indefinite", put("data_prior.cov", [[1.0, 2.0], [2.0, 1.0]]), "data_prior.cov", "positive definite"),
    ("prior-cov-singular", put("data_prior.cov", [[1.0, 1.0], [1.0, 1.0]]), "data_prior.cov", "positive definite"),
    ("prior-cov-negative", put("data_prior.cov", [[-1.0, 0.0], [0.0, 1.0]]), "data_prior.cov", "positive definite"),
    ("prior-cov-zero", put("data_prior.cov", [[0.0, 0.0], [0.0, 0.0]]), "data_prior.cov", "positive definite"),
    # std <= 0 and other signs
    ("std-zero", put("encoder.std.0", 0.0), "encoder.std", "> 0"),
    ("std-int-zero", put("encoder.std", [0, 1]), "encoder.std", "> 0"),
    ("std-negative", put("encoder.std.1", -0.7), "encoder.std", "> 0"),
    ("std-negative-zero", put("encoder.std.1", -0.0), "encoder.std", "> 0"),
    ("noise-negative", put("teacher.noise_std", -0.5), "teacher.noise_std", ">= 0"),
    ("label-noise-negative", put("labels.noise_std", -0.3), "labels.noise_std", ">= 0"),
    ("labels-degenerate", put("labels", {"kind": "gaussian", "B": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
                                         "noise_std": 0.0}), "labels.noise_std", "degenerate"),
    # probabilities
    ("probs-negative", put("labels.probs", [-0.2, 0.7, 0.5], "classes"), "labels.probs", "non-negative"),
    ("probs-sum-below-1", put("labels.probs", [0.2, 0.3, 0.4], "classes"), "labels.probs", "sum to 1"),
    ("probs-sum-above-1", put("labels.probs", [0.2, 0.3, 0.6], "classes"), "labels.probs", "sum to 1"),
    ("probs-sum-overflows", put("labels.probs", [1e308, 1e308, 1e308], "classes"), "labels.probs", "sum to 1"),
    ("one-class", put("labels", {"kind": "classes", "means": [[0.0, 0.0]], "probs": [1.0]}), "labels.means",
     "2 classes"),
    # unknown keys at every level
    ("unknown-case-key", put("teacher_noise", 0.1), "teacher_noise", "unknown key"),
    ("unknown-teacher-key", put("teacher.noise", 0.1), "teacher.noise", "unknown key"),
    ("unknown-encoder-key", put("encoder.mean", [0.0, 0.0]), "encoder.mean", "unknown key"),
    ("unknown-prior-key", put("data_prior.std", [1.0, 1.0]), "data_prior.std", "unknown key"),
    ("unknown-labels-key", put("labels.probs", [1.0]), "labels.probs", "unknown key"),
    ("unknown-classes-key", put("labels.B", [[1.0, 0.0]], "classes"), "labels.B", "unknown key"),
    ("unknown-none-labels-key", put("labels", {"kind": "none", "B": [[1.0, 0.0]]}), "labels.B", "unknown key"),
    ("unknown-settings-key", put("settings.n_steps", 10), "settings.n_steps", "unknown key"),
    ("unknown-estimator", put("settings.estimators.ksg", {}), "settings.estimators.ksg", "unknown key"),
    ("unknown-estimator-key", put("settings.estimators.vib.N", 10), "settings.estimators.vib.N", "unknown key"),
    ("estimator-section-list", put("settings.estimators.vib", [10]), "settings.estimators.vib", "must be an object"),
    ("empirical-N-without-sets", put("settings.estimators.empirical", {"N": None}), "settings.estimators.empirical",
     "inconsistent"),
    ("unknown-key-newline", put("teacher.W\nx", 1), "teacher.", "unknown key"),
    # labels kind
    ("unknown-label-kind", put("labels.kind", "poisson"), "labels.kind", "poisson"),
    ("label-kind-number", put("labels.kind", 3), "labels.kind", ""),
    ("label-kind-list", put("labels.kind", ["gaussian"]), "labels.kind", ""),
    ("label-kind-missing", drop("labels.kind"), "labels.kind", "required"),
    ("labels-string", put("labels", "gaussian"), "labels.kind", ""),
    # non-number entries
    ("W-string", put("teacher.W.0.1", "0.5"), "teacher.W", "only numbers"),
    ("c-boolean", put("teacher.c.1", True), "teacher.c", "only numbers"),
    ("std-null", put("encoder.std.0", None), "encoder.std", "only numbers"),
    ("b-nested-list", put("encoder.b.0", [0.0]), "encoder.b", "only numbers"),
    ("A-object", put("encoder.A.0", {"x": 1.0}), "encoder.A", ""),
    ("probs-string", put("labels.probs", "uniform", "classes"), "labels.probs", ""),
    ("noise-string", put("teacher.noise_std", "0.5"), "teacher.noise_std", "must be a number"),
    ("noise-boolean", put("teacher.noise_std", True), "teacher.noise_std", "must be a number"),
    ("noise-null", put("teacher.noise_std", None), "teacher.noise_std", "must be a number"),
    ("noise-list", put("teacher.noise_std", [0.5]), "teacher.noise_std", "must be a number"),
    ("teacher-list", put("teacher", [[1.0]]), "teacher", "must be an object"),
    ("encoder-string", put("encoder", "linear"), "encoder", "must be an object"),
    ("prior-list", put("data_prior", [0.0, 1.0]), "data_prior", "must be an object"),
    ("settings-list", put("settings", [1000]), "settings", "must be an object"),
    # empty lists
    ("W-empty", put("teacher.W", []), "teacher.W", "non-empty"),
    ("c-empty", put("teacher.c", []), "teacher.c", "non-empty"),
    ("A-empty", put("encoder.A", []), "encoder.A", "non-empty"),
    ("std-empty", put("encoder.std", []), "encoder.std", "non-empty"),
    ("B-empty", put("labels.B", []), "labels.B", "non-empty"),
    ("probs-empty", put("labels.probs", [], "classes"), "labels.probs", "non-empty"),
    ("means-empty", put("labels.means", [], "classes"), "labels.means", "non-empty"),
    # missing required fields
    ("missing-teacher", drop("teacher"), "teacher", "required"),
    ("missing-encoder", drop("encoder"), "encoder", "required"),
    ("missing-W", drop("teacher.W"), "teacher.W", "required"),
    ("missing-A", drop("encoder.A"), "encoder.A", "required"),
    ("missing-std", drop("encoder.std"), "encoder.std", "required"),
    ("missing-B", drop("labels.B"), "labels.B", "required"),
    ("missing-means", drop("labels.means", "classes"), "labels.means", "required"),
    ("missing-probs", drop("labels.probs", "classes"), "labels.probs", "required"),
    # bad settings values
    ("vib-n-negative", put("settings.estimators.vib.n", -5), "settings.estimators.vib.n", "integer"),
    ("vib-n-zero", put("settings.estimators.vib.n", 0), "settings.estimators.vib.n", "integer"),
    ("vib-n-one", put("settings.estimators.vib.n", 1), "settings.estimators.vib.n", "integer"),
    ("vib-n-fraction", put("settings.estimators.vib.n", 1000.5), "settings.estimators.vib.n", "integer"),
    ("vib-n-float", put("settings.estimators.vib.n", 1000.0), "settings.estimators.vib.n", "integer"),
    ("vib-n-string", put("settings.estimators.vib.n", "1000"), "settings.estimators.vib.n", "integer"),
    ("vib-n-boolean", put("settings.estimators.vib.n", True), "settings.estimators.vib.n", "integer"),
    ("vib-n-2^63", put("settings.estimators.vib.n", 2**63), "settings.estimators.vib.n", "integer"),
    ("seed-negative", put("settings.seed", -1), "settings.seed", "integer"),
    ("q-steps-negative", put("settings.q.steps", -1), "settings.q.steps", "integer"),
    ("q-batch-zero", put("settings.q.batch", 0), "settings.q.batch", "integer"),
    ("batches-one", put("settings.estimators.loo.batches", 1), "settings.estimators.loo.batches", "integer"),
    ("empirical-N-one", put("settings.estimators.empirical.N", 1), "settings.estimators.empirical.N", "integer"),
    ("K-empty", put("settings.estimators.teacher_iw.K", []), "settings.estimators.teacher_iw.K", "non-empty list"),
    ("K-zero", put("settings.estimators.teacher_iw.K", [0, 10]), "settings.estimators.teacher_iw.K", "integers"),
    ("K-fraction", put("settings.estimators.teacher_iw.K", [1.5]), "settings.estimators.teacher_iw.K", "integers"),
    ("K-boolean", put("settings.estimators.teacher_iw.K", [True]), "settings.estimators.teacher_iw.K", "integers"),
    ("K-scalar", put("settings.estimators.teacher_iw.K", 10), "settings.estimators.teacher_iw.K", "list"),
    ("K-10^30", put("settings.estimators.teacher_iw.K", [10**30]), "settings.estimators.teacher_iw.K", "integers"),
    ("N-one", put("settings.estimators.nce.N", [1, 64]), "settings.estimators.nce.N", "integers in [2"),
    ("N-empty", put("settings.estimators.loo.N", []), "settings.estimators.loo.N", "non-empty list"),
    ("q-lr-zero", put("settings.q.lr", 0.0), "settings.q.lr", "> 0"),
    ("q-lr-negative", put("settings.q.lr", -0.01), "settings.q.lr", "> 0"),
    ("q-lr-string", put("settings.q.lr", "fast"), "settings.q.lr", "must be a number"),
    ("q-string", put("settings.q", "fast"), "settings.q", "must be an object"),
    ("skip-unknown", put("settings.skip", ["teacher_iw", "clubb"]), "settings.skip", "list of names among vib"),
    ("skip-string", put("settings.skip", "teacher_iw"), "settings.skip", "list of names"),
    ("skip-twice", put("settings.skip", ["vib", "vib"]), "settings.skip", "twice"),
]


def _assert_one_line(err: InputError, *words: str) -> str:
    message = str(err)
    assert message and len(message.splitlines()) == 1 and "\n" not in message, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


@pytest.mark.parametrize("mutate, field, words", [pytest.param(m, f, w, id=i) for i, m, f, w in BAD])
def test_bad_case_is_rejected_naming_case_and_field(mutate, field, words):
    with pytest.raises(InputError) as info:
        parse_cases({"cases": [mutate()]})
    _assert_one_line(info.value, "case 'base'", f"field '{field}", words)


@pytest.mark.parametrize("mutate, field, words", [pytest.param(m, f, w, id=i) for i, m, f, w in BAD[:12]])
def test_bad_second_case_is_named(mutate, field, words):
    """The message names the bad case, not the first one."""
    good = dict(copy.deepcopy(GAUSSIAN), name="good")
    with pytest.raises(InputError) as info:
        parse_cases({"cases": [good, mutate()]})
    _assert_one_line(info.value, "case 'base'", f"field '{field}'")


@pytest.mark.parametrize("name, label", [
    pytest.param(None, "case #1", id="missing-name"),
    pytest.param(3, "case #1", id="name-number"),
    pytest.param("", "case #1", id="name-empty"),
    pytest.param("   ", "case #1", id="name-blank"),
    pytest.param("two\nlines", "case #1", id="name-newline"),
    pytest.param("tab\there", "case #1", id="name-tab"),
    pytest.param(["base"], "case #1", id="name-list"),
])
def test_bad_name(name, label):
    case = copy.deepcopy(GAUSSIAN)
    if name is None:
        del case["name"]
    else:
        case["name"] = name
    with pytest.raises(InputError) as info:
        parse_cases({"cases": [case]})
    _assert_one_line(info.value, label, "field 'name'")


def test_bad_case_in_second_place_without_a_name_is_numbered():
    with pytest.raises(InputError) as info:
        parse_cases({"cases": [GAUSSIAN, {"teacher": GAUSSIAN["teacher"], "encoder": GAUSSIAN["encoder"]}]})
    _assert_one_line(info.value, "case #2", "field 'name'")


def test_duplicate_names():
    with pytest.raises(InputError) as info:
        parse_cases(document(GAUSSIAN, CLASSES))
    _assert_one_line(info.value, "case 'base'", "field 'name'", "another case")


@pytest.mark.parametrize("doc, words", [
    pytest.param([GAUSSIAN], "top level", id="top-level-list"),
    pytest.param("cases", "top level", id="top-level-string"),
    pytest.param(None, "top level", id="top-level-null"),
    pytest.param(3, "top level", id="top-level-number"),
    pytest.param({}, "top level", id="no-cases-key"),
    pytest.param({"case": [GAUSSIAN]}, "top level", id="misspelt-cases"),
    pytest.param({"cases": [GAUSSIAN], "version": 1}, "'version'", id="unknown-top-level-key"),
    pytest.param({"cases": [GAUSSIAN], "bad\nkey": 1}, "unknown top-level key", id="unknown-top-level-key-newline"),
    pytest.param({"cases": []}, "non-empty list", id="cases-empty"),
    pytest.param({"cases": GAUSSIAN}, "non-empty list", id="cases-object"),
    pytest.param({"cases": "base"}, "non-empty list", id="cases-string"),
    pytest.param({"cases": None}, "non-empty list", id="cases-null"),
    pytest.param({"cases": [[GAUSSIAN]]}, "case #1", id="case-is-list"),
    pytest.param({"cases": [GAUSSIAN, "base"]}, "case #2", id="second-case-is-string"),
])
def test_bad_document(doc, words):
    with pytest.raises(InputError) as info:
        parse_cases(copy.deepcopy(doc))
    _assert_one_line(info.value, words)


@pytest.mark.parametrize("content, words", [
    pytest.param(b"{cases: []}", "not valid JSON", id="not-json"),
    pytest.param(b"", "not valid JSON", id="empty-file"),
    pytest.param(b'{"cases": [', "not valid JSON", id="truncated"),
    pytest.param(b"\xff\xfe{}", "cannot be read", id="not-utf8"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested too deeply", id="nested-too-deeply"),
    pytest.param(b"[]", "top level", id="top-level-list"),
    pytest.param(b'{"cases": []}', "non-empty list", id="cases-empty"),
    pytest.param(b'{"cases": {}}', "non-empty list", id="cases-object"),
])
def test_bad_file(tmp_path, content, words):
    path = tmp_path / "cases.json"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        load_cases(path)
    _assert_one_line(info.value, words)


def test_missing_file_and_folder(tmp_path):
    for path in (tmp_path / "absent.json", tmp_path):
        with pytest.raises(InputError) as info:
            load_cases(path)
        _assert_one_line(info.value, str(path), "cannot be read")


# ---- good input ------------------------------------------------------------------------


def test_good_case_round_trips(tmp_path):
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(document(GAUSSIAN, dict(CLASSES, name="classes"), dict(MINIMAL, name="minimal"))))
    gauss, classes, minimal = load_cases(path)
    assert [gauss.name, classes.name, minimal.name] == ["base", "classes", "minimal"]
    assert (gauss.d, gauss.k, gauss.m) == (3, 2, 2)
    np.testing.assert_array_equal(gauss.W, GAUSSIAN["teacher"]["W"])
    np.testing.assert_array_equal(gauss.prior_cov, GAUSSIAN["data_prior"]["cov"])
    np.testing.assert_array_equal(gauss.std, GAUSSIAN["encoder"]["std"])
    assert gauss.noise_std == 0.5 and gauss.labels.kind == "gaussian" and gauss.labels.noise_std == 0.3
    assert all(a.dtype == np.float64 for a in (gauss.W, gauss.c, gauss.A, gauss.b, gauss.std, gauss.labels.B))
    assert gauss.settings == EstimatorSettings().replace(
        q=QFitParams(lr=0.02), estimators={"vib": VibParams(n=1000), "teacher_iw": TeacherIWParams(K=(1, 10))})
    assert classes.labels.kind == "classes" and classes.labels.probs.tolist() == [0.2, 0.3, 0.5]
    # defaults: data prior N(0, I), c = b = 0, noiseless teacher, no labels, default settings
    np.testing.assert_array_equal(minimal.prior_mean, np.zeros(2))
    np.testing.assert_array_equal(minimal.prior_cov, np.eye(2))
    np.testing.assert_array_equal(minimal.c, np.zeros(3))
    np.testing.assert_array_equal(minimal.b, np.zeros(2))
    assert minimal.noise_std == 0.0 and minimal.labels.kind == "none" and minimal.settings == EstimatorSettings()


@pytest.mark.parametrize("mutate", [
    pytest.param(put("labels", {"kind": "none"}), id="labels-none"),
    pytest.param(put("labels", None), id="labels-null"),
    pytest.param(put("data_prior", None), id="data-prior-null"),
    pytest.param(put("data_prior", {}), id="data-prior-empty"),
    pytest.param(put("settings", {}), id="settings-empty"),
    pytest.param(put("teacher.W", [[1, 0], [0, 1], [2, 3]]), id="integers"),
    pytest.param(put("teacher.noise_std", 0), id="noiseless-teacher"),
    pytest.param(put("labels", {"kind": "classes", "means": [[0.0, 0.0]] * 10, "probs": [0.1] * 10}),
                 id="probs-round-off"),
    pytest.param(put("labels.probs", [0.0, 0.5, 0.5], "classes"), id="a-class-of-probability-0"),
    pytest.param(put("encoder.A", [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), id="encoder-ignores-x"),
    pytest.param(put("encoder.std", [1e-3, 1e3]), id="std-wide-range"),
    pytest.param(put("name", "naïve case – ünïcode"), id="unicode-name"),
    pytest.param(put("settings", {"estimators": {"teacher_iw": {"K": [1]}, "loo": {"N": [2]}, "empirical": {"N": 2}},
                                  "q": {"steps": 0}, "seed": 2**63 - 1}), id="smallest-settings"),
    pytest.param(put("settings", {"skip": []}), id="skip-nothing"),
])
def test_good_variants_are_accepted(mutate):
    (case,) = parse_cases({"cases": [mutate()]})
    _check_invariants(case)


def test_skip_is_read_in_order():
    (case,) = parse_cases({"cases": [put("settings", {"skip": ["teacher_iw_data", "vib"]})()]})
    assert case.settings.skip == ("teacher_iw_data", "vib")


def test_builtin_suite_parses():
    from importlib import resources

    with resources.as_file(resources.files("ibcheck.baselines") / "suite.json") as path:
        cases = load_cases(path)
    assert len(cases) >= 5 and len({c.name for c in cases}) == len(cases)
    for case in cases:
        _check_invariants(case)


# ---- fuzz ------------------------------------------------------------------------------

SETTINGS_KEYS = sorted(f.name for f in dataclasses.fields(EstimatorSettings))
PARAM_KEYS = sorted({f.name for spec in registry.SPECS.values() for f in dataclasses.fields(spec.params)}
                    | {f.name for f in dataclasses.fields(QFitParams)})


def _check_params(params) -> None:
    """Parameters as the validator promises: ints in [0, 2^63), counts of terms >= 2, non-empty
    tuples of positive ints, finite floats above their floor (> 0, or >= ``at_least``), strings
    among their choices."""
    for f in dataclasses.fields(params):
        value, low = getattr(params, f.name), f.metadata.get("min", 0)
        if value is None:
            continue
        if isinstance(value, tuple):
            assert value and all(type(v) is int and low <= v < 2**63 for v in value), f.name
        elif isinstance(value, float):
            floor = f.metadata.get("at_least")
            assert math.isfinite(value) and (value > 0 if floor is None else value >= floor), f.name
        elif isinstance(value, str):
            assert value in f.metadata["choices"], f.name
        else:
            assert type(value) is int and low <= value < 2**63, f.name


def _check_invariants(case: LinearGaussianCase) -> None:
    """What a parsed case promises: float64 arrays of matching shapes, finite, std > 0, an SPD
    prior covariance, probabilities that sum to 1, sane settings and finite exact values."""
    assert isinstance(case, LinearGaussianCase) and isinstance(case.name, str) and case.name.strip()
    assert case.name.isprintable()
    d, k, m = case.d, case.k, case.m
    shapes = {"W": (d, k), "c": (d,), "prior_mean": (k,), "prior_cov": (k, k), "A": (m, d), "b": (m,), "std": (m,)}
    for attr, shape in shapes.items():
        arr = getattr(case, attr)
        assert isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.shape == shape, attr
        assert np.isfinite(arr).all(), attr
    assert min(d, k, m) >= 1
    assert (case.std > 0).all() and math.isfinite(case.noise_std) and case.noise_std >= 0
    assert np.abs(case.prior_cov - case.prior_cov.T).max() <= 1e-9 * np.abs(case.prior_cov).max()
    np.linalg.cholesky(case.prior_cov)
    labels = case.labels
    assert labels.kind in ("none", "gaussian", "classes")
    if labels.kind == "gaussian":
        assert labels.B.ndim == 2 and labels.B.shape[1] == k and np.isfinite(labels.B).all()
        assert math.isfinite(labels.noise_std) and labels.noise_std >= 0
    if labels.kind == "classes":
        K = labels.means.shape[0]
        assert K >= 2 and labels.means.shape == (K, k) and labels.probs.shape == (K,)
        assert np.isfinite(labels.means).all() and (labels.probs >= 0).all()
        assert abs(math.fsum(labels.probs) - 1.0) <= 2e-9
    s = case.settings
    assert isinstance(s, EstimatorSettings) and set(s.estimators) == set(registry.names())
    assert type(s.seed) is int and 0 <= s.seed < 2**63 and type(s.n_exact) is int and s.n_exact >= 2
    _check_params(s.q)
    for name, params in s.estimators.items():
        assert type(params) is type(registry.get(name).params), name
        _check_params(params)
    assert min(s.params("loo").N) >= 2 and s.params("empirical").N >= 2 and s.params("vib").n >= 2
    if labels.kind != "classes":
        ex = exact.exact_values(case)
        assert math.isfinite(ex.I_XZ) and (ex.I_YZ is None or math.isfinite(ex.I_YZ))
    assert math.isfinite(exact.vib_expectation(case))


_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**400), max_value=10**400)
            | st.floats() | st.text(max_size=6)
            | st.sampled_from([0, 1, -1, 0.0, -0.0, 0.5, 5e-324, 1e-200, 1e200, 1e308, NAN, INF, -INF, 2**63, "NaN"]))
json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
KNOWN_KEYS = sorted({"name", "teacher", "data_prior", "encoder", "labels", "settings", "W", "c", "noise_std",
                     "mean", "cov", "A", "b", "std", "kind", "B", "means", "probs", "cases", *SETTINGS_KEYS,
                     *registry.names(), *PARAM_KEYS})
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=6)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def _node(doc, path):
    for key in path:
        doc = doc[key]
    return doc


numbers = (st.floats() | st.integers(-3, 3) | st.floats(-3, 3)
           | st.sampled_from([0.0, -0.0, 5e-324, 1e-200, 1e200, 1e308, NAN, INF, -INF, HUGE_INT, 2**63]))


@st.composite
def mutated_documents(draw):
    """A valid document with 1-3 random edits inside its cases (now and then at the top):
    replace a leaf or subtree with any JSON value, replace a number with another, scale a
    number towards the edges of float64, delete a key or entry, or add a key."""
    doc = {"cases": [copy.deepcopy(draw(st.sampled_from([GAUSSIAN, CLASSES, MINIMAL])))]}
    if draw(st.booleans()):
        doc["cases"].append(dict(copy.deepcopy(draw(st.sampled_from([GAUSSIAN, CLASSES, MINIMAL]))), name="second"))
    for _ in range(draw(st.integers(1, 3))):
        shallow = draw(st.integers(0, 9)) == 0
        paths = [p for p in _paths(doc) if shallow or len(p) >= 3] or [()]
        path = draw(st.sampled_from(paths))
        node = _node(doc, path)
        op = draw(st.sampled_from(["replace", "delete", "add", "scale", "number", "number"]))
        if op == "add" and isinstance(node, dict):
            node[draw(keys)] = draw(json_values)
        elif op == "delete" and path:
            del _node(doc, path[:-1])[path[-1]]
        elif op == "scale" and path and isinstance(node, (int, float)) and abs(node) < 1e300:
            factor = draw(st.sampled_from([0, -1, 1e-320, 1e-160, 1e160, 1e308, 1.0 + 1e-9]))
            _node(doc, path[:-1])[path[-1]] = node * factor
        elif op == "number" and path and isinstance(node, (int, float)):
            _node(doc, path[:-1])[path[-1]] = draw(numbers)
        elif path:
            _node(doc, path[:-1])[path[-1]] = draw(json_values)
        else:
            doc = draw(json_values)
    return doc


def _parse_or_input_error(doc) -> list:
    try:
        cases = parse_cases(doc)
    except InputError as err:
        message = _assert_one_line(err)
        assert message.startswith("case"), message
        return []
    assert cases and len({c.name for c in cases}) == len(cases)
    for case in cases:
        _check_invariants(case)
    return cases


@settings(max_examples=400)
@given(mutated_documents())
def test_fuzz_mutated_case(doc):
    _parse_or_input_error(doc)


@settings(max_examples=200)
@given(json_values)
def test_fuzz_any_json_value(doc):
    assert _parse_or_input_error(doc) == []
    assert _parse_or_input_error({"cases": [doc]}) == []


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(SETTINGS_KEYS) | st.text(max_size=6), json_values, max_size=4))
def test_fuzz_settings(overrides):
    _parse_or_input_error({"cases": [dict(copy.deepcopy(GAUSSIAN), settings=overrides)]})


@settings(max_examples=200)
@given(st.sampled_from(registry.names()),
       st.dictionaries(st.sampled_from(PARAM_KEYS) | st.text(max_size=4), json_values, max_size=4))
def test_fuzz_estimator_settings(name, section):
    _parse_or_input_error({"cases": [dict(copy.deepcopy(GAUSSIAN), settings={"estimators": {name: section}})]})


@settings(max_examples=200)
@given(st.binary(max_size=60) | st.text(max_size=60).map(str.encode))
def test_fuzz_file_bytes(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("fuzz") / "cases.json"
    path.write_bytes(content)
    try:
        load_cases(path)
    except InputError as err:
        _assert_one_line(err)
    else:
        pytest.fail(f"accepted {content!r}")


def test_fuzz_finds_good_documents():
    """The mutation fuzz is not vacuous: unmutated documents pass through the same checks."""
    for base in (GAUSSIAN, CLASSES, MINIMAL):
        assert len(_parse_or_input_error({"cases": [base]})) == 1
    assert parse_case(copy.deepcopy(GAUSSIAN), 0).name == "base"
