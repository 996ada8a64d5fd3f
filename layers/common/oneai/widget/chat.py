"""The widget's public chat (`POST /public/chatbots/{public_id}/chat`, issue 27 part 2): a visitor's turn.

The route checks the visitor first (`oneai.widget.service.admit_visitor`: the source's bucket, the chatbot,
the Origin, the session token, the visitor's bucket), then hands the turn to the one entry point of every
chat turn (`oneai.chat.entry.start_turn`) with `VisitorTurn` as its kind: the same steps, relay and stream
as `/chat/stream`'s chatbot turn (the chatbot's prompt, model, temperature, max tokens, knowledge and
fallback; the same payer rule). What differs is where the rows are, and who the turn is:

- the prepare is ONE call as the service (`oneai_private.visitor_prepare_turn`): the visitor's conversation
  (created on the first message), one unit of the chatbot's daily widget messages under the owner's tier's
  limit (refused: 429 RATE_LIMITED with Retry-After to the next UTC day), the visitor's message, the
  history, and the payer (the workspace's provider key, else a credits hold: refused, 402
  INSUFFICIENT_CREDITS, and nothing is written);
- the prepared turn carries a `VisitorLedger` (`oneai.chat.turn.TurnLedger`): the refund (the model failed
  before its first token: the unit and the hold back, the visitor's message kept, no reply written), the
  finish (the reply with its sources, model, tokens, status and timings; the conversation's count and last
  message time; the workspace's usage record; the hold settled) and the chatbot's search run as the
  service;
- the reply is not resumable (no user's reply stream) and the conversation gets no title.

`ttft_ms` and `total_ms` are measured from the moment the route received the message (`received_at`) to the
reply's first text and to its end. Nothing of the visitor's text is logged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from oneai.attachments.images import InlineImage
from oneai.auth import Principal
from oneai.chat.requests import AISDKChatRequest, ChatTurn, inlined_schema
from oneai.chat.turn import (
    HISTORY_LIMIT,
    FinishedTurn,
    PreparedTurn,
    ReplyOutcome,
    chatbot_offer,
    settle_unsaved_reply,
)
from oneai.chatbots.chatbot_turn import ChatbotConfig
from oneai.chatbots.payment import reservation_of
from oneai.conversations.models import MAX_MESSAGE_CHARS, Conversation, Message
from oneai.credits import service as credits_service
from oneai.db import visitor_chat
from oneai.db.connection import Database
from oneai.db.visitor_chat import VisitorTurnRefused
from oneai.errors import (
    InsufficientCreditsError,
    NotFoundError,
    OneAIError,
    PayloadTooLargeError,
    ProviderKeyRefusedError,
    RateLimitedError,
    UnauthorizedError,
    ValidationError,
    field_error,
)
from oneai.ids import canonical_uuid
from oneai.money import balance_decimal
from oneai.quota.service import Reservation
from oneai.widget.service import ChatbotUnavailableError, PublicCall, PublicChatbot
from oneai.widget.tokens import VisitorSession
from oneai.workspaces.limits import limit_by_tier

TOO_LONG = f"The message is longer than {MAX_MESSAGE_CHARS} characters"
DAILY_LIMIT_MESSAGE = "This assistant has answered all the messages it may today; try again tomorrow"
UNAVAILABLE_MESSAGE = "The assistant is unavailable right now"


# ------------------------------------------------------------------------------------------------
# The body: native `{"content", "conversation_id"?}` or the AI SDK transport's
# ------------------------------------------------------------------------------------------------
class VisitorChatRequest(BaseModel):
    """The native body of the public chat."""

    model_config = ConfigDict(extra="forbid")

    content: str = Field(
        min_length=1, description=f"the visitor's message, at most {MAX_MESSAGE_CHARS} characters"
    )
    conversation_id: UUID | None = Field(
        default=None, description="the visitor's conversation to continue (none: a new one is started)"
    )


def _refused_body(message: str, field_name: str = "messages") -> ValidationError:
    return ValidationError(message, details={"errors": [field_error(field_name, message, "value_error")]})


def _visitor_turn(
    content: str, conversation_id: UUID | None, *, client_chat_id: str | None = None, create_missing: bool = False
) -> ChatTurn:
    if len(content) > MAX_MESSAGE_CHARS:
        raise PayloadTooLargeError(TOO_LONG)
    if not content.strip():
        raise _refused_body("content is required", "content")
    return ChatTurn(
        conversation_id=conversation_id,
        model=None,
        action="send",
        content=content,
        message_id=None,
        client_chat_id=client_chat_id,
        create_missing_conversation=create_missing,
    )


def parse_visitor_body(body: Any) -> ChatTurn:
    """Either body as one turn (a new message: the widget neither edits nor regenerates); 422 otherwise.
    The AI SDK body's chat `id` names the visitor's conversation as it names a member's on /chat/stream: a
    UUID is the conversation's id (created under it on its first message when it is free), any other id
    the client's own for it (created on its first message, found again by it)."""
    if not isinstance(body, dict):
        raise ValidationError(
            "The body must be a JSON object", details={"errors": [field_error("", "not an object", "model_type")]}
        )
    try:
        if "messages" not in body:
            native = VisitorChatRequest.model_validate(body)
            return _visitor_turn(native.content, native.conversation_id)
        request = AISDKChatRequest.model_validate(body)
    except PydanticValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        raise ValidationError("The request is not valid", details={"errors": fields}) from None
    if request.trigger != "submit-message" or request.message_id is not None:
        raise _refused_body("the widget's chat only sends new messages")
    last = next((m for m in reversed(request.messages) if m.role == "user"), None)
    if last is not None and any(p.type == "file" for p in last.parts):
        raise _refused_body("attachments are not accepted in the widget's chat", "attachments")
    conversation_id = canonical_uuid(request.id) if request.id is not None else None
    client_chat_id = request.id if request.id is not None and conversation_id is None else None
    return _visitor_turn(
        request.last_user_text(),
        conversation_id,
        client_chat_id=client_chat_id,
        create_missing=conversation_id is not None,
    )


