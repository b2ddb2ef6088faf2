"""Which q makes the better proposal for the bracket, measured on built-in cases.

For each case, both q's are trained as `ibcheck validate` trains them (`q_fit.train_both` with the
case's settings), and then the bracket teacher_riw <= I(X;Z) <= teacher_iw (data prior) is computed
at K = 10, 100, 1000 with each q, from the same seeds. Also records each q's training (steps,
converged) and Eq. 5 at the trained q against its closed-form best. Writes OUT/q_proposals.json
and prints a table.

    python scripts/measure_q_proposals.py reports/q_proposals [CASE...]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from ibcheck import fileio
from ibcheck.analytic import exact, models
from ibcheck.analytic.casefile import load_cases
from ibcheck.estimators import registry
from ibcheck.estimators.q_fit import train_both
from ibcheck.estimators.teacher_bounds import TeacherIWParams, TeacherRIWParams
from ibcheck.interface import Context

SUITE = Path(__file__).resolve().parents[1] / "baselines" / "suite.json"
DEFAULT_CASES = ("noisy-teacher", "shifted-data-prior", "teacher-15-nats")
KS = (10, 100, 1000)
N = 2000


def measure(case) -> dict:
    encoder, sampler = models.encoder_for(case), models.CaseSampler(case)
    q_forward, q = (models.LinearGaussianQ(case.m, case.k) for _ in range(2))
    started = time.perf_counter()
    fits = train_both(encoder, sampler.teacher, sampler, q_forward, q, case.settings.q,
                      torch.Generator().manual_seed(1))
    out = {"I_XZ": exact.exact_values(case, seed=0).I_XZ, "q_seconds": time.perf_counter() - started,
           "eq5_best": exact.teacher_bound(case, *exact.optimal_q(case)),
           "eq5_at_elbo_q": exact.teacher_bound(case, *q.numpy_params()),
           "fits": {fit["objective"]: {k: fit[k] for k in ("steps_used", "converged")} for fit in fits}}
    context = Context(teacher=sampler.teacher, q=q, q_forward=q_forward)
    for which in ("forward", "elbo"):
        low = registry.run("teacher_riw", encoder, sampler, TeacherRIWParams(K=KS, n=N, q=which), seed=2,
                           context=context)
        high = registry.run("teacher_iw", encoder, sampler, TeacherIWParams(K=KS, n=N, prior="data", q=which),
                            seed=3, context=context)
        out[which] = [{"K": K, "lower": a.value, "lower_se": a.stderr, "upper": b.value, "upper_se": b.stderr,
                       "width": b.value - a.value} for K, a, b in zip(KS, low, high)]
    return out


def main(argv: list[str]) -> None:
    out, names = Path(argv[0]), argv[1:] or list(DEFAULT_CASES)
    cases = {c.name: c for c in load_cases(SUITE)}
    results = {}
    for name in names:
        results[name] = result = measure(cases[name])
        print(f"{name}: I(X;Z) = {result['I_XZ']:.3f}; Eq. 5 at q {result['eq5_at_elbo_q']:.3f}, "
              f"best {result['eq5_best']:.3f}; q trained in {result['q_seconds']:.1f} s {result['fits']}")
        for which in ("forward", "elbo"):
            cells = ", ".join(f"K={r['K']}: [{r['lower']:.3f}, {r['upper']:.3f}] width {r['width']:.3f}"
                              for r in result[which])
            print(f"  {which:8s} {cells}")
    out.mkdir(parents=True, exist_ok=True)
    fileio.write_json(out / "q_proposals.json", {"n": N, "K": list(KS), "cases": results})


if __name__ == "__main__":
    main(sys.argv[1:])
