"""``nox -s mutation``: a real mutation score of the numeric core, with mutmut.

mutmut 3 (``[tool.mutmut]`` in pyproject.toml names the modules it mutates and the fast,
deterministic tests it runs) changes one operator, constant or name at a time in a copy of the
package under ``mutants/``, and runs the tests that reach the changed function. This script runs
it with one thread per process (forking after OpenMP threads have started can hang), reads every
mutant's outcome from mutmut's own records (``mutants/**/*.py.meta``) and writes, under OUT:

- ``ledger.json``: every result so far, by module and function, with a SHA-256 of the function's
  code and of its module's code outside every function (imports, constants, classes' fields).
  mutmut 3.3 makes all mutants again and forgets every result at each run; the ledger keeps a
  result while its function and that context are unchanged (the rule of mutmut's own later
  versions, which key results by function), and the next run tests only the mutants it has no
  result for, so an interrupted run resumes. A kill is kept when tests change (new tests can only
  add kills; after removing one, start the ledger again);
- ``results.json``: the counts (killed, survived, timed out, "no tests" and not checked apart), the
  score, the wall time, and every survivor with its diff and disposition (timeouts by name);
- ``survivors.md``: the same as a table.

A survivor's disposition comes from ``dispositions.json`` beside them: {mutant: {"disposition":
"equivalent" | "left", "why": ..., "diff": the diff it was judged on}}. A disposition whose diff
no longer matches (the code moved) counts as missing. The score is killed over the mutants that
could have been killed: all of them but the equivalent ones and the timeouts (counted apart: a
timeout is a test run that did not end in its time limit, ``tools/mutmut_run.py``, neither a kill
nor a survival).

``--retest`` tests the survivors and the untested mutants again, as after new tests (``--tests
PATH``, repeatable: with only the tests under those paths, for a quick re-test after a new test; of
such a run only the kills are kept, since a mutant those tests miss may fall to another);
``--retest-timeouts`` the timeouts, as after a change of the time limits. ``--only``
scores (and tests) only the mutants whose names match; ``--skip`` leaves some out of both. Each
run first makes the mutants of the current code (mutmut's own first step, alone), so that it can
name the ones to test.

    python tools/mutation.py [--children N] [--only PATTERN ...] [--skip PATTERN ...] [--retest]
                             [--retest-timeouts] [--tests PATH ...] [--report-only] [OUT]
                                                                   (OUT: reports/mutation)
"""
from __future__ import annotations

import argparse
import ast
import difflib
import fnmatch
import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ibcheck.fileio import write_text

# mutmut 3.3's exit codes, by its own table (mutmut.__main__.status_by_exit_code)
STATUS = {1: "killed", 3: "killed", -24: "timeout", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          35: "suspicious", 36: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", -11: "segfault",
          None: "not checked"}
DISPOSITIONS = ("equivalent", "left")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "HYPOTHESIS_PROFILE": "ci"}


