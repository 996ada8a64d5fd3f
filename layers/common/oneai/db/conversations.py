"""Data layer of conversations, messages, history search and share links: named SQL, typed rows.

Every function runs inside a transaction opened by `Database` (usually a user transaction, so RLS
narrows every statement to the caller's rows; the explicit `user_id` filters are there for the indexes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from pydantic import TypeAdapter

from oneai.conversations.models import (
    Conversation,
    ConversationListItem,
    ConversationMatch,
    HistoryHit,
    Message,
    NewMessage,
)
from oneai.db.attachments import CONVERSATION_ATTACHMENTS, MESSAGE_ATTACHMENTS_COLUMN
from oneai.db.connection import Connection

MESSAGE_LIST = TypeAdapter(list[Message])

CONVERSATION_COLUMNS = "id, title, created_at, updated_at, last_message_at, metadata"
MESSAGE_BASE_COLUMNS = (
    "id, conversation_id, role, content, model_id, tokens_used, sequence_number, revision_number,"
    " revision_type, original_message_id, parent_message_id, is_latest, status, created_at, sources"
)
# One message, with its attachments (a subquery: fine for one row, see _WITH_ATTACHMENTS for many).
MESSAGE_COLUMNS = f"{MESSAGE_BASE_COLUMNS}, {MESSAGE_ATTACHMENTS_COLUMN}"


def _with_attachments(messages_sql: str, order: str) -> str:
    """Many messages of one conversation with their attachments: the conversation's attachments grouped
    once and joined, instead of a subquery per message, and null (not `[]`) where there are none, so
    nothing is decoded for most rows. On a 10,000-message branch with 1,810 attachments
    (bench/message_attachments.py) this costs ~+0.1 s over the branch without attachments, where the
    subquery per message cost ~+0.5 s."""
    return f"""
with branch as ({messages_sql}),
files as ({CONVERSATION_ATTACHMENTS})
select branch.*, files.attachments  -- null when none: nothing to decode
from branch left join files on files.message_id = branch.id
order by {order}"""


INSERT_CONVERSATION = f"""
insert into public.conversations (id, user_id, title, metadata)
values (coalesce(%s, gen_random_uuid()), %s, %s, %s)
returning {CONVERSATION_COLUMNS}"""

GET_CONVERSATION = f"select {CONVERSATION_COLUMNS} from public.conversations where id = %s"
LOCK_CONVERSATION = f"select {CONVERSATION_COLUMNS} from public.conversations where id = %s for update"
# RLS keeps it to the caller's rows; the user_id condition lets the (user_id, client_id) index answer.
GET_CONVERSATION_BY_CLIENT_ID = f"""
select {CONVERSATION_COLUMNS} from public.conversations where user_id = (select auth.uid()) and client_id = %s"""
# A concurrent first request with the same client id inserts nothing here, and the caller reads its row.
INSERT_CLIENT_CONVERSATION = f"""
insert into public.conversations (user_id, client_id, title, metadata) values (%s, %s, null, '{{}}'::jsonb)
on conflict (user_id, client_id) do nothing
returning {CONVERSATION_COLUMNS}"""

LIST_CONVERSATIONS = f"""
select {CONVERSATION_COLUMNS} from public.conversations
where user_id = %(user_id)s
  and (%(pattern)s::text is null or title ilike %(pattern)s escape '\\')
  and (%(after_updated)s::timestamptz is null or (updated_at, id) < (%(after_updated)s, %(after_id)s::uuid))
order by updated_at desc, id desc
limit %(limit)s"""

# With a query: the title (ILIKE, as without messages) or the current messages' text (full text, through
# the GIN index: the function applies `user_id = auth.uid()` itself, see 20261128010000_inbox.sql).
SEARCH_CONVERSATIONS = """
select id, title, created_at, updated_at, last_message_at, metadata, match_in, match_message_id, match_snippet
from public.search_conversations(%(pattern)s, %(query)s, %(after_updated)s, %(after_id)s, %(limit)s)"""

UPDATE_CONVERSATION = f"""
update public.conversations set
  title = case when %(set_title)s then %(title)s else title end,
  metadata = case when %(set_metadata)s then %(metadata)s else metadata end
