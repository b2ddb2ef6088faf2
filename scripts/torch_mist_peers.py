"""torch-mist's estimators judged by ibcheck, each as the kind torch-mist claims for it.

Runs in ``nox -s torch_mist``'s virtualenv, which has torch-mist 0.2.17 and the numpy below 2 it pins;
ibcheck itself never imports it. Every estimator torch-mist ships is called in-process (a fresh
process per call would cost 3 s of imports, more than most calls) through ``ibcheck.harness.plugin``
on independent sample sets of the built-in suite, and all of them are judged in one family-wise
budget. The kind of each is torch-mist's own claim: its ``lower_bound`` flag, and for CLUB and L1Out,
whose flags say nothing, the upper bound their papers and torch-mist's references name them.
ibcheck's bracket is read from the committed reference run, as ``scripts/peers.py`` does.

    python scripts/torch_mist_peers.py [OUT] [--quick] [--workers=N]   # default OUT reports/torch-mist
    python scripts/torch_mist_peers.py [OUT] --render                  # rewrite from OUT/peers.json
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import io
import itertools
import math
import multiprocessing
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import peers as bmi_peers  # scripts/peers.py: the reference bracket, rows and figure are shared
from ibcheck import seeds
from ibcheck.analytic import exact
from ibcheck.analytic.suite import builtin_suite
from ibcheck.harness import plugin, report
from ibcheck.harness.validate import ValidationResult, judge, run_case

# sizes, chosen so that the run fits in under an hour on two cores: a call trains for ITERATIONS steps at
# torch-mist's default batch (128) and hidden width (128) on half of its N pairs and evaluates on the other
# half; measured, a call took 0.8-7.5 s (median 2.1 s), and 9-27 s for InfoNCE, AlphaTUBA and FLO, which
# score every pair of the evaluation half
N, SETS, ITERATIONS, TIME_LIMIT = 1_000, 10, 500, 60.0
# mnist-shaped (d = 784) is left out to keep the run under an hour: benchmark-mi's neural estimators took
# 140-190 s a call there (reports/peers/report.md)
LEFT_OUT = ("mnist-shaped",)
ESTIMATORS = ("nwj", "mine", "infonce", "tuba", "alpha_tuba", "js", "smile", "flo", "ba", "doe", "gm", "l1out",
              "club", "binned", "pq")
# torch-mist's flags say neither lower nor upper for these two; they are the upper bounds of their papers
# (Cheng et al. 2020, "CLUB: a contrastive log-ratio upper bound"; Poole et al. 2019, L1Out), as its
# README's references name them
CLAIMED_UPPER = ("l1out", "club")


def claimed_kind(name: str) -> tuple[str, str]:
    """(kind ibcheck judges, where the claim comes from) of one torch-mist estimator."""
    from torch_mist.estimators import instantiate_estimator

    if name in CLAIMED_UPPER:
        return "upper", "its paper's title (torch-mist's upper_bound flag is False)"
    with contextlib.redirect_stdout(io.StringIO()):
        made = instantiate_estimator(name, x_dim=2, y_dim=2, **({"entropy_y": 1.0} if name == "ba" else {}))
    if made.upper_bound:
        return "upper", "torch-mist's upper_bound flag"
    if made.lower_bound:
        return "lower", "torch-mist's lower_bound flag"
    return "point", "torch-mist flags it as neither bound"


def entropy_z(case) -> float:
    """h(Z) in nats, which BA needs: the Gaussian's closed form, or for class labels h(Z|Y) + I(Y;Z)
    (the latter numerically exact, ``exact.exact_values``)."""
    if case.labels.kind != "classes":
        return 0.5 * (case.m * exact.LOG_2PI_E + exact.logdet(exact.moments(case).Sz))
    ex = exact.exact_values(case, seed=seeds.seed_of(0, case.name, case.settings.seed, "exact"))
    assert ex.I_YZ is not None
    return 0.5 * (case.m * exact.LOG_2PI_E + exact.logdet(exact.conditional_z_cov(case))) + ex.I_YZ


def estimator_fn(name: str, case, iterations: int):
    """x: (n, d), z: (n, m) -> torch-mist's estimate of I(X;Z), trained on the first half."""
    from torch_mist import estimate_mi

    extra = {"entropy_y": entropy_z(case)} if name == "ba" else {}
    calls = itertools.count()

    def fn(x: np.ndarray, z: np.ndarray) -> float:
        # torch-mist draws its initial weights and batches from torch's global generator: seed it per call,
        # from (case, estimator, call), so that a case's calls do not depend on what its worker ran before
        torch.set_num_threads(1)  # in its own worker process (ibcheck.harness.sandbox): one thread, as the pool's
        torch.manual_seed(seeds.seed_of(0, case.name, name, next(calls)))
        x, z = x.astype(np.float32), z.astype(np.float32)
        half = len(x) // 2
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value, _ = estimate_mi(data=(x[:half], z[:half]), test_data=(x[half:], z[half:]), estimator=name,
                                   max_iterations=iterations, early_stopping=False, valid_percentage=0,
                                   verbose=False, **extra)
        return float(value)

    fn.__name__ = name
    return fn


