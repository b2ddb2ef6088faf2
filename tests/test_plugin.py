"""The plugin interface (``ibcheck.harness.plugin``, ``validate --estimator``, ``ibcheck sample``): anyone's
estimator judged with the harness's statistics. A correct estimator written in the tests passes, a
deliberately biased one is flagged, and broken ones are recorded while the run goes on."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from ibcheck.analytic.exact import exact_values
from ibcheck.analytic.suite import builtin_suite
from ibcheck.cli import main
from ibcheck.harness import check, plugin, report, sandbox
from ibcheck.interface import InputError

import plugin_estimators as user
from helpers import SUITE_NAMES, suite_case

TESTS = Path(__file__).parent
# the built-in cases whose pairs are jointly Gaussian with full-rank covariances, where the
# bias-corrected Gaussian estimator is unbiased
GAUSSIAN = ["hand-1d", "noisy-teacher", "shifted-data-prior", "high-mi", "teacher-15-nats"]


def _cases(names):
    return [suite_case(name) for name in names]


@pytest.mark.statistical
def test_a_correct_point_estimator_passes(stat):
    units = len(GAUSSIAN)
    result = check.check_estimator(user.gaussian_mi, "point", _cases(GAUSSIAN), seed=stat_seed(),
                                    alpha=stat.run_alpha(units))
    assert result.tests == units and all(r.matches_expected is not None for c in result.cases for r in c.rows)
    stat.record_run(result.passed, units, "check_estimator: gaussian_mi on the Gaussian cases")


def stat_seed() -> int:
    import budget

    return budget.seed_for("plugin")


@pytest.mark.power
def test_a_biased_estimator_is_flagged_on_every_case():
    """Power: with 50 sets of 1,000 pairs the mean's se is at most about 0.013 nats on these cases (0.017 at
    20 sets on teacher-15-nats, where a 0.1-nat bias is caught only 98.6% of the time), so 0.1 nats is over
    4 se beyond the two-sided threshold of z(1 - 1e-4) se: caught with probability above 0.9999 per case."""
    result = check.check_estimator(user.gaussian_mi_plus_a_tenth, "point", _cases(GAUSSIAN), seed=stat_seed(),
                                    repeats=50)
    assert not result.passed
    assert [r.matches_expected for c in result.cases for r in c.rows] == [False] * len(GAUSSIAN)


@pytest.mark.power
def test_an_upper_bound_that_is_too_low_is_flagged():
    result = check.check_estimator(user.gaussian_mi_times_0_9, "upper", _cases(["high-mi", "teacher-15-nats"]),
                                    seed=stat_seed())
    assert [r.valid for c in result.cases for r in c.rows] == [False, False]


@pytest.mark.parametrize("fn, why", [(user.raises, "raised RuntimeError: this estimator is broken"),
                                     (user.not_finite, "returned nan")])
def test_a_broken_estimator_is_recorded_and_the_run_goes_on(fn, why):
    result = check.check_estimator(fn, "lower", _cases(["hand-1d", "high-mi"]), repeats=3, n=50)
    rows = [r for c in result.cases for r in c.rows]
    assert len(rows) == 2 and not result.passed
    assert all(r.error == f"{why} (call 1 of 3; no more calls were made)" and r.valid is False for r in rows)


def test_a_call_past_the_time_limit_is_a_recorded_failure():
    result = check.check_estimator(user.sleeps, "point", _cases(["hand-1d"]), repeats=2, n=10, time_limit=0.2)
    (row,) = result.cases[0].rows
    assert row.error == "ran past the time limit of 0.2 s (call 1 of 2; no more calls were made)"
    assert row.estimate.seconds < 0.2 + sandbox.GRACE + 1  # killed there, not after its 5 s sleep


def test_labels_are_the_first_argument_for_I_YZ(tmp_path):
    log = tmp_path / "seen.jsonl"  # the estimator runs in a process of its own: it reports through a file

    def record(a, b):
        with open(log, "a") as out:
            out.write(json.dumps([a.shape, a.dtype.kind, b.shape]) + "\n")
        return 0.0

    check.check_estimator(record, "point", _cases(["hand-1d", "ten-classes", "high-mi"]), n=30, repeats=2,
                           target="I_YZ")
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert seen == [[[30, 1], "f", [30, 1]]] * 2 + [[[30, 1], "i", [30, 3]]] * 2  # high-mi has no labels


def test_an_estimator_that_trains_a_torch_network_has_gradients():
    """torch-mist's estimators train inside the call: gradients must be on there, whatever the draws used."""
    import torch

    def trains(x, z):
        assert torch.is_grad_enabled()
        w = torch.zeros(1, requires_grad=True)
        loss = ((torch.as_tensor(x[:, 0]) - w) ** 2).mean()
        loss.backward()
        assert w.grad is not None
        return 0.0

    result = check.check_estimator(trains, "point", _cases(["hand-1d", "high-mi"]), n=30, repeats=2)
    assert all(r.error is None for c in result.cases for r in c.rows)


