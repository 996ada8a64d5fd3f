"""Data layer of usage records: written through `oneai_private.record_usage`, for the caller only."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from oneai.db.connection import Connection

RECORD_USAGE = """
select oneai_private.record_usage(
  %(conversation_id)s, %(message_id)s, %(quota_key)s, %(requested_model)s, %(model_id)s, %(generation_id)s,
  %(prompt_tokens)s, %(completion_tokens)s, %(cost)s, %(status)s) as id"""


def record_usage(
    conn: Connection,
    *,
    conversation_id: UUID,
    message_id: UUID,
    quota_key: str,
    requested_model: str,
    model_id: str,
    generation_id: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    cost: Decimal,
    status: str,
) -> UUID:
    row = conn.execute(
        RECORD_USAGE,
        {
            "conversation_id": conversation_id,
            "message_id": message_id,
            "quota_key": quota_key,
            "requested_model": requested_model,
            "model_id": model_id,
            "generation_id": generation_id,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost": cost,
            "status": status,
        },
    ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))
