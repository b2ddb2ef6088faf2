"""The claims table (ibcheck.study.claims) on planted runs: each per-run statistic measures what
its definition says, each verdict follows from the t test and Holm's procedure computed here by
hand, and "runs to decide" is the smallest number that would decide."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from ibcheck import stats as ibstats
from ibcheck.study import claims, results
from ibcheck.study.results import RunResult

EPOCHS = (0, 1, 2, 4, 8, 16, 32)


def _entry(value, stderr=0.01):
    return {"value": float(value), "stderr": stderr, "n": 500}


def planted(curve, seed=0, shift=5.0, optimizer="adam", beta=1e-3, zero_info=None, vib=None, elbo=None,
            logdet=None, grad=None, yz=0.5, population=None, width=0.2) -> RunResult:
    """A run whose exact I(X;Z) follows ``curve`` at EPOCHS (vib and teacher_elbo default to
    curve + 10 and curve + 20, logdet to -epoch, grad to 1), with light records between; where
    ``population`` is given, a population bracket of that midpoint and ``width`` on every tracked
    record (ends with stderr 0.01)."""
    curve = np.asarray(curve, dtype=float)
    vib = curve + 10 if vib is None else np.asarray(vib, dtype=float)
    elbo = curve + 20 if elbo is None else np.asarray(elbo, dtype=float)
    records = []
    for epoch in range(EPOCHS[-1] + 1):
        record = {"epoch": epoch, "step": epoch * 10, "ln_N": 7.6,
                  "logdet_cov": -float(epoch) if logdet is None else float(logdet(epoch)),
                  "grad_norm": None if epoch == 0 else (1.0 if grad is None else float(grad(epoch))),
                  "seconds": {"train": 1.0, "estimate": 0.1}}
        if epoch in EPOCHS:
            i = EPOCHS.index(epoch)
            record.update(I_XZ={"empirical": _entry(curve[i]), "vib": _entry(vib[i]), "teacher_elbo": _entry(elbo[i]),
                                "min_vib_teacher": _entry(min(vib[i], elbo[i]))},
                          I_YZ={"barber_agakov": _entry(yz), "empirical": _entry(yz)},
                          accuracy={"train": 0.9, "test": 0.9})
            if population is not None:
                middle = float(population[i])
                record["population"] = {"lower": _entry(middle - width / 2), "upper": _entry(middle + width / 2),
                                        "width": _entry(width)}
        records.append(record)
    config = {"seed": seed, "zero_info": zero_info,
              "student": {"std_shift": shift, "optimizer": optimizer, "beta": beta, "encoder": "mlp"}}
    return RunResult(f"s{seed}", {"seed": seed}, config, "finished", records)


RISE_FALL = (1.0, 3.0, 5.0, 6.0, 5.5, 5.0, 4.5)  # peak 6 at epoch 4


def test_rise_and_fall_subtract_twice_the_standard_error():
    run = planted(RISE_FALL)
    se2 = 2 * math.hypot(0.01, 0.01)
    assert claims.peak(run, "exact") == (4.0, 3)
    # an inner maximum stands above both ends: the smaller of its rise (5) and its fall (1.5)
    assert claims.rise(run, "exact") == pytest.approx(min(6.0 - 1.0, 6.0 - 4.5) - se2)
    assert claims.fall(run, "exact") == pytest.approx(6.0 - 4.5 - se2)
    flat_start = planted((6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.5))
    assert claims.rise(flat_start, "exact") == pytest.approx(-se2)


RISING = (1.0, 3.0, 5.0, 6.0, 6.5, 7.0, 7.5)  # the maximum is the last record: no inner maximum


def test_a_maximum_at_the_last_epoch_is_no_inner_maximum():
    """The defect issue 18 found: C3's rise came out reproduced on runs whose every maximum was at
    their last epoch. Such a run scores -2 se, and a grid of them is not reproduced."""
    run = planted(RISING)
    assert claims.peak(run, "exact") == (32.0, 6)
    assert claims.rise(run, "exact") == pytest.approx(-2 * math.hypot(0.01, 0.01))
    rng = np.random.default_rng(1)
    grid = [planted(np.array(RISING) + rng.normal(0, 0.05, 7), seed=s) for s in range(6)]
    rows = [r for r in claims.claims(grid)["rows"]
            if r["claim"] == "C3" and r["part"].startswith("I(X;Z) rises") and r["measure"] == "exact"]
    assert [r["verdict"] for r in rows] == ["not reproduced"]


def test_the_paper_measure_has_its_own_peak():
    # vib falls all along while the exact value rises then falls: the paper's min peaks at epoch 0
    run = planted(RISE_FALL, vib=(50, 40, 30, 20, 15, 12, 11), elbo=(90, 80, 70, 60, 50, 40, 30))
    assert claims.peak(run, "paper") == (0.0, 0)
    assert claims.peak(run, "exact") == (4.0, 3)


def test_phase_gaps_of_the_two_bounds():
    vib = np.array((20, 22, 24, 25, 24, 23, 22), dtype=float)
    elbo = np.array((15, 16, 17, 30, 30, 30, 30), dtype=float)
    run = planted(RISE_FALL, vib=vib, elbo=elbo)
    # exact peak at epoch 4 (index 3): fitting = indices 0..3, compression = 3..6
    assert claims.elbo_lower_early(run, "exact") == pytest.approx(np.mean(vib[:4] - elbo[:4]))
    assert claims.vib_lower_late(run, "exact") == pytest.approx(np.mean(elbo[3:] - vib[3:]))


def test_logdet_and_gradient_statistics():
    run = planted(RISE_FALL, logdet=lambda e: -e if e < 20 else -20.0, grad=lambda e: 1 + 0.1 * min(e, 4))
    # compression: epochs 4..32, middle 18: falls 14 then 2 (it stops at epoch 20)
    assert claims.logdet_keeps_falling(run, "exact") == pytest.approx(min(18 - 4, 20 - 18))
    assert claims.grad_rises(run, "exact") == pytest.approx(math.log(1.4 / 1.1))
    assert claims.grad_band(run, "exact") == pytest.approx(0.0)
    at_start = planted((6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.5))
    assert math.isnan(claims.grad_rises(at_start, "exact"))  # no fitting phase: undefined, not 0


def test_settling_epoch_and_roughness_compare_vib_with_teacher_elbo():
    vib = (10, 2, 1, 1, 1, 1, 1)  # settles at epoch 2 (index 2)
    elbo = (10, 8, 6, 4, 1, 3, 1)  # settles only at the last record (epoch 32): it jumps at index 5
    run = planted(np.zeros(7), zero_info="redraw", vib=vib, elbo=elbo)
    assert claims.faster(run, "paper") == 32 - 2
    assert claims.steadier(run, "paper") > 0


def _t_row(values, threshold):
    x = np.asarray(values)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return stats.ttest_1samp(x, threshold).pvalue, (low, high)


def test_t_test_matches_scipy():
    values = [0.5, 0.9, 0.7, 1.3]
    mean, sd, low, high, p = ibstats.t_test(values, 0.1)
    expected_p, (elow, ehigh) = _t_row(values, 0.1)
    assert (mean, p, low, high) == pytest.approx((np.mean(values), expected_p, elow, ehigh))


def test_holm_step_down_and_verdicts():
    rows = [{"values": v, "n": len(v), "threshold": 0.0, "side": side, "half_width": None}
            for v, side in (([5.0, 5.1, 4.9], "above"),      # tiny p, claimed side: reproduced
                            ([-3.0, -3.2, -2.9], "above"),   # tiny p, other side: not reproduced
                            ([0.2, -0.1, 0.4], "above"),     # large p: inconclusive
                            ([1.0], "above"))]               # one run: untestable
    judged = claims.judge(rows, alpha=0.05)
    ps = [_t_row(r["values"], 0.0)[0] for r in rows[:3]]
    order = np.argsort(ps)
    levels = {int(i): 0.05 / (3 - rank) for rank, i in enumerate(order)}
    assert [r["holm_level"] for r in judged[:3]] == pytest.approx([levels[0], levels[1], levels[2]])
    assert [r["verdict"] for r in judged] == ["reproduced", "not reproduced", "inconclusive", "inconclusive"]
    assert judged[3]["p"] is None and judged[3]["runs_to_decide"] is None


def test_holm_stops_at_the_first_row_it_cannot_reject():
    # the second-smallest p is above its level, so the third is not rejected even if below its own
    rows = [{"values": v, "n": len(v), "threshold": 0.0, "side": "above", "half_width": None}
            for v in ([9.0, 9.1, 8.9], [1.0, 3.0, 2.0, 0.5], [2.0, 2.6, 3.0, 1.0, 1.7, 2.2, 2.9, 2.4])]
    ps = sorted(_t_row(r["values"], 0.0)[0] for r in rows)
    judged = claims.judge(rows, alpha=0.05)
    significant = [r["verdict"] != "inconclusive" for r in sorted(judged, key=lambda r: r["p"])]
    expected, going = [], True
    for rank, p in enumerate(ps):
        going = going and p <= 0.05 / (3 - rank)
        expected.append(going)
    assert significant == expected


@pytest.mark.parametrize("mean,sd,threshold", [(0.5, 0.3, 0.1), (2.0, 5.0, 0.0), (-1.0, 0.2, 0.1)])
def test_runs_to_decide_is_the_smallest_sufficient_number(mean, sd, threshold):
    level = 0.05 / 20
    n = ibstats.runs_to_decide(mean, sd, threshold, level, claims.MAX_RUNS)
    half = lambda k: stats.t.ppf(1 - level / 2, k - 1) * sd / math.sqrt(k)
    assert half(n) < abs(mean - threshold)
    assert n == 2 or half(n - 1) >= abs(mean - threshold)
    assert ibstats.runs_to_decide(threshold, sd, threshold, level, claims.MAX_RUNS) is None


def test_a_planted_fit_then_compress_grid_is_reproduced_and_a_flat_one_is_not():
    rng = np.random.default_rng(0)
    fit = [planted(np.array(RISE_FALL) + rng.normal(0, 0.05, 7), seed=s, optimizer=o, beta=b)
           for s in range(4) for o in ("adam", "sgd") for b in (1e-3, 1e-2)]
    flat = [planted(np.full(7, 3.0) + rng.normal(0, 0.005, 7), seed=s, shift=0.0, optimizer=o, beta=b)
            for s in range(4) for o in ("adam", "sgd") for b in (1e-3, 1e-2)]
    result = claims.claims(fit + flat)
    c3 = {(r["part"].split(" (")[0], r["condition"]): r["verdict"]
          for r in result["rows"] if r["claim"] == "C3" and r["measure"] == "exact"}
    for optimizer in ("adam", "sgd"):
        for beta in ("β=0.001", "β=0.01"):  # every beta apart: none is pooled
            assert c3[("I(X;Z) rises to an inner maximum", f"init vib_demo, {optimizer}, {beta}")] == "reproduced"
            assert c3[("then falls", f"init vib_demo, {optimizer}, {beta}")] == "reproduced"
            assert c3[("I(X;Z) rises to an inner maximum", f"init wide, {optimizer}, {beta}")] == "not reproduced"
    assert all(r["n"] == 4 for r in result["rows"] if r["claim"] == "C3" and r["measure"] == "exact")


def test_the_population_measure_is_the_bracket_midpoint_with_half_its_width_as_uncertainty():
    run = planted(RISE_FALL, population=np.array(RISE_FALL) * 2, width=0.6)
    epochs, values, errors = claims._curve(run, "population")
    assert list(epochs) == list(EPOCHS) and values == pytest.approx(np.array(RISE_FALL) * 2)
    assert errors == pytest.approx(np.full(7, math.hypot(0.01, 0.3)))
    assert claims.fall(run, "population") == pytest.approx(12.0 - 9.0 - 2 * math.hypot(*[math.hypot(0.01, 0.3)] * 2))
    # the claims table has a population row wherever it has an exact one, but for I(Y;Z)
    result = claims.claims([planted(RISE_FALL, seed=s, population=RISE_FALL) for s in range(3)])
    exact = {(r["claim"], r["part"], r["condition"]) for r in result["rows"] if r["measure"] == "exact"}
    population = {(r["claim"], r["part"], r["condition"]) for r in result["rows"] if r["measure"] == "population"}
    assert population == {key for key in exact if not key[1].startswith("I(Y;Z)")}
    # the bracket's half-width guards only statistics in nats of I(X;Z); elsewhere it only places e*
    guarded = {r["claim"] for r in result["rows"] if r["measure"] == "population" and r["half_width"] is not None}
    assert guarded == {"C3"}  # C1 (zero-information runs) and C4 (two beta values) have none here


def test_a_population_row_nearer_its_threshold_than_the_bracket_is_inconclusive():
    """Significant by the t test (mean 0.3 above 0, tiny spread), but where the brackets' mean
    half-width (0.5) exceeds that distance the truth could lie on the other side: no verdict, and
    no number of runs would give one. With half-width 0.1 the same row is reproduced."""
    wide, narrow = ([planted(RISE_FALL, seed=s, population=RISE_FALL, width=w) for s in range(3)] for w in (1.0, 0.2))
    assert claims.half_width(wide) == pytest.approx(0.5) and claims.half_width(narrow) == pytest.approx(0.1)
    values = [0.29, 0.30, 0.31, 0.30, 0.305, 0.295]
    rows = [{"values": values, "n": len(values), "threshold": 0.0, "side": "above", "half_width": claims.half_width(r)}
            for r in (wide, narrow)]
    too_wide, fine = claims.judge(rows, alpha=0.05)
    assert too_wide["significant"] and too_wide["bracket_too_wide"] and too_wide["verdict"] == "inconclusive"
    assert too_wide["runs_to_decide"] is None
    assert not fine["bracket_too_wide"] and fine["verdict"] == "reproduced"


def test_beta_pairs_are_taken_within_a_seed():
    runs = [planted(np.array(RISE_FALL) * (1.0 if b == 1e-3 else 0.5) + s, seed=s, beta=b)
            for s in range(3) for b in (1e-3, 1e-2)]
    part = next(p for p in claims.PARTS if p.claim == "C4")
    found = claims.observations(part, runs, "exact")
    assert list(found) == ["β 0.001 vs 0.01"]
    assert found["β 0.001 vs 0.01"] == pytest.approx([3.0, 3.0, 3.0])  # 6 - 3 in every seed, whatever its offset


def test_parts_without_runs_get_a_row_that_says_so():
    result = claims.claims([planted(RISE_FALL, seed=s) for s in range(3)])
    c1 = [r for r in result["rows"] if r["claim"] == "C1"]
    assert c1 and all(r["condition"] == claims.NO_RUNS and r["verdict"] == "inconclusive" for r in c1)


def test_only_finished_runs_with_readable_records_are_judged():
    """Issue 19: a crashed cell's partial curve and a diverged run were pooled with the finished
    ones. They are left out of every row, and the table says which and why."""
    rng = np.random.default_rng(2)
    done = [planted(np.array(RISE_FALL) + rng.normal(0, 0.05, 7), seed=s) for s in range(3)]
    crashed = dataclasses.replace(planted((9.0, 1.0, 0.5, 0.4, 0.3, 0.2, 0.1), seed=3), status="unfinished")
    crashed = dataclasses.replace(crashed, records=crashed.records[:3])  # killed in epoch 2
    diverged = dataclasses.replace(planted(RISING, seed=4), status="diverged")
    unreadable = dataclasses.replace(planted(RISING, seed=5), problem=results.UNREADABLE)
    result = claims.claims([*done, crashed, diverged, unreadable])
    assert result["rows"] == claims.claims(done)["rows"]
    assert all(r["n"] + r["undefined"] <= 3 for r in result["rows"])
    assert result["runs_judged"] == 3
    assert result["left_out"] == {"unfinished": ["s3"], "diverged": ["s4"], results.UNREADABLE: ["s5"]}


def test_holm_steps_down_and_stops_at_the_first_acceptance():
    levels, significant = ibstats.holm([0.01, 0.04, 0.03, 0.001], 0.05)
    assert levels == pytest.approx([0.05 / 3, 0.05, 0.05 / 2, 0.05 / 4])
    assert significant == [True, False, False, True]  # 0.03 > 0.025 stops it: 0.04 is not tested
    assert ibstats.holm([], 0.05) == ([], [])
