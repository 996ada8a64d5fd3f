"""Data layer of the embeddable widget's public routes (migration 20261127000000_widget.sql).

Every call runs in an anonymous transaction (`Database.anon_transaction`, role `anon`) and reaches the
visitor tables only through the `oneai_anon` functions, which act on the named visitor's rows of the named
chatbot alone. The visitor's own rate check is taken here, in the transaction the source's check opened.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from oneai.db.connection import Connection
from oneai.db.scope import RateOutcome, RateRequest
from oneai.errors import RateLimitedError

CHATBOT = "select oneai_anon.widget_chatbot(%(public_id)s) as chatbot"
OPEN_SESSION = (
    "select oneai_anon.widget_open_session(%(chatbot_id)s, %(visitor)s::jsonb, %(conversation_id)s) as session"
)
MESSAGES = (
    "select oneai_anon.widget_conversation_messages(%(chatbot_id)s, %(visitor_id)s, %(conversation_id)s)"
    " as conversation"
)
RATE = (
    "select oneai_anon.widget_rate_conversation(%(chatbot_id)s, %(visitor_id)s, %(conversation_id)s,"
    " %(score)s, %(comment)s) as rating"
)
TAKE_KEYED_RATE_LIMIT = (
    "select admitted, remaining, reset_seconds, retry_after_seconds"
    " from oneai_anon.take_source_rate_limit(%(digest)s, %(bucket)s, %(per_minute)s, %(burst)s)"
)


def chatbot(conn: Connection, public_id: str) -> dict[str, Any] | None:
    """The chatbot as the public may see it (None: no such chatbot for the public)."""
    row = conn.execute(CHATBOT, {"public_id": public_id}).fetchone()
    return dict(row["chatbot"]) if row and row["chatbot"] is not None else None


def open_session(
    conn: Connection, chatbot_id: UUID, visitor: dict[str, str | None], conversation_id: UUID | None
) -> dict[str, Any] | None:
    row = conn.execute(
        OPEN_SESSION,
        {"chatbot_id": chatbot_id, "visitor": json.dumps(visitor), "conversation_id": conversation_id},
    ).fetchone()
    return dict(row["session"]) if row and row["session"] is not None else None


def conversation_messages(
    conn: Connection, chatbot_id: UUID, visitor_id: str, conversation_id: UUID
) -> dict[str, Any] | None:
    row = conn.execute(
        MESSAGES, {"chatbot_id": chatbot_id, "visitor_id": visitor_id, "conversation_id": conversation_id}
    ).fetchone()
    return dict(row["conversation"]) if row and row["conversation"] is not None else None


def rate_conversation(
    conn: Connection, chatbot_id: UUID, visitor_id: str, conversation_id: UUID, *, score: int, comment: str | None
) -> dict[str, Any] | None:
    row = conn.execute(
        RATE,
        {
            "chatbot_id": chatbot_id,
            "visitor_id": visitor_id,
            "conversation_id": conversation_id,
            "score": score,
            "comment": comment,
        },
    ).fetchone()
    return dict(row["rating"]) if row and row["rating"] is not None else None


def take_keyed_rate_limit(conn: Connection, check: RateRequest) -> None:
    """One token of an anonymous bucket keyed by `check.source_digest`, inside the open transaction
    (after the source's check and its savepoint: a refusal undoes only this request's work). Refused:
    `RateLimitedError`, and `check.outcome` says when to retry."""
    row = conn.execute(
        TAKE_KEYED_RATE_LIMIT,
        {
            "digest": check.source_digest,
            "bucket": check.bucket,
            "per_minute": check.per_minute,
            "burst": check.burst,
        },
    ).fetchone()
    if row is None:  # pragma: no cover - the function always answers one row
        raise RuntimeError("take_source_rate_limit answered no row")
    check.outcome = RateOutcome(
        admitted=bool(row["admitted"]),
        remaining=int(row["remaining"]),
        reset_seconds=float(row["reset_seconds"]),
        retry_after_seconds=float(row["retry_after_seconds"]),
    )
    if not check.outcome.admitted:
        raise RateLimitedError(
            "Too many requests; try again later",
            details={"bucket": check.bucket, "retry_after": check.outcome.retry_after},
        )
