"""How skewed are the terms behind each match check, and does that skew explain its mean t?

For a mean of n iid terms with skewness g (third standardized moment), the studentized mean
t = (mean - mu) / (sd / sqrt n) has, to first order (the Edgeworth expansion of Student's
statistic; Hall 1992, *The Bootstrap and Edgeworth Expansion*, section 2.6),

    E[t] = -g / (2 sqrt n),   P(t <= x) = Phi(x) + g (2 x^2 + 1) phi(x) / (6 sqrt n).

The first-order term is even in x, so it cancels in a two-sided test: it moves rejections from
one tail to the other. A one-sided test gains it in one tail. This script draws one seed of every
parameter of every group of ``tests/match_checks.py``, catches the terms each estimate is the
mean of, and writes per check: n, g, the excess kurtosis, the predicted E[t], and, beside it, the
mean t that ``nox -s calibration`` measured (OUT/calibration.json, if there). It also gives the
first-order tail of each side at the tests' per-check level, where the expansion is only a
guide (at five standard deviations its error can be as large as its correction).

    PYTHONPATH=tests python scripts/measure_term_skew.py [OUT] [--seed S]

writes OUT/skew.json, OUT/skew.csv and OUT/skew.md (OUT defaults to reports/calibration).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats as sps

from ibcheck import fileio, stats
from ibcheck.estimators import registry

import budget
import match_checks

CAUGHT: dict[int, np.ndarray] = {}  # id(Estimate) -> its terms


def _catching(make, terms_at: int):
    """Wrap a function that builds an Estimate from terms (positional argument ``terms_at``)."""
    def wrapped(*args, **kwargs):
        est = make(*args, **kwargs)
        terms = args[terms_at]
        CAUGHT[id(est)] = np.asarray(terms.detach().double().cpu() if hasattr(terms, "detach") else terms, float)
        return est
    return wrapped


def moments(terms: np.ndarray) -> tuple[float, float]:
    """Sample skewness and excess kurtosis (bias-corrected); 0 for constant terms."""
    if terms.size < 4 or np.ptp(terms) == 0:
        return 0.0, 0.0
    return float(sps.skew(terms, bias=False)), float(sps.kurtosis(terms, bias=False))


def tail_ratio(g: float, n: int, level: float) -> tuple[float, float]:
    """First-order Edgeworth P(t < -x) and P(t > x), divided by their nominal ``level``, at the
    tests' one-sided quantile x for ``level`` with n terms."""
    x = stats.quantile(level, n)
    shift = g * (2 * x * x + 1) * sps.norm.pdf(x) / (6 * math.sqrt(n))
    nominal = sps.norm.sf(x)
    return (nominal + shift) / nominal, max(nominal - shift, 0.0) / nominal


def measure(seed: int) -> list[dict]:
    registry.summarize = _catching(registry.summarize, 3)
    match_checks.summarize = _catching(match_checks.summarize, 3)
    match_checks._numpy_estimate = _catching(match_checks._numpy_estimate, 0)
    level = budget.CHECK_ALPHA  # a one-sided check's level; a match check puts half of it in each tail
    rows, missed = [], []
    for group in match_checks.GROUPS.values():
        for param in group.params:
            for o in group.draw(param, seed):
                terms = CAUGHT.get(id(o.estimate))
                if terms is None or terms.size != o.estimate.n:
                    missed.append(o.label)
                    continue
                g, kurt = moments(terms)
                low, high = tail_ratio(g, o.estimate.n, level)
                rows.append({"label": o.label, "group": group.name, "kind": o.kind, "n": o.estimate.n, "skew": g,
                             "excess_kurtosis": kurt, "predicted_mean_t": -g / (2 * math.sqrt(o.estimate.n)),
                             "lower_tail_ratio": low, "upper_tail_ratio": high, "level": level})
            CAUGHT.clear()
    if missed:
        print(f"terms not caught (not measured): {', '.join(missed)}", file=sys.stderr)
    return rows