def _body_schema() -> dict[str, Any]:
    schema = TypeAdapter(VisitorChatRequest | AISDKChatRequest).json_schema(by_alias=True)
    inlined: dict[str, Any] = inlined_schema(schema, schema.get("$defs", {}))
    return inlined


# The request body in the OpenAPI document (the route reads the body itself: a long message is a 413).
VISITOR_CHAT_BODY_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The native form, or the AI SDK transport body (`model` and `chatbot_id` are ignored: "
        "the chatbot's apply).",
        "content": {
            "application/json": {
                "schema": _body_schema(),
                "examples": {
                    "native": {"value": {"content": "How long do refunds take?"}},
                    "ai_sdk": {
                        "value": {
                            "id": "Xk3vQ9mZp2LwT7rB",
                            "messages": [
                                {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Hello"}]}
                            ],
                            "trigger": "submit-message",
                        }
                    },
                },
            }
        },
    }
}


# ------------------------------------------------------------------------------------------------
# The ledger: where a visitor's turn is refunded, finished and searched
# ------------------------------------------------------------------------------------------------
def _message(value: dict[str, Any], model: str, parent: UUID | None = None, *, sources: bool = True) -> Message:
    """A visitor message as the turn's steps take a message (`sources=False`: the history the model sees,
    which needs only roles and text)."""
    return Message(
        id=value["id"],
        conversation_id=value["conversation_id"],
        role=value["role"],
        content=value["content"],
        model_id=value.get("model_id") or model,
        tokens_used=value.get("tokens_used"),
        sequence_number=value["sequence_number"],
        revision_number=1,
        revision_type=None,
        original_message_id=None,
        parent_message_id=parent,
        is_latest=True,
        status=value["status"],
        created_at=value["created_at"],
        sources=value.get("sources") if sources else None,
    )


