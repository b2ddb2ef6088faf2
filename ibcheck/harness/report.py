"""The bound-tightness report of ``ibcheck validate``.

``rows`` turns a judged result into one row per estimate; those rows, and nothing
else, feed the JSON (``to_json``), the CSVs, the Markdown report, the terminal
table and the figures (``ibcheck.harness.figures``). Every file is written atomically.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ibcheck import fileio, stats
from ibcheck.estimators import registry
from ibcheck.harness import bracket, coverage, figures, verdicts
from ibcheck.harness.validate import Judged, ValidationResult
from ibcheck.interface import ReportRow

# The fields of one estimate in --json (case-file.md, plus params and seed).
JSON_FIELDS = ["estimator", "target", "kind", "value", "stderr", "n", "expected", "best", "gap", "valid",
               "matches_expected", "seconds", "params", "seed", "error"]
# The parameters that tell repeated runs of one estimator apart (the first one it has).
DISTINGUISHING = ("T", "K", "N")


def _param(r: Judged) -> str:
    est = r.estimate
    if est.estimator == registry.EMPIRICAL.name:
        return ""
    return next((f"{k}={est.params[k]}" for k in DISTINGUISHING if k in est.params), "")


def half_width(r: Judged, level: float) -> float:
    """Half-width of the two-sided interval at the per-test level the tests use."""
    return stats.quantile(level / 2, r.estimate.n) * stats.combined_se(r.estimate.stderr, r.truth_se)


def rows(result: ValidationResult) -> list[ReportRow]:
    """One row per estimate, with every field any output shows."""
    out: list[ReportRow] = []
    for c in result.cases:
        for r in c.rows:
            est, param = r.estimate, _param(r)
            name = est.estimator if est.target == "I_XZ" else f"{est.estimator} [I(Y;Z)]"
            out.append({"case": c.name, "estimator": est.estimator, "label": f"{name} {param}".strip(),
                        "target": est.target, "kind": est.kind, "param": param, "q": est.params.get("q", ""),
                        "value": est.value,
                        "stderr": est.stderr, "n": est.n, "ci_half_width": half_width(r, result.test_alpha),
                        "exact": r.truth, "exact_se": r.truth_se, "gap": r.gap, "expected": r.outcome.expected,
                        "best": r.outcome.best, "valid": r.valid, "matches_expected": r.matches_expected,
                        "seconds": est.seconds, "params": est.params, "seed": est.seed, "error": r.error,
                        "failed": r.valid is False or r.matches_expected is False or r.covers is False
                        or r.error is not None,
                        "drawable": all(math.isfinite(v) for v in (est.value, est.stderr, r.gap)),
                        "coverage": r.coverage})
    return out


def to_json(result: ValidationResult, table: list[ReportRow] | None = None) -> dict:
    """The ``--json`` document of case-file.md, plus each estimate's params and seed and the
    run's tests, levels, seed, device, dtype and seconds. Non-finite numbers become null."""
    table = rows(result) if table is None else table
    cases = []
    for c in result.cases:
        ex = c.exact
        cases.append({"name": c.name,
                      "exact": {"I_XZ": ex.I_XZ, "I_XZ_se": ex.I_XZ_se, "I_YZ": ex.I_YZ, "I_YZ_se": ex.I_YZ_se},
                      "estimates": [_estimate_json(row) for row in table if row["case"] == c.name],
                      "bracket": bracket.case_bracket(figures.by_case(table, c.name)), "q_fits": c.q_fits})
    return fileio.finite_or_none({"alpha": result.alpha, "passed": result.passed, "test_alpha": result.test_alpha,
                                  "tests": result.tests, "seed": result.seed, "device": result.device,
                                  "dtype": result.dtype, "seconds": result.seconds, "cases": cases})


def _estimate_json(row: ReportRow) -> dict[str, Any]:
    """One estimate's JSON: ``JSON_FIELDS``, and ``coverage`` where the estimator gave intervals."""
    fields = _fields(row, JSON_FIELDS)
    return fields if row["coverage"] is None else {**fields, "coverage": row["coverage"]}


def _fmt(value) -> str:
    return "" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))


def _mark(flag, yes: str = "yes", no: str = "**NO**", none: str = "") -> str:
    return none if flag is None else (yes if flag else no)


