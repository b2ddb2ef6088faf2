"""The paper's Figures 3-7 over a study's seeds: each line is the mean over the seeds of one
condition with a 95% t-interval band, and each figure comes with a CSV of exactly its numbers.

A condition is one value of (zero_info, encoder, std_shift, optimizer, beta); its runs differ
by seed. At each epoch the mean is over the seeds whose value there is finite (``n`` of them),
the band is mean ± t(0.975, n-1)·sd/√n (none when n < 2), and an epoch where no seed has a
value is not drawn. Mutual information and log-determinants are in nats.

- ``fig3_zero_info``: zero-information runs only; per init, I(X;Z) by vib, teacher_elbo,
  teacher_iw, the exact (empirical) value and the population bracket's midpoint (top) and I(Y;Z)
  by barber_agakov and exact (bottom).
- ``fig4_bounds``: runs with real labels; per (init, optimizer) at the β nearest 1e-3 in log
  distance, the I(X;Z) bounds, the exact value and the population bracket's midpoint on a log
  axis, and ln N dotted.
- ``fig5_info_plane``: rows per optimizer; I(Y;Z) (barber_agakov) against the exact I(X;Z)
  (left), the paper's min(vib, teacher_elbo) (middle) and the midpoint of the annealed bracket on
  the population's I(X;Z) (right, its records only), one trajectory per condition.
- ``fig6_logdet``: mean log det Cov[p(z|x)] per whole epoch, one panel per optimizer.
- ``fig7_grad_norm``: the gradient norm per epoch, one panel per optimizer. The paper's Fig. 7
  puts the log-determinant of its Fig. 6 beside it; here that panel is Fig. 6 alone, not drawn twice.
- ``fig8_bracket``: the annealed population bracket's paired width and its T against epoch,
  every cell and bracketed record (CSV: one row per cell and record, ``BRACKET_HEADER``).

CSV columns (long format, one row per panel, condition, series and epoch; empty lo/hi: n < 2):

- figures 3, 4, 6, 7: ``panel, condition, series, epoch, mean, lo, hi, n`` (series: an
  estimator, ``ln_N``, ``logdet_cov`` or ``grad_norm``; fig4's ``ln_N`` rows pool every run of
  the panel and name the condition ``all``).
- figure 5: ``panel, condition, x_estimator, epoch, x_mean, x_lo, x_hi, y_mean, y_lo, y_hi, n``
  (x and y averaged over the same n seeds: those where both are finite).

Labels name only the factors that take more than one value among the figure's runs
(zero-information runs for fig3, the others for figs 4-7), e.g. "adam β=0.001 init=vib_demo";
"all runs" when none varies. Runs without records are skipped.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import SymLogNorm
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, LogFormatter, NullLocator
from scipy import stats

from ibcheck import fileio
from ibcheck.pipeline import plots
from ibcheck.study.results import (
    EXACT,
    PAPER_MIN,
    POPULATION,
    RunResult,
    dense,
    init_label,
    population_series,
    series,
)

LINE_HEADER = ["panel", "condition", "series", "epoch", "mean", "lo", "hi", "n"]
PLANE_HEADER = ["panel", "condition", "x_estimator", "epoch", "x_mean", "x_lo", "x_hi",
                "y_mean", "y_lo", "y_hi", "n"]
X_SERIES = ("vib", "teacher_elbo", "teacher_iw", EXACT, POPULATION)
Y_BOUND = "barber_agakov"
Y_SERIES = (Y_BOUND, EXACT)
# the colours of `ibcheck plot`, so that an estimator looks the same in every figure
COLOURS = {**{name: plots.STYLE[name] for name in X_SERIES if name in plots.STYLE}, POPULATION: "#555555",
           Y_BOUND: "#2471a3", "ln_N": "black"}
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = "osD^v<>pP*Xh"
TARGET_BETA = 1e-3
LABEL_ORDER = ("zero_info", "encoder", "optimizer", "beta", "std_shift")
TARGETS = {"I_XZ": "I(X;Z)", "I_YZ": "I(Y;Z)"}
Rows = list[list]


@dataclasses.dataclass(frozen=True, order=True)
class Condition:
    """The settings shared by a group of runs ("" for zero_info: real labels)."""

    zero_info: str
    encoder: str
    std_shift: float
    optimizer: str
    beta: float

    def words(self) -> dict[str, str]:
        return {"zero_info": f"zero-info={self.zero_info}" if self.zero_info else "real labels",
                "encoder": self.encoder, "optimizer": self.optimizer, "beta": f"β={self.beta:g}",
                "std_shift": f"init={init_label(self.std_shift)}"}

    def without(self, *factors: str) -> Condition:
        """The condition with ``factors`` blanked: a key shared across panels (colour, marker)."""
        blank: dict[str, Any] = {"zero_info": "", "encoder": "", "optimizer": "", "std_shift": 0.0, "beta": 0.0}
        return dataclasses.replace(self, **{f: blank[f] for f in factors})


def condition(run: RunResult) -> Condition:
    def get(key: str, default):
        try:
            found = run.setting(key)
        except (KeyError, TypeError):
            return default
        return default if found is None else found
    return Condition(str(get("zero_info", "")), str(get("student.encoder", "mlp")),
                     float(get("student.std_shift", 5.0)), str(get("student.optimizer", "adam")),
                     float(get("student.beta", TARGET_BETA)))


def group(runs: list[RunResult]) -> dict[Condition, list[RunResult]]:
    """Runs with records by condition, conditions in sorted order."""
    groups: dict[Condition, list[RunResult]] = {}
    for run in runs:
        if run.records:
            groups.setdefault(condition(run), []).append(run)
    return dict(sorted(groups.items()))


class Labels:
    """Readable condition labels naming only the factors that vary among ``conditions``."""

    def __init__(self, conditions):
        conditions = list(conditions)
        self.varying = [f for f in LABEL_ORDER if len({getattr(c, f) for c in conditions}) > 1]

    def __call__(self, cond: Condition, skip: tuple[str, ...] = ()) -> str:
        words = cond.words()
        return " ".join(words[f] for f in self.varying if f not in skip) or "all runs"


@dataclasses.dataclass(frozen=True)
class Band:
    """Per epoch: the mean over seeds, its 95% t-interval (NaN where n < 2) and n."""

    epochs: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: np.ndarray


def aggregate(samples: list[tuple[np.ndarray, np.ndarray]]) -> Band:
    """Mean and 95% t-interval over seeds of (epochs, values) pairs, NaN values ignored; epochs
    where no seed has a finite value are dropped."""
    epochs = np.unique(np.concatenate([e for e, _ in samples])) if samples else np.empty(0)
    table = np.full((len(samples), len(epochs)), np.nan)
    for row, (e, v) in zip(table, samples):
        row[np.searchsorted(epochs, e)] = v
    finite = np.isfinite(table)
    n = finite.sum(axis=0)
    keep = n > 0
    table, finite, n, epochs = table[:, keep], finite[:, keep], n[keep], epochs[keep]
    mean = np.where(finite, table, 0.0).sum(axis=0) / np.maximum(n, 1)
    squares = np.where(finite, table - mean, 0.0) ** 2
    half = np.full(len(epochs), np.nan)
    ok = n >= 2
    sd = np.sqrt(squares.sum(axis=0)[ok] / (n[ok] - 1))
    half[ok] = stats.t.ppf(0.975, n[ok] - 1) * sd / np.sqrt(n[ok])
    return Band(epochs, mean, mean - half, mean + half, n)


def xz_series(records: list[dict], target: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of an estimator, or of the population bracket's midpoint (its records only)."""
    if name == POPULATION:
        return population_series(records)[:2]
    return series(records, target, name)


