"""``ibcheck validate`` (with users' estimators beside the built-in ones) and ``ibcheck sample``."""
from __future__ import annotations

import argparse
import sys

from ibcheck import fileio
from ibcheck.cli.args import (
    BUILTIN_SUITE,
    at_least_two,
    check_output,
    load_cases_arg,
    positive_float,
    positive_fraction,
    resolve_device,
    seed_arg,
)
from ibcheck.interface import InputError

VALIDATE_HELP = """\
Run every applicable estimator (vib, teacher_elbo, teacher_iw, teacher_iw_data where a
case's data prior is not N(0, I), teacher_riw, teacher_ais, teacher_rais, loo, nce,
empirical, barber_agakov) on linear-Gaussian cases whose I(X;Z) and I(Y;Z) are known
exactly, and test each estimate: an upper bound must not sit significantly below
the truth, a lower bound not above it, and where the estimator's expectation is
known in closed form the estimate must match it (two-sided). One false-failure
budget --alpha is split over all tests (Bonferroni).

--estimator MODULE:FUNCTION adds your estimator, a callable fn(a, b) -> float on
numpy arrays a: (n, d), b: (n, m) returning its estimate of I(A;B) in nats: it
gets --estimator-repeats independent sets of --estimator-n pairs (x, z) of each
case (or (y, z) with --estimator-target I_YZ), and the mean over them is judged
as its --kind says: lower or upper (one-sided), or point (its bias, two-sided).
A call that raises or exits, runs past the time limit, or returns anything but
a finite real number (a Python or numpy int or float, a 0-d real numpy array, a
one-element real torch tensor; not a bool, a complex or a string) is a recorded
failure of that case. An estimator that applies to no case (--estimator-target
I_YZ where no case has labels) is bad input. Give --estimator and --kind once
per estimator.

--estimator-cmd 'COMMAND {input} {output}' runs an estimator in any language:
each call writes its pairs to {input} (.npz: x and z, and the JSON header) or
{csv}, and the header to {header}; the command writes {"estimate": E} to
{output}, optionally with "interval": [LOW, HIGH] and "level". A non-zero exit,
a bad output or a run past the time limit (its processes are killed) is a
recorded failure. A Python estimator may return (estimate, low, high) instead,
at --interval-level. Where intervals are given, the fraction of them that hold
the truth is tested against their level (exact binomial test, one-sided).

Prints a table, writes report.md, figures (PNG) with their numbers (CSV) and
results.json into --out. Exit status: 0 every test passed, 1 a test failed,
2 bad input (a one-line message says what)."""

SAMPLE_HELP = """\
Write N iid draws (z_v, x, z, and y where the case has labels) of every case of
--cases into one .npz file, for estimators in other languages, keyed CASE/NAME
(e.g. "hand-1d/x"), with the exact values in the JSON string "exact" and the
case names in order in "cases"."""


