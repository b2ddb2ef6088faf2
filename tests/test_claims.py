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
            logdet=None, grad=None, yz=0.5, population=None, width=0.2, epochs=EPOCHS) -> RunResult:
    """A run whose exact I(X;Z) follows ``curve`` at ``epochs`` (vib and teacher_elbo default to
    curve + 10 and curve + 20, logdet to -epoch, grad to 1), with light records between; where
    ``population`` is given, a population bracket of that midpoint and ``width`` on every tracked
    record (ends with stderr 0.01)."""
    curve = np.asarray(curve, dtype=float)
    vib = curve + 10 if vib is None else np.asarray(vib, dtype=float)
    elbo = curve + 20 if elbo is None else np.asarray(elbo, dtype=float)
    records = []
    for epoch in range(epochs[-1] + 1):
        record = {"epoch": epoch, "step": epoch * 10, "ln_N": 7.6,
                  "logdet_cov": -float(epoch) if logdet is None else float(logdet(epoch)),
                  "grad_norm": None if epoch == 0 else (1.0 if grad is None else float(grad(epoch))),
                  "seconds": {"train": 1.0, "estimate": 0.1}}
        if epoch in epochs:
            i = epochs.index(epoch)
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


# ---- each per-run statistic's exact value on hand-made curves (what the mutation run asked for)


@pytest.mark.parametrize("values, settled", [
    ((10, 2, 1.5, 1.05, 1.0), 2),   # the total change (9) sets the tolerance, 0.9: epoch 2 on
    ((10, 1.95, 1.0, 0.2, 1.0), 2),  # the tolerance comes from the first and the last value only
    ((10, 5, 0.9, 1.85, 1.0), 2),   # distances are to the last value, not the one before it
    ((11, 2.0, 1.5, 1.0, 1.0), 1),  # exactly at the tolerance (1.0) is inside
    ((10, 1.5, 1.0, 1.0, 1.0), 1),  # one value outside: the epoch after it
    ((1, 1, 1, 1, 1), 0),           # never outside: the first epoch
])
def test_the_settling_epoch_is_the_one_after_the_last_value_outside_the_tolerance(values, settled):
    # vib settles as given, teacher_elbo is flat (settled at epoch 0): faster is minus vib's epoch
    run = planted(np.zeros(5), zero_info="redraw", vib=values, elbo=np.full(5, 3.0), epochs=(0, 1, 2, 3, 4))
    assert claims.faster(run, "paper") == -settled


def test_the_final_values_are_the_last_tracked_records_of_each_measure():
    run = planted(RISE_FALL, zero_info="redraw", yz=0.25)
    assert claims.final_xz(run, "exact") == 4.5 and claims.final_xz(run, "paper") == 14.5  # vib = curve + 10
    run.records[-1]["I_YZ"]["empirical"]["value"] = 0.75  # the exact measure reads empirical, the paper's the classifier
    assert claims.final_yz(run, "paper") == 0.25 and claims.final_yz(run, "exact") == 0.75
    empty = RunResult("e", {}, run.config, "finished", [])
    assert math.isnan(claims.final_xz(empty, "exact")) and math.isnan(claims.final_yz(empty, "paper"))


def test_faster_needs_two_records_and_finite_curves_of_both_bounds():
    two = planted(np.zeros(2), zero_info="redraw", vib=(5.0, 1.0), elbo=(5.0, 5.0), epochs=(0, 1))
    assert claims.faster(two, "paper") == -1.0
    one = planted(np.zeros(1), zero_info="redraw", epochs=(0,))
    assert math.isnan(claims.faster(one, "paper"))
    for vib, elbo in (((5.0, math.nan), (5.0, 5.0)), ((5.0, 1.0), (math.nan, 5.0))):
        broken = planted(np.zeros(2), zero_info="redraw", vib=vib, elbo=elbo, epochs=(0, 1))
        assert math.isnan(claims.faster(broken, "paper"))


