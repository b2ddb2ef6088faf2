"""The figures of the ``ibcheck validate`` report, each drawn from the report's rows (``report.rows``)
and written beside the CSV of the numbers it shows: the estimates against the exact values, the
teacher_iw gap against K, the batch bounds against N and the bracket's width against K, T and N.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from matplotlib.lines import Line2D

from ibcheck import fileio
from ibcheck.estimators import registry
from ibcheck.harness import bracket
from ibcheck.harness.validate import ValidationResult
from ibcheck.interface import ReportRow

# the columns of estimates.csv: one row per estimate, as the estimates figure draws them
CSV_FIELDS = ["case", "estimator", "target", "kind", "param", "q", "value", "stderr", "n", "ci_half_width",
              "exact", "exact_se", "gap", "expected", "best", "valid", "matches_expected", "seconds", "error"]
COLOURS = {"upper": "#c0392b", "lower": "#2471a3", "exact": "#7f8c8d", "estimate": "#7f8c8d", "point": "#7d3c98"}


def by_case(table: list[ReportRow], case: str) -> list[ReportRow]:
    return [row for row in table if row["case"] == case]


def _drawable(rows_: list[ReportRow]) -> tuple[list[ReportRow], str]:
    """The rows a figure can draw, and a note naming how many it leaves out (not finite)."""
    keep = [row for row in rows_ if row["drawable"]]
    left = len(rows_) - len(keep)
    return keep, (f" [{left} not finite, not drawn]" if left else "")


def _grid(count: int, width: float = 5.2, height: float = 3.2):
    cols = min(3, count)
    n_rows = math.ceil(count / cols)
    fig, axes = fileio.figure(n_rows, cols, figsize=(width * cols, height * n_rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def _gap_axis(ax, case_rows: list[ReportRow]) -> None:
    """Symmetric-log x axis whose linear part spans the typical interval, with every bar in view."""
    widths = sorted(row["ci_half_width"] for row in case_rows)
    positive = [w for w in widths if w > 0] or [1e-3]
    ax.set_xscale("symlog", linthresh=min(max(positive[len(positive) // 2], 1e-3), 1.0), linscale=1.5)
    lo = min(min(row["gap"] - row["ci_half_width"] for row in case_rows), 0.0)
    hi = max(max(row["gap"] + row["ci_half_width"] for row in case_rows), 0.0)
    pad = 0.15 * max(hi - lo, 1e-3)
    ax.set_xlim(lo - pad, hi + pad)


def plot_estimates(result: ValidationResult, table: list[ReportRow]):
    """One panel per case: each estimate's gap to the exact value with its test interval."""
    most = max(len(by_case(table, c.name)) for c in result.cases)
    fig, axes = _grid(len(result.cases), height=0.24 * most + 1.0)
    everything, _ = _drawable(table)  # one x scale for every panel, so that the cases can be compared
    for ax, c in zip(axes, result.cases):
        case_rows, note = _drawable(by_case(table, c.name))
        if not case_rows:
            ax.set_title(f"{c.name}{note}", fontsize=9)
            ax.text(0.5, 0.5, "no finite estimate to draw", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        for i, row in enumerate(case_rows):
            failed = row["failed"]
            ax.errorbar(row["gap"], i, xerr=row["ci_half_width"], fmt="X" if failed else "o",
                        color="black" if failed else COLOURS[row["kind"]], ms=7 if failed else 4, capsize=2)
        ax.axvline(0.0, color="black", lw=1)
        ax.set_yticks(range(len(case_rows)), [row["label"] for row in case_rows], fontsize=7)
        ax.invert_yaxis()
        _gap_axis(ax, everything)
        ax.set_title(f"{c.name}  (I(X;Z) = {c.exact.I_XZ:.3f}){note}", fontsize=9)
        ax.set_xlabel("estimate - exact  [nats, symmetric log scale]", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    kinds = {"upper": "upper bound", "lower": "lower bound", "estimate": "reported only"}
    if any(row["kind"] == "point" for row in table):  # a user's point estimator, tested two-sided
        kinds["point"] = "point estimate"
    handles = [Line2D([], [], color=COLOURS[k], marker="o", ls="", label=text) for k, text in kinds.items()]
    handles.append(Line2D([], [], color="black", marker="X", ls="", label="test failed"))
    fig.suptitle(f"Estimates against the exact value, one scale for all cases (bars: two-sided interval at the "
                 f"per-test level {result.test_alpha:.1e})", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.975), ncol=4, frameon=False)
    return fig


def iw_rows(table: list[ReportRow]) -> list[ReportRow]:
    return [row for row in table if row["estimator"] == registry.TEACHER_IW.name]


def plot_iw(result: ValidationResult, table: list[ReportRow]):
    """teacher_iw gap against K, one line per case; a gap reaching 0 means the bound closed."""
    fig, ax = fileio.figure(figsize=(8.0, 4.4))
    for c in result.cases:
        case_rows, note = _drawable(iw_rows(by_case(table, c.name)))
        if case_rows:
            ax.errorbar([row["params"]["K"] for row in case_rows], [row["gap"] for row in case_rows],
                        yerr=[row["ci_half_width"] for row in case_rows], marker="o", ms=3, capsize=2,
                        label=c.name + note)
    ax.axhline(0.0, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel("K (importance samples)")
    ax.set_ylabel(f"{registry.TEACHER_IW.name} - I(X;Z)  [nats]")
    ax.set_title("Importance-weighted teacher bound: gap against K")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


BATCH_STYLE = {registry.LOO.name: "v-", registry.NCE.name: "^-", registry.EMPIRICAL.name: "s"}


def batch_rows(table: list[ReportRow]) -> list[ReportRow]:
    return [row for row in table if row["estimator"] in BATCH_STYLE and row["target"] == "I_XZ"]


def plot_batch(result: ValidationResult, table: list[ReportRow]):
    """loo (upper) and nce (lower) against batch size N per case, with I(X;Z) and ln N."""
    fig, axes = _grid(len(result.cases), width=4.4, height=3.2)
    for ax, c in zip(axes, result.cases):
        case_rows, note = _drawable(batch_rows(by_case(table, c.name)))
        for name, style in BATCH_STYLE.items():
            mine = [row for row in case_rows if row["estimator"] == name]
            if mine:
                ax.errorbar([row["params"]["N"] for row in mine], [row["value"] for row in mine],
                            yerr=[row["ci_half_width"] for row in mine], fmt=style, ms=4, capsize=2,
                            color=COLOURS[mine[0]["kind"]], label=name)
        Ns = sorted({row["params"]["N"] for row in case_rows})
        if Ns:
            ax.plot(Ns, [math.log(N) for N in Ns], ":", color="gray", label="ln N")
        ax.axhline(c.exact.I_XZ, color="black", lw=1, label="I(X;Z)")
        ax.set_xscale("log", base=2)
        ax.set_title(c.name + note, fontsize=9)
        ax.set_xlabel("N", fontsize=8)
        ax.set_ylabel("nats", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.suptitle("Batch bounds against N: loo from above, nce from below (capped at ln N)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_widths(table: list[ReportRow]):
    """Width of each family's upper - lower end against its parameter (K, T, N), one line per case."""
    data = bracket.widths(table)
    # a family no case ran (teacher_iw_data where every data prior is the model prior) gets no panel
    families = [f for f in bracket.FAMILIES if any(r["upper"] == f[0] for r in data)] or list(bracket.FAMILIES[:1])
    fig, axes = fileio.figure(1, len(families), figsize=(3.8 * len(families) + 3.6, 4.2), sharey=True,
                              squeeze=False)
    axes = axes[0]
    # one colour per case in every panel, whichever families it has
    colours = {case: f"C{i % 10}" for i, case in enumerate(dict.fromkeys(r["case"] for r in table))}
    for ax, (upper, lower, param) in zip(axes, families):
        for case in colours:
            mine = [r for r in data if r["case"] == case and r["upper"] == upper and r["value"] > 0]
            if mine:
                ax.plot([r["value"] for r in mine], [r["width"] for r in mine], "o-", ms=3, label=case,
                        color=colours[case])
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=0.01)
        ax.axhline(0.0, color="black", lw=1)
        ax.set_xlabel(f"{param}")
        ax.set_title(f"{upper} - {lower} against {param}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("width of the bracket [nats]")
    # the legend of every case, beside the last panel (the first family has them all)
    handles = [Line2D([], [], color=colour, marker="o", ms=3, label=case) for case, colour in colours.items()
               if any(r["case"] == case for r in data)]
    if handles:
        axes[-1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("How fast each pair of bounds closes on I(X;Z) (K = 0 of teacher_riw is left out: no teacher_iw "
                 "at K = 0)", fontsize=9)
    fig.tight_layout()
    return fig


class Figure(NamedTuple):
    """One figure of the report: its file stem (PNG and CSV), title, plot, and the CSV of its numbers."""

    stem: str
    title: str
    plot: Callable
    fields: list[str]
    rows: Sequence[Mapping[str, Any]]


def figures(table: Sequence[ReportRow]) -> list[Figure]:
    """The figures that have something to draw: the estimates always, the teacher_iw, batch and bracket
    figures only where their estimators ran (not in a user-only run)."""
    table = list(table)
    out = [Figure("estimates", "estimates", plot_estimates, CSV_FIELDS, table)]
    if iw := [dict(row, K=row["params"]["K"]) for row in iw_rows(table)]:
        out.append(Figure("iw_vs_K", "teacher_iw against K", plot_iw, ["case", "K", "value", "stderr", "exact", "gap"],
                          iw))
    if batch := [dict(row, N=row["params"]["N"], ln_N=math.log(row["params"]["N"])) for row in batch_rows(table)]:
        out.append(Figure("batch_vs_N", "loo and nce against N", plot_batch,
                          ["case", "estimator", "N", "value", "stderr", "exact", "ln_N"], batch))
    if widths := bracket.widths(table):
        out.append(Figure("bracket_vs_K", "width of the bracket against K, T and N",
                          lambda result, table: plot_widths(table), bracket.WIDTH_FIELDS, widths))
    return out
