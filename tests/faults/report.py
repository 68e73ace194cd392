"""The fault matrix's rows and how they are printed: one line per case, then the totals the issue asks for."""

from __future__ import annotations

from collections import Counter
from typing import Any

REPORT: list[dict[str, Any]] = []


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over every case."""
    return {
        "cases": len(rows),
        "outcomes": dict(Counter(str(r["outcome"]) for r in rows)),
        "max_writable_sides_while_both_answer": max((r["max_writable"] for r in rows), default=0),
        "cases_with_two_writable_sides": sum(1 for r in rows if r["max_writable"] > 1),
        "cases_with_pods_on_both_sites": sum(1 for r in rows if r["both_running"] > 0),
        "writes_lost_in_planned_cases": sum(r["lost"] for r in rows if r["mode"] == "planned"),
        "wedged": sum(1 for r in rows if r["wedged"]),
        "unexplained": sum(1 for r in rows if not r["explained"]),
        "trident_handover_window_seconds_max": max(
            (r["handover_seconds"] for r in rows if r["backend"] == "trident"), default=0.0
        ),
    }


def render(rows: list[dict[str, Any]]) -> list[str]:
    """The matrix as text lines."""
    header = (
        f"{'group':<14} {'mode':<9} {'step':<26} {'fault':<18} {'outcome':<19} {'resumed':<8} "
        f"{'writable':>8} {'both-pods':>9} {'lost':>5} {'secs':>6}  status"
    )
    lines = ["== fault matrix ==", header]
    for r in rows:
        lines.append(
            f"{r['group']:<14} {r['mode']:<9} {r['step']:<26} {r['fault']:<18} {r['outcome']!s:<19} "
            f"{'yes' if r['resumed'] else '-':<8} {r['max_writable']:>8} {r['both_running']:>9} {r['lost']:>5} "
            f"{r['seconds']:>6.1f}  {r['status'][:90]}"
        )
    summary = totals(rows)
    lines.append("== totals ==")
    lines.extend(f"{key}: {value}" for key, value in summary.items())
    return lines
