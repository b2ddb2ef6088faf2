"""The estimator registry: every estimator of ibcheck, registered once.

Each ``Spec`` names an estimator, what it estimates (its targets), its kind
against each reference distribution, its frozen parameter dataclass (whose
defaults are those of ``ibcheck validate``), what it needs beside the encoder
and the data, and the function computing its terms. Every estimator function
has one calling convention::

    terms(encoder, data, params, generator, context) -> list[Measured]

and ``run`` turns the terms into ``Estimate`` objects (mean, standard error,
seed, params, seconds) with the kind that the caller's reference gives.
``validate``, tracking, reports, plots and case-file settings all read this
table. A new estimator is one module plus one line in ``SPECS``.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ibcheck.estimators import barber_agakov, batch, empirical, teacher_bounds, vib
from ibcheck.estimators.common import generator_for, module_device, summarize
from ibcheck.interface import BoundKind, Context, DataSampler, Encoder, Estimate, Measured, Reference, Target

NO_CONTEXT = Context()
TermsFn = Callable[[Encoder, DataSampler, Any, torch.Generator, Context], list[Measured]]


@dataclasses.dataclass(frozen=True)
class Spec:
    """One estimator. ``kinds[reference][target]`` is its kind against that reference;
    ``needs`` lists the ``Context`` fields it reads; ``source`` is the formula's origin;
    ``sweep`` names a tuple parameter (K, N) that gives one estimate per value."""

    name: str
    kinds: Mapping[Reference, Mapping[Target, BoundKind]]
    params: Any
    terms: TermsFn
    needs: frozenset[str]
    source: str
    sweep: str | None = None

    @property
    def targets(self) -> tuple[Target, ...]:
        return tuple(self.kinds["population"])

    def kind(self, target: Target, reference: Reference) -> BoundKind:
        return self.kinds[reference][target]


def _spec(name: str, kind: BoundKind, target: Target, params: Any, terms: TermsFn, source: str,
          needs: tuple[str, ...] = (), sweep: str | None = None) -> Spec:
    """A spec whose kind is the same against both references."""
    kinds: dict[Reference, dict[Target, BoundKind]] = {"population": {target: kind}, "finite": {target: kind}}
    return Spec(name, kinds, params, terms, frozenset(needs), source, sweep)


VIB = _spec("vib", "upper", "I_XZ", vib.VibParams(), vib.vib_terms, "Alemi et al. 2016, Eq. 13")
TEACHER_ELBO = _spec("teacher_elbo", "upper", "I_XZ", teacher_bounds.TeacherElboParams(),
                     teacher_bounds.teacher_elbo_terms, "Herwana & Kadian, Eq. 5", needs=("teacher", "q"))
TEACHER_IW = _spec("teacher_iw", "upper", "I_XZ", teacher_bounds.TeacherIWParams(), teacher_bounds.teacher_iw_terms,
                   "Burda et al. 2015 on Eq. 5", needs=("teacher", "q"), sweep="K")
LOO = _spec("loo", "upper", "I_XZ", batch.BatchParams(), batch.loo_terms, "Poole et al. 2019, Eq. 13", sweep="N")
NCE = _spec("nce", "lower", "I_XZ", batch.BatchParams(), batch.nce_terms, "van den Oord et al. 2018", sweep="N")
# The exact MI of a finite data set. Against the population, its I(X;Z) is a lower bound in
# expectation (it equals InfoNCE's), and its I(Y;Z) has no one-sided relation at all.
EMPIRICAL = Spec("empirical", {"population": {"I_XZ": "lower", "I_YZ": "estimate"},
                               "finite": {"I_XZ": "exact", "I_YZ": "exact"}},
                 empirical.EmpiricalParams(), empirical.empirical_terms, frozenset(), "bounds.md section 3")
BARBER_AGAKOV = _spec("barber_agakov", "lower", "I_YZ", barber_agakov.BarberAgakovParams(),
                      barber_agakov.barber_agakov_terms, "Barber & Agakov 2003", needs=("label_model", "h_y"))

SPECS: dict[str, Spec] = {s.name: s for s in (VIB, TEACHER_ELBO, TEACHER_IW, LOO, NCE, EMPIRICAL, BARBER_AGAKOV)}


def names() -> tuple[str, ...]:
    return tuple(SPECS)


def default_params() -> dict[str, Any]:
    """Every estimator's default parameters, by name (validate's defaults)."""
    return {name: spec.params for name, spec in SPECS.items()}


def get(name: str) -> Spec:
    if name not in SPECS:
        raise ValueError(f"unknown estimator {name!r} (known: {', '.join(SPECS)})")
    return SPECS[name]


def run(name: str, encoder: Encoder, data: DataSampler, params: Any | None = None, *, seed: int,
        device=None, context: Context = NO_CONTEXT, reference: Reference = "population") -> list[Estimate]:
    """Run estimator ``name`` with a generator seeded by ``seed`` on ``device`` (default: the
    encoder's): one Estimate per target and value of the swept parameter (K, N), in order, its
    terms summarised by mean and sd / sqrt(n) (bounds.md section 3), its kind that of
    ``reference``, its seconds those of its own value."""
    spec = get(name)
    params = spec.params if params is None else params
    if not isinstance(params, type(spec.params)):
        raise TypeError(f"{name} takes {type(spec.params).__name__}, got {type(params).__name__}")
    missing = [need for need in sorted(spec.needs) if getattr(context, need) is None]
    if missing:
        raise ValueError(f"{name} needs context.{', context.'.join(missing)}")
    generator = generator_for(seed, device or module_device(encoder))
    values = getattr(params, spec.sweep) if spec.sweep else (None,)
    out = []
    for value in values:
        one = dataclasses.replace(params, **{spec.sweep: (value,)}) if spec.sweep else params
        base = dataclasses.asdict(one) | ({spec.sweep: value} if spec.sweep else {})
        started = time.perf_counter()
        for m in spec.terms(encoder, data, one, generator, context):
            out.append(summarize(name, m.target, spec.kind(m.target, reference), m.terms, seed,
                                 {**base, **m.params}, started))
    return out


def run_one(name: str, encoder: Encoder, data: DataSampler, params: Any | None = None, **options) -> Estimate:
    """``run`` for an estimator run that makes exactly one estimate."""
    out = run(name, encoder, data, params, **options)
    if len(out) != 1:
        raise ValueError(f"{name} made {len(out)} estimates, not one")
    return out[0]
