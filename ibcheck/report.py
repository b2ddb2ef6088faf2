"""The bound-tightness report of ``ibcheck validate``: Markdown, PNG figures, and
the numbers behind every figure as CSV, all written atomically."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ibcheck import io, stats  # noqa: E402
from ibcheck.validate import CaseResult, Judged, ValidationResult, to_json  # noqa: E402

COLOURS = {"upper": "#c0392b", "lower": "#2471a3", "exact": "#7f8c8d"}
ESTIMATE_FIELDS = ["case", "estimator", "target", "kind", "param", "value", "stderr", "n", "ci_half_width",
                   "exact", "exact_se", "gap", "expected", "best", "valid", "matches_expected", "seconds"]


def label(row: Judged) -> str:
    """Row name with the parameter that tells repeated estimators apart (K, N)."""
    est = row.outcome.estimate
    text = est.estimator if est.target == "I_XZ" else f"{est.estimator} [I(Y;Z)]"
    for key in ("K", "N"):
        if key in est.params and est.estimator != "empirical":
            return f"{text} {key}={est.params[key]}"
    return text


def half_width(row: Judged, level: float) -> float:
    """Half-width of the two-sided interval at the per-test level the tests use."""
    est = row.outcome.estimate
    return stats.quantile(1 - level / 2, est.n) * stats.combined_se(est.stderr, row.truth_se)


def _fmt(value) -> str:
    return "" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))


def estimate_rows(result: ValidationResult) -> list[list]:
    rows = []
    for c in result.cases:
        for r in c.rows:
            est, o = r.outcome.estimate, r.outcome
            param = next((f"{k}={est.params[k]}" for k in ("K", "N") if k in est.params), "")
            rows.append([c.name, est.estimator, est.target, est.kind, param, est.value, est.stderr, est.n,
                         half_width(r, result.test_alpha), r.truth, r.truth_se, r.gap, o.expected, o.best,
                         r.valid, r.matches_expected, round(est.seconds, 4)])
    return rows


def _grid(count: int, width: float = 5.2, height: float = 3.2):
    cols = min(3, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def _gap_axis(ax, rows: list[Judged], level: float) -> None:
    """Symmetric-log x axis whose linear part spans the typical interval, with every bar in view."""
    widths = sorted(half_width(r, level) for r in rows)
    positive = [w for w in widths if w > 0] or [1e-3]
    ax.set_xscale("symlog", linthresh=min(max(positive[len(positive) // 2], 1e-3), 1.0), linscale=1.5)
    lo = min(min(r.gap - half_width(r, level) for r in rows), 0.0)
    hi = max(max(r.gap + half_width(r, level) for r in rows), 0.0)
    pad = 0.15 * max(hi - lo, 1e-3)
    ax.set_xlim(lo - pad, hi + pad)


def plot_estimates(result: ValidationResult):
    """One panel per case: each estimate's gap to the exact value with its test interval."""
    fig, axes = _grid(len(result.cases), height=0.35 * max(len(c.rows) for c in result.cases) + 1.2)
    for ax, c in zip(axes, result.cases):
        for i, r in enumerate(c.rows):
            kind = r.outcome.estimate.kind
            failed = r.valid is False or r.matches_expected is False
            ax.errorbar(r.gap, i, xerr=half_width(r, result.test_alpha), fmt="X" if failed else "o",
                        color="black" if failed else COLOURS[kind], ms=7 if failed else 4, capsize=2)
        ax.axvline(0.0, color="black", lw=1)
        ax.set_yticks(range(len(c.rows)), [label(r) for r in c.rows], fontsize=7)
        ax.invert_yaxis()
        _gap_axis(ax, c.rows, result.test_alpha)
        ax.set_title(f"{c.name}  (I(X;Z) = {c.exact.I_XZ:.3f})", fontsize=9)
        ax.set_xlabel("estimate - exact  [nats, symmetric log scale]", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    handles = [plt.Line2D([], [], color=col, marker="o", ls="", label=f"{kind} bound" if kind != "exact" else kind)
               for kind, col in COLOURS.items()]
    handles.append(plt.Line2D([], [], color="black", marker="X", ls="", label="test failed"))
    fig.suptitle(f"Estimates against the exact value (bars: two-sided interval at the per-test level "
                 f"{result.test_alpha:.1e})", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.975), ncol=4, frameon=False)
    return fig


def _rows_of(c: CaseResult, estimator: str) -> list[Judged]:
    return [r for r in c.rows if r.outcome.estimate.estimator == estimator]


def iw_rows(result: ValidationResult) -> list[list]:
    out = []
    for c in result.cases:
        for r in _rows_of(c, "teacher_iw"):
            est = r.outcome.estimate
            out.append([c.name, est.params["K"], est.value, est.stderr, r.truth, r.gap])
    return out


