"""The field's estimators beside ibcheck's bracket, judged through the plugin interface.

Runs in ``nox -s peers``'s virtualenv, which has benchmark-mi (and JAX); ibcheck itself never
imports them. One ``validate`` run on the built-in suite judges every peer as a plugin (one
false-failure budget for them all). ibcheck's bracket is not estimated again: it is read, with its
standard errors, from the committed reference run (``baselines/reference.json``, the same suite at
validate's defaults), which keeps the session inside its 25 minutes.
Writes into OUT (default reports/peers): the validate report of that run (``validate/``),
``peers.csv`` and ``peers.json`` (per case and peer: truth, bracket, estimate ± se, error, time,
verdict), ``error_vs_truth.png`` with its CSV, and ``report.md``.

    python scripts/peers.py [OUT] [--quick]     # --quick: two cases, 200 steps
    python scripts/peers.py [OUT] --render      # rewrite the report from OUT/peers.json
"""
from __future__ import annotations

import itertools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ibcheck import fileio
from ibcheck.analytic.suite import builtin_suite
from ibcheck.harness import plugin, report
from ibcheck.harness.validate import validate

# sizes, chosen so that the whole run fits in 25 minutes on two cores (README, "The field's estimators"):
# a neural call costs 10-15 s at d + m <= 24 whatever its steps (benchmark-mi evaluates its test split
# eagerly), and 140-190 s at mnist-shaped's 824, past the time limit, which ends that case
N, REPEATS, NEURAL_REPEATS, STEPS, BATCH, TIME_LIMIT = 1_000, 5, 3, 1_000, 256, 30.0
HISTOGRAM_MAX_DIMS = 6  # 5 bins a dimension: 5^6 cells for 1,000 points is already sparse
REFERENCE = Path(__file__).resolve().parent.parent / "baselines" / "reference.json"


@dataclass(frozen=True)
class Peer:
    name: str
    family: str
    kind: str  # what ibcheck judges it as: "lower" (a variational lower bound) or "point"
    make: object  # seed -> an object with .estimate(x, y)
    max_dims: int | None = None
    repeats: int = REPEATS


def peers(steps: int) -> list[Peer]:
    from bmi import estimators as bmi

    # early stopping reads the test split every 250 steps; a short run needs one reading at least
    neural = dict(max_n_steps=steps, batch_size=BATCH, verbose=False, test_every_n_steps=min(250, steps))
    return [
        Peer("KSG", "nearest neighbours", "point", lambda seed: bmi.KSGEnsembleFirstEstimator(neighborhoods=(5,))),
        Peer("CCA", "Gaussian (canonical correlations)", "point", lambda seed: bmi.CCAMutualInformationEstimator()),
        Peer("histogram", "binning", "point", lambda seed: bmi.HistogramEstimator(n_bins_x=5),
             max_dims=HISTOGRAM_MAX_DIMS),
        Peer("InfoNCE", "neural variational", "lower", lambda seed: bmi.InfoNCEEstimator(seed=seed, **neural),
             repeats=NEURAL_REPEATS),
        Peer("NWJ", "neural variational", "lower", lambda seed: bmi.NWJEstimator(seed=seed, **neural),
             repeats=NEURAL_REPEATS),
        Peer("DV", "neural variational", "point", lambda seed: bmi.DonskerVaradhanEstimator(seed=seed, **neural),
             repeats=NEURAL_REPEATS),
        Peer("MINE", "neural variational", "point", lambda seed: bmi.MINEEstimator(seed=seed, **neural),
             repeats=NEURAL_REPEATS),
    ]


def as_plugin(peer: Peer) -> plugin.Plugin:
    """The peer as a plugin: a fresh estimator (and seed) per call."""
    seeds = itertools.count()

    def fn(x: np.ndarray, z: np.ndarray) -> float:
        if peer.max_dims is not None and x.shape[1] + z.shape[1] > peer.max_dims:
            raise ValueError(f"d + m = {x.shape[1] + z.shape[1]} is more than the {peer.max_dims} it can bin")
        return float(peer.make(next(seeds)).estimate(x, z))

    fn.__name__ = peer.name
    return plugin.Plugin(peer.name, fn, peer.kind, n=N, repeats=peer.repeats, time_limit=TIME_LIMIT)


