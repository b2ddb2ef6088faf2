"""``ibcheck study-report``: a study's figures, claims table, population-bracket summary and report.md,
from its folders alone.

Everything is recomputed from ``study.json`` and the cells' metrics, so anyone can
regenerate the report from the committed spec. The report is written into a staging folder
beside ``--out`` that then replaces it whole (``fileio.replacing_folder``), so ``--out`` holds the
previous report or the new one, never a mix; a folder holding anything else is refused.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np

from ibcheck import fileio
from ibcheck.interface import InputError
from ibcheck.study import claims as claims_mod
from ibcheck.study import figures, population
from ibcheck.study.results import (
    EXACT,
    PAPER_MIN,
    POPULATION,
    RunResult,
    init_label,
    left_out,
    left_out_text,
    load_study,
    seconds,
    usable,
)

VERDICT_ORDER = ("reproduced", "not reproduced", "inconclusive")
# What a study report folder holds: the figures with their numbers, the claims and report.md.
REPORT_FILES = (*(f"{stem}.{ext}" for stem, *_ in (*figures.FIGURES, population.FIGURE) for ext in ("png", "csv")),
                "claims.json", "claims.md", "report.md")
# Written into a report folder by other tools (scripts/measure_ray_overhead.py): kept in the new report.
KEPT = ("ray_overhead.json",)


def _number(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _runs(row: dict) -> str:
    undefined = row.get("undefined", 0)
    return f"{row['n']} (+{undefined} undefined)" if undefined else str(row["n"])


def _decide(row: dict) -> str:
    """What would decide an inconclusive row."""
    if row["verdict"] != "inconclusive":
        return ""
    if row["n"] < 2:
        return "undefined in every run" if row.get("undefined") and not row["n"] else "needs ≥ 2 runs"
    if row.get("bracket_too_wide"):
        return f"a bracket narrower than {2 * abs(row['mean'] - row['threshold']):.2g} nats"
    if row["runs_to_decide"]:
        return f"{row['runs_to_decide']} runs"
    if row["mean"] != row["threshold"]:  # a mean this close to its threshold: beyond the search
        return f"more than {claims_mod.MAX_RUNS:,} runs"
    return "no number of runs"


SMOKE_NOTE = ("**This is a smoke run, not an answer.** The `smoke` preset trains 3 epochs on small networks with "
              "small estimates to check that the machinery works end to end; its verdicts say nothing about the "
              "paper's claims. Run `study-small` or `study-paper` (or the committed `reports/`) for those.")


def is_smoke(study: dict) -> bool:
    return study.get("spec", {}).get("preset") == "smoke"


def claims_markdown(result: dict, smoke: bool = False) -> str:
    """The claims table as Markdown, with the method and the verdict counts (and, for a smoke study,
    the warning that it answers nothing)."""
    lines = ["# Claims of Herwana & Kadian, judged over seeds", "", *([SMOKE_NOTE, ""] if smoke else []),
             f"Method: {result['method']} alpha = {result['alpha']}. A rise or fall below "
             f"{result['margin_nats']} nats counts as none. n counts runs (seeds, times the beta values where a "
             f"row pools them); runs where the statistic is undefined (for example no fitting phase) are left "
             f"out and counted beside n.", "",
             "| claim | part | measure | condition | statistic | claimed | n | mean | 95% CI | p | verdict | "
             "runs to decide |", "|" + "---|" * 12]
    for r in result["rows"]:
        ci = "–" if r["ci95"] is None else f"[{_number(r['ci95'][0])}, {_number(r['ci95'][1])}]"
        claimed = f"{'>' if r['side'] == 'above' else '<'} {r['threshold']:.3g}"
        lines.append("| " + " | ".join(_cell(c) for c in (
            r["claim"], r["part"], r["measure"], r["condition"], r["statistic"], claimed, _runs(r), _number(r["mean"]),
            ci, _number(r["p"], 2), f"**{r['verdict']}**", _decide(r))) + " |")
    counts = ", ".join(f"{result['counts'][v]} {v}" for v in VERDICT_ORDER)
    return "\n".join(lines + ["", f"Verdicts: {counts}.", ""])


def _cost(study: dict, runs: list[RunResult]) -> dict:
    """Wall time of the executions, seconds training and estimating, cells per hour."""
    wall = sum(e.get("wall_seconds") or 0.0 for e in study.get("executions", []))
    train = sum(seconds(r, "train") for run in runs for r in run.records)
    estimate = sum(seconds(r, "estimate") for run in runs for r in run.records)
    finished = sum(run.status == "finished" for run in runs)
    return {"wall_seconds": wall, "train_seconds": train, "estimate_seconds": estimate,
            "estimate_over_train": estimate / train if train else None, "cells": len(runs),
            "cells_finished": finished, "cells_per_hour": 3600 * finished / wall if wall else None}


def _nats(value) -> str:
    """A number of nats in a sentence, "–" where there is none or it is not finite."""
    return f"{value:.2f}" if isinstance(value, (int, float)) and math.isfinite(value) else "–"


def _runs_have(count: int) -> str:
    return "1 run has" if count == 1 else f"{count} runs have"


# The points of a curve the findings name: its first value, its largest, its last.
POINTS = (("start", lambda c: c[0]), ("peak", lambda c: np.nanmax(c)), ("end", lambda c: c[-1]))


def _trajectory(runs: list[RunResult], name: str = EXACT) -> str:
    """I(X;Z) by ``name`` (the exact value, or the population bracket's midpoint) at the start, peak
    and end, per initialisation, as a sentence. A run without a finite value at a point (null in
    its record: not finite when measured) is left out of that point's mean and counted."""
    parts = []
    for shift in sorted({r.setting("student.std_shift") for r in runs}, reverse=True):
        chosen = [r for r in runs if r.setting("student.std_shift") == shift and r.tracked()]
        curves = [figures.xz_series(r.records, "I_XZ", name)[1] for r in chosen]
        curves = [c for c in curves if len(c) and not np.isnan(c).all()]
        if not curves:
            continue
        means, gaps = {}, []
        for point, pick in POINTS:
            finite = [v for v in (float(pick(c)) for c in curves) if math.isfinite(v)]
            means[point] = _nats(float(np.mean(finite))) if finite else "–"
            if len(finite) < len(curves):
                gaps.append(f"at the {point} over {len(finite)}, as {_runs_have(len(curves) - len(finite))} "
                            f"no finite value there")
        parts.append(f"with the {init_label(shift)} initialisation it starts at {means['start']}, peaks at "
                     f"{means['peak']} and ends at {means['end']} nats (means over {len(curves)} runs"
                     + "".join(f"; {gap}" for gap in gaps) + ")")
    return "; ".join(parts)


def _paper_over_exact(runs: list[RunResult]) -> str:
    ratios = []
    for r in runs:
        tracked = r.tracked()
        if tracked:
            paper, exact = (tracked[-1]["I_XZ"].get(k, {}).get("value") for k in (PAPER_MIN, EXACT))
            if paper is not None and exact and math.isfinite(paper / exact):
                ratios.append(paper / exact)
    return f"{np.median(ratios):.1f}" if ratios else "–"


def _verdicts_by_claim(result: dict) -> str:
    sentences = []
    for claim in sorted({r["claim"] for r in result["rows"]}):
        rows = [r for r in result["rows"] if r["claim"] == claim]
        counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICT_ORDER}
        exact = [r for r in rows if r["measure"] == "exact" and r["verdict"] != "inconclusive"]
        detail = "; on the exact I(X;Z): " + ", ".join(f"{r['part']} [{r['condition']}] {r['verdict']}"
                                                        for r in exact) if exact else ""
        sentences.append(f"{claim}: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + detail)
    return ". ".join(sentences)


def findings(runs: list[RunResult], result: dict) -> str:
    """The report's paragraph on what the study found, composed from its numbers."""
    trained = [r for r in runs if not r.zero_info]
    ln_n = next((t.get("ln_N") for r in runs for t in r.tracked()[:1]), None)
    population = _trajectory(trained, POPULATION)
    population_text = (f"The midpoint of the annealed bracket on the I(X;Z) of the teacher's model population, "
                       f"which has no ln N ceiling: {population}. ") if population else ""
    text = (f"On the training set (ln N = {_nats(ln_n)} nats), the exact I(X;Z) of the trained (not "
            f"zero-information) cells behaves as follows: {_trajectory(trained) or 'no records'}. "
            + population_text + f"At the last "
            f"record the paper's measure min(vib, teacher_elbo) is {_paper_over_exact(trained)} times the exact "
            f"value (median over cells). "
            f"Verdicts per claim (Holm over {sum(r['p'] is not None for r in result['rows'])} tests, family-wise "
            f"alpha {result['alpha']}): {_verdicts_by_claim(result)}.")
    return text


def _grid_text(study: dict, runs: list[RunResult]) -> list[str]:
    spec = study["spec"]
    seeds = sorted({r.seed for r in runs})
    lines = [f"- preset `{spec.get('preset')}`; base `{json.dumps(spec.get('base', {}))}`"]
    lines += [f"- grid: `{json.dumps(g)}`" for g in spec.get("grid", [])]
    lines.append(f"- {len(runs)} cells, seeds {seeds}; finished: {sum(r.status == 'finished' for r in runs)}, "
                 f"diverged or failed: {sum(r.status in ('diverged', 'failed') for r in runs)}, "
                 f"unfinished: {sum(r.status not in ('finished', 'diverged', 'failed') for r in runs)}")
    left = left_out_text(left_out(runs))
    return lines + ([f"- {left}"] if left else [])


def _cost_text(cost: dict) -> list[str]:
    per_hour = cost["cells_per_hour"]
    ratio = cost["estimate_over_train"]
    return [f"- wall time of `ibcheck study` (all its executions): {cost['wall_seconds'] / 60:.1f} min; "
            f"{cost['cells_finished']} cells finished"
            + (f", {per_hour:.0f} cells per hour" if per_hour else ""),
            f"- summed over cells: training {cost['train_seconds'] / 60:.1f} min, estimating "
            f"{cost['estimate_seconds'] / 60:.1f} min"
            + (f" (estimating / training = {ratio:.2f})" if ratio is not None else "")]


FIGURE_TEXT = (
    ("fig3_zero_info", "Fig. 3: zero information"),
    ("fig4_bounds", "Fig. 4: the bounds and the exact value"),
    ("fig5_info_plane", "Fig. 5: information plane"),
    ("fig6_logdet", "Fig. 6: log-determinant"),
    ("fig7_grad_norm", "Fig. 7: gradient norm (its log-determinant half is Fig. 6)"),
    ("fig8_bracket", "Fig. 8: the annealed population bracket's width and T"),
)


def report_markdown(study: dict, runs: list[RunResult], judged: list[RunResult], result: dict, cost: dict,
                    bracket: dict) -> str:
    """report.md: the grid and the cost of every run, the findings, bracket and figures of the
    ``judged`` runs (``results.usable``), and the claims."""
    bracket_lines = population.summary_markdown(bracket)
    bracket_part = ["## The population bracket", "",
                    f"Paired width of the annealed bracket (teacher_ais - teacher_rais on the same z) over every "
                    f"bracketed record, against the target of {bracket['target']} nats (Fig. 8; numbers per cell "
                    f"and record in fig8_bracket.csv).", "", *bracket_lines] if bracket_lines else []
    lines = ["# Study report", "", *([SMOKE_NOTE, ""] if is_smoke(study) else []), study.get("description", ""), "",
             "## What it found", "", findings(judged, result), "", "## Grid and seeds", "", *_grid_text(study, runs),
             "", "## Cost", "", *_cost_text(cost), "", *bracket_part, "## Claims", "",
             claims_markdown(result).split("\n", 2)[2], "## Figures", ""]
    for stem, title in FIGURE_TEXT:
        lines += [f"### {title}", "", f"![{title}]({stem}.png)", "", f"Numbers: [{stem}.csv]({stem}.csv)", ""]
    return "\n".join(lines)


def check_report_folder(out: str | Path) -> None:
    """The report replaces ``out`` whole: refuse a folder that holds anything else."""
    fileio.refuse_foreign(out, REPORT_FILES + KEPT, f"--out {out}", "a study report")


def write(study_folder: Path, out: Path, alpha: float = 0.05) -> list[Path]:
    """Figures (PNG + CSV), claims.json, claims.md and report.md of a study, in place of the folder
    ``out`` (refused if it holds anything else; ``KEPT`` files in it are carried over)."""
    out = Path(out)
    check_report_folder(out)
    study, runs = load_study(study_folder)
    judged = [r for r in runs if usable(r)]  # what the claims judge, the figures and findings show
    if not any(r.records for r in judged):
        raise InputError(f"{study_folder}: no cell has finished yet ({len(runs)} cells); run ibcheck study first, "
                         f"or ibcheck plot CELL_FOLDER to see a run in progress")
    result = claims_mod.claims(runs, alpha)
    cost = _cost(study, runs)  # what every execution spent, finished or not
    bracket = population.summary(judged)
    with fileio.replacing_folder(out) as staging:
        written = figures.write_figures(judged, staging, (population.FIGURE,))
        fileio.write_json(staging / "claims.json", {**result, "cost": cost, "bracket": bracket,
                                                    "spec": study["spec"]})
        fileio.write_text(staging / "claims.md", claims_markdown(result, smoke=is_smoke(study)))
        fileio.write_text(staging / "report.md", report_markdown(study, runs, judged, result, cost, bracket))
        for name in KEPT:
            if (out / name).is_file():
                shutil.copy2(out / name, staging / name)
    return [out / p.name for p in written] + [out / "claims.json", out / "claims.md", out / "report.md"]