def plot_iw(result: ValidationResult):
    """teacher_iw gap against K, one line per case; a gap reaching 0 means the bound closed."""
    fig, ax = plt.subplots(figsize=(8.0, 4.4))
    for c in result.cases:
        rows = _rows_of(c, "teacher_iw")
        if rows:
            K = [r.outcome.estimate.params["K"] for r in rows]
            ax.errorbar(K, [r.gap for r in rows], yerr=[half_width(r, result.test_alpha) for r in rows],
                        marker="o", ms=3, capsize=2, label=c.name)
    ax.axhline(0.0, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel("K (importance samples)")
    ax.set_ylabel("teacher_iw - I(X;Z)  [nats]")
    ax.set_title("Importance-weighted teacher bound: gap against K")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def batch_rows(result: ValidationResult) -> list[list]:
    out = []
    for c in result.cases:
        for name in ("loo", "nce", "empirical"):
            for r in _rows_of(c, name):
                est = r.outcome.estimate
                if est.target == "I_XZ":
                    N = est.params["N"]
                    out.append([c.name, name, N, est.value, est.stderr, r.truth, math.log(N)])
    return out


def plot_batch(result: ValidationResult):
    """loo (upper) and nce (lower) against batch size N per case, with I(X;Z) and ln N."""
    fig, axes = _grid(len(result.cases), width=4.4, height=3.2)
    for ax, c in zip(axes, result.cases):
        for name, style in (("loo", "v-"), ("nce", "^-"), ("empirical", "s")):
            rows = [r for r in _rows_of(c, name) if r.outcome.estimate.target == "I_XZ"]
            if rows:
                kind = rows[0].outcome.estimate.kind
                ax.errorbar([r.outcome.estimate.params["N"] for r in rows], [r.outcome.estimate.value for r in rows],
                            yerr=[half_width(r, result.test_alpha) for r in rows], fmt=style, ms=4, capsize=2,
                            color=COLOURS[kind], label=name)
        Ns = sorted({r.outcome.estimate.params["N"] for r in c.rows if "N" in r.outcome.estimate.params})
        if Ns:
            ax.plot(Ns, [math.log(N) for N in Ns], ":", color="gray", label="ln N")
        ax.axhline(c.exact.I_XZ, color="black", lw=1, label="I(X;Z)")
        ax.set_xscale("log", base=2)
        ax.set_title(c.name, fontsize=9)
        ax.set_xlabel("N", fontsize=8)
        ax.set_ylabel("nats", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.suptitle("Batch bounds against N: loo from above, nce from below (capped at ln N)", fontsize=10)
    fig.tight_layout()
    return fig


def markdown(result: ValidationResult) -> str:
    status = "PASSED" if result.passed else "FAILED"
    lines = [
        "# ibcheck validate: bound-tightness report", "",
        f"**{status}**: {result.tests} tests, family-wise false-failure budget alpha = {result.alpha:g} "
        f"(Bonferroni: {result.test_alpha:.2e} per test); seed {result.seed}; device {result.device}, "
        f"{result.dtype}; {result.seconds:.1f} s.", "",
        "Every number is in nats. `gap` = estimate - exact. `valid` is the one-sided test of bounds.md "
        "section 5 (an upper bound fails only if estimate + q se < exact; a lower bound only if "
        "estimate - q se > exact); `match` is the two-sided test against the analytic expectation at the "
        "parameters used (blank where none exists). `empirical` is exact for its own finite data sets and "
        "a lower bound on the population value in expectation, and is tested as one; its I(Y;Z) is "
        "reported only.", "",
        "![estimates](estimates.png)", "",
        "![teacher_iw against K](iw_vs_K.png)", "",
        "![loo and nce against N](batch_vs_N.png)", "",
        "Numbers behind the figures: `estimates.csv`, `iw_vs_K.csv`, `batch_vs_N.csv`; everything in `results.json`.", "",
    ]
    for c in result.cases:
        ex = c.exact
        yz = "" if ex.I_YZ is None else f", I(Y;Z) = {ex.I_YZ:.4f}" + (f" ± {ex.I_YZ_se:.1e}" if ex.I_YZ_se else "")
        xz_se = f" ± {ex.I_XZ_se:.1e}" if ex.I_XZ_se else ""
        lines += [f"## {c.name}", "", f"I(X;Z) = {ex.I_XZ:.4f}{xz_se}{yz}", "",
                  "| estimator | kind | value ± se | expected | best q | gap | valid | match | s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in c.rows:
            est, o = r.outcome.estimate, r.outcome
            lines.append(f"| {label(r)} | {est.kind} | {est.value:.4f} ± {est.stderr:.4f} | {_fmt(o.expected)} | "
                         f"{_fmt(o.best)} | {r.gap:+.4f} | {_mark(r.valid)} | {_mark(r.matches_expected)} | "
                         f"{est.seconds:.2f} |")
        lines.append("")
    return "\n".join(lines)


def _mark(flag) -> str:
    return "" if flag is None else ("yes" if flag else "**NO**")


def write_report(result: ValidationResult, out: str | Path) -> list[Path]:
    """Write report.md, results.json, three figures and their CSVs into ``out``; returns the paths."""
    out = Path(out)
    written = []

    def keep(path: Path) -> Path:
        written.append(path)
        return path

    io.write_json(keep(out / "results.json"), to_json(result))
    io.write_csv(keep(out / "estimates.csv"), ESTIMATE_FIELDS, estimate_rows(result))
    io.write_csv(keep(out / "iw_vs_K.csv"), ["case", "K", "value", "stderr", "exact", "gap"], iw_rows(result))
    io.write_csv(keep(out / "batch_vs_N.csv"), ["case", "estimator", "N", "value", "stderr", "exact", "ln_N"],
                 batch_rows(result))
    for name, plot in (("estimates.png", plot_estimates), ("iw_vs_K.png", plot_iw), ("batch_vs_N.png", plot_batch)):
        fig = plot(result)
        io.save_figure(fig, keep(out / name))
        plt.close(fig)
    io.write_text(keep(out / "report.md"), markdown(result))
    return written
