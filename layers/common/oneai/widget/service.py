"""The widget's public routes (API.md "The embeddable widget"), for anonymous visitors.

Each request is one anonymous transaction (`Database.anon_transaction`): its first round trip takes a
token from the source address's `widget` bucket; then, in this order, the chatbot is read by its public
id (unknown, draft or deleted: 404), the request's Origin is checked against `widget.allowed_origins`
(empty: any; refused: 403, and no CORS header, so the page's script reads nothing), the chatbot must be
available (disabled, or its workspace suspended: 403 "unavailable", readable by the page), the session
token is verified (401), and the visitor's `widget_visitor` bucket is taken. Only then is anything of the
visitor read or written. The order puts the origin's verdict before any answer the page can read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from oneai.config import Settings
from oneai.db import widget as widget_rows
from oneai.db.connection import Connection, Database
from oneai.errors import ForbiddenError, NotFoundError
from oneai.events import get_publisher
from oneai.logging import logger
from oneai.ratelimit import RateCheck, new_keyed_check, source_digest
from oneai.widget import origins, tokens
from oneai.widget.models import (
    RatingAnswer,
    RatingRequest,
    SessionAnswer,
    SessionRequest,
    VisitorConversation,
    WidgetSettings,
)

UNAVAILABLE_MESSAGE = "The assistant is unavailable right now"


class OriginNotAllowedError(ForbiddenError):
    default_message = "This site may not use this chatbot"


class ChatbotUnavailableError(ForbiddenError):
    default_message = UNAVAILABLE_MESSAGE


EVENT_SOURCE: Final = "oneai.widget"
CONVERSATION_RATED: Final = "ConversationRated"


@dataclass(slots=True)
class PublicCall:
    """One public request: what it came with, and what the web layer needs for its answer's headers."""

    public_id: str
    origin: str | None  # the Origin header, as sent
    source_check: RateCheck | None
    source_host: str | None = None
    user_agent: str | None = None
    # Set once the chatbot's allowed origins admit `origin` (the CORS answer echoes it).
    allowed_origin: str | None = None
    # The visitor's bucket, when the route has one (its refusal's Retry-After is the answer's).
    visitor_check: RateCheck | None = None
    # A refusal of the chatbot's daily widget messages: its Retry-After (seconds to the next UTC day).
    retry_after: int | None = None

    @property
    def bound_origin(self) -> str:
        """The origin a session token is bound to ("" for a request without one)."""
        return self.origin or ""


@dataclass(frozen=True, slots=True)
class PublicChatbot:
    chatbot_id: UUID
    workspace_id: UUID
    name: str
    available: bool
    widget: dict[str, Any]


def _chatbot(conn: Connection, call: PublicCall, *, require_available: bool = True) -> PublicChatbot:
    found = widget_rows.chatbot(conn, call.public_id)
    if found is None:
        raise NotFoundError("No such chatbot")
    stored = found.get("widget")
    widget: dict[str, Any] = stored if isinstance(stored, dict) else {}
    listed = widget.get("allowed_origins")
    allowed: list[str] = [entry for entry in listed if isinstance(entry, str)] if isinstance(listed, list) else []
    if not origins.is_allowed(call.origin, allowed):
        raise OriginNotAllowedError()
    call.allowed_origin = call.origin
    chatbot = PublicChatbot(
        chatbot_id=UUID(str(found["chatbot_id"])),
        workspace_id=UUID(str(found["workspace_id"])),
        name=str(found.get("name") or ""),
        available=bool(found.get("available")),
        widget=widget,
    )
    if require_available and not chatbot.available:
        raise ChatbotUnavailableError()
    return chatbot


def _take_visitor(
    conn: Connection, settings: Settings, call: PublicCall, chatbot_id: UUID, visitor_id: str
) -> None:
    call.visitor_check = new_keyed_check(settings, "widget_visitor", f"{chatbot_id}:{visitor_id}")
    if call.visitor_check is not None:
        widget_rows.take_keyed_rate_limit(conn, call.visitor_check)


def preflight(db: Database, call: PublicCall) -> None:
    """A CORS preflight: passes when the chatbot exists for the public and admits the origin (a disabled
    chatbot passes, so the page can read its "unavailable" answer)."""
    with db.anon_transaction(call.source_check) as conn:
        _chatbot(conn, call, require_available=False)


def widget_settings(db: Database, call: PublicCall) -> WidgetSettings:
    with db.anon_transaction(call.source_check) as conn:
        chatbot = _chatbot(conn, call)
    return WidgetSettings.from_stored(call.public_id, chatbot.name, chatbot.widget)