where id = %(id)s
returning {CONVERSATION_COLUMNS}"""

TOUCH_CONVERSATION = "update public.conversations set last_message_at = now() where id = %s"
DELETE_CONVERSATION = "delete from public.conversations where id = %s"

# The current state of a conversation: one ordered scan of the partial unique index on latest messages.
CURRENT_BRANCH = _with_attachments(
    f"""
select {MESSAGE_BASE_COLUMNS} from public.chat_messages
where conversation_id = %(conversation_id)s and is_latest and sequence_number > %(after_seq)s
order by sequence_number
limit %(limit)s""",
    "branch.sequence_number",
)

# The newest part of the current branch up to a position, newest first (the model's context).
RECENT_BRANCH = _with_attachments(
    f"""
select {MESSAGE_BASE_COLUMNS} from public.chat_messages
where conversation_id = %(conversation_id)s and is_latest and sequence_number <= %(up_to)s
order by sequence_number desc
limit %(limit)s""",
    "branch.sequence_number desc",
)

GET_MESSAGE = f"select {MESSAGE_COLUMNS} from public.chat_messages where conversation_id = %s and id = %s"

BRANCH_TIP = f"""
select {MESSAGE_COLUMNS} from public.chat_messages
where conversation_id = %s and is_latest
order by sequence_number desc
limit 1"""

POSITION_REVISIONS = f"""
select {MESSAGE_COLUMNS} from public.chat_messages
where conversation_id = %s and sequence_number = %s and revision_number > %s
order by revision_number
limit %s"""

NEXT_REVISION = """
select coalesce(max(revision_number) + 1, 0) as revision_number,
       (array_agg(id order by revision_number))[1] as original_message_id
from public.chat_messages
where conversation_id = %s and sequence_number = %s"""

RETIRE_FROM = """
update public.chat_messages set is_latest = false
where conversation_id = %s and is_latest and sequence_number >= %s"""

INSERT_MESSAGE = f"""
insert into public.chat_messages (
  id, conversation_id, user_id, role, content, model_id, tokens_used, sequence_number, parent_message_id,
  original_message_id, revision_number, revision_type, status, metadata)
values (coalesce(%(id)s, gen_random_uuid()), %(conversation_id)s, %(user_id)s, %(role)s, %(content)s, %(model_id)s, %(tokens_used)s,
        %(sequence_number)s, %(parent_message_id)s, %(original_message_id)s, %(revision_number)s,
        %(revision_type)s, %(status)s, %(metadata)s)
returning {MESSAGE_COLUMNS}"""

# A message's branch: its ancestors, itself, and below it the child that was current most recently.
BRANCH_THROUGH = """
with recursive
  up as (
    select id, parent_message_id from public.chat_messages where id = %(message_id)s
    union all
    select m.id, m.parent_message_id from public.chat_messages m join up on m.id = up.parent_message_id
  ),
  down as (
    select id from public.chat_messages where id = %(message_id)s
    union all
    select child.id from down
    cross join lateral (
      select c.id from public.chat_messages c
      where c.parent_message_id = down.id
      order by c.selected_at desc, c.revision_number desc
      limit 1
    ) child
  )
