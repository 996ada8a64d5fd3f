"""Conversations: CRUD, the current branch, revisions and branch switching, history search, sharing.

Revision rules (docs/architecture.md, "Data model"):
- A new message is always written right after a parent on the current branch and becomes the tip.
- Editing user message k writes a new revision of position k (same parent as the edited message); the
  messages after k leave the current branch. Regenerating assistant message k does the same for k.
- Nothing is deleted; `activate` makes any revision's branch current again, with the messages below
  it that were current most recently.
Message writes lock the conversation row first, so concurrent writers to one conversation queue up.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any
from uuid import UUID

from oneai.conversations.models import (
    Conversation,
    ConversationCreate,
    ConversationListItem,
    ConversationUpdate,
    ConversationWithMessages,
    HistoryHit,
    Message,
    NewMessage,
    SharedSnapshot,
    ShareLink,
)
from oneai.db import attachments as attachments_repo
from oneai.db import conversations as repo
from oneai.db.connection import Connection
from oneai.errors import ConflictError, NotFoundError, ValidationError, field_error
from oneai.pagination import Page, PageRequest, decode_cursor, page_of
from oneai.timestamps import iso_z

SHARE_TOKEN_BYTES = 24


def _conversation_or_404(conn: Connection, conversation_id: UUID, *, for_update: bool = False) -> Conversation:
    found = repo.get_conversation(conn, conversation_id, for_update=for_update)
    if found is None:
        raise NotFoundError("Conversation not found")
    return found


def _message_or_404(conn: Connection, conversation_id: UUID, message_id: UUID) -> Message:
    found = repo.get_message(conn, conversation_id, message_id)
    if found is None:
        raise NotFoundError("Message not found")
    return found


def create_conversation(conn: Connection, user_id: UUID, data: ConversationCreate) -> Conversation:
    return repo.insert_conversation(conn, user_id=user_id, title=data.title, metadata=data.metadata or {})


def _like_pattern(text: str) -> str:
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


def list_conversations(
    conn: Connection, user_id: UUID, *, query: str | None, page: PageRequest
) -> Page[ConversationListItem]:
    """Newest activity first. With `query`: the conversations whose title contains it, or whose current
    messages match it as a full-text query; each item's `match` says where."""
    after = None
    if page.cursor:
        keys = decode_cursor(page.cursor, {"updated_at": datetime.fromisoformat, "id": UUID})
        after = (keys["updated_at"], keys["id"])
    text = query.strip() if query else ""
    rows: list[ConversationListItem]
    if text:
        rows = repo.search_conversations(
            conn, title_pattern=_like_pattern(text), query=text, after=after, limit=page.limit + 1
        )
    else:
        rows = [
            ConversationListItem(**c.model_dump())
            for c in repo.list_conversations(
                conn, user_id=user_id, title_pattern=None, after=after, limit=page.limit + 1
            )
        ]
    return page_of(rows, page.limit, lambda c: {"updated_at": c.updated_at.isoformat(), "id": str(c.id)})


def get_conversation(conn: Connection, conversation_id: UUID) -> ConversationWithMessages:
    conversation = _conversation_or_404(conn, conversation_id)
    messages = repo.current_branch(conn, conversation_id)
    return ConversationWithMessages(**conversation.model_dump(), messages=messages)


def update_conversation(conn: Connection, conversation_id: UUID, data: ConversationUpdate) -> Conversation:
    changes = data.model_dump(include=data.model_fields_set)
    if "metadata" in changes and changes["metadata"] is None:
        changes["metadata"] = {}
    updated = repo.update_conversation(conn, conversation_id, changes=changes)
    if updated is None:
        raise NotFoundError("Conversation not found")
    return updated


def delete_conversation(conn: Connection, conversation_id: UUID) -> list[str]:
    """Delete the conversation; returns the S3 keys of its attachments, to delete once this commits."""
    keys = attachments_repo.conversation_keys(conn, conversation_id)
    if not repo.delete_conversation(conn, conversation_id):
        raise NotFoundError("Conversation not found")
    return keys


def list_messages(conn: Connection, conversation_id: UUID, page: PageRequest) -> Page[Message]:
    _conversation_or_404(conn, conversation_id)
    after_seq = 0
    if page.cursor:
        after_seq = decode_cursor(page.cursor, {"sequence_number": int})["sequence_number"]
    rows = repo.current_branch(conn, conversation_id, after_seq=after_seq, limit=page.limit + 1)
    return page_of(rows, page.limit, lambda m: {"sequence_number": m.sequence_number})


def list_revisions(conn: Connection, conversation_id: UUID, message_id: UUID, page: PageRequest) -> Page[Message]:
    message = _message_or_404(conn, conversation_id, message_id)
    after = -1
    if page.cursor:
        after = decode_cursor(page.cursor, {"revision_number": int})["revision_number"]
    rows = repo.position_revisions(
        conn, conversation_id, message.sequence_number, after_revision=after, limit=page.limit + 1
    )
    return page_of(rows, page.limit, lambda m: {"revision_number": m.revision_number})


def activate_revision(conn: Connection, conversation_id: UUID, message_id: UUID) -> ConversationWithMessages:
    _conversation_or_404(conn, conversation_id, for_update=True)
    message = _message_or_404(conn, conversation_id, message_id)
    if not message.is_latest:
        repo.make_branch_current(conn, conversation_id, message.id)
    return get_conversation(conn, conversation_id)


# --- writing messages (the chat turn of the next issue calls these inside its own transaction) ------


