"""The scheduled quota-reset sweep: reset every due quota row of one reset frequency, in batches.

Correctness never depends on it: every quota read and reserve applies a due reset itself
(`oneai.quota.service`). The sweep keeps the stored rows current (for reports, for warnings, for whoever
reads the table directly), so a quota that nobody touches does not stay stale.

Each batch is its own short service transaction (`oneai.db.quota_sweep.reset_due_quotas`): up to
`batch_size` due rows, locked with `FOR UPDATE SKIP LOCKED`, reset, committed. So the sweep is safe to run
twice or concurrently (each due row is reset once, by whoever locks it first, or by a reserve), holds no
lock for long, and leaves finished work committed when it stops. It stops before the next batch when the
time left is below the safety margin plus twice the longest batch so far, and then reports how many due
rows remain (the next run, or the reads and reserves themselves, take care of them).

    report = sweep_due_quotas(get_database(), "daily", time_left=lambda: ctx.get_remaining_time_in_millis() / 1000)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

from oneai.db import quota_sweep as repo
from oneai.db.connection import Database
from oneai.quota.tiers import RESET_FREQUENCIES, ResetFrequency

# Tuned over 1,000,000 due rows (`python -m bench quota_sweep`, 2 CPUs): 2,500 to 10,000 rows a batch
# sweep at the same rate (~40,000-52,000 rows/s), 20,000 and more are slower and hold locks longer
# (0.7-1.6 s a batch). 5,000 keeps a batch near 0.2 s (a reserve that meets a row being reset waits
# at most that long) at half the round trips of 2,500.
DEFAULT_BATCH_SIZE: Final = 5_000
# Seconds kept free at the end of a sweep (the remaining-rows count, the grace periods, the report).
DEFAULT_SAFETY_MARGIN: Final = 10.0

TimeLeft = Callable[[], float]


@dataclass(slots=True)
class TimeBudget:
    """Whether there is time for one more batch: the time left (seconds, None: unlimited) must cover
    the safety margin and twice the longest batch seen so far."""

    time_left: TimeLeft | None
    safety_margin: float
    longest_batch: float = 0.0

    def allows_another_batch(self) -> bool:
        if self.time_left is None:
            return True
        return self.time_left() >= self.safety_margin + 2 * self.longest_batch

    def record_batch(self, seconds: float) -> None:
        self.longest_batch = max(self.longest_batch, seconds)


@dataclass(frozen=True, slots=True)
class SweepReport:
    frequency: ResetFrequency
    reset: int
    # Due rows of this frequency still not reset when the sweep ended (counted after its last batch).
    remaining: int
    batches: int
    # Stopped because the time budget ran out, not because no due rows were left.
    stopped_early: bool
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sweep_due_quotas(
    db: Database,
    frequency: ResetFrequency,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_left: TimeLeft | None = None,
    safety_margin: float = DEFAULT_SAFETY_MARGIN,
) -> SweepReport:
    """Reset every due row of `frequency` (`next_reset_at <= now()`), oldest due first, in batches of
    `batch_size`, while `time_left()` (seconds) allows; each batch commits on its own."""
    if frequency not in RESET_FREQUENCIES:
        raise ValueError(f"unknown reset frequency {frequency!r}; known: {', '.join(RESET_FREQUENCIES)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")

    started = time.monotonic()
    budget = TimeBudget(time_left, safety_margin)
    reset = batches = 0
    stopped_early = False
    while True:
        if not budget.allows_another_batch():
            stopped_early = True
            break
        batch_started = time.monotonic()
        with db.service_transaction() as conn:
            count = repo.reset_due_quotas(conn, frequency, batch_size)
        budget.record_batch(time.monotonic() - batch_started)
        reset += count
        batches += 1
        # A short batch: nothing due is left that is not locked by someone else (another sweep, or a
        # reserve that is resetting the row itself).
        if count < batch_size:
            break
    with db.service_transaction() as conn:
        remaining = repo.count_due_quotas(conn, frequency)
    return SweepReport(
        frequency=frequency,
        reset=reset,
        remaining=remaining,
        batches=batches,
        stopped_early=stopped_early,
        seconds=round(time.monotonic() - started, 3),
    )
