"""Plant known single-line bugs, one at a time, in a temporary copy, and report which survive.

``nox -s mutants`` runs this (not CI). Each mutant names the file, the exact line fragment it
replaces (which must occur once), the bug, and the tests that should catch it; a mutant
*survives* when those tests still pass. The list covers the harness and the pipeline: every
bug that once survived the suite, and a sample of those it always caught.
Usage: ``PYTHONPATH=tests python tools/mutants.py [NAME ...]`` (default: all); exit status 1 if any survives.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", ".nox", "runs", "reports", "build", "*.egg-info", "__pycache__", ".whl",
                              ".mypy_cache", ".ruff_cache", ".hypothesis", ".pytest_cache", ".benchmarks")


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


PLANTED = "tests/test_planted.py"
HARDENING = "tests/test_hardening.py"
AIS = "tests/test_ais.py"
MUTANTS = [
    # bugs that once survived the whole suite
    Mutant("empirical-class-counts", "ibcheck/estimators/empirical.py", "torch.cat(cond) - counts.log()[y[own]]",
           "torch.cat(cond)", (PLANTED,)),
    Mutant("bonferroni-over-cases", "ibcheck/harness/validate.py", "level = stats.bonferroni(alpha, tests)",
           "level = stats.bonferroni(alpha, len(per_case))", (PLANTED,)),
    Mutant("paper-min-as-max", "ibcheck/pipeline/tracking.py", "= min(vib, elbo, key=", "= max(vib, elbo, key=",
           ("tests/test_experiment.py::test_smoke_run_writes_documented_records",)),
    Mutant("kl-summed-over-batch", "ibcheck/pipeline/student.py", "kl = kl_diag_to_standard(mean, std).mean()",
           "kl = kl_diag_to_standard(mean, std).sum()", (PLANTED,)),
    Mutant("resume-without-schedule", "ibcheck/pipeline/training.py",
           'self.schedule.load_state_dict(state["schedule"])', "None", (PLANTED,)),
    Mutant("label-entropy-in-bits", "ibcheck/pipeline/tracking.py", "return float(-(p * p.log()).sum())",
           "return float(-(p * p.log2()).sum())", (PLANTED,)),
    Mutant("logdet-of-std", "ibcheck/pipeline/tracking.py", "return float((2 * std.log()).sum(1).mean())",
           "return float(std.log().sum(1).mean())", (PLANTED,)),
    Mutant("empirical-over-n-minus-1", "ibcheck/estimators/empirical.py",
           "log_marginal = torch.cat(marg) - math.log(n_points)",
           "log_marginal = torch.cat(marg) - math.log(n_points - 1)", (PLANTED,)),
    Mutant("match-with-sd", "ibcheck/stats.py", "quantile(alpha / 2, n) * combined_se(se, expected_se)",
           "quantile(alpha / 2, n) * combined_se(se, expected_se) * math.sqrt(n)", (PLANTED,)),
    Mutant("generator-ignores-seed", "ibcheck/estimators/registry.py", "generator = generator_for(seed,",
           "generator = generator_for(0,", (PLANTED,)),
    Mutant("tiny-alpha-from-the-lower-tail", "ibcheck/stats.py", "return float(stats.t.isf(tail, max(n - 1, 1)))",
           "return float(stats.t.ppf(1 - tail, max(n - 1, 1)))",
           (f"{HARDENING}::test_quantiles_stay_finite_down_to_tiny_levels",)),
    Mutant("divergence-unnoticed", "ibcheck/pipeline/student.py", "        if bad:", "        if False:",
           (f"{HARDENING}::test_a_diverging_student_stops_with_status_3_and_keeps_its_records",)),
    Mutant("no-previous-checkpoint", "ibcheck/pipeline/runs.py", "previous = folder / CHECKPOINT, folder / PREVIOUS",
           "previous = folder / CHECKPOINT, folder / (PREVIOUS + '.absent')",
           (f"{HARDENING}::test_a_corrupt_checkpoint_falls_back_to_the_previous_one",)),
    Mutant("no-size-limit", "ibcheck/estimators/limits.py", "if cost.flops > FLOP_LIMIT:", "if False:",
           (f"{HARDENING}::test_oversized_tracking_settings_are_refused",)),
    # the annealed bounds (issue 18): the bugs it named, and a few more of the same kind
    Mutant("ais-last-increment-dropped", "ibcheck/estimators/ais.py", "for j in range(1, T + 1):",
           "for j in range(1, T):", (AIS,)),
    Mutant("ais-jacobian-dropped", "ibcheck/estimators/ais.py",
           "gain * (state.log_gamma - (log_q - log_det_l))", "gain * (state.log_gamma - log_q)", (AIS,)),
    Mutant("rais-from-a-q-sample", "ibcheck/estimators/teacher_ais.py",
           "generating = ais.to_u(start, batch.z_v.unsqueeze(1)).squeeze(1)",
           "generating = ais.sample_u(start, 1, generator).squeeze(1)", (AIS,)),
    Mutant("ais-move-at-previous-temperature", "ibcheck/estimators/ais.py",
           "beta = torch.full((u.shape[1],), float(betas[j]),", "beta = torch.full((u.shape[1],), float(betas[j - 1]),",
           (AIS,)),
    Mutant("hmc-without-metropolis", "ibcheck/estimators/ais.py", "take = uniform < accept_prob",
           "take = uniform < 2.0", (AIS,)),
    # bugs the suite has always caught, kept as a check that it still does
    Mutant("vib-without-mean", "ibcheck/gaussian.py", "(std * std + mean * mean - 1.0", "(std * std - 1.0",
           ("tests/test_gaussian.py", "tests/test_power.py")),
    Mutant("stderr-over-n", "ibcheck/estimators/common.py", "/ math.sqrt(n) if n > 1", "/ n if n > 1",
           ("tests/test_estimators.py",)),
    Mutant("nce-leaves-one-out", "ibcheck/estimators/registry.py", "joint=batch.sandwich_terms, variant=False",
           "joint=batch.sandwich_terms, variant=True", ("tests/test_estimators.py",)),
    Mutant("upper-test-wrong-side", "ibcheck/stats.py", "return bool(value + quantile(alpha, n)",
           "return bool(value - quantile(alpha, n)", ("tests/test_estimators.py",)),
    Mutant("iw-log-sum", "ibcheck/estimators/teacher_bounds.py",
           "-entropy - (torch.logsumexp(log_w, dim=1) - math.log(K))", "-entropy - torch.logsumexp(log_w, dim=1)",
           ("tests/test_estimators.py",)),
    Mutant("elbo-without-kl", "ibcheck/estimators/q_fit.py",
           "diag_log_prob(z, mean, std) + kl_to_standard(q_mean, q_scale)", "diag_log_prob(z, mean, std)",
           ("tests/test_estimators.py",)),
]


def _copy(tmp: Path) -> Path:
    repo = tmp / "repo"
    shutil.copytree(ROOT, repo, ignore=SKIP)
    shutil.copytree(repo / "baselines", repo / "ibcheck" / "baselines")  # what the install maps
    return repo


def _plant(repo: Path, mutant: Mutant) -> None:
    path = repo / mutant.file
    text = path.read_text()
    if text.count(mutant.old) != 1:
        raise SystemExit(f"mutant {mutant.name}: {mutant.old!r} occurs {text.count(mutant.old)} times in {mutant.file}")
    path.write_text(text.replace(mutant.old, mutant.new))


def run(mutant: Mutant) -> tuple[str, str, float]:
    """'caught', 'survived' or 'broken' (the tests could not run), the first failing test, and the
    seconds it took."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        repo = _copy(Path(tmp))
        _plant(repo, mutant)
        env = dict(os.environ, PYTHONPATH=str(repo), PYTHONDONTWRITEBYTECODE="1")
        check = subprocess.run([sys.executable, "-c", "import ibcheck; print(ibcheck.__file__)"], cwd=repo, env=env,
                               capture_output=True, text=True)
        if not check.stdout.startswith(str(repo)):
            raise SystemExit(f"the copy's ibcheck is not the one imported: {check.stdout or check.stderr}")
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider",
                                 *mutant.tests], cwd=repo, env=env, capture_output=True, text=True)
    verdict = {0: "survived", 1: "caught"}.get(result.returncode, "broken")
    failed = next((line.split()[1] for line in result.stdout.splitlines() if line.startswith("FAILED ")), "")
    return verdict, failed.split("::")[-1], time.perf_counter() - started


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or m.name in argv]
    verdicts = {}
    for mutant in chosen:
        verdict, failed, seconds = run(mutant)
        verdicts[mutant.name] = verdict
        print(f"{verdict:>8}  {mutant.name:<32} {seconds:5.1f} s  {failed or ', '.join(mutant.tests)}", flush=True)
    survivors = [name for name, v in verdicts.items() if v != "caught"]
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutants caught"
          + (f"; not caught: {', '.join(survivors)}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
