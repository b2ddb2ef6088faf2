"""The study's Figures 3-7 (ibcheck.study.figures) on synthetic runs: every file is written, every
CSV has its documented header, and its numbers are the mean over seeds and the 95% t-interval
computed here by hand from the synthetic records."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats

from ibcheck.study import figures
from ibcheck.study.results import RunResult

X_NAMES = ("vib", "teacher_elbo", "teacher_iw", "loo", "nce", "empirical")
WHOLE = (0, 1, 2, 3, 4, 5)
TRACKED = (0, 0.05, 0.3, 1, 3, 5)  # 0.05 and 0.3: early points inside epoch 1
LN_N = math.log(1000)
STEMS = ("fig3_zero_info", "fig4_bounds", "fig5_info_plane", "fig6_logdet", "fig7_grad_norm")
# Values that are null (not finite) in the synthetic records: (condition, seed, epoch, target, name).
NULLS = {(("", 5.0, "adam", 1e-3), 2, 3, "I_XZ", "vib"),
         (("", 0.0, "sgd", 1e-3), 1, 5, "I_XZ", "vib"), (("", 0.0, "sgd", 1e-3), 2, 5, "I_XZ", "vib"),
         (("", 5.0, "adam", 1e-3), 0, 1, "I_YZ", "barber_agakov")}


def _entry(value):
    return {"value": value, "stderr": 0.01, "n": 100}


def _record(epoch, key, seed, rng, nulls) -> dict:
    """One tracked record (the estimates drawn from ``rng``, nulls where NULLS says so)."""
    def value(target, name, v):
        return None if (key, seed, epoch, target, name) in nulls else float(v)
    xz = {name: _entry(value("I_XZ", name, 5 + 10 * rng.random())) for name in X_NAMES}
    vib, elbo = xz["vib"]["value"], xz["teacher_elbo"]["value"]
    xz["min_vib_teacher"] = _entry(None if vib is None or elbo is None else min(vib, elbo))
    yz = {name: _entry(value("I_YZ", name, 2 * rng.random())) for name in ("barber_agakov", "empirical")}
    return {"epoch": epoch, "step": int(100 * epoch), "I_XZ": xz, "I_YZ": yz,
            "accuracy": {"train": 0.9, "test": 0.8}, "logdet_cov": float(-40 + rng.normal()), "ln_N": LN_N,
            "grad_norm": None if epoch == 0 or epoch not in WHOLE else float(1 + rng.random()),
            "loss": None, "seconds": {"train": 1.0, "estimate": 1.0}}


def make_run(zero_info, shift, optimizer, beta, seed, encoder="mlp", nulls=frozenset(), empty=False):
    key = (zero_info or "", shift, optimizer, beta)
    rng = np.random.default_rng([seed, int(shift), len(optimizer), int(round(-math.log10(beta))), len(zero_info or "")])
    records = []
    for epoch in sorted(set(WHOLE) | set(TRACKED)):
        if epoch in TRACKED:
            record = _record(epoch, key, seed, rng, nulls)
            if epoch not in WHOLE:
                record["partial"] = True
        else:  # a light record: no estimates
            record = {"epoch": epoch, "step": 100 * epoch, "logdet_cov": float(-40 + rng.normal()), "ln_N": LN_N,
                      "grad_norm": float(1 + rng.random()), "loss": {"total": 1.0}, "seconds": {"train": 1.0}}
        records.append(record)
    config = {"seed": seed, "zero_info": zero_info,
              "student": {"std_shift": shift, "optimizer": optimizer, "beta": beta, "encoder": encoder}}
    return RunResult(f"{key}-{seed}", {}, config, "finished", [] if empty else records)


def study(zero_info_runs=True):
    runs = [make_run(None, shift, opt, beta, seed, nulls=NULLS)
            for shift in (5.0, 0.0) for opt in ("adam", "sgd") for beta in (1e-3, 1e-2) for seed in (0, 1, 2)]
    if zero_info_runs:
        runs += [make_run("redraw", shift, "adam", 1e-3, seed) for shift in (5.0, 0.0) for seed in (0, 1)]
    # never started: no records; its encoder would otherwise appear in every label
    runs.append(make_run(None, 5.0, "adam", 1e-3, 7, encoder="cnn", empty=True))
    return runs


def read(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], [dict(zip(rows[0], row)) for row in rows[1:]]


def by_seed(runs, select, epoch, get):
    """The values of ``get(record)`` at ``epoch`` over the selected runs' seeds, None dropped."""
    found = [get(r) for run in runs if run.records and select(run.config) for r in run.records
             if r["epoch"] == epoch]
    return np.array([v for v in found if v is not None], dtype=float)


