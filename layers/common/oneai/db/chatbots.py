"""Data layer of the chatbots (API.md "Chatbots"). Every statement runs as the caller, under RLS (members
read, editors write; supabase/migrations/20261125000000_chatbots.sql), except the purge's (`lock_purgeable`
and below), which the sweep runs as the service. A soft-deleted chatbot (`deleted_at` set) is gone from
every read here at once; only the purge still finds it.

The stats count every member's conversations with a chatbot, which RLS hides from the caller: they come from
the counting functions of 20261125020000_chatbot_admin.sql (a member's counts, never a row)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from oneai.db.connection import Connection


@dataclass(frozen=True, slots=True)
class ChatbotRow:
    id: UUID
    workspace_id: UUID
    public_id: str
    name: str
    description: str | None
    use_case: str
    model: str
    temperature: float
    max_tokens: int
    system_prompt: str
    retrieval_top_k: int
    retrieval_min_score: float
    fallback_mode: str
    fallback_message: str | None
    widget: dict[str, Any]
    status: str
    stats_reset_at: datetime | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    document_ids: list[UUID]


@dataclass(frozen=True, slots=True)
class StatsRow:
    chatbot_id: UUID
    conversations: int
    messages: int
    satisfaction: Decimal | None


@dataclass(frozen=True, slots=True)
class DayRow:
    day: date
    conversations: int
    messages: int


@dataclass(frozen=True, slots=True)
class LinkedDocumentRow:
    id: UUID
    filename: str
    status: str


@dataclass(frozen=True, slots=True)
class ConversationRow:
    id: UUID
    title: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PurgeableChatbot:
    id: UUID
    workspace_id: UUID
    purge_conversations: bool
    purge_documents: bool


# The columns a chatbot is written with (the configuration); the id, public id and times are the database's.
CONFIG_COLUMNS: Final = (
    "name",
    "description",
    "use_case",
    "model",
    "temperature",
    "max_tokens",
    "system_prompt",
    "retrieval_top_k",
    "retrieval_min_score",
    "fallback_mode",
    "fallback_message",
    "widget",
    "status",
)

_COLUMNS = """b.id, b.workspace_id, b.public_id, b.name, b.description, b.use_case, b.model,
  b.temperature::float8 as temperature, b.max_tokens, b.system_prompt, b.retrieval_top_k,
  b.retrieval_min_score::float8 as retrieval_min_score, b.fallback_mode, b.fallback_message, b.widget, b.status,
  b.stats_reset_at, b.created_by, b.created_at, b.updated_at,
  array(select l.document_id from public.chatbot_documents l where l.chatbot_id = b.id
        order by l.created_at, l.document_id) as document_ids"""

# Two creates (or duplicates) in one workspace at once must not both take the last free slot: they take
# turns on a transaction-scoped advisory lock of the workspace (a caller needs no table privilege for it).
LOCK_CHATBOTS = "select pg_advisory_xact_lock(hashtextextended('oneai.chatbots:' || %s::text, 0))"
COUNT_LIVE = "select count(*)::int as n from public.chatbots where workspace_id = %s and deleted_at is null"

INSERT = f"""
insert into public.chatbots (workspace_id, created_by, {", ".join(CONFIG_COLUMNS)})
values (%(workspace_id)s, auth.uid(), {", ".join(f"%({c})s" for c in CONFIG_COLUMNS)})
returning id"""
UPDATE = f"""
update public.chatbots set {", ".join(f"{c} = %({c})s" for c in CONFIG_COLUMNS)}
where id = %(id)s and deleted_at is null
returning id"""
GET = f"select {_COLUMNS} from public.chatbots b where b.id = %s and b.deleted_at is null"
LIST = f"""
select {_COLUMNS} from public.chatbots b
where b.workspace_id = %(workspace_id)s and b.deleted_at is null
  and (%(use_case)s::text is null or b.use_case = %(use_case)s::text)
  and (%(status)s::text is null or b.status = %(status)s::text)
  and (%(pattern)s::text is null or b.name ilike %(pattern)s::text escape '\\'
       or b.description ilike %(pattern)s::text escape '\\')
  and (%(after_id)s::uuid is null or (b.created_at, b.id) < (%(after_created)s::timestamptz, %(after_id)s::uuid))