def open_session(db: Database, settings: Settings, call: PublicCall, body: SessionRequest) -> SessionAnswer:
    expires_at = int(time.time()) + settings.widget_session_seconds
    tokens.require_configured(settings)
    visitor = {
        "visitor_id": body.visitor_id,
        "page_url": body.page_url,
        "referrer": body.referrer or None,
        "locale": body.locale or None,
        "user_agent": (call.user_agent or "")[:512] or None,
        "source_digest": source_digest(call.source_host),
    }
    with db.anon_transaction(call.source_check) as conn:
        chatbot = _chatbot(conn, call)
        _take_visitor(conn, settings, call, chatbot.chatbot_id, body.visitor_id)
        opened = widget_rows.open_session(conn, chatbot.chatbot_id, visitor, body.conversation_id)
    if opened is None:  # the chatbot went between the two statements
        raise NotFoundError("No such chatbot")
    session = tokens.VisitorSession(
        chatbot_id=chatbot.chatbot_id,
        visitor_id=body.visitor_id,
        origin=call.bound_origin,
        visitor_ref=UUID(str(opened["visitor_ref"])),
        expires_at=expires_at,
    )
    resumed = opened.get("conversation_id")
    return SessionAnswer(
        session_token=tokens.issue(settings, session),
        expires_at=datetime.fromtimestamp(expires_at, UTC),
        conversation_id=UUID(str(resumed)) if resumed else None,
    )


def conversation_messages(
    db: Database, settings: Settings, call: PublicCall, authorization: str | None, conversation_id: UUID
) -> VisitorConversation:
    with db.anon_transaction(call.source_check) as conn:
        chatbot = _chatbot(conn, call)
        session = tokens.verify(settings, authorization, chatbot_id=chatbot.chatbot_id, origin=call.bound_origin)
        _take_visitor(conn, settings, call, chatbot.chatbot_id, session.visitor_id)
        found = widget_rows.conversation_messages(conn, chatbot.chatbot_id, session.visitor_id, conversation_id)
    if found is None:
        raise NotFoundError("No such conversation")
    return VisitorConversation.model_validate(found)


def admit_visitor(
    db: Database, settings: Settings, call: PublicCall, authorization: str | None
) -> tuple[PublicChatbot, tokens.VisitorSession]:
    """The public chat's checks, in the order of every public route (the source's bucket, the chatbot, the
    Origin, available, the session token, the visitor's bucket): the chatbot and the visitor's session.
    The turn itself is `oneai.widget.chat`'s."""
    with db.anon_transaction(call.source_check) as conn:
        chatbot = _chatbot(conn, call)
        session = tokens.verify(settings, authorization, chatbot_id=chatbot.chatbot_id, origin=call.bound_origin)
        _take_visitor(conn, settings, call, chatbot.chatbot_id, session.visitor_id)
    return chatbot, session


def rate_conversation(
    db: Database,
    settings: Settings,
    call: PublicCall,
    authorization: str | None,
    conversation_id: UUID,
    *,
    body: RatingRequest,
) -> RatingAnswer:
    with db.anon_transaction(call.source_check) as conn:
        chatbot = _chatbot(conn, call)
        session = tokens.verify(settings, authorization, chatbot_id=chatbot.chatbot_id, origin=call.bound_origin)
        _take_visitor(conn, settings, call, chatbot.chatbot_id, session.visitor_id)
        rated = widget_rows.rate_conversation(
            conn,
            chatbot.chatbot_id,
            session.visitor_id,
            conversation_id,
            score=body.score,
            comment=body.comment or None,
        )
    if rated is None:
        raise NotFoundError("No such conversation")
    answer = RatingAnswer.model_validate(rated)
    _announce_rating(chatbot, answer)
    return answer


def _announce_rating(chatbot: PublicChatbot, answer: RatingAnswer) -> None:
    """`oneai.widget` / `ConversationRated` after the commit (best effort; the outbound webhooks'
    `conversation.rated`): ids and the score, never the comment."""
    detail = {
        "workspace_id": str(chatbot.workspace_id),
        "chatbot_id": str(chatbot.chatbot_id),
        "conversation_id": str(answer.conversation_id),
        "score": answer.score,
    }
    try:
        get_publisher().publish(EVENT_SOURCE, CONVERSATION_RATED, detail)
    except Exception as exc:
        logger.warning("rating event not published", extra={"error_type": type(exc).__name__})
