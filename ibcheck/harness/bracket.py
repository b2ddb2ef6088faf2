"""The bracket on I(X;Z) of a validate run (bounds.md sections 3b and 3c): per case, the largest lower
bound and the smallest upper bound among the estimates that passed their tests, and how the
width of the two teacher bounds (``teacher_iw``, and ``teacher_iw_data`` where the data prior is not the
model prior, above; ``teacher_riw`` below) shrinks with K, that
of the annealed pair (``teacher_ais``, ``teacher_rais``) with T, beside that of the batch bounds
(``loo`` above, ``nce`` below) with N.

Reads the report rows of ``ibcheck.harness.report`` (one dict per estimate) and nothing else.
"""
from __future__ import annotations

import math
from typing import Any

from ibcheck.estimators import registry
from ibcheck.interface import ReportRow

# (upper, lower, swept parameter) of the families whose widths are measured (and drawn, ``figures``)
FAMILIES = ((registry.TEACHER_IW.name, registry.TEACHER_RIW.name, "K"),
            (registry.TEACHER_IW_DATA.name, registry.TEACHER_RIW.name, "K"),
            (registry.TEACHER_AIS.name, registry.TEACHER_RAIS.name, "T"),
            (registry.LOO.name, registry.NCE.name, "N"))
WIDTH_FIELDS = ["case", "upper", "lower", "param", "value", "upper_value", "lower_value", "width"]


def _trusted(rows: list[ReportRow], kind: str) -> list[ReportRow]:
    """ibcheck's own I(X;Z) bounds of ``kind`` that are finite numbers and passed their one-sided
    test (a user's estimator under judgement is never an end)."""
    return [r for r in rows if r["estimator"] in registry.SPECS and r["target"] == "I_XZ" and r["kind"] == kind
            and r["valid"] is True and r["error"] is None and math.isfinite(r["value"])]


def _end(row: ReportRow) -> dict:
    return {"estimator": row["label"], "value": row["value"], "stderr": row["stderr"]}


def case_bracket(rows: list[ReportRow]) -> dict | None:
    """{"lower", "upper", "width", "contains_exact"} of one case's rows, None without both ends.
    contains_exact allows each end the half-width of its own test (the bounds passed those)."""
    lows, highs = _trusted(rows, "lower"), _trusted(rows, "upper")
    if not lows or not highs:
        return None
    low, high = max(lows, key=lambda r: r["value"]), min(highs, key=lambda r: r["value"])
    exact = low["exact"]
    inside = low["value"] - low["ci_half_width"] <= exact <= high["value"] + high["ci_half_width"]
    return {"lower": _end(low), "upper": _end(high), "width": high["value"] - low["value"], "contains_exact": inside,
            "annealed": annealed(rows)}


def annealed(rows: list[ReportRow]) -> dict | None:
    """The annealed pair at its largest T where both ends passed their tests (bounds.md section 3c):
    {"T", "lower", "upper", "width", "width_se", "contains_exact"}, the width paired over their
    shared z; None where the case has no such pair."""
    pairs: dict[int, dict[str, ReportRow]] = {}
    for r in rows:
        if r["estimator"] in (registry.TEACHER_AIS.name, registry.TEACHER_RAIS.name) and r["target"] == "I_XZ":
            pairs.setdefault(r["params"]["T"], {})[r["estimator"]] = r
    passed = [T for T, pair in pairs.items() if len(pair) == 2 and all(
        r["valid"] is True and r["error"] is None and math.isfinite(r["value"]) for r in pair.values())]
    if not passed:
        return None
    T = max(passed)
    high, low = pairs[T][registry.TEACHER_AIS.name], pairs[T][registry.TEACHER_RAIS.name]
    inside = low["value"] - low["ci_half_width"] <= low["exact"] <= high["value"] + high["ci_half_width"]
    return {"T": T, "lower": _end(low), "upper": _end(high), "width": high["params"].get("paired_width"),
            "width_se": high["params"].get("paired_width_se"), "contains_exact": inside}


def widths(rows: list[ReportRow]) -> list[dict[str, Any]]:
    """Per case and family, the width at each value of K (or N) that both bounds ran with."""
    out = []
    for upper, lower, param in FAMILIES:
        for case in dict.fromkeys(r["case"] for r in rows):
            ends = {(r["estimator"], r["params"][param]): r for r in rows
                    if r["case"] == case and r["estimator"] in (upper, lower) and r["target"] == "I_XZ"}
            shared = {v for (name, v) in ends if name == upper} & {v for (name, v) in ends if name == lower}
            for value in sorted(shared):
                hi, lo = ends[(upper, value)]["value"], ends[(lower, value)]["value"]
                out.append({"case": case, "upper": upper, "lower": lower, "param": param, "value": value,
                            "upper_value": hi, "lower_value": lo, "width": hi - lo})
    return out