def reference_brackets(cases, path: Path = REFERENCE) -> dict[str, dict | None]:
    """ibcheck's bracket per case (ends with their standard errors), from the committed reference run;
    refused where that run is not of these cases (a suite changed without regenerating it)."""
    from ibcheck import seeds
    from ibcheck.analytic import exact

    run = json.loads(path.read_text())
    found = {c["name"]: c for c in run["cases"]}
    for case in cases:
        truth = exact.exact_values(case, seed=seeds.seed_of(run["seed"], case.name, case.settings.seed, "exact")).I_XZ
        if case.name not in found or not math.isclose(found[case.name]["exact"]["I_XZ"], truth, rel_tol=1e-9,
                                                          abs_tol=1e-12):
            raise SystemExit(f"peers: {path} is not a run of the suite's case {case.name!r}; regenerate it with "
                             f"`ibcheck validate --json {path}`")
    return {name: c["bracket"] for name, c in found.items()}


def rows_of(result, table, peer_list, brackets: dict[str, dict | None]) -> list[dict]:
    families = {p.name: p for p in peer_list}
    out = []
    for case in result.cases:
        case_rows = [r for r in table if r["case"] == case.name]
        found = brackets.get(case.name)
        for r in case_rows:
            if r["estimator"] not in families:
                continue
            out.append({"case": case.name, "truth": r["exact"], "bracket_lower": found and found["lower"]["value"],
                        "bracket_upper": found and found["upper"]["value"], "bracket_width": found and found["width"],
                        "bracket_lower_se": found and found["lower"]["stderr"],
                        "bracket_upper_se": found and found["upper"]["stderr"],
                        "peer": r["estimator"], "family": families[r["estimator"]].family,
                        "kind": families[r["estimator"]].kind,
                        "value": r["value"], "stderr": r["stderr"], "error": r["value"] - r["exact"],
                        "calls": families[r["estimator"]].repeats, "seconds": r["seconds"], "passed": not r["failed"],
                        "failure": r["error"]})
    return out


FIELDS = ["case", "truth", "bracket_lower", "bracket_upper", "bracket_width", "bracket_lower_se", "bracket_upper_se",
          "peer", "family", "kind", "value",
          "stderr", "error", "calls", "seconds", "passed", "failure"]


MARKERS = {"lower": "^", "upper": "v", "point": "o"}  # a bound's marker points to the side it claims