def tracked_band(runs: list[RunResult], target: str, name: str) -> Band:
    return aggregate([xz_series(r.records, target, name) for r in runs])


def dense_band(runs: list[RunResult], key: str) -> Band:
    return aggregate([dense(r.records, key) for r in runs])


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def band_rows(panel: str, cond: str, name: str, band: Band) -> Rows:
    return [[panel, cond, name, float(e), float(m), _num(lo), _num(hi), int(n)]
            for e, m, lo, hi, n in zip(band.epochs, band.mean, band.lo, band.hi, band.n)]


def draw(ax, band: Band, colour, label: str | None, style: str = "-") -> None:
    ax.plot(band.epochs, band.mean, style, color=colour, label=label, lw=1.3)
    if np.isfinite(band.lo).any():
        ax.fill_between(band.epochs, band.lo, band.hi, color=colour, alpha=0.18, lw=0)


# epochs worth a tick on a symmetric-log axis (matplotlib's own symlog ticks give only 0 and 10^0 below 10)
EPOCH_TICKS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def epoch_ticks(axis) -> None:
    """Readable epoch ticks on a symlog axis (an Axes' xaxis, or a colour bar's axis)."""
    axis.set_major_locator(FixedLocator(EPOCH_TICKS))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_locator(NullLocator())


