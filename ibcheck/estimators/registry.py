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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ibcheck.estimators import barber_agakov, batch, empirical, teacher_ais, teacher_bounds, vib
from ibcheck.estimators.common import generator_for, module_device, summarize
from ibcheck.interface import (
    BoundKind,
    Context,
    Cost,
    DataSampler,
    Dims,
    Encoder,
    Estimate,
    Measured,
    Reference,
    Target,
)

NO_CONTEXT = Context()
TermsFn = Callable[[Encoder, DataSampler, Any, torch.Generator, Context], list[Measured]]
# Several estimators from one draw: (..., {name: that estimator's variant}) -> {name: measured}.
JointFn = Callable[[Encoder, DataSampler, Any, torch.Generator, Context, dict[str, Any]], dict[str, list[Measured]]]


@dataclasses.dataclass(frozen=True)
class Spec:
    """One estimator. ``kinds[reference][target]`` is its kind against that reference;
    ``needs`` lists the ``Context`` fields it reads; ``source`` is the formula's origin;
    ``sweep`` names a tuple parameter (K, N) that gives one estimate per value. Its terms come
    from ``terms``, or from ``joint`` with ``variant``, which can compute it together with the
    other estimators of the same ``joint`` function from the same draws."""

    name: str
    kinds: Mapping[Reference, Mapping[Target, BoundKind]]
    params: Any
    terms: TermsFn | None
    needs: frozenset[str]
    source: str
    sweep: str | None = None
    joint: JointFn | None = None
    variant: Any = None
    cost: Callable[[Any, Dims], Cost] | None = None
    needs_prior: bool = False  # runs only on data with z_v and their prior's density (interface.PriorData)
    # runs only where that prior is not the teacher's model prior N(0, I): elsewhere it repeats another
    distinct_prior: bool = False

    @property
    def targets(self) -> tuple[Target, ...]:
        return tuple(self.kinds["population"])

    def kind(self, target: Target, reference: Reference) -> BoundKind:
        return self.kinds[reference][target]


def _spec(name: str, kind: BoundKind, target: Target, params: Any, terms: TermsFn | None, source: str,
          needs: tuple[str, ...] = (), **more: Any) -> Spec:
    """A spec whose kind is the same against both references."""
    kinds: dict[Reference, dict[Target, BoundKind]] = {"population": {target: kind}, "finite": {target: kind}}
    return Spec(name, kinds, params, terms, frozenset(needs), source, **more)


VIB = _spec("vib", "upper", "I_XZ", vib.VibParams(), vib.vib_terms, "Alemi et al. 2016, Eq. 13", cost=vib.vib_cost)
TEACHER_ELBO = _spec("teacher_elbo", "upper", "I_XZ", teacher_bounds.TeacherElboParams(),
                     teacher_bounds.teacher_elbo_terms, "Herwana & Kadian, Eq. 5", needs=("teacher", "q"),
                     cost=teacher_bounds.teacher_elbo_cost)
TEACHER_IW = _spec("teacher_iw", "upper", "I_XZ", teacher_bounds.TeacherIWParams(), teacher_bounds.teacher_iw_terms,
                   "Burda et al. 2015 on Eq. 5", needs=("teacher", "q"), sweep="K", cost=teacher_bounds.teacher_iw_cost)
# The paper's teacher_iw keeps the model prior, whose limit is not I(X;Z) where the data prior differs;
# this one carries p_d and closes the bracket there (bounds.md section 3b). Elsewhere it is teacher_iw.
TEACHER_IW_DATA = _spec("teacher_iw_data", "upper", "I_XZ", teacher_bounds.TeacherIWDataParams(),
                        teacher_bounds.teacher_iw_data_terms,
                        "Burda et al. 2015 on Eq. 5 with p_d; bounds.md section 3b", needs=("teacher", "q"),
                        sweep="K", cost=teacher_bounds.teacher_iw_cost, needs_prior=True, distinct_prior=True)
