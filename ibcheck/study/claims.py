"""The paper's six claims (Herwana & Kadian, section 4, Figs. 3-7) as per-run statistics,
judged over seeds on three measures of I(X;Z): the paper's min(vib, teacher_elbo) ("paper"),
the exact I(X;Z) of the training set, ``empirical`` ("exact"), capped at ln N, and the annealed
bracket on the I(X;Z) of the teacher's model population ("population": its midpoint, with half
its width as an extra uncertainty of every record, bounds.md section 3c).

Each claim part maps a run to one number S (nats unless stated), claimed to lie above
(or below) a threshold c. Over the n runs of a condition, the mean of S gets a t
interval; the two-sided t test of "mean = c" gives a p-value. All testable rows of the
table form one family: Holm's step-down procedure at ``alpha`` decides which are
significant. A significant row is **reproduced** when its mean lies on the claimed side
of c and **not reproduced** otherwise; the rest are **inconclusive**, with the number of
runs that would decide them at the observed spread (Bonferroni level, conservative). Only
runs that finished with readable records count; the others are listed with the reason.

A run's phases come from the measure's own curve: its peak epoch e* is where the measure
is largest over the tracked records (over the bracketed ones for "population"); fitting is
[0, e*], compression is [e*, T]. A population row whose statistic is in nats of I(X;Z) (C1's
final value, C3, C4) that the t test decides is still inconclusive where its mean is nearer the
threshold than the mean half-width of the brackets behind it: the truth could lie on the other
side. (Elsewhere the population measure only places e*, and the statistic is in other units.)
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from ibcheck import stats
from ibcheck.interface import ClaimPart, ClaimRow, ClaimSide, Verdict, _Significance
from ibcheck.study.results import (
    EXACT,
    PAPER_MIN,
    POPULATION,
    RunResult,
    dense,
    init_label,
    left_out,
    population_series,
    series,
    usable,
    value,
)

MARGIN = 0.1  # nats: a rise or fall of I(X;Z) smaller than this is no rise or fall; "0" means below it
GRAD_RISE = math.log(1.1)  # the gradient norm "rises": by more than 10% over the fitting phase
GRAD_BAND = math.log(2.0)  # it "stays in a band": its max / min over compression stays below 2
MEASURES = {"paper": PAPER_MIN, "exact": EXACT, "population": POPULATION}
MAX_RUNS = 10_000


# ---------------------------------------------------------------- per-run statistics


def _curve(run: RunResult, measure: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, values, stderrs) of I(X;Z) by the measure over the tracked records (the bracketed
    ones for the population: midpoints, and stderrs with half the width added)."""
    if measure == "population":
        epochs, middle, se, _ = population_series(run.records)
        return epochs, middle, np.nan_to_num(se)
    epochs, values = series(run.records, "I_XZ", MEASURES[measure])
    _, errors = series(run.records, "I_XZ", MEASURES[measure], "stderr")
    return epochs, values, np.nan_to_num(errors)


def peak(run: RunResult, measure: str) -> tuple[float, int] | None:
    """(e*, index) of the measure's maximum over the tracked records; None without records."""
    epochs, values, _ = _curve(run, measure)
    if len(values) == 0 or np.isnan(values).all():
        return None
    index = int(np.nanargmax(values))
    return float(epochs[index]), index


def _below_peak(run: RunResult, measure: str, other: int) -> float:
    """M(e*) - M at record ``other``, less twice the standard error of the difference (the
    maximum of noisy records is biased up)."""
    found = peak(run, measure)
    if found is None:
        return math.nan
    _, values, errors = _curve(run, measure)
    i = found[1]
    return float(values[i] - values[other] - 2 * math.hypot(errors[i], errors[other]))


def rise(run: RunResult, measure: str) -> float:
    """C3: the peak stands above both ends, min(M(e*) - M(0), M(e*) - M(T)), each less 2 se: an
    *inner* maximum. A curve whose maximum is its last (or first) record scores at most -2 se."""
    return min(_below_peak(run, measure, 0), _below_peak(run, measure, -1))


def fall(run: RunResult, measure: str) -> float:
    """C3: M(e*) - M(T) - 2 se."""
    return _below_peak(run, measure, -1)


def highest(run: RunResult, measure: str) -> float:
    """C4: the maximum of the measure over the run, nats."""
    _, values, _ = _curve(run, measure)
    return float(np.nanmax(values)) if len(values) and not np.isnan(values).all() else math.nan


