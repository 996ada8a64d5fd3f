"""Percentiles of reply times from mergeable log-scale histograms (the rollups' `ttft_*`/`total_*` arrays).

A duration of `ms` milliseconds falls in bucket 0 when it is 0, else in bucket `ceil(ln(ms) / ln(GAMMA)) + 1`
(the database computes the same with `oneai_private.latency_bucket`), so bucket i >= 1 holds the durations in
(GAMMA^(i-2), GAMMA^(i-1)]. Days' histograms add up bucket by bucket. The percentile p of n durations is the
nearest-rank one (the value at rank ceil(p * n) in ascending order, as PostgreSQL's `percentile_disc`): the
bucket holding that rank is found by the cumulative counts, and its representative value is returned, the
point `2 * GAMMA^(i-1) / (GAMMA + 1)` whose relative distance to any value of the bucket is at most
`RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1)` (just under 1 %), then rounded to a whole millisecond. So:

    |estimate - exact| <= RELATIVE_ERROR * exact + 0.5 ms

whatever the number of days and replies (the method of DDSketch, Masson et al., VLDB 2019, with a fixed
bucket set and no collapsing: a day of replies between 1 ms and 10 min uses at most ~675 buckets).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Final

GAMMA: Final = 1.02
RELATIVE_ERROR: Final = (GAMMA - 1) / (GAMMA + 1)
_LN_GAMMA: Final = math.log(GAMMA)


def bucket_of(ms: int) -> int:
    """The bucket of a duration (as `oneai_private.latency_bucket`)."""
    if ms <= 0:
        return 0
    return math.ceil(math.log(ms) / _LN_GAMMA) + 1


def representative(bucket: int) -> float:
    """The value a bucket answers for: within RELATIVE_ERROR of every duration in it."""
    if bucket <= 0:
        return 0.0
    return 2 * GAMMA ** (bucket - 1) / (GAMMA + 1)


class Histogram:
    """Counts per bucket, merged from any number of days' arrays."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

    def add(self, buckets: Iterable[int], counts: Iterable[int]) -> None:
        for bucket, count in zip(buckets, counts, strict=True):
            self.counts[bucket] += count

    def add_values(self, values: Iterable[int]) -> None:
        for value in values:
            self.counts[bucket_of(value)] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentile(self, p: float) -> int | None:
        """The nearest-rank percentile p (0 < p <= 1) in whole ms, None without any duration."""
        if not 0 < p <= 1:
            raise ValueError("p must be in (0, 1]")
        total = self.total
        if total == 0:
            return None
        rank = max(1, math.ceil(p * total - 1e-9))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return round(representative(bucket))
        raise AssertionError("unreachable: the ranks add up to the total")  # pragma: no cover
