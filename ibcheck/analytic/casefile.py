"""The parser of case files (``case-file.md``): JSON to checked ``LinearGaussianCase`` objects.

Every check names the case and the field, so a bad file gets one clear line
(``InputError``) instead of a traceback or a silently wrong number.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ibcheck import schema
from ibcheck.analytic import exact
from ibcheck.analytic.case import Labels, LinearGaussianCase
from ibcheck.config import EstimatorSettings
from ibcheck.interface import InputError

CASE_KEYS = {"name", "teacher", "data_prior", "encoder", "labels", "settings"}
SYMMETRY_RTOL = 1e-9
PROBS_ATOL = 1e-9


class _Field:
    """Reads typed values from one JSON object, naming case and field in errors
    (through the checks of ``schema``, the validator of every settings object)."""

    def __init__(self, case: str, path: str, obj: Any, allowed: set[str], required: set[str]):
        self.case, self.path = case, path
        self.obj = schema.check_keys(obj, allowed, required, path, self.fail)

    def fail(self, field: str, why: str) -> NoReturn:
        raise InputError(f"case {self.case}: field '{field}' {why}")

    def name(self, key: str) -> str:
        return schema.join(self.path, key)

    def number(self, key: str, default: float = 0.0, minimum: float | None = None) -> float:
        if key not in self.obj:
            return default
        return schema.number(self.obj[key], self.name(key), {} if minimum is None else {"at_least": minimum}, self.fail)

    def array(self, key: str, shape: tuple, default: np.ndarray | None = None) -> np.ndarray:
        """A vector (shape (n,)) or matrix (shape (r, c)); None in shape means any size >= 1."""
        if key not in self.obj:
            if default is None:
                self.fail(self.name(key), "is required")
            return default
        return schema.array(self.obj[key], shape, self.name(key), self.fail)


def _check_spd(field: _Field, key: str, cov: np.ndarray) -> None:
    scale = max(float(np.abs(cov).max()), 1e-300)
    with np.errstate(over="ignore"):
        asymmetry = float(np.abs(cov - cov.T).max())
    if asymmetry > SYMMETRY_RTOL * scale:
        field.fail(field.name(key), "must be symmetric")
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        field.fail(field.name(key), "must be positive definite")


def _labels(case: str, obj: Any, k: int, prior_cov: np.ndarray) -> Labels:
    if obj is None:
        return Labels()
    if not isinstance(obj, dict) or "kind" not in obj:
        raise InputError(f"case {case}: field 'labels.kind' is required (none, gaussian or classes)")
    kind = obj["kind"]
    if kind == "none":
        _Field(case, "labels", obj, {"kind"}, set())
        return Labels()
    if kind == "gaussian":
        f = _Field(case, "labels", obj, {"kind", "B", "noise_std"}, {"B"})
        B = f.array("B", (None, k))
        noise = f.number("noise_std", default=0.0, minimum=0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            Sy = B @ prior_cov @ B.T + np.square(noise) * np.eye(B.shape[0])
        # an overflowing Sy is left to _check_float64, which names the largest field
        if np.isfinite(Sy).all() and np.linalg.eigvalsh(Sy).min() <= 1e-12 * max(1.0, float(np.abs(Sy).max())):
            f.fail("labels.noise_std", "is 0 and B S_v B^T is singular: y would be degenerate")
        return Labels(kind="gaussian", B=B, noise_std=noise)
    if kind == "classes":
        f = _Field(case, "labels", obj, {"kind", "means", "probs"}, {"means", "probs"})
        means = f.array("means", (None, k))
        probs = f.array("probs", (means.shape[0],))
        if means.shape[0] < 2:
            f.fail("labels.means", "needs at least 2 classes")
        if probs.min() < 0:
            f.fail("labels.probs", f"must be non-negative, got {probs.min()}")
        with np.errstate(over="ignore"):
            total = float(probs.sum())
        if abs(total - 1.0) > PROBS_ATOL:
            f.fail("labels.probs", f"must sum to 1, got {total:.12g}")
        return Labels(kind="classes", means=means, probs=probs)
    raise InputError(f"case {case}: field 'labels.kind' is unknown: {schema.show(kind)} (none, gaussian or classes)")


def _settings(case: str, obj: Any) -> EstimatorSettings:
    if obj is None:
        return EstimatorSettings()

    def fail(key: str, why: str):
        raise InputError(f"case {case}: field '{key}' {why}")

    return schema.from_json(EstimatorSettings, obj, "settings", fail)


def parse_case(obj: Any, index: int) -> LinearGaussianCase:
    """One case object of a case file -> LinearGaussianCase (``case-file.md``)."""
    label = f"#{index + 1}"
    if not isinstance(obj, dict):
        raise InputError(f"case {label}: must be an object, got {type(obj).__name__}")
    if _good_name(obj.get("name")):
        label = f"'{obj['name']}'"
    f = _Field(label, "", obj, CASE_KEYS, {"name", "teacher", "encoder"})
    if not _good_name(obj["name"]):
        f.fail("name", f"must be a non-empty string without control characters, got {schema.show(obj['name'])}")
    t = _Field(label, "teacher", obj["teacher"], {"W", "c", "noise_std"}, {"W"})
    W = t.array("W", (None, None))
    d, k = W.shape
    c = t.array("c", (d,), default=np.zeros(d))
    noise = t.number("noise_std", default=0.0, minimum=0.0)
    prior_mean, prior_cov = np.zeros(k), np.eye(k)
    if obj.get("data_prior") is not None:
        p = _Field(label, "data_prior", obj["data_prior"], {"mean", "cov"}, set())
        prior_mean = p.array("mean", (k,), default=prior_mean)
        prior_cov = p.array("cov", (k, k), default=prior_cov)
        _check_spd(p, "cov", prior_cov)
    e = _Field(label, "encoder", obj["encoder"], {"A", "b", "std"}, {"A", "std"})
    A = e.array("A", (None, d))
    m = A.shape[0]
    b = e.array("b", (m,), default=np.zeros(m))
    std = e.array("std", (m,))
    if std.min() <= 0:
        e.fail("encoder.std", f"must be > 0 everywhere, got {std.min():g}")
    case = LinearGaussianCase(
        name=obj["name"], W=W, c=c, noise_std=noise, prior_mean=prior_mean, prior_cov=prior_cov,
        A=A, b=b, std=std, labels=_labels(label, obj.get("labels"), k, prior_cov),
        settings=_settings(label, obj.get("settings")),
    )
    _check_float64(label, case)
    return case


def _good_name(name: Any) -> bool:
    return isinstance(name, str) and bool(name.strip()) and name.isprintable()


def _check_float64(label: str, case: LinearGaussianCase) -> None:
    """Numbers finite one by one can still overflow together (W = 1e200), or std^2 underflow
    to 0 (std = 1e-200): the closed forms the validator reports must come out finite.
    The message names the field whose numbers are farthest from 1."""
    with np.errstate(all="ignore"):
        try:
            values = [*np.square(case.std), *(1.0 / np.square(case.std)), *_closed_forms(case)]
        except (OverflowError, np.linalg.LinAlgError):
            values = [math.nan]
        if not np.isfinite(values).all():
            field, shown = _most_extreme(case)
            raise InputError(f"case {label}: field '{field}' is out of range for float64 in this model "
                             f"({shown}): its exact values are not finite")


def _most_extreme(case: LinearGaussianCase) -> tuple[str, str]:
    """The field farthest from 1 in log scale (small values matter only for std), and its range."""
    low, high = float(np.min(case.std)), float(np.max(case.std))
    best = ("encoder.std", max(abs(math.log10(low)), abs(math.log10(high))), f"std from {low:.3g} to {high:.3g}")
    fields: dict[str, Any] = {"teacher.W": case.W, "teacher.c": case.c, "teacher.noise_std": case.noise_std,
              "data_prior.mean": case.prior_mean, "data_prior.cov": case.prior_cov, "encoder.A": case.A,
              "encoder.b": case.b, "labels.B": case.labels.B, "labels.noise_std": case.labels.noise_std,
              "labels.means": case.labels.means}
    for field, value in fields.items():
        top = 0.0 if not np.size(value) else float(np.max(np.abs(value)))
        if top > 0 and math.log10(top) > best[1]:
            best = (field, math.log10(top), f"|value| up to {top:.3g}")
    return best[0], best[2]


def _closed_forms(case: LinearGaussianCase) -> list[float]:
    """The analytic values validate reports without Monte Carlo."""
    values = [exact.vib_expectation(case), exact.teacher_bound(case, *exact.optimal_q(case))]
    if case.labels.kind == "classes":
        return values + [exact.logdet(exact.conditional_z_cov(case)), exact.label_entropy(case)]
    ex = exact.exact_values(case)
    return values + [ex.I_XZ] + ([] if ex.I_YZ is None else [ex.I_YZ, exact.label_entropy(case)])


def parse_cases(document: Any) -> list[LinearGaussianCase]:
    """A whole case file's JSON value -> its cases; names must be unique."""
    if not isinstance(document, dict) or "cases" not in document:
        raise InputError("case file: the top level must be an object with a 'cases' list")
    extra = sorted(set(document) - {"cases"})
    if extra:
        raise InputError(f"case file: unknown top-level key '{schema.key_text(extra[0])}' (only 'cases' is allowed)")
    if not isinstance(document["cases"], list) or not document["cases"]:
        raise InputError("case file: 'cases' must be a non-empty list")
    cases = [parse_case(obj, i) for i, obj in enumerate(document["cases"])]
    seen = set()
    for case in cases:
        if case.name in seen:
            raise InputError(f"case '{case.name}': field 'name' is used by another case")
        seen.add(case.name)
    return cases


def load_cases(path: str | Path) -> list[LinearGaussianCase]:
    """Read and check a case file; any problem is an InputError naming it."""
    return parse_cases(schema.read_json(path, f"case file {path}"))