# Against a finite data set's own MI the reverse bound says nothing: its data carry no z_v.
TEACHER_RIW = Spec("teacher_riw", {"population": {"I_XZ": "lower"}, "finite": {"I_XZ": "estimate"}},
                   teacher_bounds.TeacherRIWParams(), teacher_bounds.teacher_riw_terms, frozenset(("teacher", "q")),
                   "Sobolev & Vetrov 2019 on Eq. 5; bounds.md section 3b", sweep="K",
                   cost=teacher_bounds.teacher_riw_cost, needs_prior=True)
# The annealed pair (bounds.md section 3c), from the same z and forward chains; the variant names the
# side. Like teacher_riw they need data drawn through the teacher from a known prior density.
_AIS_SOURCE = "Neal 2001; Grosse et al. 2015 (BDMC); bounds.md section 3c"
TEACHER_AIS = Spec("teacher_ais", {"population": {"I_XZ": "upper"}, "finite": {"I_XZ": "estimate"}},
                   teacher_ais.TeacherAISParams(), None, frozenset(("teacher", "q")), _AIS_SOURCE, sweep="T",
                   joint=teacher_ais.ais_terms, variant=teacher_ais.UPPER, cost=teacher_ais.ais_cost,
                   needs_prior=True)
TEACHER_RAIS = Spec("teacher_rais", {"population": {"I_XZ": "lower"}, "finite": {"I_XZ": "estimate"}},
                    teacher_ais.TeacherAISParams(), None, frozenset(("teacher", "q")), _AIS_SOURCE, sweep="T",
                    joint=teacher_ais.ais_terms, variant=teacher_ais.LOWER, cost=teacher_ais.ais_cost,
                    needs_prior=True)
# the variant of the batch bounds: whether the mixture leaves the own component out
LOO = _spec("loo", "upper", "I_XZ", batch.BatchParams(), None, "Poole et al. 2019, Eq. 13", sweep="N",
            joint=batch.sandwich_terms, variant=True, cost=batch.batch_cost)
NCE = _spec("nce", "lower", "I_XZ", batch.BatchParams(), None, "van den Oord et al. 2018", sweep="N",
            joint=batch.sandwich_terms, variant=False, cost=batch.batch_cost)
# The exact MI of a finite data set. Against the population, its I(X;Z) is a lower bound in
# expectation (it equals InfoNCE's), and its I(Y;Z) has no one-sided relation at all.
EMPIRICAL = Spec("empirical", {"population": {"I_XZ": "lower", "I_YZ": "estimate"},
                               "finite": {"I_XZ": "exact", "I_YZ": "exact"}},
                 empirical.EmpiricalParams(), empirical.empirical_terms, frozenset(), "bounds.md section 3",
                 cost=empirical.empirical_cost)
BARBER_AGAKOV = _spec("barber_agakov", "lower", "I_YZ", barber_agakov.BarberAgakovParams(),
                      barber_agakov.barber_agakov_terms, "Barber & Agakov 2003", needs=("label_decoder", "h_y"),
                      cost=barber_agakov.barber_agakov_cost)

SPECS: dict[str, Spec] = {s.name: s for s in (VIB, TEACHER_ELBO, TEACHER_IW, TEACHER_IW_DATA, TEACHER_RIW,
                                              TEACHER_AIS, TEACHER_RAIS, LOO, NCE, EMPIRICAL, BARBER_AGAKOV)}


def names() -> tuple[str, ...]:
    return tuple(SPECS)


def without_prior() -> tuple[str, ...]:
    """The estimators that run on any data, a finite training set included (tracking's)."""
    return tuple(name for name, spec in SPECS.items() if not spec.needs_prior)


def default_params() -> dict[str, Any]:
    """Every estimator's default parameters, by name (validate's defaults)."""
    return {name: spec.params for name, spec in SPECS.items()}


def get(name: str) -> Spec:
    if name not in SPECS:
        raise ValueError(f"unknown estimator {name!r} (known: {', '.join(SPECS)})")
    return SPECS[name]


