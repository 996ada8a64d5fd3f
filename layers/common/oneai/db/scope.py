"""Who a transaction runs as, in the data layer's own plain terms.

The connection (`oneai.db.connection`) takes a caller's user id and verified claims, and a rate check's
parameters; it knows nothing of how a token is verified (`oneai.auth`) or how a policy is chosen
(`oneai.ratelimit`), which build on these types, so that the data layer imports nothing above it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID


@dataclass(frozen=True, slots=True)
class RateOutcome:
    """What the bucket answered when the request's token was taken."""

    admitted: bool
    remaining: int
    reset_seconds: float
    retry_after_seconds: float

    @property
    def retry_after(self) -> int:
        """Whole seconds until a request would be admitted again, at least 1 (for `Retry-After`)."""
        return max(1, math.ceil(self.retry_after_seconds))


class RateRequest:
    """A request's rate check as the data layer takes it: one token of `bucket` (the user's, or with
    `source_digest` an anonymous source's) at `per_minute` and `burst`. The request's first transaction
    takes it in its first round trip and keeps the bucket's answer in `outcome`; later ones skip it."""

    __slots__ = ("bucket", "burst", "outcome", "per_minute", "source_digest")

    def __init__(self, bucket: str, per_minute: int, burst: int, *, source_digest: str | None = None) -> None:
        self.bucket = bucket
        self.per_minute = per_minute
        self.burst = burst
        self.source_digest = source_digest
        self.outcome: RateOutcome | None = None

    @property
    def pending(self) -> bool:
        return self.outcome is None


class Caller(Protocol):
    """The signed-in caller of a user transaction: plain values (`oneai.auth.Principal` has them)."""

    @property
    def user_id(self) -> UUID: ...

    @property
    def email(self) -> str | None: ...

    @property
    def claims(self) -> Mapping[str, Any]: ...

    @property
    def api_key_id(self) -> UUID | None: ...

    @property
    def rate_check(self) -> RateRequest | None: ...

    def claims_json(self) -> str:
        """The verified claims as compact JSON (for `request.jwt.claims`)."""
        ...