order by b.created_at desc, b.id desc
limit %(limit)s"""

# The links keep the order the ids were given in: one transaction's rows share `now()`, so each is a
# microsecond after the one before it (the reads order by `created_at`).
LINK = """
insert into public.chatbot_documents (chatbot_id, document_id, workspace_id, created_at)
select %(chatbot_id)s, d.id, %(workspace_id)s, now() + d.n * interval '1 microsecond'
from unnest(%(ids)s::uuid[]) with ordinality as d (id, n)
on conflict do nothing"""
UNLINK_OTHERS = "delete from public.chatbot_documents where chatbot_id = %s and document_id <> all(%s::uuid[])"
# Which of these ids are documents of the workspace the caller can see (RLS: a member's).
KNOWN_DOCUMENTS = "select id from public.documents where workspace_id = %s and id = any(%s::uuid[])"
# Which of these ids are live chatbots of the workspace.
KNOWN_CHATBOTS = """
select id from public.chatbots where workspace_id = %s and id = any(%s::uuid[]) and deleted_at is null"""
LINK_DOCUMENT = """
insert into public.chatbot_documents (chatbot_id, document_id, workspace_id, created_at)
select c.id, %(document_id)s, %(workspace_id)s, now() + c.n * interval '1 microsecond'
from unnest(%(ids)s::uuid[]) with ordinality as c (id, n)
on conflict do nothing"""
UNLINK_DOCUMENT_OTHERS = """
delete from public.chatbot_documents where document_id = %s and chatbot_id <> all(%s::uuid[])"""
DOCUMENT_CHATBOTS = """
select l.chatbot_id from public.chatbot_documents l
join public.chatbots b on b.id = l.chatbot_id and b.deleted_at is null
where l.document_id = %s order by l.created_at, l.chatbot_id"""

LINKED_DOCUMENTS = """
select d.id, d.filename, d.status from public.chatbot_documents l
join public.documents d on d.id = l.document_id
where l.chatbot_id = %s order by l.created_at, d.id"""
# The caller's own conversations with the chatbot (RLS: a conversation is its user's).
RECENT_CONVERSATIONS = """
select c.id, c.title, c.updated_at from public.conversations c
where c.chatbot_id = %s and c.user_id = (select auth.uid())
order by c.updated_at desc, c.id desc limit %s"""

STATS = "select chatbot_id, conversations, messages, satisfaction from oneai_private.chatbot_stats(%s::uuid[])"
DAILY_STATS = "select day, conversations, messages from oneai_private.chatbot_daily_stats(%s, %s, %s)"

SET_STATUS = "update public.chatbots set status = %s where id = %s and deleted_at is null returning id"
RESET_STATS = "update public.chatbots set stats_reset_at = now() where id = %s and deleted_at is null returning id"
SOFT_DELETE = """
update public.chatbots set deleted_at = now(), purge_conversations = %(purge_conversations)s,
  purge_documents = %(purge_documents)s
where id = %(id)s and deleted_at is null
returning id"""

# --- the purge (service role) ------------------------------------------------------------------------------
LOCK_PURGEABLE = """
select id, workspace_id, purge_conversations, purge_documents from public.chatbots
where deleted_at is not null
order by deleted_at
limit %s
for update skip locked"""
# The chatbot's documents that no other chatbot keeps: every other chatbot linking one is itself deleted
# and purging its documents too (a live chatbot, or one deleted with keep_documents, keeps the document).
DOCUMENTS_TO_PURGE = """
select l.document_id from public.chatbot_documents l
where l.chatbot_id = %(id)s
  and not exists (
    select 1 from public.chatbot_documents o join public.chatbots b on b.id = o.chatbot_id
    where o.document_id = l.document_id and o.chatbot_id <> %(id)s
      and not (b.deleted_at is not null and b.purge_documents))"""
CONVERSATIONS_OF = "select id from public.conversations where chatbot_id = %s"
ATTACHMENT_KEYS_OF = "select s3_key from public.attachments where conversation_id = any(%s::uuid[])"
DELETE_CONVERSATIONS = "delete from public.conversations where id = any(%s::uuid[])"
DELETE_CHATBOT = "delete from public.chatbots where id = %s and deleted_at is not null returning id"


def _config_params(config: dict[str, Any]) -> dict[str, Any]:
    return {c: Jsonb(config[c]) if c == "widget" else config[c] for c in CONFIG_COLUMNS}


def lock_chatbots(conn: Connection, workspace_id: UUID) -> None:
    conn.execute(LOCK_CHATBOTS, (str(workspace_id),))


def count_live(conn: Connection, workspace_id: UUID) -> int:
    row = conn.execute(COUNT_LIVE, (workspace_id,)).fetchone()
    return int(row["n"]) if row else 0


def insert_chatbot(conn: Connection, workspace_id: UUID, config: dict[str, Any]) -> UUID:
    """`config`: the CONFIG_COLUMNS' values."""
    row = conn.execute(INSERT, {"workspace_id": workspace_id, **_config_params(config)}).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def update_chatbot(conn: Connection, chatbot_id: UUID, config: dict[str, Any]) -> bool:
    return conn.execute(UPDATE, {"id": chatbot_id, **_config_params(config)}).fetchone() is not None


def get_chatbot(conn: Connection, chatbot_id: UUID) -> ChatbotRow | None:
    with conn.cursor(row_factory=class_row(ChatbotRow)) as cur:
        return cur.execute(GET, (chatbot_id,)).fetchone()