def final_xz(run: RunResult, measure: str) -> float:
    """C1: the measure's I(X;Z) at the last tracked record."""
    _, values, _ = _curve(run, measure)
    return float(values[-1]) if len(values) else math.nan


def final_yz(run: RunResult, measure: str) -> float:
    """C1: I(Y;Z) at the last record: the classifier's Barber-Agakov bound (paper) or empirical (exact)."""
    tracked = run.tracked()
    name = "barber_agakov" if measure == "paper" else EXACT
    return value(tracked[-1], "I_YZ", name) if tracked else math.nan


def _settle_epoch(epochs: np.ndarray, values: np.ndarray) -> float:
    """The first epoch from which a curve stays within 10% of its total change of its final value
    (the last record is never outside: it is the final value, so the epoch after the last outlier
    exists)."""
    tolerance = 0.1 * abs(values[0] - values[-1])
    outside = np.flatnonzero(np.abs(values - values[-1]) > tolerance)
    return float(epochs[0]) if len(outside) == 0 else float(epochs[outside[-1] + 1])


def faster(run: RunResult, measure: str) -> float:
    """C1: epochs teacher_elbo takes to settle minus those vib takes (> 0: vib settles first)."""
    epochs, elbo = series(run.records, "I_XZ", "teacher_elbo")
    _, vib = series(run.records, "I_XZ", "vib")
    if len(epochs) < 2 or np.isnan(elbo).any() or np.isnan(vib).any():
        return math.nan
    return _settle_epoch(epochs, elbo) - _settle_epoch(epochs, vib)