def _status_line(result: ValidationResult, table: list[ReportRow]) -> str:
    return verdicts.status_line(result.passed, result.tests, table, result.alpha, result.test_alpha)


def terminal_table(result: ValidationResult, table: list[ReportRow]) -> str:
    head = f"{'case':<22} {'estimator':<24} {'value':>10} {'± se':>8} {'exact':>9} {'gap':>9}  valid  match"
    lines = [head, "-" * len(head)]
    for row in table:
        flags = [_mark(row[k], " yes ", " NO  ", "  -  ") for k in ("valid", "matches_expected")]
        lines.append(f"{row['case'][:22]:<22} {row['label'][:24]:<24} {row['value']:>10.4f} {row['stderr']:>8.4f} "
                     f"{row['exact']:>9.4f} {row['gap']:>+9.4f}  {flags[0]}  {flags[1]}"
                     + (f"  ({row['error']})" if row["error"] else ""))
    lines += coverage.terminal_lines(table)
    if _has_builtin(table):  # a run of the user's estimators alone has no bracket to show
        lines += [_bracket_line(c.name, bracket.case_bracket(figures.by_case(table, c.name))) for c in result.cases]
    lines += [f"q {c.name}: {q_summary(c.q_fits)}" for c in result.cases if c.q_fits]
    lines += [f"verdict {line}" for line in verdicts.estimator_lines(table)]
    lines.append(f"{_status_line(result, table)}, {result.seconds:.1f} s on {result.device}")
    return "\n".join(lines)


def q_summary(fits: dict[str, dict]) -> str:
    """How each q was trained, in a line: its objective, steps, and whether it converged or hit the cap."""
    parts = []
    for objective, fit in fits.items():
        state = "converged" if fit.get("converged") else ("CAPPED" if fit.get("capped") else "not converged")
        parts.append(f"{objective} {fit.get('steps_used')} steps, {state}, held-out {_fmt(fit.get('heldout'))}")
    return "; ".join(parts)


def _bracket_line(case: str, found: dict | None) -> str:
    if found is None:
        return f"bracket {case}: none (no trusted lower or upper bound)"
    low, high = found["lower"], found["upper"]
    return (f"bracket {case}: [{low['value']:.4f} ({low['estimator']}), {high['value']:.4f} ({high['estimator']})], "
            f"width {found['width']:.4f}")


def _has_builtin(table: Sequence[ReportRow]) -> bool:
    return any(row["estimator"] in registry.SPECS for row in table)


