"""Summarise the checks recorded by ``nox -s stats`` (IBCHECK_STATS_LOG lines).

For each kind of check, the observed failure rate at several per-check levels
beside the level itself (a calibrated two-sided check fails at about that rate;
a one-sided bound check, whose truth is rarely at the edge, at most that rate),
then the family-wise rate at the declared per-check level beside the suite's
budget, and the detection rate of the planted bugs.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from ibcheck import stats

import budget

LEVELS = (0.1, 0.05, 0.01, 0.001)


def fails(rec: dict, level: float) -> bool:
    return rec["t"] > stats.quantile(level / rec["sided"], rec["df"] + 1)


def summary(records: list[dict]) -> str:
    checks = [r for r in records if r["kind"] not in ("power", "validate")]
    rounds = sorted({r["seed"] for r in records})
    by_kind = defaultdict(list)
    for r in checks:
        by_kind[r["kind"]].append(r)
    lines = [f"{len(rounds)} rounds (seeds {rounds[0]}..{rounds[-1]}), {len(checks)} checks", "",
             "kind     checks  " + "  ".join(f"fail@{a:<6g}" for a in LEVELS)]
    for kind, recs in sorted(by_kind.items()):
        rates = [sum(fails(r, a) for r in recs) / len(recs) for a in LEVELS]
        lines.append(f"{kind:<8} {len(recs):>6}  " + "  ".join(f"{x:<11.4f}" for x in rates))
    per_round = defaultdict(bool)
    for r in checks:
        per_round[r["seed"]] |= fails(r, budget.CHECK_ALPHA)
    for r in records:
        if r["kind"] == "validate":
            per_round[r["seed"]] |= r["t"] > 0
    failed_rounds = sum(per_round[s] for s in rounds)
    lines += ["", f"family-wise: {failed_rounds} of {len(rounds)} rounds had a failure at the declared per-check "
                  f"level {budget.CHECK_ALPHA:.1e} (declared budget {budget.BUDGET:g} per run)"]
    power = [r for r in records if r["kind"] == "power"]
    if power:
        lines.append(f"power: planted bugs caught in {sum(r['caught'] for r in power)} of {len(power)} attempts")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="the JSON-lines file written through IBCHECK_STATS_LOG")
    args = parser.parse_args(argv)
    records = [json.loads(line) for line in Path(args.log).read_text().splitlines() if line.strip()]
    if not records:
        print("no checks recorded", file=sys.stderr)
        return 1
    print(summary(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