def run_mutmut(children: int, names: list[str], tests: list[str] = ()) -> float:
    """Run mutmut on the mutants named (names or fnmatch patterns; none: the whole configured scope),
    with only the tests under ``tests`` if any; its wall time in seconds. mutmut 3.3 makes every
    mutant again and forgets every result at each run, which is why the ledger (below) keeps them."""
    started = time.perf_counter()
    narrowed = [arg for path in tests for arg in ("--tests", path)]
    subprocess.run([sys.executable, str(Path(__file__).with_name("mutmut_run.py")), *narrowed,
                    "--max-children", str(children), *names], check=True,
                   env={**os.environ, **ONE_THREAD}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


# mutmut 3.3's own first step, alone: copy the package into mutants/ and write every mutant and its
# record, so that the mutants of the current code can be named before any is tested
GENERATE = """
import os
import mutmut.__main__ as m
os.environ["MUTANT_UNDER_TEST"] = "mutant_generation"
m.ensure_config_loaded()
os.makedirs("mutants", exist_ok=True)
m.copy_src_dir()
m.create_mutants({children})
m.copy_also_copy_files()
"""


def generate(children: int) -> None:
    """Make the current code's mutants (under mutants/) without testing any."""
    subprocess.run([sys.executable, "-c", GENERATE.format(children=children)], check=True,
                   env={**os.environ, **ONE_THREAD}, stdout=subprocess.DEVNULL)


STATS_FORMAT = "durations over setup, call and teardown"  # a record made otherwise is made again


def code_key() -> str:
    """A SHA-256 of the package's and the tests' Python files (and of STATS_FORMAT)."""
    digest = hashlib.sha256(STATS_FORMAT.encode())
    for path in sorted([*Path("ibcheck").rglob("*.py"), *Path("tests").rglob("*.py")]):
        digest.update(str(path).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def refresh_stats(root: Path = Path("mutants")) -> None:
    """Forget mutmut's record of which tests reach which function when the code changed since it was
    made: mutmut 3.3 loads it again and re-runs it only for new tests, so a new or renamed function
    would have no tests and its mutants would read "no tests"."""
    key_path = root / "code-key"
    if not key_path.exists() or key_path.read_text() != code_key():
        (root / "mutmut-stats.json").unlink(missing_ok=True)


def kills_only(found: dict[str, str]) -> dict[str, str]:
    """The results of a run with part of the tests (``--tests``): its kills, every other result
    "not checked" (a mutant that part missed may fall to another test)."""
    return {name: status if status == "killed" else "not checked" for name, status in found.items()}


PARTIAL = "partial-tests"  # under mutants/: the tests of a last run made with part of them


def to_record(found: dict[str, str], root: Path = Path("mutants")) -> dict[str, str]:
    """What of mutmut's last results the ledger takes: all of them, or only the kills where that run
    had part of the tests (``--tests`` leaves ``PARTIAL`` beside its records, so that a later
    ``--report-only`` does not read its survivors as survivals)."""
    return kills_only(found) if (root / PARTIAL).exists() else found


def matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def in_scope(name: str, only: list[str], skip: list[str]) -> bool:
    """Whether a mutant is scored: it matches ``only`` (or ``only`` is empty) and not ``skip``."""
    return (not only or matches(name, only)) and not matches(name, skip)


def outcomes(root: Path = Path("mutants")) -> dict[str, str]:
    """Every mutant's status in mutmut's records of its last run, by name."""
    found: dict[str, str] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            found[name] = STATUS.get(code, f"exit {code}")
    return found


def module_of(name: str) -> str:
    """``ibcheck.stats`` for ``ibcheck.stats.x_holm__mutmut_3`` (mutmut 3 prefixes each function with x)."""
    return name.split(".x")[0]


def function_of(name: str) -> str:
    """The mutated function's key in its module: ``holm`` for ``ibcheck.stats.x_holm__mutmut_3``,
    ``Start.to_v`` for ``...ais.xǁStartǁto_v__mutmut_1`` (mutmut 3 writes a method as xǁClassǁname)."""
    mangled = name[len(module_of(name)) + 2:].rsplit("__mutmut_", 1)[0]
    return mangled[1:] if mangled.startswith("_") else ".".join(mangled.strip("ǁ").split("ǁ"))


def _module_path(module: str) -> Path:
    path = Path(module.replace(".", "/") + ".py")
    return path if path.exists() else path.with_suffix("") / "__init__.py"  # a package: its __init__.py


def function_hashes(module: str) -> dict[str, str]:
    """{function key: SHA-256 of its code (as parsed, so comments and layout do not count) and of the
    module's code outside every function}: a recorded result holds while its function's hash is
    unchanged. Keys: ``name`` for a module's functions, ``Class.name`` for a class's."""
    path = _module_path(module)
    if not path.exists():  # a module since removed: none of its results hold
        return {}
    tree = ast.parse(path.read_bytes())
    functions: dict[str, ast.AST] = {}
    context = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions[node.name] = node
            continue
        if isinstance(node, ast.ClassDef):
            methods = [item for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))]
            functions.update({f"{node.name}.{item.name}": item for item in methods})
            node = ast.ClassDef(node.name, node.bases, node.keywords,
                                [item for item in node.body if item not in methods], node.decorator_list)
        context.append(ast.dump(node, annotate_fields=False))
    around = "\n".join(context)
    return {key: hashlib.sha256((around + "\n" + ast.dump(node, annotate_fields=False)).encode()).hexdigest()
            for key, node in functions.items()}