def test_steadier_is_the_difference_of_the_roughness_of_the_second_halves():
    # elbo's second half (3, 2, 4): mean |step| 1.5 over mean |value| 3 (+ 0.1); vib's (1, 1, 2): 0.5 / (4/3 + 0.1)
    run = planted(np.zeros(6), zero_info="redraw", elbo=(0, 0, 1, 3, 2, 4), vib=(9, 9, 9, 1, 1, 2),
                  epochs=(0, 1, 2, 3, 4, 5))
    assert claims.steadier(run, "paper") == pytest.approx(1.5 / 3.1 - 0.5 / (4 / 3 + 0.1))
    four = planted(np.zeros(4), zero_info="redraw", elbo=(0, 0, 1, 3), vib=(2, 2, 2, 2), epochs=(0, 1, 2, 3))
    assert claims.steadier(four, "paper") == pytest.approx(2 / 2.1)  # four records suffice
    three = planted(np.zeros(3), zero_info="redraw", epochs=(0, 1, 2))
    assert math.isnan(claims.steadier(three, "paper"))
    for vib, elbo in (((1, 1, 1, math.nan), (1, 2, 1, 2)), ((1, 1, 1, 1), (1, math.nan, 1, 2))):
        broken = planted(np.zeros(4), zero_info="redraw", vib=vib, elbo=elbo, epochs=(0, 1, 2, 3))
        assert math.isnan(claims.steadier(broken, "paper"))


def test_logdet_falls_are_measured_from_the_peak_epoch_itself():
    run = planted(RISE_FALL, logdet=lambda e: -e)  # compression: epochs 4..32, middle 18
    assert claims.logdet_keeps_falling(run, "exact") == pytest.approx(14.0)


def test_the_middle_of_compression_is_the_epoch_nearest_its_midpoint():
    # logdet only at epochs 4, 5, 11, 13 and 20: the midpoint 12 ties 11 and 13, and the first wins
    known = {4: 0.0, 5: -1.0, 11: -2.0, 13: -7.0, 20: -8.0}
    run = planted(RISE_FALL[:4] + (5.0,), logdet=lambda e: known.get(e, math.nan), epochs=(0, 1, 2, 4, 20))
    assert claims.logdet_keeps_falling(run, "exact") == pytest.approx(min(0.0 - -2.0, -2.0 - -8.0))
    three = planted((1.0, 3.0, 6.0, 5.0), logdet=lambda e: {4: 0.0, 5: -1.0, 6: -3.0}.get(e, math.nan),
                    epochs=(0, 1, 4, 6))
    assert claims.logdet_keeps_falling(three, "exact") == pytest.approx(1.0)  # three records suffice
    two = planted((1.0, 3.0, 6.0, 5.0), logdet=lambda e: {4: 0.0, 6: -3.0}.get(e, math.nan), epochs=(0, 1, 4, 6))
    assert math.isnan(claims.logdet_keeps_falling(two, "exact"))


def test_grad_rises_is_defined_from_a_peak_at_epoch_two():
    grad = lambda e: 1.0 + 0.5 * (e - 1)  # noqa: E731
    at_two = planted((1.0, 3.0, 6.0, 5.0), grad=grad, epochs=(0, 1, 2, 4))
    assert claims.grad_rises(at_two, "exact") == pytest.approx(math.log(1.5))
    # the peak is the second record but epoch 3: the rule is on the epoch, not the record's index
    at_three = planted((1.0, 6.0, 5.0), grad=grad, epochs=(0, 3, 4))
    assert claims.grad_rises(at_three, "exact") == pytest.approx(math.log(2.0))
    at_one = planted((1.0, 6.0, 5.0), grad=grad, epochs=(0, 1, 4))
    assert math.isnan(claims.grad_rises(at_one, "exact"))


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


def _fewest(gap, sd, level, max_runs):
    """The definition of runs_to_decide, by brute force."""
    return next((n for n in range(2, max_runs + 1)
                 if float(stats.t.ppf(1 - level / 2, n - 1)) * sd / math.sqrt(n) < gap), None)


