"""The monthly usage-summary sweep (EventBridge Scheduler, the 1st at 00:00 UTC, into the notifications
function): one `UsageSummaryDue` event per user with usage in the month before, with that month's totals.

Users are read in keyset batches by id (`oneai.db.notifications.usage_totals_after`), each batch one short
read-only service transaction, its events published after it (10 per PutEvents call), while the time
budget allows (the quota sweep's `TimeBudget`). A run that stops early reports the last user it reached:
run again with `detail.after` set to it to go on. Running twice is harmless: the notifications function
sends each user's summary of a month once (its claim).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from oneai.db import notifications as repo
from oneai.db.connection import Database
from oneai.events import DomainEvent, EventPublisher
from oneai.notifications.occasions import NOTIFICATIONS_SOURCE, USAGE_SUMMARY_DUE
from oneai.quota.sweep import TimeBudget, TimeLeft

DEFAULT_BATCH_SIZE: Final = 1_000
DEFAULT_SAFETY_MARGIN: Final = 10.0
BEFORE_EVERY_USER: Final = UUID(int=0)


@dataclass(frozen=True, slots=True)
class Month:
    """A calendar month in UTC, [start, end)."""

    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m}"

    @classmethod
    def parse(cls, label: str) -> Month:
        """`2026-10`, or ValueError."""
        start = datetime.strptime(label, "%Y-%m").replace(tzinfo=UTC)
        return cls(start, _next_month(start))

    @classmethod
    def before(cls, moment: datetime) -> Month:
        """The month before the one `moment` is in (run on the 1st: last month)."""
        this_month = moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        previous = (this_month - timedelta(days=1)).replace(day=1)
        return cls(previous, this_month)


def _next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    )


@dataclass(frozen=True, slots=True)
class SummaryReport:
    month: str
    users: int
    published: int
    batches: int
    stopped_early: bool
    # The last user reached (pass it as `detail.after` to go on after an early stop).
    last_user_id: str | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summary_event(month: Month, totals: repo.UsageTotals) -> DomainEvent:
    detail = {
        "user_id": str(totals.user_id),
        "month": month.label,
        "messages": totals.messages,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "cost": format(Decimal(totals.cost).normalize(), "f"),
    }
    return DomainEvent(NOTIFICATIONS_SOURCE, USAGE_SUMMARY_DUE, detail)


def emit_usage_summaries(
    db: Database,
    publisher: EventPublisher,
    month: Month,
    *,
    after: UUID = BEFORE_EVERY_USER,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_left: TimeLeft | None = None,
    safety_margin: float = DEFAULT_SAFETY_MARGIN,
) -> SummaryReport:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    started = time.monotonic()
    budget = TimeBudget(time_left, safety_margin)
    users = published = batches = 0
    cursor: UUID | None = None
    stopped_early = False
    position = after
    while True:
        if not budget.allows_another_batch():
            stopped_early = True
            break
        batch_started = time.monotonic()
        with db.service_transaction() as conn:
            rows = repo.usage_totals_after(
                conn, after=position, start=month.start, end=month.end, limit=batch_size
            )
        published += publisher.publish_all([summary_event(month, row) for row in rows])
        budget.record_batch(time.monotonic() - batch_started)
        batches += 1
        users += len(rows)
        if rows:
            position = cursor = rows[-1].user_id
        if len(rows) < batch_size:
            break
    return SummaryReport(
        month=month.label,
        users=users,
        published=published,
        batches=batches,
        stopped_early=stopped_early,
        last_user_id=str(cursor) if cursor else None,
        seconds=round(time.monotonic() - started, 3),
    )
