"""Rate limits per caller (API.md "Rate limits"): a GCRA bucket per user and class in PostgreSQL.

Every authenticated request carries one `RateCheck`. The first `Database.user_transaction` of the request
takes one token from the caller's bucket in the same round trip that sets the transaction's scope (one
`oneai_private.take_rate_limit` call, a single conditional UPDATE; see the migration
`20261122020000_rate_limits.sql`). A refused request raises `RateLimitedError` (429) and writes nothing;
an admitted one counts even when the request fails afterwards. The headers follow
draft-ietf-httpapi-ratelimit-headers-11: `RateLimit-Policy: "all";q=60;w=12` (a full bucket holds `q`
requests and refills in `w` seconds) and `RateLimit: "all";r=59;t=1` (`r` requests left now, the bucket
full again in `t` seconds); a refusal adds `Retry-After` (whole seconds, at least 1).

Anonymous requests that write (`POST /docs/feedback`) count in a bucket of their source instead
(`oneai_anon.take_source_rate_limit`, migration `20261122170000_source_rate_limits.sql`, same GCRA),
taken in the anonymous transaction's first round trip. The source is the address API Gateway saw
(`requestContext.identity.sourceIp`, which Mangum gives as the request's client), never a header the
caller writes. It leaves this process only as a sha256 digest (no address in clear in a statement log),
and the database keys its bucket by a keyed hash of that digest (the key never leaves the database), so
no address, nor anything a guessed address can be checked against, is stored.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from oneai.config import Settings
from oneai.db import rate_limits as rate_rows
from oneai.db.scope import RateOutcome, RateRequest

if TYPE_CHECKING:
    from oneai.db.connection import Database

__all__ = [  # RateOutcome (what a bucket answers) is the data layer's type, named here too
    "BUCKETS",
    "UNKNOWN_SOURCE",
    "Bucket",
    "RateCheck",
    "RateOutcome",
    "RatePolicy",
    "SourceBucket",
    "clear_idle_buckets",
    "new_check",
    "new_keyed_check",
    "new_source_check",
    "policy_for",
    "source_digest",
    "source_policy",
]

Bucket = Literal["all", "chat"]
# Requests that start a model reply count in the `chat` bucket (and only there); all others in `all`.
BUCKETS: tuple[Bucket, ...] = ("all", "chat")
# Buckets of anonymous callers, per source address (`widget_visitor`: per chatbot and visitor id instead,
# in the same table, keyed the same way).
SourceBucket = Literal["feedback", "widget", "widget_visitor"]
# When the server saw no client address (never behind API Gateway), all such callers share one bucket.
UNKNOWN_SOURCE = "unknown"


@dataclass(frozen=True, slots=True)
class RatePolicy:
    bucket: Bucket | SourceBucket
    per_minute: int
    burst: int

    @property
    def window_seconds(self) -> int:
        """Seconds a drained bucket takes to fill again (`burst` tokens at `per_minute / 60` a second)."""
        return max(1, math.ceil(self.burst * 60 / self.per_minute))

    def policy_header(self) -> str:
        return f'"{self.bucket}";q={self.burst};w={self.window_seconds}'


class RateCheck(RateRequest):
    """The rate check of one request under its policy: done by the request's first user (or anonymous)
    transaction, once (the data layer takes it as the `RateRequest` it is)."""

    __slots__ = ("policy",)

    def __init__(self, policy: RatePolicy, *, source_digest: str | None = None) -> None:
        # Anonymous checks only: the sha256 (hex) of the caller's source address; None for a user's bucket.
        super().__init__(policy.bucket, policy.per_minute, policy.burst, source_digest=source_digest)
        self.policy = policy

    def headers(self) -> dict[str, str]:
        """`RateLimit-Policy` and `RateLimit` once checked (and `Retry-After` when refused)."""
        outcome = self.outcome
        if outcome is None:
            return {}
        headers = {
            "RateLimit-Policy": self.policy.policy_header(),
            "RateLimit": f'"{self.policy.bucket}";r={outcome.remaining};t={max(0, math.ceil(outcome.reset_seconds))}',
        }
        if not outcome.admitted:
            headers["Retry-After"] = str(outcome.retry_after)
        return headers


def policy_for(settings: Settings, bucket: Bucket) -> RatePolicy | None:
    """The policy of `bucket`, or None when rate limiting is off (the benchmark's baseline)."""
    if not settings.rate_limit_enabled:
        return None
    if bucket == "chat":
        return RatePolicy("chat", settings.chat_rate_limit_per_minute, settings.chat_rate_limit_burst)
    return RatePolicy("all", settings.rate_limit_per_minute, settings.rate_limit_burst)


def new_check(settings: Settings, bucket: Bucket) -> RateCheck | None:
    policy = policy_for(settings, bucket)
    return None if policy is None else RateCheck(policy)


def source_digest(host: str | None) -> str:
    """The sha256 (hex) of a source address: all of it the database ever sees (it keys it once more)."""
    return hashlib.sha256((host or UNKNOWN_SOURCE).encode()).hexdigest()


def source_policy(settings: Settings, bucket: SourceBucket) -> RatePolicy | None:
    """The policy of an anonymous bucket, or None when rate limiting is off."""
    if not settings.rate_limit_enabled:
        return None
    if bucket == "widget":
        return RatePolicy(bucket, settings.widget_rate_limit_per_minute, settings.widget_rate_limit_burst)
    if bucket == "widget_visitor":
        per_minute, burst = settings.widget_visitor_rate_limit_per_minute, settings.widget_visitor_rate_limit_burst
        return RatePolicy(bucket, per_minute, burst)
    return RatePolicy(bucket, settings.feedback_rate_limit_per_minute, settings.feedback_rate_limit_burst)


def new_source_check(settings: Settings, bucket: SourceBucket, host: str | None) -> RateCheck | None:
    """The rate check of an anonymous request from `host` (the address the request came from)."""
    policy = source_policy(settings, bucket)
    return None if policy is None else RateCheck(policy, source_digest=source_digest(host))


def new_keyed_check(settings: Settings, bucket: SourceBucket, key: str) -> RateCheck | None:
    """The rate check of an anonymous caller known by `key` rather than by address (a widget visitor:
    the chatbot and the visitor id); like an address, only its sha256 leaves this process."""
    policy = source_policy(settings, bucket)
    return None if policy is None else RateCheck(policy, source_digest=hashlib.sha256(key.encode()).hexdigest())


def clear_idle_buckets(db: Database, *, batch_size: int = 10_000, max_batches: int = 100) -> int:
    """The quota-reset sweep's share: delete the buckets that are full again, in short batches, so that
    the tables hold only callers seen within the last window (at most two rows per user anyway, one per
    anonymous source and bucket)."""
    cleared = 0
    for clear in (rate_rows.clear_idle_buckets, rate_rows.clear_idle_source_buckets):
        for _ in range(max_batches):
            with db.service_transaction() as conn:
                count = clear(conn, batch_size)
            cleared += count
            if count < batch_size:
                break
    return cleared