@pytest.mark.parametrize("mean, sd", [(1.0, 0.5), (0.5, 1.0), (1.0, 0.001), (3.0, 1.0)])
def test_runs_to_decide_matches_its_definition_at_round_numbers(mean, sd):
    # a gap or spread of exactly 1 is an ordinary case, and a tiny spread decides with 2 runs
    level = 0.05 / 20
    assert ibstats.runs_to_decide(mean, sd, 0.0, level, 1000) == _fewest(mean, sd, level, 1000)
    assert ibstats.runs_to_decide(1.0, 0.001, 0.0, level, 1000) == 2
    assert ibstats.runs_to_decide(1.0, 0.0, 0.0, level, 1000) == 2  # no spread: the fewest runs a t test has


def test_runs_to_decide_needs_the_interval_strictly_inside_and_at_most_max_runs():
    level, sd = 0.01, 1.0
    edge = float(stats.t.ppf(1 - level / 2, 4)) * sd / math.sqrt(5)  # 5 runs' half-width exactly
    assert ibstats.runs_to_decide(edge, sd, 0.0, level, 100) == 6  # equal is not excluded
    needed = _fewest(0.5, sd, level, 1000)
    assert ibstats.runs_to_decide(0.5, sd, 0.0, level, needed) == needed
    assert ibstats.runs_to_decide(0.5, sd, 0.0, level, needed - 1) is None


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


# ---- the rest of the per-run statistics and the table's bookkeeping, exactly (the mutation run's survivors)


def test_highest_and_the_peak_are_undefined_where_no_value_is_finite():
    assert claims.highest(planted(RISE_FALL), "exact") == 6.0
    assert math.isnan(claims.highest(planted(np.full(7, math.nan)), "exact"))
    assert claims.peak(planted(np.full(7, math.nan)), "exact") is None
    assert claims.peak(planted((2.0,), epochs=(0,)), "exact") == (0.0, 0)  # one record is its own peak


def test_two_runs_make_a_t_test_and_the_default_budget_is_five_percent():
    rows = [{"values": [1.0, 1.2], "n": 2, "threshold": 0.0, "side": "above", "half_width": None}]
    (judged,) = claims.judge(rows, alpha=0.05)
    assert judged["p"] is not None and judged["mean"] == pytest.approx(1.1)
    assert claims.claims([planted(RISE_FALL)])["alpha"] == 0.05


def test_the_compression_gap_starts_at_the_peak_epoch_and_needs_two_records():
    vib = np.array(RISE_FALL) + 1.0
    elbo = np.array(RISE_FALL) + np.array([0, 0, 0, 3.0, 5.0, 5.0, 5.0])  # 3 at the peak (epoch 4), 5 after it
    run = planted(RISE_FALL, vib=vib, elbo=elbo)
    # elbo - vib over epochs 4..32 (indices 3..6): 2, 4, 4, 4; the peak record itself counts
    assert claims.vib_lower_late(run, "exact") == pytest.approx(3.5)
    two = planted((1.0, 3.0, 6.0, 5.0), vib=(2, 4, 7, 6), elbo=(2, 4, 9, 10), epochs=(0, 1, 2, 4))
    assert claims.vib_lower_late(two, "exact") == pytest.approx(3.0)  # the peak and one more record suffice
    assert claims.elbo_lower_early(two, "exact") == pytest.approx(-2 / 3)  # epochs 0, 1, 2: 0, 0, -2
    at_end = planted((1.0, 3.0, 6.0), epochs=(0, 1, 2))
    assert math.isnan(claims.vib_lower_late(at_end, "exact"))  # one record from the peak on
    # the phase is by epoch: the peak is the third record (index 2) but epoch 5, so epoch 3 is before it
    sparse = planted((1.0, 3.0, 6.0, 5.0), vib=(2, 4, 7, 6), elbo=(2, 14, 9, 10), epochs=(0, 3, 5, 6))
    assert claims.vib_lower_late(sparse, "exact") == pytest.approx(3.0)