def _elapsed_ms(since: float, until: float) -> int:
    return max(0, round((until - since) * 1000))


@dataclass(frozen=True)
class VisitorLedger:
    """A visitor's turn's rows (`oneai.chat.turn.TurnLedger`), written as the service."""

    chatbot_id: UUID
    day: date
    # time.monotonic() when the route received the visitor's message.
    received_at: float

    def refund(self, db: Database, prepared: PreparedTurn, *, unit: bool = True) -> None:
        credits = prepared.credits
        with db.service_transaction() as conn:
            visitor_chat.refund(
                conn, self.chatbot_id, self.day, unit=unit, reservation_id=None if credits is None else credits.id
            )

    def finish(self, db: Database, prepared: PreparedTurn, outcome: ReplyOutcome) -> FinishedTurn:
        ended = time.monotonic()
        first = outcome.first_text_at
        reply = {
            "conversation_id": str(prepared.conversation.id),
            "message": {
                "id": str(prepared.reply_id),
                "content": outcome.text,
                "model_id": outcome.served_model,
                "status": outcome.status,
                "tokens_used": outcome.prompt_tokens + outcome.completion_tokens,
                "sources": [p.source() for p in prepared.knowledge],
                "ttft_ms": None if first is None else _elapsed_ms(self.received_at, first),
                "total_ms": _elapsed_ms(self.received_at, max(ended, first or ended)),
            },
            "quota_key": prepared.offered.quota_key,
            "requested_model": prepared.turn.model_id,
            "generation_id": outcome.generation_id,
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "cost": str(outcome.cost),
            "record_usage": prepared.fixed_reply is None,
            "provider_key_id": None if prepared.key is None else str(prepared.key.key_id),
            "credits": None
            if prepared.credits is None
            else {
                "reservation_id": str(prepared.credits.id),
                "rate": str(db.settings.usd_inr_rate),
                "markup": str(db.settings.credits_markup),
            },
        }
        try:
            with db.service_transaction() as conn:
                result = visitor_chat.finish(conn, reply)
        except VisitorTurnRefused:  # the conversation was deleted from the inbox meanwhile
            settle_unsaved_reply(db, prepared, outcome)  # the reply was made: its cost is taken all the same
            raise NotFoundError("No such conversation") from None
        except Exception:
            settle_unsaved_reply(db, prepared, outcome)
            raise
        settlement = (
            None if result.get("settlement") is None else credits_service.settlement_of(result["settlement"])
        )
        message = _message(result["message"], prepared.turn.model_id, prepared.parent.id)
        return FinishedTurn(message=message, quota=None, settlement=settlement)

    def read(self, db: Database, statements: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
        with db.service_transaction() as conn:
            return visitor_chat.read(conn, statements)


# ------------------------------------------------------------------------------------------------
# The kind
# ------------------------------------------------------------------------------------------------
@dataclass
class VisitorTurn:
    """The `TurnKind` of one visitor's turn (one per request: it knows the checked call and session)."""

    call: PublicCall
    chatbot: PublicChatbot
    session: VisitorSession
    received_at: float
    principal: Principal = field(init=False)

    def __post_init__(self) -> None:
        # Not a user: the visitor's row id stands for them where the turn names its caller (the model
        # provider's `user` field); their rows are the ledger's, never a user transaction's.
        self.principal = Principal(user_id=self.session.visitor_ref, email=None, role="anon", claims={})

    def default_model(self, db: Database, principal: Principal) -> str:
        raise RuntimeError("a visitor's turn has no images: its model is the chatbot's")

    def prepare(
        self,
        db: Database,
        principal: Principal,
        turn: ChatTurn,
        *,
        too_long_for: frozenset[str],
        inline: Sequence[tuple[uuid.UUID, InlineImage]],
        credits: dict[str, Any] | None = None,
    ) -> PreparedTurn:
        arguments = {
            "chatbot_id": str(self.chatbot.chatbot_id),
            "visitor_id": self.session.visitor_id,
            "conversation_id": None if turn.conversation_id is None else str(turn.conversation_id),
            "client_id": turn.client_chat_id,
            "create_missing": turn.create_missing_conversation,
            "content": turn.content,
            "limits": limit_by_tier(db.settings, "widget_messages_per_day"),
            "history_limit": HISTORY_LIMIT,
            "credits": credits,
        }
        try:
            with db.service_transaction() as conn:
                result = visitor_chat.prepare(conn, arguments)
        except VisitorTurnRefused as refused:
            raise self._refusal(refused.detail) from None
        chatbot = ChatbotConfig.model_validate(result["chatbot"])
        model = chatbot.model
        user_message = _message(result["user_message"], model)
        history = [_message(m, model, sources=False) for m in result["history"]]
        conversation = result["conversation"]
        admission = result["admission"]
        return PreparedTurn(
            principal=self.principal,
            turn=turn.model_copy(update={"model": model}),
            offered=chatbot_offer(model),
            conversation=Conversation(
                id=conversation["id"],
                title=None,
                created_at=conversation["started_at"],
                updated_at=conversation["updated_at"],
                last_message_at=conversation["last_message_at"],
                metadata={},
            ),
            parent=user_message,
            replaces=None,
            user_message=user_message,
            history=history,
            reservation=None,
            reply_id=uuid.uuid4(),
            chatbot=chatbot,
            provider_key_id=None
            if result.get("provider_key_id") is None
            else uuid.UUID(str(result["provider_key_id"])),
            credits=reservation_of(chatbot.workspace_id, result.get("credits")),
            ledger=VisitorLedger(
                chatbot_id=chatbot.id, day=date.fromisoformat(str(admission["day"])), received_at=self.received_at
            ),
        )

    def announce_warnings(self, principal: Principal, reservation: Reservation) -> None:
        """A visitor's turn reserves no quota: nothing to announce."""

    def _refusal(self, detail: dict[str, Any]) -> OneAIError:
        code = detail.get("code")
        if code == "daily_limit":
            retry_after = max(1, int(detail.get("retry_after") or 1))
            self.call.retry_after = retry_after  # the answer's Retry-After (widget.cors)
            return RateLimitedError(
                DAILY_LIMIT_MESSAGE,
                details={
                    "bucket": "widget_chatbot_day",
                    "retry_after": retry_after,
                    "limit": detail.get("limit"),
                    "used": detail.get("used"),
                },
            )
        if code == "insufficient_credits":
            return InsufficientCreditsError(
                details={
                    "balance": balance_decimal(_decimal(detail.get("balance"))),
                    "needed": balance_decimal(_decimal(detail.get("needed"))),
                }
            )
        refusals: dict[str, OneAIError] = {
            "chatbot_not_found": NotFoundError("No such chatbot"),
            "chatbot_unavailable": ChatbotUnavailableError(),
            "visitor_not_found": UnauthorizedError(
                "The visitor session is missing, invalid or expired; open a new one"
            ),
            "conversation_not_found": NotFoundError("No such conversation"),
        }
        if code not in refusals:
            raise RuntimeError(f"the visitor turn call answered an unknown refusal: {code!r}")
        return refusals[str(code)]


def public_refusal(error: OneAIError) -> OneAIError:
    """A refusal as a widget visitor is told it. What only the workspace can fix is the workspace's business:
    a 402 `INSUFFICIENT_CREDITS` without its `balance` and `needed` (the workspace's credits), a 424
    `PROVIDER_KEY_REFUSED` without the key's name, id and provider; both with a plain message. The status and
    code stay (the widget shows "unavailable" for them). Any other error is answered as it is."""
    if isinstance(error, InsufficientCreditsError | ProviderKeyRefusedError):
        return type(error)(UNAVAILABLE_MESSAGE)
    return error


def _decimal(value: object) -> Decimal:
    return Decimal(str(value if value is not None else 0))
