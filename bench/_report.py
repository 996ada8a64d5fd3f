"""Summary statistics and plain aligned text tables for the benchmark reports."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    """Figures of one measured case, in seconds."""

    n: int
    median: float
    p95: float
    min: float


def summarize(samples: Sequence[float]) -> Summary:
    """Median, p95 (nearest rank) and min of the samples."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(0.95 * len(ordered)))
    return Summary(n=len(ordered), median=statistics.median(ordered), p95=ordered[rank - 1], min=ordered[0])


def ms(seconds: float, decimals: int = 2) -> str:
    return f"{seconds * 1000:.{decimals}f}"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None, indent: str = "  "
) -> str:
    """`align` has one letter per column, l or r; by default the first column left, the others right."""
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(cell).ljust(width) if side == "l" else str(cell).rjust(width)
            for cell, width, side in zip(cells, widths, align, strict=True)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def summary_row(label: str, summary: Summary) -> list[str]:
    return [label, ms(summary.median), ms(summary.p95), ms(summary.min)]


SUMMARY_HEADERS = ("", "median ms", "p95 ms", "min ms")