class _InOrder(argparse.Action):
    """Appends (the option's kind, its value) to one list, so that ``--estimator`` and
    ``--estimator-cmd`` keep the order in which they were given, which ``--kind`` follows."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), (self.const, values)])


def _plugins(args: argparse.Namespace) -> tuple:
    """The users' estimators of ``--estimator`` (imported) and ``--estimator-cmd`` (parsed), in the
    order given, with their options checked."""
    from ibcheck.harness import external, objects, plugin

    plugin.check_time_limit(args.estimator_time_limit)
    given, kinds = args.estimators or [], args.kind or []
    if len(given) != len(kinds):
        raise InputError(f"give --kind once per --estimator or --estimator-cmd ({len(given)} estimators, "
                         f"{len(kinds)} --kind)")
    out = []
    fn: plugin.Estimator
    for (source, text), kind in zip(given, kinds):
        if source == "cmd":
            command = external.Command(text)
            name, fn, params = command.name, command, objects.parameters_of(command)
        else:
            loaded = plugin.load(text)
            name, fn, params = text, objects.as_estimator(loaded, f"--estimator {text}"), objects.parameters_of(loaded)
        out.append(plugin.Plugin(name, fn, kind, args.estimator_target, args.estimator_n, args.estimator_repeats,
                                 args.estimator_time_limit, args.interval_level, params))
    return tuple(out)


def cmd_validate(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ibcheck.harness import report, sizes
    from ibcheck.harness.validate import validate

    device = resolve_device(args.device)
    check_output("--out", args.out, folder=True)
    report.check_report_folder(args.out)
    if args.json is not None:
        check_output("--json", args.json, folder=False)
    cases = chosen_cases(load_cases_arg(args.cases), args.case)
    plugins = _plugins(args)
    if args.only_estimators and not plugins:
        raise InputError("--only-estimators: give your estimators with --estimator or --estimator-cmd")
    names = () if args.only_estimators else None
    sizes.check_plugins(cases, plugins)  # before the progress bar: a refusal is one line
    sizes.check_sizes(cases, device, plugins)
    notice = sizes.announcement(cases, plugins, names is None, device)
    if notice is not None:
        print(notice, file=sys.stderr)
    torch.manual_seed(args.seed)
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    runs = sizes.total_runs(cases, plugins, builtin=names is None)
    with tqdm(total=runs, desc="validate", unit="run", disable=args.quiet, file=sys.stderr, leave=False) as bar:
        def progress(label: str) -> None:
            bar.set_postfix_str(label, refresh=False)
            bar.update(1)

        result = validate(cases, alpha=args.alpha, seed=args.seed, device=device, dtype=dtype, progress=progress,
                          names=names, plugins=plugins)
    table = report.rows(result)
    print(report.terminal_table(result, table))
    if args.json is not None:
        fileio.write_json(args.json, report.to_json(result, table))
    written = report.write_report(result, args.out, table)
    print(f"report: {written[-1]}", file=sys.stderr)
    return 0 if result.passed else 1


def chosen_cases(cases: list, names: list[str] | None) -> list:
    """The cases named by ``--case`` (each once, in the file's order), or all of them."""
    if not names:
        return cases
    known = [c.name for c in cases]
    unknown = [name for name in names if name not in known]
    if unknown:
        shown = ", ".join(known[:10]) + (f", ... ({len(known)} in all)" if len(known) > 10 else "")
        raise InputError(f"--case {unknown[0]}: no such case (cases: {shown})")
    return [c for c in cases if c.name in set(names)]


def cmd_sample(args: argparse.Namespace) -> int:
    from ibcheck.analytic import suite
    from ibcheck.harness import sizes

    check_output("--out", args.out, folder=False)
    if not args.out.endswith(".npz"):
        raise InputError(f"--out {args.out}: the file name must end in .npz")
    cases = load_cases_arg(args.cases)
    sizes.check_case_count(cases)
    sizes.check_sample_size(cases, args.n, "--n", "cpu")
    fileio.write_npz(args.out, suite.sample_arrays(cases, args.n, args.seed))
    print(f"samples: {args.out} ({len(cases)} cases, {args.n} draws each)", file=sys.stderr)
    return 0


def _estimator_options(v: argparse.ArgumentParser) -> None:
    v.add_argument("--estimator", action=_InOrder, const="module", dest="estimators", metavar="MODULE:FUNCTION",
                   help="your estimator fn(a, b) -> float in nats (or an object with an estimate(a, b) method), "
                        "judged beside the built-in ones (repeatable)")
    v.add_argument("--estimator-cmd", action=_InOrder, const="cmd", dest="estimators", metavar="'COMMAND'",
                   help="an estimator in any language: a command naming {input} (npz) or {csv}, and {output}, "
                        "where it writes {\"estimate\": E} (repeatable; docs: guides/external)")
    v.add_argument("--kind", action="append", choices=("lower", "upper", "point"),
                   help="what that estimator claims to be, once per --estimator or --estimator-cmd, in order")
    v.add_argument("--interval-level", type=positive_fraction, metavar="L",
                   help="the nominal level of intervals your estimators return without one "
                        "((estimate, low, high) from Python); their coverage of the truth is tested")
    v.add_argument("--estimator-target", choices=("I_XZ", "I_YZ"), default="I_XZ",
                   help="(x, z) or (y, z) pairs, the latter on cases with labels (default: %(default)s)")
    v.add_argument("--estimator-n", type=at_least_two, default=1000, metavar="N",
                   help="pairs per call (default: %(default)s)")
    v.add_argument("--estimator-repeats", type=at_least_two, default=20, metavar="R",
                   help="independent sample sets, one call each, per case (default: %(default)s)")
    # at most plugin.MAX_TIME_LIMIT, checked by _plugins (importing plugin here would import torch to parse)
    v.add_argument("--estimator-time-limit", type=positive_float, default=60.0, metavar="SECONDS",
                   help="per call, at most 1e6 (11.6 days); a longer call is a recorded failure "
                        "(default: %(default)g)")


def add_validate_commands(sub) -> None:
    v = sub.add_parser("validate", help="check every bound on cases with exact answers", description=VALIDATE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("--cases", default=BUILTIN_SUITE, metavar="FILE",
                   help="case file (JSON, see the README); default: the built-in analytic suite")
    v.add_argument("--case", action="append", metavar="NAME",
                   help="run only this case of --cases (repeatable; default: every case)")
    v.add_argument("--only-estimators", action="store_true",
                   help="run only the estimators of --estimator and --estimator-cmd: no built-in estimator and "
                        "no training of q, so the run makes the tests check_estimator makes")
    v.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    v.add_argument("--out", default="reports/validate", metavar="DIR",
                   help="folder for report.md, figures, CSV and results.json (default: %(default)s)")
    v.add_argument("--alpha", type=positive_fraction, default=1e-3, metavar="A",
                   help="family-wise false-failure budget of all tests together (default: %(default)g)")
    v.add_argument("--seed", type=seed_arg, default=0, metavar="S", help="seed of every random draw (default: 0)")
    v.add_argument("--device", default="auto", metavar="D",
                   help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)")
    v.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="precision of the estimators (default: float64; exact values are always float64)")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    _estimator_options(v)
    v.set_defaults(func=cmd_validate)
    s = sub.add_parser("sample", help="write samples of every case, with the exact values, to a .npz file",
                       description=SAMPLE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--cases", default=BUILTIN_SUITE, metavar="FILE",
                   help="case file (JSON); default: the built-in analytic suite")
    s.add_argument("--n", type=at_least_two, required=True, metavar="N", help="draws per case")
    s.add_argument("--out", required=True, metavar="FILE", help="the .npz file to write")
    s.add_argument("--seed", type=seed_arg, default=0, metavar="S", help="seed of the draws (default: 0)")
    s.set_defaults(func=cmd_sample)