def compare(rows: list[dict], calibration: Path) -> dict:
    """Joins the measured mean t and fits observed = slope * predicted over the checks (weights:
    1 / var of each mean t), with the slope's se; slope 1 is what the first-order skew predicts."""
    if not calibration.exists():
        return {}
    measured = {(c["group"], c["label"]): c for c in json.loads(calibration.read_text())["checks"]
                if c.get("mean_t") is not None}
    pairs = []
    for r in rows:
        c = measured.get((r["group"], r["label"]))
        if c is not None:
            r.update({"mean_t": c["mean_t"], "sd_t": c["sd_t"], "mean_t_se": c["sd_t"] / math.sqrt(c["seeds"]),
                      "seeds": c["seeds"]})
            if r["kind"] == "match":
                pairs.append((r["predicted_mean_t"], c["mean_t"], r["mean_t_se"]))
    p, o, s = (np.array(v) for v in zip(*pairs))
    w = 1 / s**2
    slope = float((w * p * o).sum() / (w * p * p).sum())
    chi0, chi1 = float((w * o * o).sum()), float((w * (o - slope * p) ** 2).sum())
    return {"checks": len(pairs), "slope": slope, "slope_se": float(1 / math.sqrt((w * p * p).sum())),
            "chi2_zero": chi0, "chi2_skew": chi1, "dof": len(pairs),
            "p_zero": float(sps.chi2.sf(chi0, len(pairs))), "p_skew_fit": float(sps.chi2.sf(chi1, len(pairs) - 1))}


def failing_ratio(r: dict) -> float:
    """A one-sided check's first-order tail ratio on the side where it fails (an upper bound fails low)."""
    return r["lower_tail_ratio"] if r["kind"] == "upper" else r["upper_tail_ratio"]


def tight(rows: list[dict]) -> list[dict]:
    """One-sided checks whose bound sits within one se of the truth on average (measured mean |t| < 1),
    the only ones a tail can fail by chance, leaving out those whose t hardly varies (sd < 0.5: an
    estimate equal to the truth on most seeds, which no tail expansion describes)."""
    return [r for r in rows if r["kind"] != "match" and abs(r.get("mean_t", math.inf)) < 1 and r["sd_t"] > 0.5]


def failing_tail(kind: str, g: float, n: int, level: float, offset: float) -> float:
    """First-order P(a check of ``kind`` fails at ``level``) when its t is centred at ``offset``
    (the bound's distance from the truth, in se): P(t < -q) for an upper bound, P(t > q) for a lower."""
    x = stats.quantile(level, n) + (offset if kind == "upper" else -offset)
    shift = g * (2 * x * x + 1) * sps.norm.pdf(x) / (6 * math.sqrt(n))
    return max(sps.norm.sf(x) + (shift if kind == "upper" else -shift), 0.0)


def tight_rates(rows: list[dict], calibration: Path) -> list[dict]:
    """For the tight one-sided checks of each kind, pooled: the rejection counts the calibration
    measured at its levels, those of Student's t at each check's measured offset with no skew
    ("nominal"), and those the first-order expansion predicts for its g and n at that offset."""
    if not calibration.exists():
        return []
    measured = {(c["group"], c["label"]): c for c in json.loads(calibration.read_text())["checks"]}
    out = []
    for kind in ("upper", "lower"):
        near = [(r, measured[r["group"], r["label"]]) for r in tight(rows)
                if r["kind"] == kind and (r["group"], r["label"]) in measured]
        for level in (0.1, 0.05, 0.01):
            first_order = sum(c["seeds"] * failing_tail(kind, r["skew"], r["n"], level, c["mean_t"]) for r, c in near)
            draws = sum(c["seeds"] for _, c in near)
            nominal = sum(c["seeds"] * failing_tail(kind, 0.0, r["n"], level, c["mean_t"]) for r, c in near)
            out.append({"kind": kind, "checks": len(near), "level": level, "draws": draws, "nominal": nominal,
                        "measured": sum(c[f"fail_{level:g}"] for _, c in near), "first_order": first_order})
    return out


def corrected_rates(rows: list[dict], corrected: Path) -> list[dict]:
    """The tight upper-bound checks again, on a calibration run that recorded the checks'
    skew-corrected t (``calibration.py`` with this code): its counts by the corrected t and by the
    plain t of the same draws, beside Student's t at each check's measured offset with no skew."""
    if not corrected.exists():
        return []
    measured = {(c["group"], c["label"]): c for c in json.loads(corrected.read_text())["checks"]}
    near = [(r, measured[r["group"], r["label"]]) for r in tight(rows)
            if r["kind"] == "upper" and measured.get((r["group"], r["label"]), {}).get("skew_corrected")]
    return [{"level": level, "checks": len(near), "draws": sum(c["seeds"] for _, c in near),
             "corrected": sum(c[f"fail_{level:g}"] for _, c in near),
             "plain": sum(c[f"plain_fail_{level:g}"] for _, c in near),
             "nominal": sum(c["seeds"] * failing_tail("upper", 0.0, r["n"], level, c["mean_t"]) for r, c in near)}
            for level in (0.1, 0.05, 0.01)]


