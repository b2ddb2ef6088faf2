"""The report of ``scripts/torch_mist_peers.py``: which of torch-mist's claimed bounds failed, where
and by how much, from the judged rows (``peers.rows_of``) and the run's numbers. Needs ibcheck and
matplotlib, not torch-mist, so ``--render`` rewrites it anywhere from OUT/peers.json."""
from __future__ import annotations

from pathlib import Path

import peers as bmi_peers


def t_quantile(level: float, dof: int | None) -> float:
    """The one-sided quantile at ``level`` of Student's t with ``dof`` degrees of freedom (None: normal)."""
    from scipy import stats

    return float(stats.norm.ppf(1 - level) if dof is None else stats.t.ppf(1 - level, dof))


def _broken(rows: list[dict]) -> list[str]:
    """A line per claimed bound that failed its one-sided test somewhere, worst case first."""
    lines = []
    for name in dict.fromkeys(r["peer"] for r in rows):
        mine = [r for r in rows if r["peer"] == name]
        kind = mine[0]["kind"]
        if kind == "point":
            continue
        bad = sorted((r for r in mine if r["failure"] is None and not r["passed"]), key=lambda r: -abs(r["error"]))
        if not bad:
            continue
        side = "above" if kind == "lower" else "below"
        where = "; ".join(f"`{r['case']}` {abs(r['error']):.2f} ± {r['stderr']:.2f} nats {side} I = {r['truth']:.2f}"
                          for r in bad)
        lines.append(f"- **{name}**, claimed {kind} ({mine[0]['family']}): {side} the truth on {len(bad)} of "
                     f"{len(mine)} cases: {where}.")
    return lines or ["- None: every claimed bound that ran stayed on its side of the truth within the tests."]


def _held(rows: list[dict]) -> list[str]:
    out = []
    for name in dict.fromkeys(r["peer"] for r in rows):
        mine = [r for r in rows if r["peer"] == name]
        ran = [r for r in mine if r["failure"] is None]
        if mine[0]["kind"] != "point" and ran and all(r["passed"] for r in ran):
            out.append(f"{name} ({mine[0]['kind']}, {len(ran)} cases)")
    return out


def _failures(rows: list[dict]) -> list[str]:
    """Calls that raised or ran out of time, grouped by estimator and reason."""
    lines = []
    for name in dict.fromkeys(r["peer"] for r in rows):
        failed = [r for r in rows if r["peer"] == name and r["failure"] is not None]
        reasons: dict[str, list[str]] = {}
        for r in failed:
            reasons.setdefault(r["failure"].split(" (call ")[0], []).append(r["case"])
        for reason, cases in reasons.items():
            lines.append(f"- **{name}** on {len(cases)} case(s) ({', '.join(f'`{c}`' for c in cases)}): {reason}.")
    return lines or ["- None."]


def markdown(rows: list[dict], meta: dict) -> str:
    held = _held(rows)
    lines = ["# torch-mist's estimators, each judged as the bound it claims to be", "",
             f"torch-mist {meta['torch_mist']} (numpy {meta['numpy']}, torch {meta['torch']}), every estimator it "
             f"ships, on the built-in suite but {', '.join(meta['left_out'])} (d = 784, left out to keep the run "
             "under an hour: benchmark-mi's neural estimators took 140-190 s a call there, `reports/peers`). One "
             f"family-wise budget, alpha {meta['alpha']:g}, over the run's {meta['tests']} tests "
             f"({meta['test_alpha']:.1e} each); {meta['seconds'] / 60:.1f} min on {meta['workers']} worker processes "
             "of this 2-core machine, while the test suite ran beside them. A call took 0.8 to 7.5 s (median "
             "2.1 s), and 9 to 27 s for InfoNCE, AlphaTUBA and FLO, which score every pair of the evaluation half.",
             "",
             f"Each estimator got {meta['sets']} independent sets of {meta['n']:,} pairs (x, z) per case, one call each, "
             "in-process through `ibcheck.harness.plugin`; a call trained torch-mist's estimator for "
             f"{meta['iterations']} steps at its defaults (batch 128, a 128-unit hidden layer) on the first half and "
             "evaluated on the other half (`estimate_mi(..., early_stopping=False)`: its early stopping ends "
             "training after a few dozen steps on a set this size). The estimate is the mean over the sets, ± their "
             "se. BA needs h(Z); it was given the exact value.", "",
             f"**Power.** With {meta['sets']} sets a test compares the error with Student's t quantile at "
             f"{meta['sets'] - 1} degrees of freedom and the run's per-test level: "
             f"{t_quantile(meta['test_alpha'], meta['sets'] - 1):.1f} se one-sided, "
             f"{t_quantile(meta['test_alpha'] / 2, meta['sets'] - 1):.1f} se two-sided (a normal quantile would be "
             f"{t_quantile(meta['test_alpha'], None):.1f}). So an error is flagged only beyond about 9 se: a "
             "failures below are certain, but a pass says only that the error is within that margin. More sets "
             "buy power: 20 sets give 5.8 se, 50 give 4.8.", "",
             "**Which kind each is judged as.** torch-mist's own claim: its `lower_bound` flag (True for NWJ, "
             "InfoNCE, TUBA, AlphaTUBA, JS, SMILE, FLO and BA), and for CLUB and L1Out, whose flags are both False, "
             "the upper bound of their papers, which torch-mist's references name. The others (MINE, whose source "
             "says it \"sometimes converges from above\", DoE, GM, Binned, PQ) claim no bound and are judged as point "
             "estimators: their bias is tested against 0. (Binned's class declares `lower_bound = True`, but the "
             "estimator torch-mist builds reports its base estimator's flag, False; the flag of the built estimator "
             "is used.)", "",
             "**CLUB and L1Out** raise a RuntimeError wherever d ≠ m (7 of the 9 cases): torch-mist 0.2.17 adds "
             "`x.detach() * 0` to y to broadcast their shapes (`L1Out._broadcast_log_p_y_given_x`), which needs "
             "x and y of one width. They ran on `hand-1d` (d = m = 1) and `high-mi` (d = m = 4) only.", "",
             "![error against the truth](error_vs_truth.png)", "",
             "## Claimed bounds that failed", "", *_broken(rows), "",
             "Claimed bounds that held on every case they ran on: " + (", ".join(held) if held else "none") + ".", "",
             "## Calls that failed", "", *_failures(rows), "",
             "## Each estimator", "", *bmi_peers.breakdown(rows), ""]
    return "\n".join(lines + bmi_peers.case_tables(rows, ("estimator", "judged as", "sets")))


def write(out: Path, rows: list[dict], meta: dict) -> None:
    """Everything but the validate report, from the rows and the run's numbers (``peers.write``)."""
    bmi_peers.write(out, rows, meta, markdown(rows, meta),
                    f"torch-mist's estimators on ibcheck's built-in suite (n = {meta['n']:,} pairs per call)")


def render(out: Path) -> None:
    """Rewrite the report from OUT/peers.json, without estimating anything again."""
    write(out, *bmi_peers.recorded(out))
