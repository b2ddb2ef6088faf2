"""Summarise a pytest-benchmark JSON file as Markdown: a table per group, and the numbers to reach.

Usage: ``python tools/bench_summary.py reports/bench/benchmarks.json reports/bench/summary.md``
(``--strict`` exits 1 when a target fails or was not measured). The summary is written
atomically and printed to stdout.

Rates use each benchmark's minimum time (the least disturbed round on a shared machine).
A FLOP rate is ``extra_info["flops"]`` / min time; a work item tagged ``work = KEY`` is
divided by the rate of the yardstick tagged ``yardstick_for = KEY`` from the same file,
i.e. the same run. Per-sample rates are ``extra_info["items"]`` / min time.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ibcheck.fileio import write_text

TARGET_RATIO = 0.5  # the target: at least half the yardstick's FLOP rate


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _seconds(value: float) -> str:
    """A duration with a readable unit."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def _info(bench: dict) -> dict:
    return bench.get("extra_info") or {}


def gflops(bench: dict) -> float | None:
    """FLOP rate from the minimum time, GFLOP/s; None without a FLOP count."""
    flops = _info(bench).get("flops")
    return flops / bench["stats"]["min"] / 1e9 if flops else None


def items_per_second(bench: dict) -> float | None:
    items = _info(bench).get("items")
    return items / bench["stats"]["min"] if items else None


def _others(bench: dict) -> str:
    """Cores other processes kept busy during the rounds, as recorded by ``benchutil.timed``."""
    value = _info(bench).get("other_cpu")
    return "?" if value is None else f"{value:.1f}"


def _params(bench: dict) -> str:
    params = bench.get("params") or {}
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


def group_tables(benchmarks: list[dict]) -> list[str]:
    """One table per group, in the order the groups first ran."""
    groups: dict[str, list[dict]] = {}
    for bench in benchmarks:
        groups.setdefault(bench.get("group") or "(none)", []).append(bench)
    lines = []
    for group, members in groups.items():
        lines += [f"### {group}", "", "| benchmark | params | rounds | mean | min | items/s | GFLOP/s | others' cores |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for bench in members:
            stats, rate, flops = bench["stats"], items_per_second(bench), gflops(bench)
            lines.append(f"| {bench['name'].split('[')[0]} | {_params(bench)} | {stats['rounds']} "
                         f"| {_seconds(stats['mean'])} | {_seconds(stats['min'])} "
                         f"| {f'{rate:,.0f}' if rate else '-'} | {f'{flops:.1f}' if flops else '-'} | {_others(bench)} |")
        lines.append("")
    return lines


def _tagged(benchmarks: list[dict], key: str) -> dict[str, dict]:
    return {_info(b)[key]: b for b in benchmarks if _info(b).get(key)}


def rate_targets(benchmarks: list[dict]) -> tuple[list[str], bool]:
    """The FLOP-rate table of every work item against its yardstick; and whether all passed."""
    work, yard = _tagged(benchmarks, "work"), _tagged(benchmarks, "yardstick_for")
    lines = ["| work | GFLOP/s | yardstick GFLOP/s | ratio | target | verdict | others' cores (work / yardstick) |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: |"]
    if not work:
        return ["No rate target was measured."], False
    passed = True
    for key in work:  # in the order they ran
        rate = gflops(work[key])
        base = gflops(yard[key]) if key in yard else None
        if rate is None or base is None:
            shown = "-" if rate is None else f"{rate:.1f}"
            lines.append(f"| {key} | {shown} | not measured | - | >= {TARGET_RATIO} | FAIL (not measured) | - |")
            passed = False
            continue
        ratio = rate / base
        ok = ratio >= TARGET_RATIO
        passed = passed and ok
        lines.append(f"| {key} | {rate:.1f} | {base:.1f} | {ratio:.2f} | >= {TARGET_RATIO} | {'PASS' if ok else 'FAIL'} "
                     f"| {_others(work[key])} / {_others(yard[key])} |")
    return lines, passed


def per_sample_ratios(benchmarks: list[dict]) -> list[str]:
    """Samples per second of each batched evaluation over that of the per-sample loop."""
    loops = [b for b in benchmarks if _info(b).get("per_sample") == "loop"]
    batched = [b for b in benchmarks if _info(b).get("per_sample") == "batched"]
    if not loops or not batched:
        return ["The per-sample loop or the batched evaluation was not measured."]
    loop = loops[0]
    loop_rate = items_per_second(loop)
    lines = [f"Per-sample loop (`reference_loop.py`, batch size 1): {_info(loop)['items']} samples per call, "
             f"{loop_rate:,.0f} samples/s.", "",
             "| batched evaluation | samples/s | x per-sample loop | others' cores (batched / loop) |",
             "| --- | ---: | ---: | ---: |"]
    for bench in sorted(batched, key=lambda b: _info(b)["items"]):
        rate = items_per_second(bench)
        lines.append(f"| n = {_info(bench)['items']:,} | {rate:,.0f} | {rate / loop_rate:.1f}x "
                     f"| {_others(bench)} / {_others(loop)} |")
    return lines


def _machine(document: dict) -> str:
    machine = document.get("machine_info") or {}
    cpu = machine.get("cpu") or {}
    threads = {_info(b).get("torch_threads") for b in document.get("benchmarks", [])} - {None}
    return (f"{cpu.get('brand_raw', 'unknown CPU')}, {cpu.get('count', '?')} logical cores, torch threads "
            f"{', '.join(map(str, sorted(threads))) or '?'}; Python {machine.get('python_version', '?')}; "
            f"run {document.get('datetime', '?')}")


def render(document: dict) -> tuple[str, bool]:
    """The Markdown summary and whether every rate target passed."""
    benchmarks = document.get("benchmarks", [])
    targets, passed = rate_targets(benchmarks)
    lines = ["# ibcheck benchmarks", "", _machine(document), "",
             "Times are per call; rates use the minimum over rounds. FLOP counts are matmul FLOPs only.", "",
             "## Numbers to reach", "",
             f"FLOP rate of the work over that of a plain dense matmul of the same shapes, same run "
             f"(target: at least {TARGET_RATIO}). \"Others' cores\" is how many cores other processes kept busy "
             f"while the rounds ran; a verdict reached while it was not near 0 is about the machine's load, "
             f"not about ibcheck.", ""]
    lines += targets + ["", "### Batched vs per-sample loop (a reference, not a target)", ""]
    lines += per_sample_ratios(benchmarks) + ["", "## Groups", ""] + group_tables(benchmarks)
    return "\n".join(lines).rstrip() + "\n", passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("out", type=Path, help="Markdown summary to write")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a rate target fails or is missing")
    args = parser.parse_args(argv)
    text, passed = render(load(args.json))
    write_text(args.out, text)
    print(text, end="")
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