def markdown(rows: list[dict], fit: dict, seed: int) -> str:
    match = [r for r in rows if r["kind"] == "match"]
    near = tight(rows)
    lines = ["# Skew of the checks' terms", "",
             f"One draw (seed {seed}) of every parameter of every group of `tests/match_checks.py`; "
             "`scripts/measure_term_skew.py` (its docstring has the formulas). Predicted mean t = −g/(2√n); "
             f"tail ratios: the first-order Edgeworth tail over its nominal {rows[0]['level']:.1e} (the tests' "
             "one-sided level), on the low side (estimate too low) and the high side. Measured mean t: "
             "`nox -s calibration`'s, ± its se.", ""]
    if fit:
        lines += [f"- Match checks: observed mean t against predicted over {fit['checks']} checks, weighted by "
                  f"1/var: slope {fit['slope']:.2f} ± {fit['slope_se']:.2f} (1 if skew alone moves the mean t). "
                  f"χ² of the mean t's about 0: {fit['chi2_zero']:.1f} on {fit['dof']} (p = {fit['p_zero']:.2g}); "
                  f"about the fitted prediction: {fit['chi2_skew']:.1f} on {fit['dof'] - 1} "
                  f"(p = {fit['p_skew_fit']:.2g}).",
                  f"- One-sided checks within one se of their truth (mean |t| < 1): {len(near)}; first-order ratio "
                  "of their failing tail to nominal: "
                  + (f"median {np.median([failing_ratio(r) for r in near]):.2f}, largest "
                     f"{max(failing_ratio(r) for r in near):.2f}." if near else "none.")]
        lines += [f"- The {p['checks']} tight {p['kind']}-bound checks, pooled, at {p['level']:g} "
                  f"({p['draws']:,} draws): {p['measured']} rejections measured; at their measured offsets, "
                  f"{p['nominal']:.0f} without skew and {p['first_order']:.0f} with its first-order term."
                  for p in fit.get("tight_rates", [])]
        lines += [f"- Judged by the skew-corrected t (`corrected/`, the same draws' first seeds), the "
                  f"{p['checks']} tight upper-bound checks at {p['level']:g} ({p['draws']:,} draws): "
                  f"{p['corrected']} rejections, against {p['plain']} by the plain t and {p['nominal']:.0f} for "
                  "Student's t without skew."
                  for p in fit.get("corrected_rates", [])]
        lines += [""]
    lines += ["## Match checks", "",
              "| check | n | skew g | excess kurtosis | predicted mean t | measured mean t | low tail × "
              "| high tail × |",
              "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for r in match:
        seen = f"{r['mean_t']:+.3f} ± {r['mean_t_se']:.3f}" if "mean_t" in r else "—"
        lines.append(f"| {r['label']} | {r['n']:,} | {r['skew']:+.2f} | {r['excess_kurtosis']:.1f} | "
                     f"{r['predicted_mean_t']:+.3f} | {seen} | {r['lower_tail_ratio']:.2f} | "
                     f"{r['upper_tail_ratio']:.2f} |")
    lines += ["", "## One-sided checks within one se of their truth", "",
              "| check | kind | n | skew g | measured mean t | failing tail × |",
              "| --- | --- | ---: | ---: | --- | ---: |"]
    for r in near:
        lines.append(f"| {r['label']} | {r['kind']} | {r['n']:,} | {r['skew']:+.2f} | {r['mean_t']:+.3f} ± "
                     f"{r['mean_t_se']:.3f} | {failing_ratio(r):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="reports/calibration", help="folder (reads calibration.json there)")
    parser.add_argument("--seed", type=int, default=20261128, help="the one seed drawn for every parameter")
    args = parser.parse_args(argv)
    out = Path(args.out)
    rows = measure(args.seed)
    fit = compare(rows, out / "calibration.json")
    if fit:
        fit["tight_rates"] = tight_rates(rows, out / "calibration.json")
        fit["corrected_rates"] = corrected_rates(rows, out / "corrected" / "calibration.json")
    fileio.write_json(out / "skew.json", fileio.finite_or_none({"seed": args.seed, "fit": fit, "checks": rows}))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    fileio.write_csv(out / "skew.csv", keys, [[r.get(k) for k in keys] for r in rows])
    fileio.write_text(out / "skew.md", markdown(rows, fit, args.seed))
    print(markdown(rows, fit, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