def expected(values):
    n = len(values)
    mean = values.mean()
    if n < 2:
        return mean, None, None, n
    half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def check(row, values, prefix=""):
    mean, lo, hi, n = expected(values)
    assert int(row["n"]) == n
    assert float(row[prefix + "mean"]) == pytest.approx(mean, rel=1e-12)
    if lo is None:
        assert row[prefix + "lo"] == row[prefix + "hi"] == ""
    else:
        assert float(row[prefix + "lo"]) == pytest.approx(lo, rel=1e-12)
        assert float(row[prefix + "hi"]) == pytest.approx(hi, rel=1e-12)


def find(rows, **want):
    hits = [r for r in rows if all(r[k] == str(v) for k, v in want.items())]
    assert len(hits) == 1, (want, len(hits))
    return hits[0]


def cond(zero_info, shift, opt, beta):
    return lambda c: (c["zero_info"], c["student"]["std_shift"], c["student"]["optimizer"],
                      c["student"]["beta"]) == (zero_info, shift, opt, beta)


def estimate(target, name):
    return lambda r: (r.get(target) or {}).get(name, {}).get("value")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    runs = study()
    return out, runs, figures.write_figures(runs, out)


def test_every_figure_and_csv_is_written(written):
    out, _, paths = written
    assert sorted(paths) == sorted(out / f"{stem}.{ext}" for stem in STEMS for ext in ("png", "csv"))
    for stem in STEMS:
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        header, rows = read(out / f"{stem}.csv")
        assert header == (figures.PLANE_HEADER if stem == "fig5_info_plane" else figures.LINE_HEADER)
        assert rows, stem
        assert not any("cnn" in r["condition"] or "cnn" in r["panel"] for r in rows)  # the empty run is skipped


def test_fig4_means_and_bands_over_seeds(written):
    out, runs, _ = written
    _, rows = read(out / "fig4_bounds.csv")
    panel, label = "init=vib_demo adam β=0.001", "adam β=0.001 init=vib_demo"
    assert {r["panel"] for r in rows} == {f"init={i} {o} β=0.001" for i in ("vib_demo", "wide") for o in ("adam", "sgd")}
    for name, epoch, n in (("vib", 3, 2), ("vib", 1, 3), ("empirical", 0.05, 3), ("teacher_iw", 5, 3)):
        values = by_seed(runs, cond(None, 5.0, "adam", 1e-3), epoch, estimate("I_XZ", name))
        assert len(values) == n
        check(find(rows, panel=panel, condition=label, series=name, epoch=float(epoch)), values)
    # one seed left: a mean without a band
    values = by_seed(runs, cond(None, 0.0, "sgd", 1e-3), 5, estimate("I_XZ", "vib"))
    assert len(values) == 1
    check(find(rows, panel="init=wide sgd β=0.001", series="vib", epoch=5.0), values)
    assert not any("β=0.01" in r["condition"] for r in rows)  # the β nearest 1e-3 only
    ln_n = find(rows, panel=panel, series="ln_N", epoch=2.0)
    assert float(ln_n["mean"]) == pytest.approx(LN_N) and ln_n["condition"] == "all" and ln_n["n"] == "3"


def test_fig3_zero_information(written):
    out, runs, _ = written
    _, rows = read(out / "fig3_zero_info.csv")
    assert {r["condition"] for r in rows} == {"init=vib_demo", "init=wide"}
    values = by_seed(runs, cond("redraw", 0.0, "adam", 1e-3), 3, estimate("I_YZ", "empirical"))
    check(find(rows, panel="I_YZ init=wide", condition="init=wide", series="empirical", epoch=3.0), values)
    assert {r["series"] for r in rows if r["panel"].startswith("I_XZ")} == {"vib", "teacher_elbo", "teacher_iw",
                                                                           "empirical"}