def _needed(spec: Spec, params: Any) -> set[str]:
    """The Context fields a run reads: a teacher bound's "q" is the one its ``q`` parameter names."""
    forward = getattr(params, "q", None) == "forward"
    return {"q_forward" if need == "q" and forward else need for need in spec.needs}


def _checked(names: Sequence[str], params: Any, context: Context) -> tuple[list[Spec], Any]:
    specs = [get(name) for name in names]
    first = specs[0]
    if len(specs) > 1 and (first.joint is None or any(s.joint is not first.joint for s in specs)):
        raise ValueError(f"{', '.join(names)} cannot run together: they share no joint function")
    params = first.params if params is None else params
    for spec in specs:
        if not isinstance(params, type(spec.params)):
            raise TypeError(f"{spec.name} takes {type(spec.params).__name__}, got {type(params).__name__}")
        missing = [need for need in sorted(_needed(spec, params)) if getattr(context, need) is None]
        if missing:
            raise ValueError(f"{spec.name} needs context.{', context.'.join(missing)}")
    return specs, params


def run_together(names: Sequence[str], encoder: Encoder, data: DataSampler, params: Any | None = None, *,
                 seed: int, device=None, context: Context = NO_CONTEXT,
                 reference: Reference = "population") -> dict[str, list[Estimate]]:
    """Estimators that share a joint function (loo and nce), from the same draws and one generator
    seeded by ``seed``: ``run``'s estimates for each name. Each estimate's seconds is the time of
    the joint computation of its value of the swept parameter."""
    specs, params = _checked(names, params, context)
    first = specs[0]
    generator = generator_for(seed, device or module_device(encoder))
    out: dict[str, list[Estimate]] = {spec.name: [] for spec in specs}
    for value in getattr(params, first.sweep) if first.sweep else (None,):
        one = dataclasses.replace(params, **{first.sweep: (value,)}) if first.sweep else params
        base = dataclasses.asdict(one) | ({first.sweep: value} if first.sweep else {})
        started = time.perf_counter()
        if first.joint is not None:
            measured = first.joint(encoder, data, one, generator, context, {s.name: s.variant for s in specs})
        else:
            assert first.terms is not None, f"{first.name} has neither terms nor a joint function"
            measured = {first.name: first.terms(encoder, data, one, generator, context)}
        for spec in specs:
            for m in measured[spec.name]:
                out[spec.name].append(summarize(spec.name, m.target, spec.kind(m.target, reference), m.terms, seed,
                                                {**base, **m.params}, started))
    return out


def run(name: str, encoder: Encoder, data: DataSampler, params: Any | None = None, *, seed: int,
        device=None, context: Context = NO_CONTEXT, reference: Reference = "population") -> list[Estimate]:
    """Run estimator ``name`` with a generator seeded by ``seed`` on ``device`` (default: the
    encoder's): one Estimate per target and value of the swept parameter (K, N), in order, its
    terms summarised by mean and sd / sqrt(n) (bounds.md section 3), its kind that of
    ``reference``, its seconds those of its own value."""
    return run_together((name,), encoder, data, params, seed=seed, device=device, context=context,
                        reference=reference)[name]


def run_one(name: str, encoder: Encoder, data: DataSampler, params: Any | None = None, **options) -> Estimate:
    """``run`` for an estimator run that makes exactly one estimate."""
    out = run(name, encoder, data, params, **options)
    if len(out) != 1:
        raise ValueError(f"{name} made {len(out)} estimates, not one")
    return out[0]


def groups(names: Sequence[str], params: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """``names`` in order, with the estimators that share a joint function and equal parameters
    gathered into one group (so ``run_together`` draws their data once)."""
    out: list[tuple[str, ...]] = []
    for name in names:
        spec = get(name)
        partner = next((i for i, group in enumerate(out) if spec.joint is not None
                        and get(group[0]).joint is spec.joint and params[group[0]] == params[name]), None)
        if partner is None:
            out.append((name,))
        else:
            out[partner] += (name,)
    return out