def test_gradient_statistics_refuse_norms_that_are_not_positive():
    def run(grad):
        return planted(RISE_FALL, grad=grad)

    assert claims.grad_rises(run(lambda e: 0.5 if e == 1 else 0.25), "exact") == pytest.approx(math.log(0.5))
    assert math.isnan(claims.grad_rises(run(lambda e: 0.0 if e == 4 else 1.0), "exact"))  # zero at the peak
    assert math.isnan(claims.grad_rises(run(lambda e: 0.0 if e == 1 else 1.0), "exact"))  # zero at epoch 1
    # the norm at the peak is the peak epoch's own, not the next epoch's
    assert claims.grad_rises(run(lambda e: {4: 2.0}.get(e, 1.0)), "exact") == pytest.approx(math.log(2.0))
    assert claims.grad_band(run(lambda e: 0.5 if e < 10 else 0.25), "exact") == pytest.approx(math.log(2.0))
    assert math.isnan(claims.grad_band(run(lambda e: 0.0 if e == 8 else 1.0), "exact"))
    two = planted((1.0, 3.0, 6.0, 5.0), grad=lambda e: 1.0 + e, epochs=(0, 1, 2, 3))  # compression: epochs 2, 3
    assert claims.grad_band(two, "exact") == pytest.approx(math.log(4.0 / 3.0))
    no_first = planted((1.0, 3.0, 6.0, 5.0), grad=lambda e: 1.0, epochs=(0, 2, 3, 4))
    no_first.records[1]["grad_norm"] = None  # no gradient norm at epoch 1
    assert math.isnan(claims.grad_rises(no_first, "exact"))
    no_first.records.pop(1)  # no record at epoch 1 at all
    assert math.isnan(claims.grad_rises(no_first, "exact"))


def _row(rows, claim, part_start, measure):
    return next(r for r in rows if r["claim"] == claim and r["part"].startswith(part_start) and r["measure"] == measure)


def test_the_bounds_rows_use_the_paper_measures_peak_and_carry_their_definition():
    vib = (10, 2, 1, 1, 1, 1, 1)
    elbo = (10, 8, 6, 4, 1, 3, 1)
    runs = [planted(np.zeros(7), seed=s, zero_info="redraw", vib=vib, elbo=elbo) for s in range(3)]
    rows = claims.table(runs)
    row = _row(rows, "C1", "vib converges faster", "bounds")
    assert row["values"] == [30.0, 30.0, 30.0] and row["statistic"].startswith("settling epoch")
    # the other rows read their own measure: exact I(X;Z) 0, the paper's min(vib, teacher_elbo) 1
    assert _row(rows, "C1", "I(X;Z) falls", "exact")["values"] == [0.0, 0.0, 0.0]
    assert _row(rows, "C1", "I(X;Z) falls", "paper")["values"] == [1.0, 1.0, 1.0]
    result = claims.claims(runs, alpha=0.01)
    assert (result["alpha"], result["method"], result["margin_nats"], result["runs_judged"]) == (
        0.01, claims.METHOD, claims.MARGIN, 3)
    counted = {v: sum(r["verdict"] == v for r in result["rows"]) for v in ("reproduced", "not reproduced",
                                                                            "inconclusive")}
    assert result["counts"] == counted and sum(counted.values()) == len(result["rows"])


def test_conditions_keep_other_grid_keys_apart_and_pool_none_of_the_known_ones():
    runs = [planted(RISE_FALL, seed=s) for s in range(2)] + [planted(RISE_FALL, seed=s, zero_info="redraw")
                                                             for s in range(2)]
    for r, lr in zip(runs, ("a", "b", "a", "b")):
        r.values.update({"zero_info": r.zero_info, "track.q_hidden": lr})
    part = next(p for p in claims.PARTS if p.claim == "C3")
    found = claims.conditions(part, runs, "exact")
    # zero_info is a known key (the part selects on it), the other key splits the runs; sorted by label
    assert list(found) == ["track.q_hidden=a", "track.q_hidden=b"]
    assert [[r.seed for r in members] for _, members in found.values()] == [[0], [1]]


def test_c4_pairs_consecutive_betas_on_the_seeds_both_have():
    runs = [planted(RISE_FALL, seed=s, beta=b) for s, b in ((0, 0.001), (1, 0.001), (0, 0.01), (2, 0.01),
                                                             (0, 0.1), (1, 0.1))]
    part = next(p for p in claims.PARTS if p.claim == "C4")
    found = claims.conditions(part, runs, "exact")
    assert list(found) == ["β 0.001 vs 0.01", "β 0.01 vs 0.1"]
    first_values, first_runs = found["β 0.001 vs 0.01"]
    assert first_values == [0.0]  # seed 0 only: the one both betas have
    assert sorted((r.setting("student.beta"), r.seed) for r in first_runs) == [(0.001, 0), (0.001, 1), (0.01, 0),
                                                                              (0.01, 2)]


