"""The batch loop of the sweeps that end billing periods (grace periods, paid periods after a cancel):
each batch is one short service transaction that locks what is due (`FOR UPDATE SKIP LOCKED`) and acts on
it; the loop stops when a batch comes back short or the time budget says no more batches fit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from oneai.db.connection import Connection, Database
from oneai.quota.sweep import TimeBudget, TimeLeft

DEFAULT_BATCH_SIZE: Final = 100
DEFAULT_SAFETY_MARGIN: Final = 2.0

AfterCommit = Callable[[], None]
# One batch: (connection, batch size) -> (rows locked, one action per row handled, run after commit).
Batch = Callable[[Connection, int], tuple[int, list[AfterCommit]]]


def run_in_batches(
    db: Database,
    batch: Batch,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_left: TimeLeft | None = None,
    safety_margin: float = DEFAULT_SAFETY_MARGIN,
) -> int:
    """Run `batch` until it is done or out of time; returns how many rows were handled."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    budget = TimeBudget(time_left, safety_margin)
    handled = 0
    while budget.allows_another_batch():
        started = time.monotonic()
        with db.service_transaction() as conn:
            locked, after_commit = batch(conn, batch_size)
        budget.record_batch(time.monotonic() - started)
        for action in after_commit:  # the batch has committed
            action()
        handled += len(after_commit)
        if locked < batch_size:
            break
    return handled