def band_note(groups: dict) -> str:
    """What a figure's title must add where a condition has one seed: its band cannot be drawn."""
    fewest = min((len(runs) for runs in groups.values()), default=2)
    return " (one seed in some conditions: no band there)" if fewest < 2 else ""


def _style(ax, title: str, ylabel: str, symlog: bool = False) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if symlog:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        epoch_ticks(ax.xaxis)
    ax.grid(alpha=0.3)


def empty_figure(message: str):
    fig, ax = fileio.figure(figsize=(6, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.axis("off")
    return fig, []


def colours_for(keys) -> dict:
    cmap = matplotlib.colormaps["tab10"]
    return {key: cmap(i % 10) for i, key in enumerate(sorted(set(keys)))}


def _estimators(ax, groups, target: str, names, labels: Labels, panel: str, extra=()) -> Rows:
    """One line per (estimator: colour, condition: line style) and a legend for both (and ``extra``)."""
    rows: Rows = []
    for i, (cond, runs) in enumerate(groups.items()):
        for name in names:
            band = tracked_band(runs, target, name)
            draw(ax, band, COLOURS[name], None, LINESTYLES[i % len(LINESTYLES)])
            rows += band_rows(panel, labels(cond), name, band)
    handles = [Line2D([], [], color=COLOURS[name], label=name) for name in names] + list(extra)
    if len(groups) > 1:
        handles += [Line2D([], [], color="gray", ls=LINESTYLES[i % len(LINESTYLES)], label=labels(cond))
                    for i, cond in enumerate(groups)]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves
    return rows


def fig3(runs: list[RunResult]):
    """Zero-information runs: I(X;Z) and I(Y;Z) estimators against epoch, per init."""
    groups = group([r for r in runs if r.zero_info])
    if not groups:
        return empty_figure("no zero-information cells in this study")
    labels, inits = Labels(groups), sorted({c.std_shift for c in groups})
    fig, axes = fileio.figure(2, len(inits), figsize=(5.5 * len(inits), 7.5), squeeze=False,
                             sharex=True, constrained_layout=True)
    rows: Rows = []
    for col, shift in enumerate(inits):
        here = {c: r for c, r in groups.items() if c.std_shift == shift}
        for ax, target, names in ((axes[0, col], "I_XZ", X_SERIES), (axes[1, col], "I_YZ", Y_SERIES)):
            panel = f"{target} init={init_label(shift)}"
            rows += _estimators(ax, here, target, names, labels, panel)
            name = TARGETS[target]
            _style(ax, f"{name}, init={init_label(shift)}", f"{name} [nats]", symlog=True)
        axes[0, col].set_xlabel("")  # shared with the panel below
    fig.suptitle("Zero-information labels: mean over seeds, 95% t-interval bands" + band_note(groups))
    return fig, rows


def nearest_beta(betas) -> float:
    """The β closest to 1e-3 in log distance (β = 0 only when nothing else is there)."""
    return min(betas, key=lambda b: (abs(np.log(b / TARGET_BETA)) if b > 0 else np.inf, b))


def fig4(runs: list[RunResult]):
    """Real labels: the I(X;Z) bounds and the exact value per (init, optimizer), ln N dotted."""
    groups = group([r for r in runs if not r.zero_info])
    if not groups:
        return empty_figure("no runs with real labels in this study")
    labels = Labels(groups)
    inits, optims = sorted({c.std_shift for c in groups}), sorted({c.optimizer for c in groups})
    fig, axes = fileio.figure(len(inits), len(optims), figsize=(6 * len(optims), 4.2 * len(inits)),
                             squeeze=False, constrained_layout=True)
    rows: Rows = []
    for (i, shift), (j, opt) in ((a, b) for a in enumerate(inits) for b in enumerate(optims)):
        ax, pair = axes[i, j], {c: r for c, r in groups.items() if (c.std_shift, c.optimizer) == (shift, opt)}
        if not pair:
            ax.axis("off")
            continue
        beta = nearest_beta({c.beta for c in pair})
        here = {c: r for c, r in pair.items() if c.beta == beta}
        panel = f"init={init_label(shift)} {opt} β={beta:g}"
        ln_n = dense_band([r for rs in here.values() for r in rs], "ln_N")
        ax.plot(ln_n.epochs, ln_n.mean, ":", color=COLOURS["ln_N"], lw=1)
        dotted = Line2D([], [], ls=":", color=COLOURS["ln_N"], lw=1, label="ln N")
        rows += _estimators(ax, here, "I_XZ", X_SERIES, labels, panel, [dotted])
        rows += band_rows(panel, "all", "ln_N", ln_n)
        ax.set_yscale("log")
        for axis_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        _style(ax, panel, "I(X;Z) [nats]", symlog=True)
    fig.suptitle("I(X;Z): upper bounds (vib, teacher) and the exact value of the training set, and the population "
                 "bracket's midpoint; mean over seeds, 95% bands" + band_note(groups))
    return fig, rows


def _plane_bands(runs: list[RunResult], x_name: str) -> tuple[Band, Band]:
    """x = I(X;Z) by ``x_name``, y = I(Y;Z) by barber_agakov, over the seeds where both are finite."""
    xs, ys = [], []
    for run in runs:
        epochs, x = xz_series(run.records, "I_XZ", x_name)
        y_epochs, y_all = series(run.records, "I_YZ", Y_BOUND)
        at = dict(zip(y_epochs.tolist(), y_all.tolist()))
        y = np.array([at.get(e, np.nan) for e in epochs.tolist()], dtype=float)
        both = np.isfinite(x) & np.isfinite(y)
        xs.append((epochs, np.where(both, x, np.nan)))
        ys.append((epochs, np.where(both, y, np.nan)))
    return aggregate(xs), aggregate(ys)


def _trajectory(ax, x: Band, y: Band, marker: str, norm) -> None:
    errors = [np.nan_to_num(e) for e in (x.mean - x.lo, x.hi - x.mean, y.mean - y.lo, y.hi - y.mean)]
    ax.errorbar(x.mean, y.mean, xerr=errors[:2], yerr=errors[2:], fmt="none", ecolor="gray", lw=0.5,
                alpha=0.6)
    ax.plot(x.mean, y.mean, "-", color="gray", lw=0.7, alpha=0.7)
    ax.scatter(x.mean, y.mean, c=x.epochs, cmap="viridis", norm=norm, marker=marker, s=26,
               edgecolors="black", linewidths=0.3, zorder=3)


def _plane_row(axes, here: dict, labels: Labels, markers: dict, norm, opt: str) -> Rows:
    rows: Rows = []
    for ax, x_name, what in ((axes[0], EXACT, "exact (empirical)"),
                             (axes[1], PAPER_MIN, "the paper's min(vib, teacher_elbo)"),
                             (axes[2], POPULATION, "population, annealed bracket's midpoint")):
        for cond, rs in here.items():
            x, y = _plane_bands(rs, x_name)
            _trajectory(ax, x, y, markers[cond.without("optimizer")], norm)
            rows += [[f"{opt} x={x_name}", labels(cond), x_name, float(e), float(xm), _num(xl), _num(xh),
                      float(ym), _num(yl), _num(yh), int(n)] for e, xm, xl, xh, ym, yl, yh, n
                     in zip(x.epochs, x.mean, x.lo, x.hi, y.mean, y.lo, y.hi, x.n)]
        ax.set_xlabel(f"I(X;Z) [nats]: {what}")
        ax.set_ylabel(f"I(Y;Z) [nats]: {Y_BOUND} (lower bound)")
        ax.set_title(f"{opt}: x = {what}", fontsize=9)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], marker=markers[c.without("optimizer")], color="gray", lw=0.7,
                      label=labels(c, skip=("optimizer",))) for c in here]
    axes[0].legend(handles=handles, fontsize=7)
    return rows