def list_chatbots(
    conn: Connection,
    workspace_id: UUID,
    *,
    use_case: str | None,
    status: str | None,
    pattern: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[ChatbotRow]:
    """Newest first; `pattern` an ILIKE pattern (escaped with `\\`) on the name and description."""
    params = {
        "workspace_id": workspace_id,
        "use_case": use_case,
        "status": status,
        "pattern": pattern,
        "after_created": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(ChatbotRow)) as cur:
        return cur.execute(LIST, params).fetchall()


def known_documents(conn: Connection, workspace_id: UUID, ids: Sequence[UUID]) -> set[UUID]:
    return {UUID(str(r["id"])) for r in conn.execute(KNOWN_DOCUMENTS, (workspace_id, list(ids))).fetchall()}


def known_chatbots(conn: Connection, workspace_id: UUID, ids: Sequence[UUID]) -> set[UUID]:
    return {UUID(str(r["id"])) for r in conn.execute(KNOWN_CHATBOTS, (workspace_id, list(ids))).fetchall()}


def set_documents(conn: Connection, workspace_id: UUID, chatbot_id: UUID, ids: Sequence[UUID]) -> None:
    """The chatbot's documents become exactly `ids`."""
    conn.execute(UNLINK_OTHERS, (chatbot_id, list(ids)))
    if ids:
        conn.execute(LINK, {"chatbot_id": chatbot_id, "workspace_id": workspace_id, "ids": list(ids)})


def set_document_chatbots(conn: Connection, workspace_id: UUID, document_id: UUID, ids: Sequence[UUID]) -> None:
    """The document's chatbots become exactly `ids` (links to deleted chatbots go too)."""
    conn.execute(UNLINK_DOCUMENT_OTHERS, (document_id, list(ids)))
    if ids:
        conn.execute(LINK_DOCUMENT, {"document_id": document_id, "workspace_id": workspace_id, "ids": list(ids)})


def document_chatbots(conn: Connection, document_id: UUID) -> list[UUID]:
    return [UUID(str(r["chatbot_id"])) for r in conn.execute(DOCUMENT_CHATBOTS, (document_id,)).fetchall()]


def linked_documents(conn: Connection, chatbot_id: UUID) -> list[LinkedDocumentRow]:
    with conn.cursor(row_factory=class_row(LinkedDocumentRow)) as cur:
        return cur.execute(LINKED_DOCUMENTS, (chatbot_id,)).fetchall()


def recent_conversations(conn: Connection, chatbot_id: UUID, limit: int) -> list[ConversationRow]:
    with conn.cursor(row_factory=class_row(ConversationRow)) as cur:
        return cur.execute(RECENT_CONVERSATIONS, (chatbot_id, limit)).fetchall()


def stats(conn: Connection, chatbot_ids: Sequence[UUID]) -> dict[UUID, StatsRow]:
    if not chatbot_ids:
        return {}
    with conn.cursor(row_factory=class_row(StatsRow)) as cur:
        return {r.chatbot_id: r for r in cur.execute(STATS, (list(chatbot_ids),)).fetchall()}


def daily_stats(conn: Connection, chatbot_id: UUID, first: date, last: date) -> list[DayRow]:
    with conn.cursor(row_factory=class_row(DayRow)) as cur:
        return cur.execute(DAILY_STATS, (chatbot_id, first, last)).fetchall()


def set_status(conn: Connection, chatbot_id: UUID, status: str) -> bool:
    return conn.execute(SET_STATUS, (status, chatbot_id)).fetchone() is not None


def reset_stats(conn: Connection, chatbot_id: UUID) -> bool:
    return conn.execute(RESET_STATS, (chatbot_id,)).fetchone() is not None


def soft_delete(conn: Connection, chatbot_id: UUID, *, purge_conversations: bool, purge_documents: bool) -> bool:
    params = {"id": chatbot_id, "purge_conversations": purge_conversations, "purge_documents": purge_documents}
    return conn.execute(SOFT_DELETE, params).fetchone() is not None


# --- the purge (service role) ------------------------------------------------------------------------------


def lock_purgeable(conn: Connection, limit: int) -> list[PurgeableChatbot]:
    with conn.cursor(row_factory=class_row(PurgeableChatbot)) as cur:
        return cur.execute(LOCK_PURGEABLE, (limit,)).fetchall()


def documents_to_purge(conn: Connection, chatbot_id: UUID) -> list[UUID]:
    return [UUID(str(r["document_id"])) for r in conn.execute(DOCUMENTS_TO_PURGE, {"id": chatbot_id}).fetchall()]


def delete_conversations(conn: Connection, chatbot_id: UUID) -> list[str]:
    """Delete the chatbot's conversations (their messages cascade); returns their attachments' S3 keys."""
    ids = [UUID(str(r["id"])) for r in conn.execute(CONVERSATIONS_OF, (chatbot_id,)).fetchall()]
    if not ids:
        return []
    keys = [str(r["s3_key"]) for r in conn.execute(ATTACHMENT_KEYS_OF, (ids,)).fetchall()]
    conn.execute(DELETE_CONVERSATIONS, (ids,))
    return keys


def delete_chatbot(conn: Connection, chatbot_id: UUID) -> bool:
    return conn.execute(DELETE_CHATBOT, (chatbot_id,)).fetchone() is not None