def test_the_bracket_half_width_counts_a_crossed_bracket_as_zero():
    crossed = planted(RISE_FALL, population=RISE_FALL, width=-0.2)
    wide = planted(RISE_FALL, population=RISE_FALL, width=0.4)
    assert claims.half_width([crossed]) == 0.0
    assert claims.half_width([crossed, wide]) == pytest.approx(0.1)
    assert claims.half_width([planted(RISE_FALL)]) is None


def test_conditions_are_ordered_by_their_label_text():
    # 1e-05 < 0.001 as numbers, but the conditions are sorted by the text of their keys: 0.001 first
    runs = [planted(RISE_FALL, seed=s, beta=b) for b in (1e-05, 0.001) for s in range(2)]
    part = next(p for p in claims.PARTS if p.claim == "C3")
    labels = list(claims.conditions(part, runs, "exact"))
    assert len(labels) == 2 and "0.001" in labels[0] and "1e-05" in labels[1]


def test_a_judged_row_holds_the_tests_numbers():
    values = [0.5, 0.9, 0.7, 1.3]
    part = {"values": values, "n": 4, "threshold": 0.1, "side": "above", "half_width": None}
    (row,) = claims.judge([part], alpha=0.05)
    p, (low, high) = _t_row(values, 0.1)
    assert row["mean"] == pytest.approx(np.mean(values)) and row["sd"] == pytest.approx(np.std(values, ddof=1))
    assert row["ci95"] == pytest.approx([low, high]) and row["p"] == pytest.approx(p)
    assert row["holm_level"] == 0.05 and row["significant"] is True and row["verdict"] == "reproduced"
    assert row["runs_to_decide"] is None and row["bracket_too_wide"] is False
    one = claims.judge([dict(part, values=[0.7], n=1)], alpha=0.05)[0]
    assert (one["mean"], one["sd"], one["ci95"], one["p"], one["holm_level"]) == (0.7, None, None, None, None)
    assert "significant" not in one and one["verdict"] == "inconclusive"


def test_an_inconclusive_row_says_how_many_runs_would_decide_it():
    values = [0.3, -0.1, 0.4, 0.0]
    (row,) = claims.judge([{"values": values, "n": 4, "threshold": 0.0, "side": "above", "half_width": None}],
                          alpha=0.05)
    assert row["verdict"] == "inconclusive"
    expected = ibstats.runs_to_decide(np.mean(values), np.std(values, ddof=1), 0.0, 0.05, claims.MAX_RUNS)
    assert row["runs_to_decide"] == expected and expected is not None


def test_a_mean_on_its_threshold_with_no_spread_is_not_on_the_claimed_side():
    (row,) = claims.judge([{"values": [0.5, 0.5], "n": 2, "threshold": 0.5, "side": "above", "half_width": None}],
                          alpha=0.05)
    assert row["p"] == 0.0 and row["verdict"] == "not reproduced"


@pytest.mark.parametrize("mean_gap, too_wide", [(0.25, True), (0.5, False), (0.75, False)])
def test_a_population_row_is_too_wide_only_strictly_inside_its_half_width(mean_gap, too_wide):
    threshold = 0.5  # not 0: the distance is to the threshold
    values = [threshold + mean_gap] * 2
    (row,) = claims.judge([{"values": values, "n": 2, "threshold": threshold, "side": "above", "half_width": 0.5}],
                          alpha=0.05)
    assert row["bracket_too_wide"] is too_wide
    assert row["verdict"] == ("inconclusive" if too_wide else "reproduced")


def test_holm_rejects_a_p_value_equal_to_its_level():
    levels, rejected = ibstats.holm([0.05, 0.025], 0.05)
    assert levels == [0.05, 0.025] and rejected == [True, True]
    assert ibstats.holm([0.05, 0.03], 0.05) == ([0.05, 0.025], [False, False])
