"""Whether a user's intervals hold the truth as often as they claim (issue 21).

An estimator may return an interval with each estimate: ``(estimate, low, high)`` from Python, or
``"interval"`` in an external command's output, at a nominal ``level``. Per case, ibcheck counts
the calls whose interval holds the exact value, and tests under-coverage with the exact
binomial test ``stats.undercoverage_p`` at the run's per-test level (one test per case, in the
run's Bonferroni budget). An interval with an open end (-inf or inf) is one-sided and is judged
as such: it holds the truth when its one finite end is on the right side of it. Intervals wider
than claimed pass; ``fraction`` and ``mean_width`` show how much wider.

Where the truth is itself a Monte Carlo value (its se is reported beside it), the count uses its
point value; such truths are at least 100 times more precise than a call's interval on the
built-in cases.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.lines import Line2D

from ibcheck import fileio, stats
from ibcheck.interface import Coverage, ReportRow

CSV_FIELDS = ["case", "estimator", "level", "sides", "calls", "contained", "fraction", "fraction_low",
              "fraction_high", "p_value", "covers", "mean_width"]
FILES = ("coverage.csv", "coverage.png")


@dataclasses.dataclass(frozen=True)
class Intervals:
    """The intervals of one estimator's calls on one case: ``lows``, ``highs`` (nats, -inf or inf
    for an open end), all of nominal ``level`` in (0, 1)."""

    level: float
    lows: tuple[float, ...]
    highs: tuple[float, ...]

    @property
    def sides(self) -> str:
        kinds = {"two-sided" if math.isfinite(lo) and math.isfinite(hi) else ("lower" if math.isfinite(lo) else
                 "upper") for lo, hi in zip(self.lows, self.highs)}
        return kinds.pop() if len(kinds) == 1 else "mixed"


def judged(intervals: Intervals, truth: float, test_level: float) -> Coverage:
    """The coverage of ``intervals`` of ``truth`` and its verdict at ``test_level``."""
    calls = len(intervals.lows)
    contained = sum(lo <= truth <= hi for lo, hi in zip(intervals.lows, intervals.highs))
    p_value = stats.undercoverage_p(contained, calls, intervals.level)
    widths = [hi - lo for lo, hi in zip(intervals.lows, intervals.highs) if math.isfinite(hi - lo)]
    return {"level": intervals.level, "calls": calls, "contained": contained, "fraction": contained / calls,
            "fraction_ci": list(stats.clopper_pearson(contained, calls)), "p_value": p_value,
            "covers": p_value >= test_level, "sides": intervals.sides,
            "mean_width": sum(widths) / len(widths) if widths else None}


def rows(table: Sequence[ReportRow]) -> list[ReportRow]:
    return [row for row in table if row["coverage"] is not None]


def csv_rows(table: Sequence[ReportRow]) -> list[list]:
    out = []
    for row in rows(table):
        cov = row["coverage"]
        assert cov is not None
        out.append([row["case"], row["estimator"], cov["level"], cov["sides"], cov["calls"], cov["contained"],
                    cov["fraction"], *cov["fraction_ci"], cov["p_value"], cov["covers"], cov["mean_width"]])
    return out


def summary(row: ReportRow) -> str:
    """One line: "17 of 20 intervals hold I (85%, nominal 90%, two-sided), p = 0.32"."""
    cov = row["coverage"]
    assert cov is not None
    width = "" if cov["mean_width"] is None else f", mean width {cov['mean_width']:.4g}"
    return (f"{cov['contained']} of {cov['calls']} intervals hold the truth ({100 * cov['fraction']:.0f}%, nominal "
            f"{100 * cov['level']:g}%, {cov['sides']}{width}), p = {cov['p_value']:.3g}")


def terminal_lines(table: Sequence[ReportRow]) -> list[str]:
    return [f"coverage {row['case']} {row['label']}: {summary(row)}: {'ok' if row['coverage']['covers'] else 'TOO LOW'}"
            for row in rows(table) if row["coverage"] is not None]


def markdown(table: Sequence[ReportRow], test_level: float) -> list[str]:
    """The coverage section of report.md (nothing where no estimator gave intervals)."""
    found = rows(table)
    if not found:
        return []
    lines = ["## Interval coverage", "",
             "The fraction of each estimator's intervals that held the exact value, against their nominal level. "
             f"`covers` is the exact one-sided binomial test of under-coverage at the per-test level {test_level:.2e}; "
             "wider intervals than claimed pass. The 95% Clopper-Pearson interval of the fraction is beside it.", "",
             "![coverage](coverage.png)", "",
             "| case | estimator | nominal | sides | held | fraction (95% CI) | p | covers | mean width |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in found:
        cov = row["coverage"]
        assert cov is not None
        low, high = cov["fraction_ci"]
        width = "–" if cov["mean_width"] is None else f"{cov['mean_width']:.4f}"
        lines.append(f"| {row['case']} | {row['label']} | {cov['level']:g} | {cov['sides']} | {cov['contained']} of "
                     f"{cov['calls']} | {cov['fraction']:.2f} ({low:.2f}, {high:.2f}) | {cov['p_value']:.3g} | "
                     f"{'yes' if cov['covers'] else '**NO**'} | {width} |")
    return lines + [""]


def plot(table: Sequence[ReportRow]):
    """Per estimator and case, the fraction of intervals holding the truth with its 95% interval,
    beside the nominal level (a red cross: under-coverage flagged)."""
    found = rows(table)
    fig, ax = fileio.figure(figsize=(8.0, 0.32 * len(found) + 1.6))
    for i, row in enumerate(found):
        cov = row["coverage"]
        assert cov is not None
        low, high = cov["fraction_ci"]
        colour = "#2471a3" if cov["covers"] else "#c0392b"
        ax.errorbar(cov["fraction"], i, xerr=[[cov["fraction"] - low], [high - cov["fraction"]]],
                    fmt="o" if cov["covers"] else "X", color=colour, capsize=2, ms=5)
        ax.plot([cov["level"]] * 2, [i - 0.4, i + 0.4], color="black", lw=1.5)
    ax.set_yticks(range(len(found)), [f"{row['case']}: {row['label']}"[:60] for row in found], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("fraction of intervals that hold the exact value")
    ax.set_title("Interval coverage against the nominal level (bars: 95% Clopper-Pearson)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=[Line2D([], [], color="black", lw=1.5, label="nominal level"),
                       Line2D([], [], color="#2471a3", marker="o", ls="", label="covers"),
                       Line2D([], [], color="#c0392b", marker="X", ls="", label="under-covers (flagged)")],
              fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def write(out: Path, table: Sequence[ReportRow]) -> None:
    """coverage.csv and coverage.png into ``out``, where any estimator gave intervals."""
    if not rows(table):
        return
    fileio.write_csv(out / "coverage.csv", CSV_FIELDS, csv_rows(table))
    fileio.save_figure(plot(table), out / "coverage.png")
