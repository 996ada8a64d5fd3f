"""Data layer of a chatbot's turn: the workspace's daily message unit given back. The admission itself is
part of the turn's one-round-trip prepare (`oneai_private.chat_prepare_steps`), the search is
`oneai.db.knowledge`'s statement with a chatbot."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from oneai.db.connection import Connection

REFUND = "select oneai_private.refund_workspace_message(%s, %s) as refunded"
WORKSPACE_MESSAGES = "select used from public.workspace_message_counts where workspace_id = %s and day = %s"


def refund_workspace_message(conn: Connection, workspace_id: UUID, day: date) -> bool:
    row = conn.execute(REFUND, (workspace_id, day)).fetchone()
    return bool(row and row["refunded"])


def workspace_messages(conn: Connection, workspace_id: UUID, day: date) -> int:
    """The workspace's messages of `day` so far (0 when none)."""
    row = conn.execute(WORKSPACE_MESSAGES, (workspace_id, day)).fetchone()
    return int(row["used"]) if row else 0


# A chatbot as retrieval reads it, under the caller's RLS (members read; a deleted one is gone).
CHATBOT_RETRIEVAL = """
select b.id, b.workspace_id, b.name, b.model, b.temperature::float8 as temperature, b.max_tokens,
       b.system_prompt, b.retrieval_top_k as top_k, b.retrieval_min_score::float8 as min_score,
       b.fallback_mode, b.fallback_message
from public.chatbots b
join public.workspaces w on w.id = b.workspace_id and w.deleted_at is null
where b.id = %s and b.deleted_at is null"""


def chatbot_settings(conn: Connection, chatbot_id: UUID) -> dict[str, object] | None:
    row = conn.execute(CHATBOT_RETRIEVAL, (chatbot_id,)).fetchone()
    return None if row is None else dict(row)