def fig5(runs: list[RunResult]):
    """The information plane per optimizer: I(Y;Z) against exact and paper-min I(X;Z)."""
    groups = group([r for r in runs if not r.zero_info])
    if not groups:
        return empty_figure("no runs with real labels in this study")
    labels, optims = Labels(groups), sorted({c.optimizer for c in groups})
    keys = sorted({c.without("optimizer") for c in groups})
    markers = {k: MARKERS[i % len(MARKERS)] for i, k in enumerate(keys)}
    epochs = [float(e) for rs in groups.values() for r in rs for e in series(r.records, "I_XZ", EXACT)[0]]
    norm = SymLogNorm(linthresh=1, vmin=0, vmax=max(epochs + [1.0]))
    fig, axes = fileio.figure(len(optims), 3, figsize=(17, 4.8 * len(optims)), squeeze=False,
                             constrained_layout=True)
    rows: Rows = []
    for i, opt in enumerate(optims):
        rows += _plane_row(axes[i], {c: r for c, r in groups.items() if c.optimizer == opt}, labels, markers,
                           norm, opt)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=axes, label="epoch", shrink=0.6, aspect=30)
    epoch_ticks(bar.ax.yaxis)
    fig.suptitle("Information plane: mean over seeds, 95% t-interval error bars" + band_note(groups))
    return fig, rows


