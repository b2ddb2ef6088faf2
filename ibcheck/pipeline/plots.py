"""``ibcheck plot``: a run's information-plane trajectory, its estimators over epochs with
confidence bands and the ln N line, and the encoder's log-determinant and gradient norm.
Each figure comes with the numbers it shows, as CSV."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ibcheck import fileio
from ibcheck.estimators import registry
from ibcheck.interface import InputError
from ibcheck.pipeline import runs
from ibcheck.pipeline.tracking import PAPER_MIN

# what tracking measures: every estimator that runs on a finite training set
TRACKED = [registry.get(name) for name in registry.without_prior()]
X_ESTIMATORS = tuple(s.name for s in TRACKED if "I_XZ" in s.targets) + (PAPER_MIN,)
Y_ESTIMATORS = tuple(s.name for s in TRACKED if "I_YZ" in s.targets)
EXACT = registry.EMPIRICAL.name
Y_BOUND = registry.BARBER_AGAKOV.name
PALETTE = ("#c0392b", "#e67e22", "#d4ac0d", "#8e44ad", "#2471a3", "#2c3e50", "#16a085", "#7f8c8d")
STYLE = dict(zip(X_ESTIMATORS, PALETTE))
Z95 = 1.959964  # two-sided 95% normal quantile for the bands


def read_run(folder: str | Path) -> list[dict]:
    path = Path(folder) / runs.METRICS
    records = runs.read_metrics(Path(folder))
    if records is None:
        raise InputError(f"{folder}: not a training run (no readable {runs.METRICS})")
    if not records or "I_XZ" not in records[0]:
        raise InputError(f"{path}: holds no information-plane records (is it a teacher run?)")
    return records


def _value(record: dict, target: str, name: str, key: str = "value"):
    entry = (record.get(target) or {}).get(name)
    return None if entry is None else entry.get(key)


def _series(records: list[dict], target: str, name: str, key: str = "value") -> np.ndarray:
    """One value per record, NaN where the record holds none (not finite): matplotlib leaves gaps."""
    return np.array([np.nan if v is None else v for v in (_value(r, target, name, key) for r in records)], dtype=float)


def estimated(records: list[dict]) -> list[dict]:
    """The records that hold estimates (a schedule with ``track.epochs`` leaves light records between)."""
    return [r for r in records if "I_XZ" in r]


def _gaps(*series: np.ndarray) -> str:
    """A note for a panel's title: how many points are missing because they were not finite."""
    missing = int(sum(np.isnan(s).sum() for s in series))
    return f" [{missing} values not finite, not drawn]" if missing else ""


# the population bracket's ends (teacher_rais and teacher_ais on the teacher's model population), and
# its paired width
POPULATION_ENDS = ("lower", "upper")
POPULATION_FIELDS = POPULATION_ENDS + ("width",)


