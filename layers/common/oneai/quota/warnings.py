"""Quota warnings: one EventBridge event per threshold (80, 90, 100 %) per reset window.

The database decides which thresholds a reserve crossed, atomically (`claim_quota_warnings`), so each is
announced once even when many reserves race; this module only sends what it was told.
"""

from __future__ import annotations

from uuid import UUID

from oneai.events import EventPublisher
from oneai.observability import emit_metric
from oneai.quota.service import Reservation, iso_utc

SOURCE = "oneai.quota"
DETAIL_TYPE = "QuotaWarning"


def announce_warnings(publisher: EventPublisher, user_id: UUID, reservation: Reservation) -> int:
    """Send one event per crossed threshold; returns how many EventBridge accepted."""
    sent = 0
    for threshold in reservation.warnings_crossed:
        detail = {
            "user_id": str(user_id),
            "quota_key": reservation.quota_key,
            "threshold": threshold,
            "used": reservation.used,
            "limit": reservation.limit,
            "resets_at": iso_utc(reservation.resets_at),
            "tier": reservation.tier,
        }
        if publisher.publish(SOURCE, DETAIL_TYPE, detail):
            sent += 1
        emit_metric("QuotaWarnings", 1, quota_key=reservation.quota_key, threshold=str(threshold))
    return sent
