"""Quotas: reserve before the work, settle (or refund) after it, and the current state for `/user/quota`.

Every function takes the connection of the caller's `db.user_transaction(principal)`; the SQL acts on
that user's rows only. A reserve is one conditional UPDATE in the database (`oneai_private.reserve_quota`):
it applies a due reset and admits only if `used + units <= limit`, so concurrent requests never exceed a
limit. A reservation counts in the window it was made in: refunding after a reset gives nothing back
(it would eat into the new window).

    reservation = quota.reserve(conn, "small_messages")      # QuotaExceededError (429) when used up
    ...                                                       # the model call
    quota.settle(conn, reservation, units_used=1)             # or quota.refund(conn, reservation)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, PrivateAttr

from oneai.db import quota as repo
from oneai.db.connection import Connection
from oneai.errors import QuotaExceededError, ValidationError, field_error
from oneai.observability import emit_metric
from oneai.quota.tiers import QuotaKey, ResetFrequency, TierName
from oneai.timestamps import iso_z


class Reservation(BaseModel):
    """Units counted against a quota, in the window that started at `window_started_at`.

    Settle or refund it once: the object remembers that it was closed, so a second call gives nothing
    back twice (within this process; the database cannot tell two refunds of one reservation apart).
    """

    quota_key: QuotaKey
    units: int
    window_started_at: datetime
    used: int
    limit: int
    resets_at: datetime
    tier: TierName
    # Warning thresholds (80, 90, 100 %) this reserve crossed: announce each (oneai.quota.warnings).
    warnings_crossed: tuple[int, ...] = ()

    _closed: bool = PrivateAttr(default=False)

    @property
    def closed(self) -> bool:
        return self._closed


class QuotaStatus(BaseModel):
    """One quota as `/user/quota` shows it (a due reset already applied)."""

    quota_key: QuotaKey
    used: int
    limit: int
    remaining: int
    resets_at: datetime
    percentage_used: float
    reset_frequency: ResetFrequency
    tier: TierName


WARNING_THRESHOLDS = (80, 90, 100)


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, as the API writes times (`2026-12-01T00:00:00Z`)."""
    if moment is None:
        return None
    return iso_z(moment)


def _check_units(units: int, name: str = "units") -> None:
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise ValidationError(
            f"{name} must be a whole number of at least 1",
            details={"errors": [field_error(name, "must be a whole number of at least 1", "int_too_small")]},
        )


def reserve(conn: Connection, quota_key: QuotaKey, units: int = 1) -> Reservation:
    """Count `units` against the caller's `quota_key`, or raise QuotaExceededError (429) with
    details `quota_key`, `used`, `limit`, `resets_at` (ISO 8601 UTC, null without a quota) and `tier`."""
    _check_units(units)
    outcome = repo.reserve_quota(conn, quota_key, units)
    if not outcome.admitted:
        raise refusal(outcome)
    crossed: list[int] = []
    if outcome.used_count * 100 >= outcome.quota_limit * WARNING_THRESHOLDS[0]:
        crossed = repo.claim_quota_warnings(conn, quota_key)
    return reservation_of(outcome, units=units, crossed=crossed)


def refusal(outcome: repo.ReserveOutcome) -> QuotaExceededError:
    """The 429 of a refused reserve (also answered by the chat turn's one-call prepare)."""
    emit_metric("QuotaExceeded", 1, quota_key=outcome.quota_key)
    return QuotaExceededError(
        f"Your {outcome.quota_key.replace('_', ' ')} quota is used up"
        + (f" until {iso_utc(outcome.next_reset_at)}" if outcome.next_reset_at else ""),
        details={
            "quota_key": outcome.quota_key,
            "used": outcome.used_count,
            "limit": outcome.quota_limit,
            "resets_at": iso_utc(outcome.next_reset_at),
            "tier": outcome.subscription_tier,
        },
    )


def reservation_of(outcome: repo.ReserveOutcome, *, units: int, crossed: Sequence[int]) -> Reservation:
    """The reservation an admitted reserve made; `crossed`: the warning thresholds it claimed."""
    if outcome.last_reset_at is None or outcome.next_reset_at is None:  # an admitted reserve updated a row
        raise RuntimeError("reserve_quota admitted without a quota window")
    return Reservation(
        quota_key=outcome.quota_key,
        units=units,
        window_started_at=outcome.last_reset_at,
        used=outcome.used_count,
        limit=outcome.quota_limit,
        resets_at=outcome.next_reset_at,
        tier=outcome.subscription_tier,
        warnings_crossed=tuple(crossed),
    )


def settled_whole(reservation: Reservation) -> None:
    """The reservation was settled in full by the database call that recorded the work (the chat turn's
    finish): nothing is given back, and a later settle or refund does nothing."""
    reservation._closed = True


def _give_back(conn: Connection, reservation: Reservation, units: int) -> bool:
    return repo.refund_quota(conn, reservation.quota_key, units, reservation.window_started_at)


def refund(conn: Connection, reservation: Reservation) -> bool:
    """Give the whole reservation back (the work did not happen). False when nothing was given back:
    the window has reset since, or the reservation was already settled or refunded."""
    if reservation.closed:
        return False
    reservation._closed = True
    return _give_back(conn, reservation, reservation.units)


def settle(conn: Connection, reservation: Reservation, units_used: int) -> None:
    """Confirm the reservation: `units_used` (0..units) stay counted, the rest is given back (only
    within the same window). A second settle or refund of the same reservation does nothing."""
    if isinstance(units_used, bool) or not isinstance(units_used, int) or not 0 <= units_used <= reservation.units:
        raise ValueError(f"units_used must be between 0 and {reservation.units}, got {units_used!r}")
    if reservation.closed:
        return
    reservation._closed = True
    if units_used < reservation.units:
        _give_back(conn, reservation, reservation.units - units_used)


def current_quotas(conn: Connection) -> list[QuotaStatus]:
    """The caller's quotas as they stand now, ordered by key; a due reset counts even before the sweep."""
    return [status_of(row) for row in repo.current_quotas(conn)]


def status_of(row: repo.QuotaRow) -> QuotaStatus:
    used, limit = row.used_count, row.quota_limit
    return QuotaStatus(
        quota_key=row.quota_key,
        used=used,
        limit=limit,
        remaining=max(limit - used, 0),
        resets_at=row.next_reset_at,
        # over 100 after a downgrade that kept usage above the new limit
        percentage_used=round(used / limit * 100, 2) if limit > 0 else 100.0,
        reset_frequency=row.reset_frequency,
        tier=row.subscription_tier,
    )