def test_the_user_estimator_reaches_the_table_json_and_report(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    cases = tmp_path / "cases.json"
    suite = json.loads((TESTS.parent / "baselines" / "suite.json").read_text())
    cases.write_text(json.dumps({"cases": [c for c in suite["cases"] if c["name"] == "hand-1d"]}))
    out, js = tmp_path / "report", tmp_path / "r.json"
    code = main(["validate", "--cases", str(cases), "--out", str(out), "--json", str(js), "--quiet",
                 "--estimator", "plugin_estimators:gaussian_mi_plus_a_tenth", "--kind", "point"])
    assert code == 1
    estimates = json.loads(js.read_text())["cases"][0]["estimates"]
    mine = [e for e in estimates if e["estimator"] == "plugin_estimators:gaussian_mi_plus_a_tenth"]
    assert len(mine) == 1 and mine[0]["matches_expected"] is False and mine[0]["params"]["repeats"] == 20
    assert "plugin_estimators:gaussian_mi_plus_a_tenth" in (out / "report.md").read_text()
    assert "plugin_estimators:gaussian_mi_plus_a_tenth" in (out / "estimates.csv").read_text()


def test_only_estimators_runs_the_users_estimator_as_check_estimator_does(tmp_path, monkeypatch, capsys):
    """--only-estimators and --case: the CLI run makes the API's tests on the API's draws (the estimator's
    seed does not depend on its name), so values and verdicts agree; and the report leaves out the bracket
    and the built-in estimators' figures."""
    monkeypatch.syspath_prepend(str(TESTS))
    out, js = tmp_path / "report", tmp_path / "r.json"
    code = main(["validate", "--only-estimators", "--case", "high-mi", "--case", "hand-1d", "--out", str(out),
                 "--json", str(js), "--quiet", "--estimator", "plugin_estimators:gaussian_mi_plus_a_tenth",
                 "--kind", "point", "--estimator-repeats", "5", "--estimator-n", "300", "--seed", "4"])
    printed = capsys.readouterr().out
    cli = json.loads(js.read_text())
    api = check.check_estimator(user.gaussian_mi_plus_a_tenth, "point", _cases(["hand-1d", "high-mi"]), n=300,
                                repeats=5, seed=4)
    assert [c["name"] for c in cli["cases"]] == ["hand-1d", "high-mi"]  # the suite's order
    (api_rows, cli_rows) = ([(r.estimate.value, r.estimate.stderr, r.matches_expected) for c in api.cases for r in c.rows],
                            [(e["value"], e["stderr"], e["matches_expected"]) for c in cli["cases"] for e in c["estimates"]])
    assert cli_rows == api_rows and code == (0 if api.passed else 1)
    assert sorted(p.name for p in out.iterdir()) == ["estimates.csv", "estimates.png", "report.md", "results.json"]
    assert "bracket" not in printed and "## The bracket" not in (out / "report.md").read_text()
    flagged = sum(r.matches_expected is False for c in api.cases for r in c.rows)
    summary = "plugin_estimators:gaussian_mi_plus_a_tenth (point): " + (
        f"flagged on {flagged} of 2 cases (bias {flagged})" if flagged else "passed on all 2 cases")
    assert f"verdict {summary}" in printed and f"- {summary}" in (out / "report.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--case", "no-such-case"], "--case no-such-case: no such case (cases: hand-1d,"),
    (["--only-estimators"], "--only-estimators: give your estimators with --estimator or --estimator-cmd"),
])
def test_a_bad_selection_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert main(["validate", "--out", str(tmp_path / "r"), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, message", [
    (["--estimator", "no_such_module_here:fn", "--kind", "point"], "cannot import no_such_module_here"),
    (["--estimator", "plugin_estimators:missing", "--kind", "point"], "has no callable missing"),
    (["--estimator", "plugin_estimators", "--kind", "point"], "expected MODULE:FUNCTION"),
    (["--estimator", "plugin_estimators:zero"], "give --kind once per --estimator"),
])
def test_a_bad_estimator_option_is_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(TESTS))
    assert main(["validate", "--out", str(tmp_path / "r"), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "r").exists()


def test_sample_writes_every_case_with_its_exact_values(tmp_path):
    out = tmp_path / "s.npz"
    assert main(["sample", "--n", "64", "--out", str(out)]) == 0
    with np.load(out) as data:
        assert list(data["cases"]) == SUITE_NAMES
        exact = json.loads(str(data["exact"]))
        for case in builtin_suite():
            assert data[f"{case.name}/x"].shape == (64, case.d) and data[f"{case.name}/z"].shape == (64, case.m)
            assert data[f"{case.name}/z_v"].shape == (64, case.k)
            assert (f"{case.name}/y" in data) == (case.labels.kind != "none")
            truth = exact_values(case)  # class-label truths: two Monte Carlo values, 6 se > 4 sd apart
            assert exact[case.name]["I_XZ"] == pytest.approx(truth.I_XZ, abs=6 * (truth.I_XZ_se or 1e-12))


def test_load_refuses_a_callable_that_is_not_there():
    with pytest.raises(InputError, match="has no callable nope"):
        plugin.load("json:nope")
    assert plugin.load("json:dumps") is json.dumps
    assert sys.modules["json"]


def test_report_rows_name_the_user_estimator():
    result = check.check_estimator(user.gaussian_mi, "point", _cases(["hand-1d"]), repeats=3, n=100, name="mine")
    (row,) = report.rows(result)
    assert row["estimator"] == "mine" and row["kind"] == "point" and row["expected"] == row["exact"]


def test_the_api_is_at_the_top_of_the_package():
    import ibcheck

    assert ibcheck.check_estimator is check.check_estimator


def test_an_estimator_in_the_current_folder_is_found(tmp_path, monkeypatch):
    """As `python -m` would: the `ibcheck` script alone does not put the current folder on the path."""
    (tmp_path / "here_estimator.py").write_text("def half(a, b):\n    return 0.5\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert plugin.load("here_estimator:half")(None, None) == 0.5
