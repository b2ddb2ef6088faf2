"""``nox -s calibration`` (``calibration.py``): its statistics on planted t values, its resumable
run on Ray, and the table of match checks it shares with the tests."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ibcheck.interface import Estimate

import budget
import calibration
import match_checks


def _records(t_values, kind="match", terms=1000, label="planted") -> list[dict]:
    return [{"group": "g", "param": "", "i": i, "seed": i, "seconds": 0.0,
             "observations": [{"label": label, "kind": kind, "value": float(t), "se": 1.0, "n": terms,
                               "reference": 0.0, "reference_se": 0.0, "t": float(t)}]}
            for i, t in enumerate(t_values)]


def test_a_calibrated_check_passes_and_a_shifted_one_is_flagged():
    t = np.random.default_rng(0).standard_normal(400)
    good, = calibration.summarize(_records(t))
    assert good["calibrated"] and abs(good["mean_t"] - t.mean()) < 1e-12
    assert good["fail_0.05"] == int(np.sum(np.abs(t) > calibration.stats.quantile(0.025, 1000)))
    shifted, = calibration.summarize(_records(t - 0.3))
    assert not shifted["mean_t_inside"] and not shifted["calibrated"]
    wide, = calibration.summarize(_records(1.4 * t))  # se understated: too many rejections
    assert not wide["rates_inside"] and not wide["calibrated"]


def test_the_family_wise_verdict_flags_a_shifted_check_among_calibrated_ones():
    """Sixty calibrated checks and one shifted by 0.3 in t, 400 seeds each: only the shifted one is
    flagged (a calibrated check is flagged with probability at most FAMILY_ALPHA / tests by
    construction; the draws are seeded)."""
    rng = np.random.default_rng(3)
    records = _records(np.zeros(400))
    for r in records:
        r["observations"] = [{"label": f"c{j}", "kind": "match", "value": 0.0, "se": 1.0, "n": 1000, "reference": 0.0,
                              "reference_se": 0.0, "t": float(rng.standard_normal() + 0.3 * (j == 60))}
                             for j in range(61)]
    rows = calibration.summarize(records)
    assert calibration.family_tests(rows) == 61 * 4
    assert [r["label"] for r in rows if r["family_flag"]] == ["c60"]
    assert rows[60]["p_mean"] < calibration.FAMILY_ALPHA / calibration.family_tests(rows)


def test_a_label_two_groups_share_is_never_pooled():
    first, second = _records(np.full(30, 5.0), kind="upper"), _records(np.random.default_rng(4).standard_normal(30))
    for r in second:
        r["group"] = "h"
    rows = calibration.summarize(first + second)
    assert [(r["label"], r["kind"], r["seeds"]) for r in rows] == [("planted [g]", "upper", 30), ("planted [h]", "match", 30)]


@pytest.mark.statistical
def test_chance_all_pass_of_the_mean_t_rule_alone(monkeypatch, stat):
    """With no rate bands, a calibrated check of 400 seeds keeps |mean t| <= 0.1 with probability
    1 - 2 Phi(-0.1 sqrt(400)) = 0.9545; 20,000 simulated suites estimate it with the binomial se
    0.0015, judged as a match check of the suite's budget. A second such check can only lower it."""
    from scipy import stats

    monkeypatch.setattr(calibration, "LEVELS", ())
    row = {"label": "c", "kind": "match", "degenerate": False, "seeds": 400, "terms": 2_000_000}
    expected = 1 - 2 * stats.norm.sf(calibration.MEAN_T_LIMIT * 20)
    sims, seed = 20_000, budget.seed_for("chance_all_pass")
    one = calibration.chance_all_pass([row], sims=sims, seed=seed)
    se = math.sqrt(expected * (1 - expected) / sims)
    # a probability, not an information: the check reads only the value, its se and n
    stat.matches(Estimate("chance_all_pass", "I_XZ", "match", one, se, sims, seed), expected,
                 label="chance_all_pass of one check vs 1 - 2 Phi(-2)")
    # the same draws for the first check: the second only removes passes
    assert calibration.chance_all_pass([row, {**row, "label": "d"}], sims=sims, seed=seed) < one


def test_one_sided_checks_count_only_the_side_that_fails():
    t = np.random.default_rng(1).standard_normal(300) + 3.0  # an upper bound well above the truth
    upper, = calibration.summarize(_records(t, kind="upper"))
    assert upper["fail_0.1"] == 0 and upper["rates_inside"]
    lower, = calibration.summarize(_records(t, kind="lower"))  # the same values as a lower bound: wrong side
    assert lower["fail_0.01"] > 150 and not lower["rates_inside"]


def test_band_is_the_binomial_central_range():
    """At most 0.5% of a calibrated check's counts fall below the band, and at most 0.5% above."""
    from scipy import stats

    for seeds, level in ((200, 0.05), (50, 0.1), (1000, 0.01)):
        lo, hi = calibration.band(seeds, level)
        below, above = stats.binom.cdf(lo - 1, seeds, level), stats.binom.sf(hi, seeds, level)
        assert below <= 0.005 < stats.binom.cdf(lo, seeds, level) or lo == 0
        assert above <= 0.005 < stats.binom.sf(hi - 1, seeds, level)