select id from up union select id from down"""

CLEAR_LATEST = """
update public.chat_messages set is_latest = false where conversation_id = %s and is_latest"""

SELECT_BRANCH = """
update public.chat_messages set is_latest = true, selected_at = clock_timestamp()
where conversation_id = %s and id = any(%s)"""

# Runs the search function (see the migration: it keeps the full-text index usable under RLS).
SEARCH_HISTORY = """
select conversation_id, message_id, role, model, created_at, snippet
from public.search_chat_history(%(query)s, %(model)s, %(from)s, %(to)s, %(after_created)s, %(after_id)s, %(limit)s)"""

ACTIVE_SHARE = "select token from public.share_links where conversation_id = %s and revoked_at is null"
INSERT_SHARE = """
insert into public.share_links (conversation_id, user_id, token, snapshot) values (%s, %s, %s, %s)
on conflict (conversation_id) where revoked_at is null do nothing
returning token"""
REVOKE_SHARE = "update public.share_links set revoked_at = now() where conversation_id = %s and revoked_at is null"
SHARED_SNAPSHOT = "select public.shared_conversation_snapshot(%s) as snapshot"


def insert_conversation(
    conn: Connection,
    *,
    user_id: UUID,
    title: str | None,
    metadata: dict[str, Any],
    conversation_id: UUID | None = None,
) -> Conversation:
    with conn.cursor(row_factory=class_row(Conversation)) as cur:
        row = cur.execute(INSERT_CONVERSATION, (conversation_id, user_id, title, Jsonb(metadata))).fetchone()
    assert row is not None
    return row


def get_conversation_by_client_id(conn: Connection, client_id: str) -> Conversation | None:
    with conn.cursor(row_factory=class_row(Conversation)) as cur:
        return cur.execute(GET_CONVERSATION_BY_CLIENT_ID, (client_id,)).fetchone()


def conversation_for_client_id(conn: Connection, *, user_id: UUID, client_id: str) -> Conversation:
    """The caller's conversation named by a client's chat id, created on first use."""
    with conn.cursor(row_factory=class_row(Conversation)) as cur:
        row = cur.execute(INSERT_CLIENT_CONVERSATION, (user_id, client_id)).fetchone()
        if row is None:
            row = cur.execute(GET_CONVERSATION_BY_CLIENT_ID, (client_id,)).fetchone()
    assert row is not None  # inserted, or the conflicting row is the caller's own (user_id is in the key)
    return row


def get_conversation(conn: Connection, conversation_id: UUID, *, for_update: bool = False) -> Conversation | None:
    with conn.cursor(row_factory=class_row(Conversation)) as cur:
        return cur.execute(LOCK_CONVERSATION if for_update else GET_CONVERSATION, (conversation_id,)).fetchone()


def list_conversations(
    conn: Connection,
    *,
    user_id: UUID,
    title_pattern: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[Conversation]:
    params = {
        "user_id": user_id,
        "pattern": title_pattern,
        "after_updated": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(Conversation)) as cur:
        return cur.execute(LIST_CONVERSATIONS, params).fetchall()


def search_conversations(
    conn: Connection,
    *,
    title_pattern: str,
    query: str,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[ConversationListItem]:
    """The caller's conversations whose title matches `title_pattern` (ILIKE) or whose current messages
    match `query` (full text), newest activity first, each with where it matched."""
    params = {
        "pattern": title_pattern,
        "query": query,
        "after_updated": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    found = []
    for row in conn.execute(SEARCH_CONVERSATIONS, params).fetchall():
        match = ConversationMatch(
            field=row.pop("match_in"), message_id=row.pop("match_message_id"), snippet=row.pop("match_snippet")
        )
        found.append(ConversationListItem(**row, match=match))
    return found


def update_conversation(
    conn: Connection, conversation_id: UUID, *, changes: dict[str, Any]
) -> Conversation | None:
    params = {
        "id": conversation_id,
        "set_title": "title" in changes,
        "title": changes.get("title"),
        "set_metadata": "metadata" in changes,
        "metadata": Jsonb(changes.get("metadata") or {}),
    }
    with conn.cursor(row_factory=class_row(Conversation)) as cur:
        return cur.execute(UPDATE_CONVERSATION, params).fetchone()


def touch_conversation(conn: Connection, conversation_id: UUID) -> None:
    conn.execute(TOUCH_CONVERSATION, (conversation_id,))


def delete_conversation(conn: Connection, conversation_id: UUID) -> bool:
    return conn.execute(DELETE_CONVERSATION, (conversation_id,)).rowcount == 1


def current_branch(
    conn: Connection, conversation_id: UUID, *, after_seq: int = 0, limit: int | None = None
) -> list[Message]:
    params = {"conversation_id": conversation_id, "after_seq": after_seq, "limit": limit}
    # Branches can hold thousands of rows: binary results and one batch validation instead of a
    # model constructor call per row (measured about twice as fast in bench/current_branch.py).
    with conn.cursor(binary=True) as cur:
        return MESSAGE_LIST.validate_python(cur.execute(CURRENT_BRANCH, params).fetchall())


def recent_branch(conn: Connection, conversation_id: UUID, *, up_to: int, limit: int) -> list[Message]:
    """The last `limit` messages of the current branch up to position `up_to`, oldest first."""
    params = {"conversation_id": conversation_id, "up_to": up_to, "limit": limit}
    with conn.cursor(binary=True) as cur:
        newest_first = MESSAGE_LIST.validate_python(cur.execute(RECENT_BRANCH, params).fetchall())
    newest_first.reverse()
    return newest_first


def get_message(conn: Connection, conversation_id: UUID, message_id: UUID) -> Message | None:
    with conn.cursor(row_factory=class_row(Message)) as cur:
        return cur.execute(GET_MESSAGE, (conversation_id, message_id)).fetchone()


def branch_tip(conn: Connection, conversation_id: UUID) -> Message | None:
    with conn.cursor(row_factory=class_row(Message)) as cur:
        return cur.execute(BRANCH_TIP, (conversation_id,)).fetchone()


def position_revisions(
    conn: Connection,
    conversation_id: UUID,
    sequence_number: int,
    *,
    after_revision: int = -1,
    limit: int | None = None,
) -> list[Message]:
    """The revisions of one position in order, after `after_revision` (a page's cursor), at most `limit`."""
    params = (conversation_id, sequence_number, after_revision, limit)
    with conn.cursor(row_factory=class_row(Message)) as cur:
        return cur.execute(POSITION_REVISIONS, params).fetchall()


def insert_message_at(
    conn: Connection,
    *,
    conversation_id: UUID,
    user_id: UUID,
    parent: Message | None,
    message: NewMessage,
) -> Message:
    """Write `message` right after `parent` as the new tip: what was current from there on retires."""
    sequence_number = 1 if parent is None else parent.sequence_number + 1
    conn.execute(RETIRE_FROM, (conversation_id, sequence_number))
    position = conn.execute(NEXT_REVISION, (conversation_id, sequence_number)).fetchone()
    assert position is not None
    revision_number = position["revision_number"]
    revision_type = None
    if revision_number > 0:
        revision_type = "user_edit" if message.role == "user" else "regeneration"
    params = {
        "id": message.id,
        "conversation_id": conversation_id,
        "user_id": user_id,
        "role": message.role,
        "content": message.content,
        "model_id": message.model_id,
        "tokens_used": message.tokens_used,
        "sequence_number": sequence_number,
        "parent_message_id": parent.id if parent else None,
        "original_message_id": position["original_message_id"],
        "revision_number": revision_number,
        "revision_type": revision_type,
        "status": message.status,
        "metadata": Jsonb(message.metadata),
    }
    with conn.cursor(row_factory=class_row(Message)) as cur:
        row = cur.execute(INSERT_MESSAGE, params).fetchone()
    assert row is not None
    touch_conversation(conn, conversation_id)
    return row


def make_branch_current(conn: Connection, conversation_id: UUID, message_id: UUID) -> None:
    ids = [row["id"] for row in conn.execute(BRANCH_THROUGH, {"message_id": message_id}).fetchall()]
    conn.execute(CLEAR_LATEST, (conversation_id,))
    conn.execute(SELECT_BRANCH, (conversation_id, ids))
    touch_conversation(conn, conversation_id)


def search_history(
    conn: Connection,
    *,
    query: str | None,
    model: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[HistoryHit]:
    params = {
        "query": query,
        "model": model,
        "from": created_from,
        "to": created_to,
        "after_created": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(HistoryHit)) as cur:
        return cur.execute(SEARCH_HISTORY, params).fetchall()


def active_share_token(conn: Connection, conversation_id: UUID) -> str | None:
    row = conn.execute(ACTIVE_SHARE, (conversation_id,)).fetchone()
    return None if row is None else str(row["token"])


def insert_share(
    conn: Connection, *, conversation_id: UUID, user_id: UUID, token: str, snapshot: dict[str, Any]
) -> str | None:
    row = conn.execute(INSERT_SHARE, (conversation_id, user_id, token, Jsonb(snapshot))).fetchone()
    return None if row is None else str(row["token"])


def revoke_share(conn: Connection, conversation_id: UUID) -> None:
    conn.execute(REVOKE_SHARE, (conversation_id,))


def shared_snapshot(conn: Connection, token: str) -> dict[str, Any] | None:
    row = conn.execute(SHARED_SNAPSHOT, (token,)).fetchone()
    return None if row is None or row["snapshot"] is None else dict(row["snapshot"])