def merge(ledger: dict, found: dict[str, str]) -> dict:
    """The ledger {module: {"functions": {key: hash}, "mutants": {name: status}}} with the checked
    results of ``found``; a function whose hash changed since its results were recorded starts again."""
    hashes = {module: function_hashes(module) for module in {module_of(name) for name in found}}
    for name, status in found.items():
        module, key = module_of(name), function_of(name)
        entry = ledger.setdefault(module, {"functions": {}, "mutants": {}})
        now = hashes[module].get(key)
        if entry["functions"].get(key) != now:
            entry["mutants"] = {other: s for other, s in entry["mutants"].items() if function_of(other) != key}
            entry["functions"][key] = now
        if status != "not checked":
            entry["mutants"][name] = status
    return ledger


def current(ledger: dict, names: list[str]) -> dict[str, str]:
    """Each mutant's status from the ledger, "not checked" where it has none for the current code."""
    known: dict[str, str] = {}
    for module, entry in ledger.items():
        hashes = function_hashes(module)
        known.update({name: status for name, status in entry["mutants"].items()
                      if hashes.get(function_of(name)) == entry["functions"].get(function_of(name))})
    return {name: known.get(name, "not checked") for name in names}


def by_module(found: dict[str, str]) -> dict[str, dict[str, int]]:
    """Each module's counts of each status."""
    table: dict[str, dict[str, int]] = {}
    for name, status in found.items():
        row = table.setdefault(module_of(name), {})
        row[status] = row.get(status, 0) + 1
    return dict(sorted(table.items()))


@functools.cache
def _mutated_module(path: Path):
    import libcst  # mutmut's own parser, installed with it

    return libcst.parse_module((Path("mutants") / path).read_text())


def diff_of(name: str) -> str:
    """The changed lines of one mutant, as ``mutmut show`` prints them (its own functions, called here
    on each mutated module parsed once: ``mutmut show`` takes 4-6 s a mutant)."""
    import libcst
    from mutmut.__main__ import read_mutant_function, read_original_function

    module = _mutated_module(_module_path(module_of(name)))
    before = libcst.Module([read_original_function(module, name)]).code.strip().split("\n")
    after = libcst.Module([read_mutant_function(module, name)]).code.strip().split("\n")
    return "\n".join(line for line in difflib.unified_diff(before, after, lineterm="")
                     if line[:1] in ("+", "-") and line[:3] not in ("+++", "---"))


def summarise(found: dict[str, str], dispositions: dict[str, dict], seconds: float | None,
              only: list[str]) -> dict:
    """Counts, score and the not-killed mutants with their diffs and dispositions."""
    counts: dict[str, int] = {}
    for status in found.values():
        counts[status] = counts.get(status, 0) + 1
    by_change = {(module_of(name), function_of(name), d.get("diff")): d for name, d in dispositions.items()}
    rows = []
    for name, status in found.items():
        if status in ("killed", "not checked"):
            continue
        diff = diff_of(name) if status not in ("timeout",) else ""  # a timeout is counted apart, not judged
        # a refactor renumbers a function's mutants: the same change in the same function keeps its judgement
        judged = dispositions.get(name)
        if judged is None or judged.get("diff") != diff:
            judged = by_change.get((module_of(name), function_of(name), diff))
        holds = judged is not None and judged.get("diff") == diff and judged.get("disposition") in DISPOSITIONS
        rows.append({"mutant": name, "status": status, "diff": diff,
                     "disposition": judged["disposition"] if judged and holds else None,
                     "why": judged["why"] if judged and holds else None})
    equivalent = sum(r["disposition"] == "equivalent" for r in rows)
    could = sum(counts.values()) - equivalent - counts.get("timeout", 0) - counts.get("not checked", 0)
    killed = counts.get("killed", 0)
    return {"tool": "mutmut 3.3.1", "only": only, "counts": counts, "by_module": by_module(found),
            "equivalent": equivalent,
            "score": killed / could if could else None, "score_of": could, "wall_seconds": seconds,
            "not_killed": rows, "undisposed": [r["mutant"] for r in rows
                                               if r["status"] != "timeout" and r["disposition"] is None]}