def test_qq_points_and_their_band():
    t = np.random.default_rng(2).standard_normal(101)
    pts = calibration.qq_points(t, 10_000)
    assert np.all(np.diff(pts["sample"]) >= 0) and np.all(np.diff(pts["theory"]) > 0)
    assert pts["theory"][50] == pytest.approx(0.0, abs=1e-12)
    assert np.all(pts["lo"] < pts["theory"]) and np.all(pts["theory"] < pts["hi"])


def test_observation_t_is_signed_and_allows_roundoff():
    est = Estimate("e", "I_XZ", "match", 1.2, 0.1, 100, 0)
    assert match_checks.Observation("a", "match", est, 1.0).t == pytest.approx(2.0)
    assert match_checks.Observation("a", "match", est, 1.4).t == pytest.approx(-2.0)
    assert match_checks.Observation("a", "match", est, 1.0, reference_se=math.sqrt(0.03)).t == pytest.approx(1.0)
    flat = Estimate("e", "I_XZ", "match", 1e-17, 0.0, 100, 0)
    assert match_checks.Observation("a", "match", flat, 0.0).t == 0.0
    assert match_checks.Observation("a", "match", flat, 1.0).t == -math.inf


def test_a_bound_is_judged_by_its_skew_corrected_t_and_the_plain_one_is_kept():
    from ibcheck import stats

    skewed = Estimate("e", "I_XZ", "upper", 0.9, 0.05, 400, 0, skew=2.0)
    upper = match_checks.Observation("b", "upper", skewed, 1.0)
    assert upper.t == pytest.approx(-2.0) and upper.t_checked == pytest.approx(stats.skew_corrected(-2.0, 2.0, 400))
    assert upper.t_checked > upper.t  # right-skewed terms: a low t is less surprising than it looks
    assert match_checks.Observation("m", "match", skewed, 1.0).t_checked == upper.t
    halved = match_checks.Observation("b", "upper", skewed, 1.0, reference_se=0.05)  # skew diluted by (1/sqrt 2)^3
    assert halved.t_checked == pytest.approx(stats.skew_corrected(halved.t, 2.0 / 8**0.5, 400))
    records = _records(np.full(50, -1.5), kind="upper")
    for r in records:
        r["observations"][0]["t_checked"] = 0.0
    row, = calibration.summarize(records)
    assert row["skew_corrected"] and row["fail_0.1"] == 0 and row["plain_fail_0.1"] == 50


def test_every_group_parameter_draws_labelled_checks():
    """The table's cheap groups, one seed each: every parameter gives checks with finite t."""
    for name in ("information-mc", "vib-mc", "teacher-mc", "closed-form-kl", "vib-float32"):
        group = match_checks.GROUPS[name]
        for param in group.params:
            found = group.draw(param, 7)
            assert found and all(o.kind == "match" and math.isfinite(o.t) for o in found)


def test_a_run_on_ray_resumes_and_redraws_a_cut_line(tmp_path):
    """Twenty seeds of the closed-form KL on local Ray; a rerun draws nothing; a cut last line is redrawn."""
    out = tmp_path / "cal"
    argv = [str(out), "--seeds", str(calibration.MIN_RANDOM), "--groups", "closed-form-kl", "--quiet"]
    assert calibration.main(argv) == 0
    path = out / "observations.jsonl"
    lines = path.read_text().splitlines()
    assert len(lines) == calibration.MIN_RANDOM
    assert sorted(json.loads(x)["i"] for x in lines) == list(range(calibration.MIN_RANDOM))
    report = (out / "report.md").read_text()
    assert "closed-form KL" in report and (out / "qq.png").exists() and (out / "calibration.csv").exists()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # an interrupted append
    assert calibration.main(argv) == 0
    again = path.read_text().splitlines()
    assert len(again) == len(lines) and again[:-1] == lines[:-1]
    assert json.loads(again[-1])["observations"] == json.loads(lines[-1])["observations"]


def test_a_draw_that_raises_stops_the_run_in_one_line(tmp_path):
    """A group the workers do not know raises KeyError in its task: the run stops with one line that
    names the draw, and the draws already written stay."""
    out = tmp_path / "cal"
    out.mkdir()
    (out / "observations.jsonl").write_text('{"group": "kept", "param": "", "i": 0, "observations": []}\n')
    ghost = match_checks.Group("ghost", (None,), lambda _, seed: [], seeds=1)
    with pytest.raises(SystemExit) as stop:
        calibration.run(out, [ghost], None, None, quiet=True)
    message = str(stop.value)
    assert message.startswith("calibration: the draw of ghost - seed ") and "KeyError" in message
    assert "\n" not in message and '"kept"' in (out / "observations.jsonl").read_text()


@pytest.mark.parametrize("argv,message", [(["--groups", "nonsense"], "unknown group 'nonsense'"),
                                          (["--seeds", "1"], "--seeds must be at least 2")])
def test_bad_options_are_refused_in_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        calibration.main([str(tmp_path / "c"), *argv])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
