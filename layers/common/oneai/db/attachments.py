"""Data layer of attachments: named SQL, typed rows. Runs inside a transaction opened by `Database`:
user transactions for the caller's own attachments (RLS narrows every statement), the service
transaction only for what a share token may read."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from psycopg.rows import class_row

from oneai.attachments.models import AttachmentRow
from oneai.db.connection import Connection

ATTACHMENT_COLUMNS = (
    "id, user_id, conversation_id, message_id, filename, media_type, size, s3_key, status, created_at"
)

# A message's attachments as the message routes list them (a column of MESSAGE_COLUMNS).
MESSAGE_ATTACHMENTS_COLUMN = """(
  select coalesce(
    jsonb_agg(jsonb_build_object('id', a.id, 'media_type', a.media_type, 'size', a.size)
              order by a.created_at, a.id),
    '[]'::jsonb)
  from public.attachments a where a.message_id = chat_messages.id
) as attachments"""

# The attachments of a conversation's messages, one row per message (`%(conversation_id)s`).
CONVERSATION_ATTACHMENTS = """
select a.message_id,
       jsonb_agg(jsonb_build_object('id', a.id, 'media_type', a.media_type, 'size', a.size)
                 order by a.created_at, a.id) as attachments
from public.attachments a
where a.conversation_id = %(conversation_id)s and a.message_id is not null
group by a.message_id"""

INSERT_ATTACHMENT = f"""
insert into public.attachments (id, user_id, conversation_id, message_id, filename, media_type, size, s3_key, status)
values (%(id)s, %(user_id)s, %(conversation_id)s, %(message_id)s, %(filename)s, %(media_type)s, %(size)s,
        %(s3_key)s, %(status)s)
returning {ATTACHMENT_COLUMNS}"""

GET_ATTACHMENT = f"select {ATTACHMENT_COLUMNS} from public.attachments where id = %s"

GET_ATTACHMENTS = f"select {ATTACHMENT_COLUMNS} from public.attachments where id = any(%s::uuid[])"

# The object was found in S3: record what S3 holds (its size may be below the declared one).
MARK_UPLOADED = f"""
update public.attachments set status = 'uploaded', size = %(size)s
where id = %(id)s and status = 'pending'
returning {ATTACHMENT_COLUMNS}"""

DELETE_ATTACHMENT = "delete from public.attachments where id = %s"

# Attach uploaded attachments to a message of the same user's conversation (the policy checks both).
ATTACH_TO_MESSAGE = """
update public.attachments set conversation_id = %(conversation_id)s, message_id = %(message_id)s
where id = any(%(ids)s::uuid[]) and message_id is null"""

CONVERSATION_KEYS = "select s3_key from public.attachments where conversation_id = %s order by s3_key"

# A shared conversation's attachment, for anyone holding an active link whose snapshot lists it.
SHARED_ATTACHMENT = f"select {ATTACHMENT_COLUMNS} from public.shared_attachment(%s, %s)"


def insert_attachment(
    conn: Connection,
    *,
    attachment_id: UUID,
    user_id: UUID,
    filename: str,
    media_type: str,
    size: int,
    s3_key: str,
    status: str = "pending",
    conversation_id: UUID | None = None,
    message_id: UUID | None = None,
) -> AttachmentRow:
    params = {
        "id": attachment_id,
        "user_id": user_id,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "filename": filename,
        "media_type": media_type,
        "size": size,
        "s3_key": s3_key,
        "status": status,
    }
    with conn.cursor(row_factory=class_row(AttachmentRow)) as cur:
        row = cur.execute(INSERT_ATTACHMENT, params).fetchone()
    assert row is not None
    return row


def get_attachment(conn: Connection, attachment_id: UUID) -> AttachmentRow | None:
    with conn.cursor(row_factory=class_row(AttachmentRow)) as cur:
        return cur.execute(GET_ATTACHMENT, (attachment_id,)).fetchone()


def get_attachments(conn: Connection, attachment_ids: Sequence[UUID]) -> list[AttachmentRow]:
    with conn.cursor(row_factory=class_row(AttachmentRow)) as cur:
        return cur.execute(GET_ATTACHMENTS, (list(attachment_ids),)).fetchall()


def mark_uploaded(conn: Connection, attachment_id: UUID, *, size: int) -> AttachmentRow | None:
    with conn.cursor(row_factory=class_row(AttachmentRow)) as cur:
        return cur.execute(MARK_UPLOADED, {"id": attachment_id, "size": size}).fetchone()


def delete_attachment(conn: Connection, attachment_id: UUID) -> None:
    conn.execute(DELETE_ATTACHMENT, (attachment_id,))


def attach_to_message(
    conn: Connection, attachment_ids: Sequence[UUID], *, conversation_id: UUID, message_id: UUID
) -> int:
    params = {"ids": list(attachment_ids), "conversation_id": conversation_id, "message_id": message_id}
    return conn.execute(ATTACH_TO_MESSAGE, params).rowcount


def conversation_keys(conn: Connection, conversation_id: UUID) -> list[str]:
    return [str(row["s3_key"]) for row in conn.execute(CONVERSATION_KEYS, (conversation_id,)).fetchall()]


def shared_attachment(conn: Connection, token: str, attachment_id: UUID) -> AttachmentRow | None:
    with conn.cursor(row_factory=class_row(AttachmentRow)) as cur:
        return cur.execute(SHARED_ATTACHMENT, (token, attachment_id)).fetchone()