def test_fig5_pairs_x_and_y_over_the_same_seeds(written):
    out, runs, _ = written
    _, rows = read(out / "fig5_info_plane.csv")
    label = "β=0.001 init=vib_demo"
    select = cond(None, 5.0, "adam", 1e-3)
    # seed 0 has no I(Y;Z) at epoch 1, seed 2 no vib (so no paper min) at epoch 3: both over the others
    for epoch, n in ((1, 2), (3, 2), (5, 3)):
        pairs = [(estimate("I_XZ", "min_vib_teacher")(r), estimate("I_YZ", "barber_agakov")(r))
                 for run in runs if run.records and select(run.config) for r in run.records if r["epoch"] == epoch]
        x, y = (np.array([p[i] for p in pairs if None not in p], dtype=float) for i in (0, 1))
        assert len(x) == n
        row = find(rows, panel="adam x=min_vib_teacher", condition="adam " + label, epoch=float(epoch))
        check(row, x, "x_")
        check(row, y, "y_")


def test_fig6_and_fig7_dense_series(written):
    out, runs, _ = written
    _, rows6 = read(out / "fig6_logdet.csv")
    _, rows7 = read(out / "fig7_grad_norm.csv")
    select = cond(None, 0.0, "sgd", 1e-2)
    logdet = by_seed(runs, select, 2, lambda r: r["logdet_cov"])
    check(find(rows6, panel="sgd", condition="sgd β=0.01 init=wide", epoch=2.0), logdet)
    assert {r["series"] for r in rows6} == {"logdet_cov"}  # drawn once, not again in fig 7
    assert {r["series"] for r in rows7} == {"grad_norm"}
    grad = by_seed(runs, select, 4, lambda r: r["grad_norm"])
    check(find(rows7, panel="sgd", condition="sgd β=0.01 init=wide", epoch=4.0), grad)
    assert not [r for r in rows7 if r["series"] == "grad_norm" and float(r["epoch"]) in (0.0, 0.05, 0.3)]
    assert {float(r["epoch"]) for r in rows6} == set(map(float, WHOLE))  # whole epochs only


def test_a_study_without_zero_information_cells(tmp_path):
    paths = figures.write_figures(study(zero_info_runs=False), tmp_path)
    assert len(paths) == 10
    header, rows = read(tmp_path / "fig3_zero_info.csv")
    assert header == figures.LINE_HEADER and rows == []
    assert (tmp_path / "fig3_zero_info.png").stat().st_size > 0


def test_nothing_but_empty_runs(tmp_path):
    runs = [make_run(None, 5.0, "adam", 1e-3, seed, empty=True) for seed in (0, 1)]
    figures.write_figures(runs, tmp_path)
    for stem in STEMS:
        assert read(tmp_path / f"{stem}.csv")[1] == []


def test_aggregate_ignores_nan_and_bands_need_two_seeds():
    band = figures.aggregate([(np.array([0.0, 1.0, 2.0]), np.array([1.0, np.nan, np.nan])),
                              (np.array([0.0, 1.0, 2.0]), np.array([3.0, 4.0, np.nan]))])
    assert band.epochs.tolist() == [0.0, 1.0] and band.n.tolist() == [2, 1]
    assert band.mean.tolist() == [2.0, 4.0]
    half = stats.t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2)
    assert band.lo[0] == pytest.approx(2 - half) and band.hi[0] == pytest.approx(2 + half)
    assert np.isnan(band.lo[1]) and np.isnan(band.hi[1])
    assert figures.aggregate([]).epochs.size == 0


def test_nearest_beta_in_log_distance():
    assert figures.nearest_beta({0.0, 3e-4, 1e-2}) == 3e-4
    assert figures.nearest_beta({0.0}) == 0.0


def test_labels_name_only_the_varying_factors():
    conds = [figures.Condition("", "mlp", s, "adam", b) for s in (5.0, 0.0, 2.5) for b in (1e-3, 1e-2)]
    labels = figures.Labels(conds)
    assert labels(conds[0]) == "β=0.001 init=vib_demo"
    assert labels(conds[3]) == "β=0.01 init=wide"
    assert labels(conds[4]) == "β=0.001 init=std_shift 2.5"
    assert figures.Labels(conds[:1])(conds[0]) == "all runs"
