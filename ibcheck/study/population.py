"""The annealed population bracket over a study (bounds.md section 3c): one row per cell and
bracketed record, Fig. 8 (its paired width and T against epoch), and the summary report.md
gives: how often the bracket met the 0.5-nat width, its widest record per condition, and its
cost against training."""
from __future__ import annotations

import numpy as np

from ibcheck import fileio
from ibcheck.study.figures import MARKERS, Labels, Rows, colours_for, empty_figure, group
from ibcheck.study.results import RunResult

BRACKET_HEADER = ["condition", "cell", "seed", "epoch", "lower", "lower_se", "upper", "upper_se", "width", "width_se",
                  "T", "stopped", "start", "acceptance", "seconds"]
WIDTH_TARGET = 0.5  # nats: the width issue 18 asks the population bracket to stay under


def bracket_rows(runs: list[RunResult]) -> Rows:
    """One row per cell and bracketed record: the annealed bracket's ends, its paired width, the T
    the doubling rule stopped at and why, the start it used, the acceptance rate and its seconds."""
    rows: Rows = []
    groups = group(runs)
    labels = Labels(groups)
    for cond, members in groups.items():
        for run in sorted(members, key=lambda r: r.seed):
            for r in run.records:
                p = r.get("population")
                if not p or "width" not in p:
                    continue
                seconds = (r.get("seconds") or {}).get("population")
                rows.append([labels(cond), run.cell, run.seed, float(r["epoch"]), p["lower"]["value"],
                             p["lower"]["stderr"], p["upper"]["value"], p["upper"]["stderr"], p["width"]["value"],
                             p["width"]["stderr"], p["T"], p.get("stopped"), _start_of(p), p.get("acceptance"),
                             seconds])
    return rows


def _start_of(entry: dict) -> str | None:
    ladder = entry.get("ladder") or []
    return ladder[-1][3] if ladder and len(ladder[-1]) > 3 else None


def fig8(runs: list[RunResult]):
    """The population bracket's paired width against epoch, one point per cell and record, per
    condition, with the 0.5-nat line; the T it took on the right."""
    rows = bracket_rows(runs)
    if not rows:
        return empty_figure("no annealed population bracket in this study")
    conditions = list(dict.fromkeys(row[0] for row in rows))
    colours = colours_for(conditions)
    fig, axes = fileio.figure(1, 2, figsize=(13, 4.4), constrained_layout=True)
    for i, cond in enumerate(conditions):
        mine = [row for row in rows if row[0] == cond]
        epochs = np.array([row[3] for row in mine])
        jitter = 1 + 0.04 * (i - len(conditions) / 2)  # conditions side by side at each epoch
        axes[0].errorbar(np.maximum(epochs, 0.3) * jitter, [row[8] for row in mine],
                         yerr=[1.96 * row[9] for row in mine], fmt=MARKERS[i % len(MARKERS)], ms=3.5, lw=0.6,
                         color=colours[cond], label=cond, alpha=0.8)
        axes[1].plot(np.maximum(epochs, 0.3) * jitter, [row[10] for row in mine], MARKERS[i % len(MARKERS)], ms=3.5,
                     color=colours[cond], alpha=0.8)
    axes[0].axhline(WIDTH_TARGET, color="black", ls=":", lw=1, label=f"{WIDTH_TARGET} nats")
    axes[0].set_yscale("symlog", linthresh=0.1)
    axes[0].set_ylabel("paired width upper - lower [nats] (95% bars)")
    axes[1].set_yscale("log", base=2)
    axes[1].set_ylabel("T (annealing steps) the doubling rule chose")
    for ax, title in zip(axes, ("width of the population bracket", "annealing steps")):
        ax.set_xscale("log")
        ax.set_xlabel("epoch (epoch 0 drawn at 0.3)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("The annealed bracket on the population's I(X;Z): every cell and bracketed record")
    return fig, rows


def summary(runs: list[RunResult]) -> dict:
    """Per condition and over all: bracketed records, the share at most WIDTH_TARGET wide, the
    median and largest width, the records stopped by the cap, and the bracket's seconds over the
    training's (per cell: the median and the largest ratio)."""
    every = bracket_rows(runs)
    # a width written as null (non-finite, named in the record's not_finite) is counted, never averaged
    rows = [row for row in every if row[8] is not None and np.isfinite(row[8])]
    out: dict = {"target": WIDTH_TARGET, "conditions": {}, "not_finite": len(every) - len(rows)}
    for cond in dict.fromkeys(row[0] for row in rows):
        widths = np.array([row[8] for row in rows if row[0] == cond], dtype=float)
        by_epoch = {}
        for epoch in sorted({row[3] for row in rows if row[0] == cond}):
            here = np.array([row[8] for row in rows if row[0] == cond and row[3] == epoch], dtype=float)
            by_epoch[f"{epoch:g}"] = {"cells": len(here), "median_width": float(np.median(here)),
                                      "largest_width": float(here.max()),
                                      "within_target": int((here <= WIDTH_TARGET).sum())}
        out["conditions"][cond] = {"records": len(widths), "within_target": int((widths <= WIDTH_TARGET).sum()),
                                   "median_width": float(np.median(widths)), "largest_width": float(widths.max()),
                                   "capped": sum(row[11] == "cap" for row in rows if row[0] == cond),
                                   "by_epoch": by_epoch}
    ratios = []
    for run in runs:
        train = sum((r.get("seconds") or {}).get("train") or 0.0 for r in run.records)
        bracket = sum((r.get("seconds") or {}).get("population") or 0.0 for r in run.records)
        if train > 0 and bracket > 0:
            ratios.append(bracket / train)
    out["cost_over_train"] = {"median": float(np.median(ratios)), "largest": float(max(ratios)),
                              "cells": len(ratios)} if ratios else None
    return out


def summary_markdown(found: dict) -> list[str]:
    """The summary as report.md lines (none where the study has no annealed bracket)."""
    if not found["conditions"]:
        return []
    lines = ["| condition | bracketed records | at most 0.5 nats wide | median width | largest | stopped at the cap |",
             "| --- | --- | --- | --- | --- | --- |"]
    for cond, c in found["conditions"].items():
        lines.append(f"| {cond} | {c['records']} | {c['within_target']} | {c['median_width']:.3f} | "
                     f"{c['largest_width']:.3f} | {c['capped']} |")
    epochs = list(dict.fromkeys(e for c in found["conditions"].values() for e in c["by_epoch"]))
    lines += ["", "Median paired width per epoch (largest in brackets), over the cells of each condition:", "",
              "| condition | " + " | ".join(f"epoch {e}" for e in epochs) + " |", "|" + " --- |" * (len(epochs) + 1)]
    for cond, c in found["conditions"].items():
        cells = [c["by_epoch"].get(e) for e in epochs]
        shown = ["–" if x is None else f"{x['median_width']:.2f} ({x['largest_width']:.2f})" for x in cells]
        lines.append(f"| {cond} | " + " | ".join(shown) + " |")
    if found.get("not_finite"):
        lines += ["", f"{found['not_finite']} bracketed records have no finite width (null in metrics.jsonl, "
                      f"named in their not_finite) and are left out of these counts."]
    cost = found["cost_over_train"]
    if cost:
        lines += ["", f"The bracket's time over the training's, per cell: median {cost['median']:.2f}, largest "
                  f"{cost['largest']:.2f} ({cost['cells']} cells; both on one thread per cell)."]
    return lines + [""]


FIGURE = ("fig8_bracket", fig8, BRACKET_HEADER)