def population_midpoint(records: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(midpoint, lower, upper) of the population bracket per record, NaN where a record has none."""
    low, high = (_series(records, "population", end) for end in POPULATION_ENDS)
    return (low + high) / 2, low, high


def rows(name: str, records: list[dict]) -> list[list]:
    """One CSV row per record: run, epoch, step, every estimator's value and stderr, and the rest."""
    out = []
    for r in records:
        row = [name, r["epoch"], r["step"], bool(r.get("partial", False))]
        row += [_value(r, "I_XZ", e, k) for e in X_ESTIMATORS for k in ("value", "stderr")]
        row += [_value(r, "I_YZ", e, k) for e in Y_ESTIMATORS for k in ("value", "stderr")]
        row += [_value(r, "population", end, k) for end in POPULATION_FIELDS for k in ("value", "stderr")]
        row += [(r.get("population") or {}).get("T")]
        accuracy = r.get("accuracy", {})  # light records (epochs without estimates) have none
        row += [accuracy.get("train"), accuracy.get("test"), r["logdet_cov"], r.get("grad_norm"), r["ln_N"]]
        out.append(row)
    return out


HEADER = (["run", "epoch", "step", "partial"] + [f"I_XZ_{e}_{k}" for e in X_ESTIMATORS for k in ("value", "stderr")]
          + [f"I_YZ_{e}_{k}" for e in Y_ESTIMATORS for k in ("value", "stderr")]
          + [f"population_I_XZ_{end}_{k}" for end in POPULATION_FIELDS for k in ("value", "stderr")]
          + ["population_T"]
          + ["accuracy_train", "accuracy_test", "logdet_cov", "grad_norm", "ln_N"])


def plot_plane(named: dict[str, list[dict]]):
    """I(Y;Z) (Barber-Agakov) against I(X;Z) by empirical (exact, the training set), by min(vib,
    teacher) (the paper's) and by the population bracket (its midpoint, with the bracket as a
    horizontal bar, on the records that have one), coloured by epoch."""
    fig, axes = fileio.figure(1, 3, figsize=(15.5, 4.6), sharey=True)
    markers = "osD^v<>"
    panels = ((EXACT, "exact I(X;Z) of the training set"), (PAPER_MIN, "min(vib, teacher_elbo), as in the paper"),
              (None, "population I(X;Z): annealed bracket"))
    sc = None
    for ax, (x_name, title) in zip(axes, panels):
        note = ""
        for i, (name, records) in enumerate(named.items()):
            records = estimated(records)
            if x_name is None:
                records = [r for r in records if "population" in r]
                xs, low, high = population_midpoint(records)
                ys = _series(records, "I_YZ", Y_BOUND)
                ax.errorbar(xs, ys, xerr=[xs - low, high - xs], fmt="none", ecolor="gray", lw=0.8, alpha=0.7)
            else:
                xs, ys = _series(records, "I_XZ", x_name), _series(records, "I_YZ", Y_BOUND)
            note += _gaps(xs, ys)
            ax.plot(xs, ys, "-", color="gray", lw=0.6, alpha=0.6)
            sc = ax.scatter(xs, ys, c=[r["epoch"] for r in records], cmap="viridis", marker=markers[i % 7], s=18,
                            label=name)
        ax.set_xlabel(f"I(X;Z) [nats]: {title}{note}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"I(Y;Z) [nats]: {Y_BOUND} (lower bound)")
    axes[0].legend(fontsize=8)
    if sc is not None:
        fig.colorbar(sc, ax=axes, label="epoch")
    fig.suptitle("Information plane (right: the I(X;Z) of the teacher's model population, no ln N ceiling)")
    return fig


def plot_estimators(named: dict[str, list[dict]]):
    """Each I(X;Z) estimator over epochs with a 95% band, and ln N, one panel per run."""
    fig, axes = fileio.figure(len(named), 1, figsize=(9, 3.6 * len(named)), squeeze=False)
    for ax, (name, records) in zip(axes[:, 0], named.items()):
        records = estimated(records)
        epochs, note = [r["epoch"] for r in records], ""
        for est in X_ESTIMATORS[:-1]:
            v, se = _series(records, "I_XZ", est), _series(records, "I_XZ", est, "stderr")
            note += _gaps(v)
            ax.plot(epochs, v, color=STYLE[est], label=est, lw=1.4 if est == EXACT else 1.0)
            ax.fill_between(epochs, v - Z95 * se, v + Z95 * se, color=STYLE[est], alpha=0.2)
        bracketed = [r for r in records if "population" in r]  # it may run on some records only
        if bracketed:
            low, high = (_series(bracketed, "population", end) for end in POPULATION_ENDS)
            ax.fill_between([r["epoch"] for r in bracketed], low, high, color="grey", alpha=0.45, lw=0,
                            label="population I(X;Z): [teacher_rais, teacher_ais]")
        ax.axhline(records[0]["ln_N"], color="black", ls=":", lw=1, label="ln N")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("I(X;Z) [nats]")
        ax.set_title(f"{name}: bounds on the training set (upper: vib, teacher, loo; lower: nce; exact: empirical);"
                     f" grey: the teacher's model population{note}", fontsize=9)
        ax.legend(fontsize=7, ncol=4)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_encoder(named: dict[str, list[dict]]):
    """Mean log-determinant of the encoder covariance and mean gradient norm over epochs."""
    fig, axes = fileio.figure(1, 2, figsize=(11, 3.8))
    for name, records in named.items():
        logdet = np.array([np.nan if r["logdet_cov"] is None else r["logdet_cov"] for r in records], dtype=float)
        axes[0].plot([r["epoch"] for r in records], logdet, label=name + _gaps(logdet))
        done = [r for r in records if r.get("grad_norm") is not None]
        axes[1].plot([r["epoch"] for r in done], [r["grad_norm"] for r in done], label=name)
    axes[0].set_ylabel("mean log det Cov[p(z|x)] [nats]")
    axes[1].set_ylabel("mean gradient norm")
    axes[0].set_title("How wide the encoder is: log det of its covariance", fontsize=10)
    axes[1].set_title("How hard it trains: the gradient norm", fontsize=10)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    # beside the curves, not on them; the left panel's labels say where its curve has gaps
    axes[1].legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("The student's encoder over training")
    fig.tight_layout()
    return fig


def write_plots(folders: list[str], out: str | Path) -> list[Path]:
    """The three figures of the runs in ``folders`` and plot_data.csv, into ``out``."""
    named: dict[str, list[dict]] = {}
    for folder in folders:
        name = Path(folder).resolve().name
        name = name if name not in named else f"{name}#{len(named) + 1}"
        status = runs.read_status(Path(folder))
        if status.get("status") == "diverged":  # the run's label says so on every figure
            name += f" (diverged after epoch {max(r['epoch'] for r in read_run(folder))})"
        named[name] = read_run(folder)
    out = Path(out)
    written = [out / "plot_data.csv"]
    fileio.write_csv(written[0], HEADER, [row for name, recs in named.items() for row in rows(name, recs)])
    for file, plot in (("info_plane.png", plot_plane), ("estimators.png", plot_estimators),
                       ("encoder.png", plot_encoder)):
        fig = plot(named)
        fileio.save_figure(fig, out / file)
        written.append(out / file)
    return written