def plugins_for(case, kinds: dict[str, str], iterations: int) -> list[plugin.Plugin]:
    return [plugin.Plugin(name, estimator_fn(name, case, iterations), kinds[name], n=N, repeats=SETS,
                          time_limit=TIME_LIMIT) for name in ESTIMATORS]


def one_case(name: str, kinds: dict[str, str], iterations: int):
    """Every estimator on one case (a worker process: one thread, its own torch)."""
    torch.set_num_threads(1)
    case = next(c for c in builtin_suite() if c.name == name)
    plugins = plugins_for(case, kinds, iterations)
    try:
        ex, outcomes, fits = run_case(case, seed=0, device="cpu", dtype=torch.float64, names=(), plugins=plugins)
    finally:  # each estimator's worker process ends with its case
        for made in plugins:
            made.close()
    return name, ex, outcomes, fits


def run(cases, kinds: dict[str, str], iterations: int, workers: int) -> ValidationResult:
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # forking after torch's threads can hang
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(one_case, c.name, kinds, iterations) for c in cases]
        for future in concurrent.futures.as_completed(futures):
            print(f"  {future.result()[0]} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    done = {f.result()[0]: f.result() for f in futures}
    per_case = [done[c.name] for c in cases]
    level, tests, results = judge(per_case, alpha=1e-3, eps=torch.finfo(torch.float64).eps)
    return ValidationResult(alpha=1e-3, test_alpha=level, tests=tests, cases=results, seed=0, device="cpu",
                            dtype="float64", seconds=time.perf_counter() - started)


def main(argv: list[str]) -> None:
    flags = [a for a in argv if a.startswith("--")]
    args = [a for a in argv if not a.startswith("--")]
    out = Path(args[0] if args else "reports/torch-mist")
    if "--render" in flags:
        import torch_mist_report
        torch_mist_report.render(out)
        return
    import torch_mist

    quick = "--quick" in flags
    workers = int(next((a.split("=", 1)[1] for a in flags if a.startswith("--workers=")), "2"))
    iterations = 50 if quick else ITERATIONS
    cases = [c for c in builtin_suite() if c.name not in LEFT_OUT]
    if quick:
        cases = [c for c in cases if c.name in ("hand-1d", "high-mi")]
    kinds, sources = {}, {}
    for name in ESTIMATORS:
        kinds[name], sources[name] = claimed_kind(name)
    brackets = bmi_peers.reference_brackets(cases)
    result = run(cases, kinds, iterations, workers)
    table = report.rows(result)
    report.write_report(result, out / "validate", table)
    families = [bmi_peers.Peer(name, sources[name], kinds[name], None, repeats=SETS) for name in ESTIMATORS]
    rows = bmi_peers.rows_of(result, table, families, brackets)
    meta = {"n": N, "sets": SETS, "iterations": iterations, "seconds": result.seconds, "tests": result.tests,
            "alpha": result.alpha, "test_alpha": result.test_alpha, "workers": workers,
            "torch_mist": torch_mist.__version__, "numpy": np.__version__, "torch": torch.__version__,
            "left_out": list(LEFT_OUT)}
    import torch_mist_report
    torch_mist_report.write(out, rows, meta)
    print(f"torch-mist: {out / 'report.md'} ({result.seconds / 60:.1f} min)", file=sys.stderr)
    if any(not math.isfinite(r["value"]) for r in rows):
        print("torch-mist: some estimators failed on some cases; the report says where and why", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
