"""The inbox (API.md "Chatbot conversations (the inbox)"): a chatbot's visitor conversations listed with
filters and full-text search, read with the visitor's info, triaged (notes, tags, status), deleted one by
one or in bulk, counted per day and exported.

Who: the workspace's editors and above. The visitor tables' policies (20261127000000_widget.sql) let
only them read and change these rows, and this code asks the same first: a non-member gets 404 for the
chatbot (as for every chatbot route), a viewer 403 (a member without the role, API.md "Workspaces"). A
visitor conversation the caller may not see is 404, whoever's it is.

The export is written by a generator over a server-side cursor, one conversation at a time, into an
`ExportSink`: a small export (up to `DIRECT_EXPORT_BYTES`) is answered as the response body; a larger one
goes to the object store as a multipart upload, part by part (`EXPORT_PART_BYTES` held at most), and the
caller gets a short-lived download link. The chatbots function runs under Mangum, which buffers a response,
and a buffered Lambda response is at most 6 MB: so a large export cannot be the body of this function's
response, and is never built whole in memory either (docs/architecture.md, "The inbox").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol
from uuid import UUID

from oneai.chatbots.models import StatsQuery
from oneai.chatbots.service import NOT_FOUND as CHATBOT_NOT_FOUND
from oneai.db import chatbots as chatbots_repo
from oneai.db import inbox as repo
from oneai.db.connection import Connection
from oneai.errors import NotFoundError
from oneai.inbox.export import MEDIA_TYPES, export_chunks, export_filename
from oneai.inbox.models import (
    BulkDeleted,
    ExportFormat,
    InboxConversation,
    InboxItem,
    InboxMessage,
    InboxPage,
    InboxQuery,
    InboxStats,
    InboxUpdate,
    Match,
    Rating,
    StatsDay,
    Visitor,
)
from oneai.pagination import decode_cursor, encode_cursor
from oneai.widget.models import Source
from oneai.workspaces.service import require_role

NOT_FOUND: Final = "Conversation not found"
DIRECT_EXPORT_BYTES: Final = 4 * 1024 * 1024  # under the 6 MB of a buffered Lambda response, with room
EXPORT_PART_BYTES: Final = 8 * 1024 * 1024  # S3's parts are at least 5 MiB (but the last)
EXPORT_LINK_SECONDS: Final = 900


@dataclass(frozen=True, slots=True)
class InboxChatbot:
    id: UUID
    workspace_id: UUID
    name: str


def editable_chatbot(conn: Connection, chatbot_id: UUID) -> InboxChatbot:
    """The live chatbot, when the caller is an editor (or above) of its workspace: 404 for a non-member
    (or an unknown or deleted chatbot), 403 for a viewer."""
    row = chatbots_repo.get_chatbot(conn, chatbot_id)
    if row is None:
        raise NotFoundError(CHATBOT_NOT_FOUND)
    try:
        require_role(conn, row.workspace_id, "editor")
    except NotFoundError:  # the workspace is deleted, and its chatbots with it
        raise NotFoundError(CHATBOT_NOT_FOUND) from None
    return InboxChatbot(id=row.id, workspace_id=row.workspace_id, name=row.name)


def _conversation(conn: Connection, conversation_id: UUID) -> repo.ConversationRow:
    """The visitor conversation, when the caller edits its workspace (the policies hide it otherwise):
    404, but 403 for a viewer of its workspace (a member without the role)."""
    row = repo.get_conversation(conn, conversation_id)
    if row is None:
        workspace_id = repo.member_workspace_of(conn, conversation_id)
        if workspace_id is not None:
            require_role(conn, workspace_id, "editor")
        raise NotFoundError(NOT_FOUND)
    return row


def _visitor(row: repo.InboxRow | repo.ConversationRow) -> Visitor:
    return Visitor(
        id=row.visitor_id,
        page_url=row.page_url,
        referrer=row.referrer,
        user_agent=row.user_agent,
        locale=row.locale,
    )


def list_conversations(conn: Connection, chatbot_id: UUID, query: InboxQuery) -> InboxPage:
    editable_chatbot(conn, chatbot_id)
    after = None
    if query.cursor:
        keys = decode_cursor(query.cursor, {"started_at": datetime.fromisoformat, "id": UUID})
        after = (keys["started_at"], keys["id"])
    text = query.q.strip() if query.q else None
    rows = repo.list_conversations(
        conn,
        chatbot_id,
        started_from=query.from_,
        started_to=query.to,
        status=query.status,
        rating=query.rating,
        query=text or None,
        after=after,
        limit=query.limit + 1,
    )
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_cursor = encode_cursor({"started_at": rows[-1].started_at.isoformat(), "id": str(rows[-1].id)})
    items = [
        InboxItem(
            id=row.id,
            visitor=_visitor(row),
            started_at=row.started_at,
            last_message_at=row.last_message_at,
            messages=row.messages,
            rating=row.rating,
            status=row.status,
            tags=list(row.tags),
            match=(
                Match(message_id=row.match_message_id, snippet=row.match_snippet or "")
                if row.match_message_id is not None
                else None
            ),
        )
        for row in rows
    ]
    return InboxPage(items=items, next_cursor=next_cursor)


def get_conversation(conn: Connection, conversation_id: UUID) -> InboxConversation:
    row = _conversation(conn, conversation_id)
    rating = None
    if row.rating is not None and row.rated_at is not None:
        rating = Rating(score=row.rating, comment=row.rating_comment, rated_at=row.rated_at)
    return InboxConversation(
        id=row.id,
        chatbot_id=row.chatbot_id,
        visitor=_visitor(row),
        started_at=row.started_at,
        last_message_at=row.last_message_at,
        updated_at=row.updated_at,
        status=row.status,
        tags=list(row.tags),
        notes=row.notes,
        rating=rating,
        messages=[
            InboxMessage(
                id=m.id,
                role=m.role,
                content=m.content,
                status=m.status,
                model_id=m.model_id,
                sources=[Source.model_validate(s) for s in m.sources or []],
                created_at=m.created_at,
            )
            for m in repo.messages(conn, conversation_id)
        ],
    )


def update_conversation(conn: Connection, conversation_id: UUID, body: InboxUpdate) -> InboxConversation:
    _conversation(conn, conversation_id)
    changes = body.model_dump(include=body.model_fields_set)
    if changes and not repo.update_conversation(conn, conversation_id, changes):
        raise NotFoundError(NOT_FOUND)  # deleted meanwhile
    return get_conversation(conn, conversation_id)


def delete_conversation(conn: Connection, conversation_id: UUID) -> None:
    _conversation(conn, conversation_id)
    if not repo.delete_conversation(conn, conversation_id):
        raise NotFoundError(NOT_FOUND)


def bulk_delete(conn: Connection, chatbot_id: UUID, ids: Sequence[UUID]) -> BulkDeleted:
    """Only this chatbot's conversations go (ids of others, or unknown ones, are left alone and not
    counted)."""
    editable_chatbot(conn, chatbot_id)
    return BulkDeleted(deleted=repo.bulk_delete(conn, chatbot_id, list(dict.fromkeys(ids))))


def stats(conn: Connection, chatbot_id: UUID, query: StatsQuery) -> InboxStats:
    editable_chatbot(conn, chatbot_id)
    assert query.from_ is not None
    assert query.to is not None
    days = repo.daily(conn, chatbot_id, query.from_, query.to)
    totals = repo.totals(conn, chatbot_id, query.from_, query.to)
    return InboxStats(
        from_=query.from_,
        to=query.to,
        total=totals.total,
        avg_messages=round(totals.messages / totals.total, 2) if totals.total else None,
        avg_rating=round(totals.avg_rating, 2) if totals.avg_rating is not None else None,
        by_day=[
            StatsDay(
                date=d.day,
                conversations=d.conversations,
                messages=d.messages,
                avg_rating=round(d.avg_rating, 2) if d.avg_rating is not None else None,
            )
            for d in days
        ],
    )


# --- the export -----------------------------------------------------------------------------------------


class PartStore(Protocol):
    """What the export needs of the object store (oneai.attachments.storage.ObjectStore has it)."""

    def start_upload(self, key: str, *, media_type: str, attached: bool) -> str: ...

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]: ...

    def finish_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None: ...

    def abort_upload(self, key: str, upload_id: str) -> None: ...

    def presigned_get(
        self, key: str, *, media_type: str, filename: str, expires_in: int, download: bool = False
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class ExportResult:
    filename: str
    media_type: str
    body: bytes | None = None  # a small export, whole
    url: str | None = None  # a large one, in the object store
    expires_at: datetime | None = None
    size: int = 0


@dataclass
class ExportSink:
    """Takes the export's chunks; holds at most one part (`part_bytes`) in memory. Until a part is full
    nothing is uploaded, so an export that ends under `direct_bytes` is answered whole."""

    store: Callable[[], PartStore]
    key: str
    media_type: str
    part_bytes: int = EXPORT_PART_BYTES
    direct_bytes: int = DIRECT_EXPORT_BYTES
    size: int = 0
    _pending: list[bytes] = field(default_factory=list)
    _pending_size: int = 0
    _upload: tuple[PartStore, str] | None = None
    _parts: list[dict[str, Any]] = field(default_factory=list)

    def write(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        self.size += len(chunk)
        if self._pending_size >= self.part_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._upload is None:
            store = self.store()
            self._upload = (store, store.start_upload(self.key, media_type=self.media_type, attached=False))
        store, upload_id = self._upload
        body = b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        self._parts.append(store.upload_part(self.key, upload_id, len(self._parts) + 1, body))

    def finish(self) -> bytes | None:
        """The whole body when it stayed small; else None once the object is complete in the store."""
        if self._upload is None and self.size <= self.direct_bytes:
            body = b"".join(self._pending)
            self._pending = []
            return body
        if self._pending or not self._parts:
            self._flush()
        assert self._upload is not None
        store, upload_id = self._upload
        store.finish_upload(self.key, upload_id, self._parts)
        return None

    def abort(self) -> None:
        if self._upload is not None:
            store, upload_id = self._upload
            self._upload = None
            store.abort_upload(self.key, upload_id)


def write_export(
    rows: Iterable[dict[str, Any]], fmt: ExportFormat, sink: ExportSink, *, title: str
) -> bytes | None:
    """Stream the export of `rows` into `sink`; the whole body when small (see ExportSink.finish)."""
    try:
        for chunk in export_chunks(rows, fmt, title=title):
            sink.write(chunk)
        return sink.finish()
    except BaseException:
        sink.abort()
        raise


def export_conversations(
    conn: Connection,
    chatbot_id: UUID,
    fmt: ExportFormat,
    ids: Sequence[UUID] | None,
    store: Callable[[], PartStore],
    *,
    now: datetime | None = None,
) -> ExportResult:
    """The chatbot's conversations (or the chosen ones of them) in `fmt`, read through a server-side cursor
    in the caller's transaction."""
    chatbot = editable_chatbot(conn, chatbot_id)
    exported_at = now or datetime.now(UTC)
    filename = export_filename(chatbot.name, fmt, exported_at)
    media_type = MEDIA_TYPES[fmt]
    key = f"exports/{chatbot.workspace_id}/{uuid.uuid4()}/{filename}"
    sink = ExportSink(store=store, key=key, media_type=media_type)
    rows = repo.export_rows(conn, chatbot_id, list(dict.fromkeys(ids)) if ids is not None else None)
    body = write_export(rows, fmt, sink, title=f"{chatbot.name}: conversations")
    if body is not None:
        return ExportResult(filename=filename, media_type=media_type, body=body, size=sink.size)
    url = store().presigned_get(
        key, media_type=media_type, filename=filename, expires_in=EXPORT_LINK_SECONDS, download=True
    )
    expires_at = datetime.now(UTC) + timedelta(seconds=EXPORT_LINK_SECONDS)
    return ExportResult(filename=filename, media_type=media_type, url=url, expires_at=expires_at, size=sink.size)