def append_message(conn: Connection, user_id: UUID, conversation_id: UUID, message: NewMessage) -> Message:
    """Append `message` at the tip of the current branch."""
    _conversation_or_404(conn, conversation_id, for_update=True)
    tip = repo.branch_tip(conn, conversation_id)
    return repo.insert_message_at(
        conn, conversation_id=conversation_id, user_id=user_id, parent=tip, message=message
    )


def add_reply(
    conn: Connection, user_id: UUID, conversation_id: UUID, parent_message_id: UUID, reply: NewMessage
) -> Message:
    """Write `reply` right after `parent_message_id`, which must still be on the current branch."""
    _conversation_or_404(conn, conversation_id, for_update=True)
    parent = _message_or_404(conn, conversation_id, parent_message_id)
    if not parent.is_latest:
        raise ConflictError("The conversation changed while the reply was written")
    return repo.insert_message_at(
        conn, conversation_id=conversation_id, user_id=user_id, parent=parent, message=reply
    )


def _revisable(conn: Connection, conversation_id: UUID, message_id: UUID, role: str) -> Message:
    _conversation_or_404(conn, conversation_id, for_update=True)
    message = _message_or_404(conn, conversation_id, message_id)
    if message.role != role:
        raise ValidationError(
            f"Only {role} messages can be revised this way",
            details={"errors": [field_error("message_id", f"must be a {role} message", "message_role")]},
        )
    if not message.is_latest:
        raise ConflictError("Only the latest revision of a message can be revised")
    return message


def _parent_of(conn: Connection, conversation_id: UUID, message: Message) -> Message | None:
    if message.parent_message_id is None:
        return None
    return repo.get_message(conn, conversation_id, message.parent_message_id)


def edit_message(
    conn: Connection, user_id: UUID, conversation_id: UUID, message_id: UUID, *, content: str, model_id: str
) -> Message:
    """A new revision of user message `message_id`; everything after it leaves the current branch."""
    edited = _revisable(conn, conversation_id, message_id, "user")
    return repo.insert_message_at(
        conn,
        conversation_id=conversation_id,
        user_id=user_id,
        parent=_parent_of(conn, conversation_id, edited),
        message=NewMessage(role="user", content=content, model_id=model_id),
    )


def regenerate_message(
    conn: Connection, user_id: UUID, conversation_id: UUID, message_id: UUID, reply: NewMessage
) -> Message:
    """A new revision of assistant message `message_id` with the regenerated `reply`."""
    replaced = _revisable(conn, conversation_id, message_id, "assistant")
    return repo.insert_message_at(
        conn,
        conversation_id=conversation_id,
        user_id=user_id,
        parent=_parent_of(conn, conversation_id, replaced),
        message=reply.model_copy(update={"role": "assistant"}),
    )


# --- history, sharing ------------------------------------------------------------------------------


def search_history(
    conn: Connection,
    *,
    query: str | None,
    model: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    page: PageRequest,
) -> Page[HistoryHit]:
    after = None
    if page.cursor:
        keys = decode_cursor(page.cursor, {"created_at": datetime.fromisoformat, "id": UUID})
        after = (keys["created_at"], keys["id"])
    rows = repo.search_history(
        conn,
        query=query.strip() or None if query else None,
        model=model,
        created_from=created_from,
        created_to=created_to,
        after=after,
        limit=page.limit + 1,
    )
    return page_of(rows, page.limit, lambda h: {"created_at": h.created_at.isoformat(), "id": str(h.message_id)})


def snapshot_of(conversation: ConversationWithMessages) -> dict[str, Any]:
    """What a share link shows: the current branch as it was when shared, without private metadata."""
    return {
        "title": conversation.title,
        "created_at": iso_z(conversation.created_at),
        "messages": [
            {
                "role": m.role,
                "content": m.content,
                "model_id": m.model_id,
                "sequence_number": m.sequence_number,
                "created_at": iso_z(m.created_at),
                "attachments": [a.model_dump(mode="json", exclude={"url"}) for a in m.attachments],
            }
            for m in conversation.messages
        ],
    }


def share_conversation(conn: Connection, user_id: UUID, conversation_id: UUID, url_base: str) -> ShareLink:
    _conversation_or_404(conn, conversation_id, for_update=True)
    token = repo.active_share_token(conn, conversation_id)
    if token is None:
        snapshot = snapshot_of(get_conversation(conn, conversation_id))
        token = repo.insert_share(
            conn,
            conversation_id=conversation_id,
            user_id=user_id,
            token=secrets.token_urlsafe(SHARE_TOKEN_BYTES),
            snapshot=snapshot,
        )
        assert token is not None  # the row lock above rules out a concurrent share
    return ShareLink(token=token, url=f"{url_base.rstrip('/')}/{token}")


def revoke_share(conn: Connection, conversation_id: UUID) -> None:
    _conversation_or_404(conn, conversation_id, for_update=True)
    repo.revoke_share(conn, conversation_id)


def shared_snapshot(conn: Connection, token: str, url_base: str) -> SharedSnapshot:
    snapshot = repo.shared_snapshot(conn, token) if len(token) <= 128 else None
    if snapshot is None:
        raise NotFoundError("This link does not exist or was revoked")
    # Attachments are reached through the link itself (`<share url>/attachments/<id>`), which stops
    # serving them when the link is revoked; a snapshot made before attachments existed lists none.
    base = f"{url_base.rstrip('/')}/{token}/attachments"
    for message in snapshot.get("messages", []):
        message["attachments"] = [
            {**attachment, "url": f"{base}/{attachment['id']}"} for attachment in message.get("attachments", [])
        ]
    # Typed on the way out, so snapshots stored before times were written with `Z` read the same.
    return SharedSnapshot.model_validate(snapshot)
