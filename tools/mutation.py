"""``nox -s mutation``: a real mutation score of the numeric core, with mutmut.

mutmut 3 (``[tool.mutmut]`` in pyproject.toml names the modules it mutates and the fast,
deterministic tests it runs) changes one operator, constant or name at a time in a copy of the
package under ``mutants/``, and runs the tests that reach the changed function. This script runs
it with one thread per process (forking after OpenMP threads have started can hang), reads every
mutant's outcome from mutmut's own records (``mutants/**/*.py.meta``) and writes, under OUT:

- ``results.json``: the counts (killed, survived, timed out, "no tests" and not checked apart), the
  score, the wall time, and every survivor with its diff and disposition (timeouts by name);
- ``survivors.md``: the same as a table.

A survivor's disposition comes from ``dispositions.json`` beside them: {mutant: {"disposition":
"equivalent" | "left", "why": ..., "diff": the diff it was judged on}}. A disposition whose diff
no longer matches (the code moved) counts as missing. The score is killed over the mutants that
could have been killed: all of them but the equivalent ones and the timeouts (counted apart: a
timeout is a test run that did not end in its CPU limit, neither a kill nor a survival).

    python tools/mutation.py [--children N] [--report-only] [OUT]   (OUT: reports/mutation)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# mutmut 3.3's exit codes, by its own table (mutmut.__main__.status_by_exit_code)
STATUS = {1: "killed", 3: "killed", -24: "timeout", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          35: "suspicious", 36: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", -11: "segfault",
          None: "not checked"}
DISPOSITIONS = ("equivalent", "left")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "HYPOTHESIS_PROFILE": "ci"}


def run_mutmut(children: int) -> float:
    """Run mutmut over the configured scope; its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(["mutmut", "run", "--max-children", str(children)], check=True, env={**os.environ, **ONE_THREAD},
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def outcomes(root: Path = Path("mutants")) -> dict[str, str]:
    """Every mutant's status, by name, from mutmut's records."""
    found: dict[str, str] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            found[name] = STATUS.get(code, f"exit {code}")
    return found


def diff_of(name: str) -> str:
    """The changed lines of one mutant, as ``mutmut show`` prints them."""
    shown = subprocess.run(["mutmut", "show", name], capture_output=True, text=True, check=True).stdout
    return "\n".join(line for line in shown.splitlines() if line[:1] in ("+", "-") and line[:3] not in ("+++", "---"))


def summarise(found: dict[str, str], dispositions: dict[str, dict], seconds: float | None) -> dict:
    """Counts, score and the not-killed mutants with their diffs and dispositions."""
    counts: dict[str, int] = {}
    for status in found.values():
        counts[status] = counts.get(status, 0) + 1
    rows = []
    for name, status in found.items():
        if status in ("killed", "not checked"):
            continue
        diff = diff_of(name) if status not in ("timeout",) else ""  # a timeout is counted apart, not judged
        judged = dispositions.get(name)
        current = judged is not None and judged.get("diff") == diff and judged.get("disposition") in DISPOSITIONS
        rows.append({"mutant": name, "status": status, "diff": diff,
                     "disposition": judged["disposition"] if current else None,
                     "why": judged["why"] if current else None})
    equivalent = sum(r["disposition"] == "equivalent" for r in rows)
    could = sum(counts.values()) - equivalent - counts.get("timeout", 0) - counts.get("not checked", 0)
    killed = counts.get("killed", 0)
    return {"tool": "mutmut 3.3.1", "counts": counts, "equivalent": equivalent,
            "score": killed / could if could else None, "score_of": could, "wall_seconds": seconds,
            "not_killed": rows, "undisposed": [r["mutant"] for r in rows
                                               if r["status"] != "timeout" and r["disposition"] is None]}


def markdown(summary: dict) -> str:
    lines = ["| mutant | status | change | disposition | why |", "| --- | --- | --- | --- | --- |"]
    for r in summary["not_killed"]:
        change = "<br>".join(f"`{line.strip()}`" for line in r["diff"].splitlines()).replace("|", "\\|")
        lines.append(f"| `{r['mutant']}` | {r['status']} | {change} | {r['disposition'] or '**none**'} | "
                     f"{(r['why'] or '').replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="reports/mutation")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--report-only", action="store_true", help="read the last run's records, run nothing")
    args = parser.parse_args(argv)
    out = Path(args.out)
    seconds = None if args.report_only else run_mutmut(args.children)
    dispositions_path = out / "dispositions.json"
    dispositions = json.loads(dispositions_path.read_text()) if dispositions_path.exists() else {}
    summary = summarise(outcomes(), dispositions, seconds)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "survivors.md").write_text(markdown(summary))
    score = summary["score"]
    print(f"mutation: {summary['counts']}, equivalent {summary['equivalent']}, score "
          f"{'-' if score is None else f'{score:.3f}'} of {summary['score_of']}; "
          f"{len(summary['undisposed'])} survivors without a disposition")
    return 0


if __name__ == "__main__":
    sys.exit(main())