def _dense_panel(ax, groups, key: str, labels: Labels, panel: str, colours: dict, legend: bool) -> Rows:
    rows: Rows = []
    for cond, rs in groups.items():
        band = dense_band(rs, key)
        draw(ax, band, colours[cond.without("optimizer")], labels(cond, skip=("optimizer",)))
        rows += band_rows(panel, labels(cond), key, band)
    if legend:  # beside the last panel, off the curves
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return rows


AXES = {"logdet_cov": ("log det Cov[p(z|x)]", "mean log det Cov[p(z|x)] [nats]"),
        "grad_norm": ("gradient norm", "mean gradient norm")}


def _dense_figure(runs: list[RunResult], key: str, title: str):
    groups = group([r for r in runs if not r.zero_info])
    if not groups:
        return empty_figure("no runs with real labels in this study")
    labels, optims = Labels(groups), sorted({c.optimizer for c in groups})
    colours = colours_for(c.without("optimizer") for c in groups)
    fig, axes = fileio.figure(1, len(optims), figsize=(5.8 * len(optims), 4), squeeze=False,
                             constrained_layout=True)
    rows: Rows = []
    for ax, opt in zip(axes[0], optims):
        here = {c: r for c, r in groups.items() if c.optimizer == opt}
        rows += _dense_panel(ax, here, key, labels, opt, colours, legend=opt == optims[-1])
        _style(ax, f"{opt}: {AXES[key][0]}", AXES[key][1])
    fig.suptitle(title + band_note(groups))
    return fig, rows


def fig6(runs: list[RunResult]):
    """The encoder's mean log-determinant per epoch, one panel per optimizer (the paper's Fig. 6
    and the left half of its Fig. 7)."""
    return _dense_figure(runs, "logdet_cov", "Encoder covariance: mean over seeds, 95% bands")


def fig7(runs: list[RunResult]):
    """The gradient norm per epoch, one panel per optimizer (the right half of the paper's Fig. 7;
    its left half is ``fig6``)."""
    return _dense_figure(runs, "grad_norm", "Gradient norm: mean over seeds, 95% bands")


FIGURES: tuple[tuple[str, Callable, list[str]], ...] = (
    ("fig3_zero_info", fig3, LINE_HEADER), ("fig4_bounds", fig4, LINE_HEADER),
    ("fig5_info_plane", fig5, PLANE_HEADER), ("fig6_logdet", fig6, LINE_HEADER),
    ("fig7_grad_norm", fig7, LINE_HEADER))


Figure = tuple[str, Callable, list[str]]


def write_figures(runs: list[RunResult], out: Path, more: tuple[Figure, ...] = ()) -> list[Path]:
    """Figures 3-7 (and ``more``) as PNG, each with a CSV of its numbers (same stem), into ``out``."""
    runs, out, written = [r for r in runs if r.records], Path(out), []
    for stem, make, header in FIGURES + more:
        fig, rows = make(runs)
        fileio.save_figure(fig, out / f"{stem}.png")
        fileio.write_csv(out / f"{stem}.csv", header, rows)
        written += [out / f"{stem}.png", out / f"{stem}.csv"]
    return written