def markdown(summary: dict) -> str:
    """The counts by module, then every mutant that was not killed, as markdown tables."""
    statuses = sorted({status for row in summary["by_module"].values() for status in row})
    lines = ["| module | " + " | ".join(statuses) + " |", "| --- " * (len(statuses) + 1) + "|"]
    lines += [f"| `{module}` | " + " | ".join(str(row.get(status, 0)) for status in statuses) + " |"
              for module, row in summary["by_module"].items()]
    lines += ["", "| mutant | status | change | disposition | why |", "| --- | --- | --- | --- | --- |"]
    for r in summary["not_killed"]:
        change = "<br>".join(f"`{line.strip()}`" for line in r["diff"].splitlines()).replace("|", "\\|")
        lines.append(f"| `{r['mutant']}` | {r['status']} | {change} | {r['disposition'] or '**none**'} | "
                     f"{(r['why'] or '').replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def pending(ledger: dict, only: list[str], skip: list[str], retest: bool, timeouts: bool = False) -> list[str]:
    """The mutants to test (after ``generate``): those in scope that the ledger has no result for,
    with ``retest`` its survivors and untested mutants too, and with ``timeouts`` its timeouts."""
    again = ("not checked",) + (("survived", "no tests") if retest else ()) + (("timeout",) if timeouts else ())
    return [name for name, status in current(ledger, sorted(outcomes())).items()
            if status in again and in_scope(name, only, skip)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="reports/mutation")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="score only the mutants whose names match (fnmatch; repeatable)")
    parser.add_argument("--skip", action="append", default=[], metavar="PATTERN",
                        help="leave out the mutants whose names match (fnmatch; repeatable)")
    parser.add_argument("--retest", action="store_true",
                        help="test again the survivors and the mutants no test reached (after new tests)")
    parser.add_argument("--retest-timeouts", action="store_true",
                        help="test again the mutants that timed out (after a change of the time limits)")
    parser.add_argument("--tests", action="append", default=[], metavar="PATH",
                        help="run only the tests under PATH (repeatable; a quick re-test: only its kills are kept)")
    parser.add_argument("--report-only", action="store_true", help="record mutmut's last run, run nothing")
    args = parser.parse_args(argv)
    out = Path(args.out)
    ledger_path = out / "ledger.json"
    ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
    seconds = None
    if not args.report_only:
        generate(args.children)  # mutmut's records start again: none is from a partial run
        (Path("mutants") / PARTIAL).unlink(missing_ok=True)
        names = pending(ledger, args.only, args.skip, args.retest, args.retest_timeouts)
        seconds = 0.0
        if names:
            refresh_stats()
            key = code_key()  # of the code the run's mutants and its record of tests were made from
            seconds = run_mutmut(args.children, names, args.tests)
            if args.tests:  # mutmut's record of tests now covers part of them: the next run makes it again
                (Path("mutants") / "code-key").unlink(missing_ok=True)
                write_text(Path("mutants") / PARTIAL, json.dumps(args.tests) + "\n")
            else:
                write_text(Path("mutants") / "code-key", key)
    found = outcomes()
    ledger = merge(ledger, to_record(found))
    out.mkdir(parents=True, exist_ok=True)
    write_text(ledger_path, json.dumps(ledger, indent=1, sort_keys=True) + "\n")
    scoped = [name for name in found if in_scope(name, args.only, args.skip)]
    dispositions_path = out / "dispositions.json"
    dispositions = json.loads(dispositions_path.read_text()) if dispositions_path.exists() else {}
    summary = summarise(current(ledger, scoped), dispositions, seconds, args.only)
    summary["skipped"] = {"patterns": args.skip, "mutants": sum(matches(name, args.skip) for name in found)}
    write_text(out / "results.json", json.dumps(summary, indent=1) + "\n")
    write_text(out / "survivors.md", markdown(summary))
    score = summary["score"]
    print(f"mutation: {summary['counts']}, equivalent {summary['equivalent']}, score "
          f"{'-' if score is None else f'{score:.3f}'} of {summary['score_of']}; "
          f"{len(summary['undisposed'])} survivors without a disposition")
    return 0


if __name__ == "__main__":
    sys.exit(main())
