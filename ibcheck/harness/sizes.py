"""What a validation run asks for, checked before any work: which estimators apply to a case, how
many tests its budget is split over, what each estimator run costs (``ibcheck.estimators.limits``),
the users' sample sizes, how many cases and runs there are, and about how long it will take.

Every refusal is one line naming the setting (a case's ``settings`` key, ``--estimator-n``, the
case count) and the limit it passes.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ibcheck import stats
from ibcheck.analytic.case import LinearGaussianCase, data_prior_is_model
from ibcheck.estimators import limits, registry
from ibcheck.harness import plugin as plugin_mod
from ibcheck.interface import Cost, Dims, InputError

# copies of one sample set held at once: the draw itself, the arrays handed to the estimator, and
# their copy in the worker's shared file (``harness.sandbox``) or the written archive (``sample``)
SAMPLE_COPIES = 3


def applicable(case: LinearGaussianCase) -> list[registry.Spec]:
    """The registered estimators that apply to a case: those needing labels only where it has them,
    ``teacher_iw_data`` only where its data prior is not the model prior, none its settings skip."""
    has_labels, skip = case.labels.kind != "none", set(case.settings.skip)
    return [s for s in registry.SPECS.values() if (has_labels or "label_decoder" not in s.needs)
            and not (s.distinct_prior and data_prior_is_model(case)) and s.name not in skip]


def max_tests(cases: list[LinearGaussianCase]) -> int:
    """An upper bound on the tests a validation of ``cases`` makes by the built-in estimators: two per estimate."""
    total = 0
    for case in cases:
        for spec in applicable(case):
            params = case.settings.params(spec.name)
            values = len(getattr(params, spec.sweep)) if spec.sweep else 1
            total += 2 * values * len(spec.targets)
    return total


def check_alpha(alpha: float, cases: list[LinearGaussianCase], plugins: int = 0) -> None:
    """Refuse a budget whose per-test quantile float64 cannot hold, before any work is done."""
    bound = max_tests(cases) + 2 * plugins * len(cases)  # a user's estimate and its coverage
    if not stats.representable(stats.bonferroni(alpha, bound) / 2):
        raise InputError(f"--alpha {alpha:g}: split over up to {bound} tests, each test's quantile is not "
                         f"representable in float64 (use --alpha >= 1e-290)")


def check_plugins(cases: Sequence[LinearGaussianCase], plugins: Sequence[plugin_mod.Plugin]) -> None:
    """Refuse a user's estimator that applies to none of ``cases``: it would never be called, and
    the run would pass without having judged it; and two estimators of one name (or a built-in
    estimator's), whose rows no one could tell apart."""
    taken = set(registry.names())
    for plugin in plugins:
        if plugin.name in taken:
            raise InputError(f"estimator {plugin.name} is given twice, or is the name of a built-in estimator; "
                             f"give each estimator once, under its own name")
        taken.add(plugin.name)
    for plugin in plugins:
        if any(plugin.applies(case) for case in cases):
            continue
        if not cases:
            why = "there are no cases"
        else:
            why = f"no case has labels, which target {plugin.target} needs (cases: {len(cases)})"
        raise InputError(f"estimator {plugin.name} would never be called: {why}")


def dims_of(case: LinearGaussianCase) -> Dims:
    classes = len(case.labels.probs) if case.labels.kind == "classes" else 0
    return Dims(d=case.d, k=case.k, m=case.m, classes=classes, encoder_flops=2.0 * case.d * case.m,
                teacher_flops=2.0 * case.k * case.d)


def _exact_cost(case: LinearGaussianCase) -> Cost:
    """A Monte Carlo draw of a class-label truth: sampling, a softmax over classes, about 100 more."""
    dims = dims_of(case)
    return Cost(case.settings.n_exact * (dims.classes + 1) * (8.0 * dims.m * (dims.m + dims.k) + 100), 0.0, "n_exact")


def check_sizes(cases: list[LinearGaussianCase], device, plugins: Sequence[plugin_mod.Plugin] = ()) -> None:
    """Refuse settings whose work or memory cannot fit (``ibcheck.estimators.limits``), before any
    work: the case count, each case's settings, and each user's estimator's sample size."""
    check_case_count(cases)
    for plugin in plugins:
        check_sample_size([c for c in cases if plugin.applies(c)], plugin.n, f"{plugin.name}: n (--estimator-n)",
                          device)
    for case in cases:
        prefix = f"case '{case.name}': field 'settings"
        limits.refuse_if_too_large([(f"{prefix}.{path}'", value, cost) for path, value, cost in _case_costs(case)],
                                   device)


def _case_costs(case: LinearGaussianCase) -> list[tuple[str, Any, Cost]]:
    """(setting's key path under ``settings``, its value, Cost) of one case's work: the truth's
    Monte Carlo draw, one q fit, and each applicable estimator."""
    dims, s = dims_of(case), case.settings
    costs: list[tuple[str, Any, Cost]] = [("n_exact", s.n_exact, _exact_cost(case))]
    costs += limits.q_costs(s.q, dims, "q")
    return costs + limits.estimator_costs(s.estimators, [spec.name for spec in applicable(case)], dims, "estimators")


def total_runs(cases: list[LinearGaussianCase], plugins: Sequence[plugin_mod.Plugin] = (), builtin: bool = True) -> int:
    """Progress-bar length: estimator runs the validation will make (the built-in ones unless not ``builtin``)."""
    return sum(builtin * len(applicable(c)) + sum(p.applies(c) for p in plugins) for c in cases)


def sample_width(case: LinearGaussianCase) -> int:
    """Numbers per row of one draw of the case's chain: z_v, x, z and the label (a class index or
    a Gaussian label vector)."""
    labels = {"none": 0, "classes": 1}.get(case.labels.kind)
    return case.k + case.d + case.m + (case.labels.B.shape[0] if labels is None else labels)


def check_sample_size(cases: Sequence[LinearGaussianCase], n: int, setting: str, device) -> None:
    """Refuse ``n`` draws per case (``setting``: the option that gave it) whose arrays cannot fit
    in memory, before one is drawn."""
    widest = max((sample_width(c) for c in cases), default=0)
    cost = limits.sample_cost(n, widest, SAMPLE_COPIES, setting)
    limits.refuse_if_too_large([(setting, n, cost)], device)


def check_case_count(cases: Sequence[LinearGaussianCase]) -> None:
    limits.refuse_count("the case file", len(cases), limits.MAX_CASES, "cases")


def _case_flops(case: LinearGaussianCase) -> float:
    second_q = limits.q_costs(case.settings.q, dims_of(case), "q")[0][2].flops  # two q's are fit: forward, Eq. 5
    return second_q + sum(cost.flops for _, _, cost in _case_costs(case))


def estimated_seconds(cases: Sequence[LinearGaussianCase], plugins: Sequence[plugin_mod.Plugin] = (),
                      builtin: bool = True) -> float:
    """Seconds the built-in estimators of a validation take on the reference CPU: a fixed cost per
    estimator run and the runs' floating-point operations at ``limits.CPU_FLOPS_PER_SECOND``
    (the users' estimators add a fixed cost per case they run on: their own time is not known)."""
    runs = total_runs(list(cases), plugins, builtin)
    flops = sum(_case_flops(c) for c in cases) if builtin else 0.0
    return runs * limits.SECONDS_PER_RUN + flops / limits.CPU_FLOPS_PER_SECOND


def announcement(cases: Sequence[LinearGaussianCase], plugins: Sequence[plugin_mod.Plugin], builtin: bool,
                 device) -> str | None:
    """The line a long validation prints before it starts ("validate: about 4 h 50 min on cpu: ..."),
    or None for one expected to end within ``limits.ANNOUNCE_SECONDS`` (or on a GPU, whose speed
    the estimate does not know)."""
    if str(device) != "cpu":
        return None
    seconds = estimated_seconds(cases, plugins, builtin)
    if seconds <= limits.ANNOUNCE_SECONDS:
        return None
    runs = total_runs(list(cases), plugins, builtin)
    theirs = ", plus your estimators' own time" if plugins else ""
    return (f"validate: {limits.about(seconds)} on cpu: {runs:,} estimator runs on {len(cases):,} "
            f"case{'s' * (len(cases) != 1)}{theirs} "
            f"(estimated from the reference machine's speed; --case picks fewer cases)")