def markdown(result: ValidationResult, table: list[ReportRow]) -> str:
    shown = figures.figures(table)
    lines = [
        "# ibcheck validate: bound-tightness report", "",
        f"**{_status_line(result, table)}** (a family-wise false-failure budget, split evenly over the run's "
        f"tests: Bonferroni); seed {result.seed}; device {result.device}, {result.dtype}; {result.seconds:.1f} s.",
        "", *[f"- {line}" for line in verdicts.estimator_lines(table)], "",
        "Every number is in nats. `gap` = estimate - exact. `valid` is the one-sided test of bounds.md "
        "section 5 (an upper bound fails only if estimate + q se < exact; a lower bound only if "
        "estimate - q se > exact); `match` is the two-sided test against the analytic expectation at the "
        "parameters used (blank where none exists). `empirical` is exact for its own finite data sets; "
        "against the population its I(X;Z) is a lower bound in expectation, tested as one, and its "
        "I(Y;Z) is reported only (kind `estimate`).", "",
        *[line for f in shown for line in (f"![{f.title}]({f.stem}.png)", "")],
        "Numbers behind the figures: " + ", ".join(f"`{f.stem}.csv`" for f in shown)
        + "; everything in `results.json`.", "",
        *(_bracket_table(result, table) if _has_builtin(table) else []),
        *coverage.markdown(table, result.test_alpha),
    ]
    for c in result.cases:
        ex = c.exact
        yz = "" if ex.I_YZ is None else f", I(Y;Z) = {ex.I_YZ:.4f}" + (f" ± {ex.I_YZ_se:.1e}" if ex.I_YZ_se else "")
        xz_se = f" ± {ex.I_XZ_se:.1e}" if ex.I_XZ_se else ""
        q_line = [f"q(z_v|z) (column q): {q_summary(c.q_fits)}.", ""] if c.q_fits else []
        lines += [f"## {c.name}", "", f"I(X;Z) = {ex.I_XZ:.4f}{xz_se}{yz}", "", *q_line,
                  "| estimator | q | kind | value ± se | expected | best q | gap | valid | match | s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in figures.by_case(table, c.name):
            lines.append(f"| {row['label']} | {row['q']} | {row['kind']} | {row['value']:.4f} ± {row['stderr']:.4f} | "
                         f"{_fmt(row['expected'])} | {_fmt(row['best'])} | {row['gap']:+.4f} | {_mark(row['valid'])} | "
                         f"{_mark(row['matches_expected'])} | {row['seconds']:.2f} |")
        errors = [f"- **{row['label']} failed**: {row['error']}." for row in figures.by_case(table, c.name)
                  if row["error"]]
        lines += ([""] + errors if errors else []) + [""]
    return "\n".join(lines)


def _bracket_table(result: ValidationResult, table: list[ReportRow]) -> list[str]:
    """The bracket of every case: the largest trusted lower bound and the smallest trusted upper one."""
    lines = ["## The bracket on I(X;Z)", "",
             "Per case, the largest lower bound and the smallest upper bound among the estimates that passed "
             "their one-sided test, and the width between them. The ends are extremes of noisy estimates: "
             "where both are tight, a slightly negative width means they crossed within their noise.", "",
             "The last column is the annealed pair alone (teacher_rais, teacher_ais at their largest T, bounds.md "
             "section 3c): its width is paired over the z both ends share, with that pairing's se.", "",
             "| case | I(X;Z) | lower bound | upper bound | width | annealed pair: T, width ± se, holds I |",
             "| --- | --- | --- | --- | --- | --- |"]
    for c in result.cases:
        found = bracket.case_bracket(figures.by_case(table, c.name))
        if found is None:
            lines.append(f"| {c.name} | {c.exact.I_XZ:.4f} | – | – | – | – |")
            continue
        low, high, pair = found["lower"], found["upper"], found["annealed"]
        annealed = "–" if pair is None or pair["width"] is None else (
            f"T = {pair['T']}: {pair['width']:.4f} ± {pair['width_se']:.4f}, {_mark(pair['contains_exact'])}")
        lines.append(f"| {c.name} | {c.exact.I_XZ:.4f} | {low['value']:.4f} ± {low['stderr']:.4f} "
                     f"({low['estimator']}) | {high['value']:.4f} ± {high['stderr']:.4f} ({high['estimator']}) | "
                     f"{found['width']:.4f} | {annealed} |")
    return lines + [""]


def _fields(row: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    return {f: row[f] for f in fields}


def _csv(path: Path, fields: list[str], table: Sequence[Mapping[str, Any]]) -> None:
    fileio.write_csv(path, fields, [[row[f] for f in fields] for row in table])


REPORT_FILES = ("results.json", "estimates.csv", "iw_vs_K.csv", "batch_vs_N.csv", "bracket_vs_K.csv",
                "estimates.png", "iw_vs_K.png", "batch_vs_N.png", "bracket_vs_K.png", *coverage.FILES,
                "report.md")  # report.md last: the CLI names it


def check_report_folder(out: str | Path) -> None:
    """The report replaces ``out`` whole: refuse a folder that holds anything else."""
    fileio.refuse_foreign(out, REPORT_FILES, f"--out {out}", "a validate report")


def write_report(result: ValidationResult, out: str | Path, table: list[ReportRow] | None = None) -> list[Path]:
    """Write report.md, results.json, the figures that apply (``figures``) and their CSVs into a new
    folder beside ``out``, then swap it in whole (``fileio.replacing_folder``): at every instant ``out``
    holds the previous report or the new one, complete, never a mix. Returns the paths as in ``out``."""
    out = Path(out)
    table = rows(result) if table is None else table
    with fileio.replacing_folder(out) as staging:
        _write_files(result, staging, table)
        written = [name for name in REPORT_FILES if (staging / name).exists()]
    return [out / name for name in written]


def _write_files(result: ValidationResult, out: Path, table: list[ReportRow]) -> None:
    fileio.write_json(out / "results.json", to_json(result, table))
    for figure in figures.figures(table):
        _csv(out / f"{figure.stem}.csv", figure.fields, figure.rows)
        fileio.save_figure(figure.plot(result, table), out / f"{figure.stem}.png")
    coverage.write(out, table)
    fileio.write_text(out / "report.md", markdown(result, table))