def plot(rows: list[dict], path: Path, title: str | None = None) -> None:
    from matplotlib import colormaps

    fig, ax = fileio.figure(figsize=(9.5, 5))
    colours = colormaps["tab20"].colors  # up to 20 estimators, none sharing a colour
    for i, name in enumerate(dict.fromkeys(r["peer"] for r in rows)):
        mine = sorted((r for r in rows if r["peer"] == name and r["failure"] is None), key=lambda r: r["truth"])
        kind = next(r["kind"] for r in rows if r["peer"] == name)
        ax.errorbar([r["truth"] for r in mine], [r["error"] for r in mine], yerr=[2 * r["stderr"] for r in mine],
                    marker=MARKERS.get(kind, "o"), ms=5, capsize=2, lw=1, color=colours[i % len(colours)],
                    label=f"{name} ({kind})")
    cases = sorted({(r["truth"], r["bracket_lower"], r["bracket_upper"]) for r in rows
                    if r["bracket_lower"] is not None})
    ax.vlines([c[0] for c in cases], [c[1] - c[0] for c in cases], [c[2] - c[0] for c in cases], color="black",
              lw=4, alpha=0.5, label="ibcheck's bracket (minus the truth)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xlabel("true I(X;Z) [nats]")
    ax.set_ylabel("estimate - truth [nats] (±2 se)")
    ax.set_title(title or f"The field's estimators on ibcheck's built-in suite (n = {N:,} pairs per call)",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the data, not over it
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fileio.save_figure(fig, path)


def breakdown(rows: list[dict]) -> list[str]:
    """A line per peer, from the numbers: where its error stays small and where it breaks down."""
    lines = []
    for name in dict.fromkeys(r["peer"] for r in rows):
        mine = sorted((r for r in rows if r["peer"] == name), key=lambda r: r["truth"])
        failed = [r for r in mine if r["failure"] is not None]
        good = [r for r in mine if r["failure"] is None]
        close = [r for r in good if abs(r["error"]) <= 0.25]
        worst = max(good, key=lambda r: abs(r["error"])) if good else None
        text = f"- **{name}** ({mine[0]['family']}, judged as {mine[0]['kind']}): "
        text += f"within 0.25 nats on {len(close)} of {len(good)} cases it ran on"
        if worst is not None:
            text += (f"; its largest error is {worst['error']:+.2f} nats on `{worst['case']}` "
                     f"(I = {worst['truth']:.2f})")
        high = [r for r in good if r["truth"] >= 5]
        if high:
            errors = ", ".join(f"{r['error']:+.2f}" for r in high)
            text += f"; on the cases with I ≥ 5 nats its errors are {errors}"
        if failed:
            text += f"; it failed on {len(failed)} case(s): {failed[0]['failure']}"
        verdicts = sum(r["passed"] for r in good)
        lines.append(text + f". It passed its test on {verdicts} of {len(mine)} cases.")
    return lines


def narrower(rows: list[dict]) -> list[str]:
    """Issue 10's comparison on every case with I >= 5: the bracket's width (negative widths, ends crossed
    within their noise, count as 0) against each peer's |error|, each with 2 se: narrower, wider, or not
    told apart at this precision, with the reason wherever the bracket is not the narrower."""
    lines = []
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == case]
        head = mine[0]
        if head["truth"] < 5 or head["bracket_width"] is None:
            continue
        width = max(head["bracket_width"], 0.0)
        width_hi = width + 2 * math.hypot(head["bracket_lower_se"], head["bracket_upper_se"])
        verdicts: dict[str, list[str]] = {"narrower than": [], "wider than": [], "not told apart from": [],
                                          "not compared with": []}
        for r in mine:
            if r["failure"] is not None:
                verdicts["not compared with"].append(f"{r['peer']} (it {r['failure']})")
                continue
            low_error, high_error = abs(r["error"]) - 2 * r["stderr"], abs(r["error"]) + 2 * r["stderr"]
            key = ("narrower than" if width_hi < low_error else
                   "wider than" if high_error < width else "not told apart from")
            why = ("" if key == "narrower than" else
                   ": its error is smaller than the bracket's width" if key == "wider than" else
                   f": its 2 se, {2 * r['stderr']:.2f}, is more than the bracket's width; {r['calls']} sample sets "
                   "are too few to tell" if 2 * r["stderr"] > width_hi else
                   ": its error is as small as the bracket's width, within their noise")
            verdicts[key].append(f"{r['peer']} ({r['error']:+.2f} ± {r['stderr']:.2f}{why})")
        parts = [f"{key} {', '.join(names)}" for key, names in verdicts.items() if names]
        lines.append(f"- `{case}` (I = {head['truth']:.2f}): the bracket, {head['bracket_width']:+.3f} wide (2 se "
                     f"{width_hi - width:.3f}), is " + "; ".join(parts) + ".")
    return lines


def markdown(rows: list[dict], meta: dict) -> str:
    steps = meta["steps"]
    lines = ["# The field's estimators beside ibcheck's bracket", "",
             f"One `validate` run on the built-in suite ({meta['tests']} tests, family-wise alpha {meta['alpha']:g}), "
             f"{meta['seconds'] / 60:.1f} min on this machine. Each peer got independent sets of {N:,} pairs (x, z) "
             f"per case, one call each, through `ibcheck.harness.plugin`: {REPEATS} sets for KSG, CCA and the histogram, "
             f"{NEURAL_REPEATS} for the neural ones, which trained at most {steps:,} steps at batch {BATCH} "
             "(benchmark-mi's defaults otherwise: a 16-8 MLP critic, half the pairs for training, early stopping). "
             f"A call has {TIME_LIMIT:g} s; the first failed call ends that peer's case. Errors are estimate − truth "
             "in nats, ± the se over the sample sets. With 3 to 5 sample sets and the run's Bonferroni level, the "
             "tests have little power: read the errors, not only the verdicts.", "",
             "ibcheck's bracket (per case the tightest lower and upper bounds that passed their tests, with their "
             "standard errors: mostly `teacher_riw` and `teacher_iw`, on some cases `nce` or `loo`) is not estimated "
             "again here: it is the committed reference run's, `baselines/reference.json` (the same suite at "
             f"`validate`'s defaults, seed 0; {meta['reference_seconds']:.0f} s of estimators on this machine).", "",
             "**What is compared.** The peers estimate I(X;Z) from samples alone. ibcheck's own bounds also use "
             "the known encoder density p(z|x) (all of them), and `teacher_riw` and `teacher_iw` the teacher and "
             "the prior's density (`teacher_riw` also the generating z_v): they know more, so their bracket is not a fair "
             "measure of the peers' skill, only of what that knowledge buys.", "",
             "![error against the truth](error_vs_truth.png)", "",
             "## Where each family breaks down", "", *breakdown(rows), "",
             "## The bracket against the peers' errors (cases with I ≥ 5 nats)", "",
             "CCA's estimate is the information of a Gaussian fitted to the pairs: exact, up to sampling noise, "
             "wherever x and z are jointly Gaussian (every case here with a Gaussian prior), and far off where they "
             "are not or where the dimension nears the number of pairs.", "", *narrower(rows), ""]
    return "\n".join(lines + case_tables(rows, ("peer", "kind", "sample sets")))


def case_tables(rows: list[dict], heads: tuple[str, str, str]) -> list[str]:
    """A section per case: the truth, ibcheck's bracket, and a table of every estimator's estimate, error,
    sample sets, seconds and verdict; ``heads`` names the estimator, kind and sample-set columns."""
    lines = []
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == case]
        head = mine[0]
        br = ("–" if head["bracket_lower"] is None else
              f"[{head['bracket_lower']:.3f}, {head['bracket_upper']:.3f}], width {head['bracket_width']:.3f}")
        lines += [f"## {case}", "", f"I(X;Z) = {head['truth']:.4f}; ibcheck's bracket {br}", "",
                  f"| {heads[0]} | {heads[1]} | estimate ± se | error | {heads[2]} | s | test |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in mine:
            verdict = "passed" if r["passed"] else f"**failed**{': ' + r['failure'] if r['failure'] else ''}"
            value = "–" if r["failure"] else f"{r['value']:.3f} ± {r['stderr']:.3f}"
            err = "–" if r["failure"] else f"{r['error']:+.3f}"
            lines.append(f"| {r['peer']} | {r['kind']} | {value} | {err} | {r['calls']} | {r['seconds']:.1f} "
                         f"| {verdict} |")
        lines.append("")
    return lines


def write(out: Path, rows: list[dict], meta: dict, text: str | None = None, title: str | None = None) -> None:
    """Everything but the validate report, from the rows and the run's numbers: report.md is ``text``
    (default: this script's ``markdown``), the figure's title ``title``."""
    fileio.write_csv(out / "peers.csv", FIELDS, [[r[k] for k in FIELDS] for r in rows])
    fileio.write_json(out / "peers.json", fileio.finite_or_none({**meta, "rows": rows}))
    plot(rows, out / "error_vs_truth.png", title)
    fileio.write_csv(out / "error_vs_truth.csv", ["peer", "case", "truth", "error", "stderr"],
                     [[r["peer"], r["case"], r["truth"], r["error"], r["stderr"]] for r in rows])
    fileio.write_text(out / "report.md", markdown(rows, meta) if text is None else text)


def recorded(out: Path) -> tuple[list[dict], dict]:
    """(rows, the run's numbers) of OUT/peers.json, as ``write`` had them (null errors back to NaN)."""
    meta = json.loads((out / "peers.json").read_text())
    rows = meta.pop("rows")
    for r in rows:
        r["error"] = math.nan if r["error"] is None else r["error"]
    return rows, meta


def render(out: Path) -> None:
    """Rewrite the report from OUT/peers.json, without estimating anything again."""
    write(out, *recorded(out))


def main(argv: list[str]) -> None:
    flags = {a for a in argv if a.startswith("--")}
    args = [a for a in argv if not a.startswith("--")]
    out = Path(args[0] if args else "reports/peers")
    if "--render" in flags:
        render(out)
        return
    quick = "--quick" in flags
    steps = 200 if quick else STEPS
    peer_list = peers(steps)
    cases = builtin_suite()
    if quick:  # a smoke run of the session: two small cases
        cases = [c for c in cases if c.name in ("hand-1d", "high-mi")]
    brackets = reference_brackets(cases)
    started = time.perf_counter()
    result = validate(cases, names=(), plugins=[as_plugin(p) for p in peer_list],
                      progress=lambda label: print(f"  {label}", file=sys.stderr, flush=True))
    seconds = time.perf_counter() - started
    table = report.rows(result)
    report.write_report(result, out / "validate", table)
    meta = {"n": N, "repeats": REPEATS, "neural_repeats": NEURAL_REPEATS, "steps": steps, "seconds": seconds,
            "tests": result.tests, "alpha": result.alpha,
            "reference_seconds": json.loads(REFERENCE.read_text())["seconds"]}
    write(out, rows_of(result, table, peer_list, brackets), meta)
    print(f"peers: {out / 'report.md'} ({seconds / 60:.1f} min)", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