def _roughness(values: np.ndarray) -> float:
    half = values[len(values) // 2:]
    return float(np.mean(np.abs(np.diff(half))) / (np.mean(np.abs(half)) + MARGIN))


def steadier(run: RunResult, measure: str) -> float:
    """C1: roughness of teacher_elbo minus that of vib over the second half of the records,
    roughness = mean |step change| / (mean |value| + 0.1 nats) (> 0: vib is steadier)."""
    _, elbo = series(run.records, "I_XZ", "teacher_elbo")
    _, vib = series(run.records, "I_XZ", "vib")
    if len(vib) < 4 or np.isnan(elbo).any() or np.isnan(vib).any():
        return math.nan
    return _roughness(elbo) - _roughness(vib)


def _phase_gap(run: RunResult, measure: str, early: bool) -> float:
    """Mean of vib - teacher_elbo over the fitting phase (early) or of teacher_elbo - vib over
    compression; NaN when the phase has fewer than two records."""
    found = peak(run, measure)
    if found is None:
        return math.nan
    epochs, vib = series(run.records, "I_XZ", "vib")
    _, elbo = series(run.records, "I_XZ", "teacher_elbo")
    chosen = epochs <= found[0] if early else epochs >= found[0]
    if chosen.sum() < 2:
        return math.nan
    gap = (vib - elbo) if early else (elbo - vib)
    return float(np.nanmean(gap[chosen])) if not np.isnan(gap[chosen]).all() else math.nan


def elbo_lower_early(run: RunResult, measure: str) -> float:
    """C2: mean of vib - teacher_elbo while I(X;Z) rises (> 0: teacher_elbo is lower)."""
    return _phase_gap(run, measure, early=True)


def vib_lower_late(run: RunResult, measure: str) -> float:
    """C2: mean of teacher_elbo - vib during compression (> 0: vib is lower)."""
    return _phase_gap(run, measure, early=False)


def _compression(run: RunResult, measure: str, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(epochs, values) of a per-epoch number over whole epochs at or after e*."""
    found = peak(run, measure)
    if found is None:
        return None
    epochs, values = dense(run.records, key)
    keep = (epochs >= found[0]) & ~np.isnan(values)
    return epochs[keep], values[keep]


def logdet_keeps_falling(run: RunResult, measure: str) -> float:
    """C5: the smaller of the log-determinant's falls over the two halves of compression, nats
    (> 0: it falls in both)."""
    found = _compression(run, measure, "logdet_cov")
    if found is None or len(found[0]) < 3:
        return math.nan
    epochs, values = found
    middle = int(np.argmin(np.abs(epochs - (epochs[0] + epochs[-1]) / 2)))
    return float(min(values[0] - values[middle], values[middle] - values[-1]))


def grad_rises(run: RunResult, measure: str) -> float:
    """C6: ln(gradient norm at e* / at epoch 1); NaN when fitting ends before epoch 2."""
    found = peak(run, measure)
    epochs, grads = dense(run.records, "grad_norm")
    if found is None or found[0] < 2:
        return math.nan
    at_peak = grads[epochs >= found[0]]
    first = grads[epochs == 1]
    if not len(at_peak) or not len(first) or not (at_peak[0] > 0 and first[0] > 0):
        return math.nan
    return float(math.log(at_peak[0] / first[0]))


def grad_band(run: RunResult, measure: str) -> float:
    """C6: ln(max / min) of the gradient norm over compression (< ln 2: it stays in a band)."""
    found = _compression(run, measure, "grad_norm")
    if found is None or len(found[1]) < 2 or (found[1] <= 0).any():
        return math.nan
    return float(math.log(found[1].max() / found[1].min()))


# ---------------------------------------------------------------- the claims table

Statistic = Callable[[RunResult, str], float]


@dataclasses.dataclass(frozen=True)
class Part:
    """One testable part of a claim: S(run, measure) is claimed to be ``side`` ("above" or
    "below") ``threshold``, on the runs ``zero_info`` selects, per condition of the ``keep``
    factors (the others, except ``seed``, are pooled)."""

    claim: str
    name: str
    definition: str
    statistic: Statistic
    side: ClaimSide
    threshold: float
    zero_info: bool
    keep: tuple[str, ...]
    measures: tuple[str, ...] = ("paper", "exact", "population")
    in_nats_of_the_measure: bool = False  # S is the measure's I(X;Z) or a difference of it (C1, C3, C4)


FACTORS = {"encoder": "student.encoder", "init": "student.std_shift", "optimizer": "student.optimizer",
           "beta": "student.beta"}
# every condition apart, the beta values included (none is pooled)
PER_CONDITION = ("encoder", "init", "optimizer", "beta")
PER_OPTIMISER = ("encoder", "init", "optimizer")  # C4 pairs the beta values of each seed
PARTS = (
    Part("C1", "I(X;Z) falls to 0 (Fig. 3)", "final I(X;Z) of zero-information runs", final_xz, "below", MARGIN,
         True, ("encoder", "init", "optimizer", "beta"), in_nats_of_the_measure=True),
    # no estimator gives the population's I(Y;Z): this part has no population row
    Part("C1", "I(Y;Z) falls to 0 (Fig. 3)", "final I(Y;Z) (barber_agakov on the paper's measure, empirical on "
         "the exact one)", final_yz, "below", MARGIN, True, ("encoder", "init", "optimizer", "beta"),
         ("paper", "exact")),
    Part("C1", "vib converges faster than teacher_elbo (Fig. 3)", "settling epoch of teacher_elbo minus that of "
         "vib (first epoch after which a curve stays within 10% of its total change of its final value)", faster,
         "above", 0.0, True, ("encoder", "init", "optimizer", "beta"), ("bounds",)),
    Part("C1", "vib is steadier than teacher_elbo (Fig. 3)", "roughness of teacher_elbo minus that of vib over "
         "the second half of the records (mean |step| / (mean |value| + 0.1))", steadier, "above", 0.0, True,
         ("encoder", "init", "optimizer", "beta"), ("bounds",)),
    Part("C2", "teacher_elbo is lower than vib while I(X;Z) rises (Fig. 4)", "mean of vib - teacher_elbo over "
         "[0, e*]", elbo_lower_early, "above", 0.0, False, PER_CONDITION),
    Part("C2", "vib is lower than teacher_elbo later (Fig. 4)", "mean of teacher_elbo - vib over [e*, T]",
         vib_lower_late, "above", 0.0, False, PER_CONDITION),
    Part("C3", "I(X;Z) rises to an inner maximum (Figs. 5-6)", "min(M(e*) - M(0), M(e*) - M(T)) - 2 se", rise,
         "above", MARGIN, False, PER_CONDITION, in_nats_of_the_measure=True),
    Part("C3", "then falls (Figs. 5-6)", "M(e*) - M(T) - 2 se", fall, "above", MARGIN, False, PER_CONDITION,
         in_nats_of_the_measure=True),
    Part("C4", "a larger beta gives a lower maximum (Fig. 5)", "max M at the smaller beta minus max M at the "
         "larger, paired by seed", highest, "above", 0.0, False, PER_OPTIMISER, in_nats_of_the_measure=True),
    Part("C5", "the log-determinant keeps falling during compression (Figs. 6-7)", "smaller of the "
         "log-determinant's falls over the two halves of [e*, T]", logdet_keeps_falling, "above", 0.0, False,
         PER_CONDITION),
    Part("C6", "the gradient norm rises during fitting (Fig. 7)", "ln(gradient norm at e* / at epoch 1)",
         grad_rises, "above", GRAD_RISE, False, PER_CONDITION),
    Part("C6", "and stays in a band during compression (Fig. 7)", "ln(max / min gradient norm over [e*, T])",
         grad_band, "below", GRAD_BAND, False, PER_CONDITION),
)
NO_RUNS = "no runs of this kind in the study"
PAIRED = "C4"  # its observations are differences between consecutive beta values


def _show(factor: str, v) -> str:
    if factor == "init":
        return f"init {init_label(v)}"
    if factor == "beta":
        return f"β={v:g}"
    return str(v)


def _others(run: RunResult) -> tuple:
    """Grid keys that are not a known factor nor the seed: never pooled over."""
    known = set(FACTORS.values()) | {"seed", "zero_info"}
    return tuple(sorted((k, str(v)) for k, v in run.values.items() if k not in known))


def _label(keep: Sequence[str], key: tuple, varying: set[str]) -> str:
    shown = [_show(f, v) for f, v in zip(keep, key) if f in varying]
    return ", ".join(shown + [f"{k}={v}" for k, v in key[len(keep):]]) or "all runs"


def conditions(part: Part, runs: Sequence[RunResult], measure: str) -> dict[str, tuple[list[float], list[RunResult]]]:
    """{condition label: (one value of S per run, per seed pair for C4; the runs behind them)}, NaN
    where S is undefined. Only usable runs count (finished, with readable records, none repeated)."""
    chosen = [r for r in runs if r.zero_info == part.zero_info and usable(r) and r.tracked()]
    varying = {f for f, key in FACTORS.items() if len({str(r.setting(key)) for r in chosen}) > 1}
    groups: dict[tuple, list[RunResult]] = {}
    for r in chosen:
        groups.setdefault(tuple(r.setting(FACTORS[f]) for f in part.keep) + _others(r), []).append(r)
    out: dict[str, tuple[list[float], list[RunResult]]] = {}
    for key, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        label = _label(part.keep, key, varying)
        if part.claim == PAIRED:
            out.update(_paired(part, members, measure, label))
        else:
            ordered = sorted(members, key=lambda r: r.seed)
            out[label] = ([part.statistic(r, measure) for r in ordered], ordered)
    return out


def observations(part: Part, runs: Sequence[RunResult], measure: str) -> dict[str, list[float]]:
    """{condition label: one value of S per run (per seed pair for C4)}, NaN where S is undefined."""
    return {label: values for label, (values, _) in conditions(part, runs, measure).items()}


def _paired(part: Part, members: list[RunResult], measure: str,
            label: str) -> dict[str, tuple[list[float], list[RunResult]]]:
    """C4: per seed, S at each beta minus S at the next larger beta."""
    betas = sorted({r.setting(FACTORS["beta"]) for r in members})
    by = {(r.setting(FACTORS["beta"]), r.seed): part.statistic(r, measure) for r in members}
    out = {}
    for low, high in zip(betas, betas[1:]):
        seeds = sorted({s for b, s in by if b == low} & {s for b, s in by if b == high})
        diffs = [by[(low, s)] - by[(high, s)] for s in seeds]
        prefix = "" if label == "all runs" else f"{label}, "
        pair = [r for r in members if r.setting(FACTORS["beta"]) in (low, high)]
        out[f"{prefix}β {low:g} vs {high:g}"] = (diffs, pair)
    return out


def half_width(runs: Sequence[RunResult]) -> float | None:
    """The mean over runs of each run's mean half-width of its population brackets (crossed ones
    count 0), nats; None where no run has a bracket."""
    per_run = []
    for run in runs:
        widths = population_series(run.records)[3]
        widths = widths[~np.isnan(widths)]
        if len(widths):
            per_run.append(float(np.clip(widths, 0.0, None).mean() / 2))
    return float(np.mean(per_run)) if per_run else None


# ---------------------------------------------------------------- verdicts


def table(runs: Sequence[RunResult]) -> list[ClaimPart]:
    """One row per claim part, measure and condition, before the verdicts."""
    rows: list[ClaimPart] = []
    for part in PARTS:
        for measure in part.measures:
            found = conditions(part, runs, "paper" if measure == "bounds" else measure)
            for condition, (all_values, members) in (found or {NO_RUNS: ([], [])}).items():
                values = [v for v in all_values if not math.isnan(v)]
                rows.append({"claim": part.claim, "part": part.name, "statistic": part.definition,
                             "measure": measure, "condition": condition, "side": part.side,
                             "threshold": part.threshold, "values": values, "n": len(values),
                             "undefined": len(all_values) - len(values),
                             "half_width": half_width(members) if measure == "population"
                             and part.in_nats_of_the_measure else None})
    return rows


Test = tuple[float, float, float, float, float]  # stats.t_test: mean, sd, ci_low, ci_high, p


def judge(parts: list[ClaimPart], alpha: float) -> list[ClaimRow]:
    """Each part with its mean, sd, 95% interval, p, Holm's decision over the testable parts (two
    runs or more) and the verdict."""
    tests: list[Test | None] = [stats.t_test(p["values"], p["threshold"]) if p["n"] >= 2 else None for p in parts]
    levels, decided = stats.holm([t[4] for t in tests if t is not None], alpha)
    holm = iter(zip(levels, decided))
    per_test = stats.bonferroni(alpha, len(levels))  # the level at which runs_to_decide counts
    return [_judged(part, test, next(holm) if test is not None else None, per_test)
            for part, test in zip(parts, tests)]


def _judged(part: ClaimPart, test: Test | None, holm: tuple[float, bool] | None, per_test: float) -> ClaimRow:
    mean: float | None
    sd: float | None
    p: float | None
    interval: list[float] | None
    if test is not None:
        mean, sd, low, high, p = test
        interval = [low, high]
    else:
        mean, sd, interval, p = (part["values"][0] if part["n"] == 1 else None), None, None, None
    significant = holm is not None and holm[1]
    too_wide = _bracket_too_wide(part, mean, significant)
    verdict = "inconclusive" if too_wide else _verdict(part, mean, significant)
    needed = None
    if not too_wide and verdict == "inconclusive" and mean is not None and sd is not None:
        needed = stats.runs_to_decide(mean, sd, part["threshold"], per_test, MAX_RUNS)
    # claims.json keeps its key order, and "significant" only where a test was made
    tested: _Significance = {} if holm is None else {"significant": significant}
    return {**part, "mean": mean, "sd": sd, "ci95": interval, "p": p, "holm_level": None if holm is None else holm[0],
            "runs_to_decide": needed, **tested, "verdict": verdict, "bracket_too_wide": too_wide}


def _bracket_too_wide(part: ClaimPart, mean: float | None, significant: bool) -> bool:
    """A significant population row whose mean is nearer the threshold than the brackets' mean
    half-width: the truth could lie on the other side, and no number of runs changes that."""
    width = part["half_width"]
    return bool(significant and width is not None and mean is not None and abs(mean - part["threshold"]) < width)


def _verdict(part: ClaimPart, mean: float | None, significant: bool) -> Verdict:
    if not significant or mean is None:
        return "inconclusive"
    above = mean > part["threshold"]
    return "reproduced" if above == (part["side"] == "above") else "not reproduced"


def claims(runs: Sequence[RunResult], alpha: float = 0.05) -> dict:
    """The whole table with its method, as written to claims.json: also ``runs_judged`` (the usable
    runs) and ``left_out`` ({reason: cell names} of the others, ``results.left_out``)."""
    rows = judge(table(runs), alpha)
    return {"alpha": alpha, "method": METHOD, "margin_nats": MARGIN, "runs_judged": sum(map(usable, runs)),
            "left_out": left_out(runs), "rows": rows,
            "counts": {v: sum(r["verdict"] == v for r in rows) for v in ("reproduced", "not reproduced",
                                                                          "inconclusive")}}


METHOD = ("Each row: the claimed side of a threshold for a per-run statistic; a two-sided one-sample t test of "
          "mean = threshold over the runs of the condition (seeds, and beta values where pooled), with a 95% t "
          "interval. Multiple comparisons: Holm's step-down procedure over every testable row of the table "
          "(family-wise error alpha). Significant rows are reproduced or not reproduced by the side of the "
          "mean; the others are inconclusive, with the runs that would decide them at the observed spread at "
          "the Bonferroni level alpha/m.")
