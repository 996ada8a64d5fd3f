"""The two short transactions of a chat turn (docs/architecture.md, "How requests flow"); no transaction is held open
while the reply streams. Each is ONE round trip to the database: the request's scope, user and rate checks
and one call (`oneai_private.prepare_chat_turn` / `finish_chat_turn`, SECURITY INVOKER, so RLS applies as
to any query of the user) sent together. The rules live in that migration; the errors are mapped here.

1. `prepare_turn`: check the model against the tier, find or create the conversation, reserve one unit
   of the model's quota, write the user's message (or validate the message to regenerate), and read the
   history the model will see. All or nothing: a refused reserve writes no message.
2. `finish_turn`: write the assistant message (complete or incomplete) with its tokens, cost, served
   model and generation id, record the usage, settle the reservation.
`refund_turn` gives the unit back when the model failed before its first token.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final, Literal, Protocol

from oneai.attachments import service as attachments
from oneai.attachments.images import InlineImage
from oneai.attachments.models import AttachmentRef
from oneai.attachments.service import GeneratedImage
from oneai.attachments.storage import ObjectStore, get_object_store
from oneai.auth import Principal
from oneai.chat.offered_models import (
    ALL_TIERS,
    OFFERED_MODELS,
    TIER_DEFAULT_MODELS,
    OfferedModel,
    offered_model,
)
from oneai.chat.requests import ChatTurn
from oneai.chatbots import chatbot_turn
from oneai.chatbots.chatbot_turn import ChatbotConfig, Passage, WorkspaceAdmission
from oneai.chatbots.payment import announce, reservation_of
from oneai.conversations import service as conversations
from oneai.conversations.models import Conversation, ConversationUpdate, Message
from oneai.credits import service as credits_service
from oneai.credits.service import Reservation as CreditReservation
from oneai.credits.service import Settlement
from oneai.db import attachments as attachment_rows
from oneai.db import conversations as conversation_rows
from oneai.db.connection import Database
from oneai.db.conversations import MESSAGE_LIST
from oneai.db.quota import QuotaRow, ReserveOutcome
from oneai.db.users import caller_profile
from oneai.errors import (
    ConflictError,
    InsufficientCreditsError,
    NotFoundError,
    OneAIError,
    PayloadTooLargeError,
    UnauthorizedError,
    ValidationError,
    field_error,
)
from oneai.logging import logger
from oneai.money import balance_decimal
from oneai.provider_keys.service import UsableKey
from oneai.quota import service as quota
from oneai.quota.service import WARNING_THRESHOLDS, QuotaStatus, Reservation
from oneai.workspaces.limits import limit_by_tier

# More history than any context window takes; trimming to the model's window happens afterwards.
HISTORY_LIMIT = 400
MESSAGE_TOO_LONG = "The message is too long for this model's context window"


class TurnLedger(Protocol):
    """Where a turn that is not a signed-in user's keeps its rows (a widget visitor's: `oneai.widget.chat`):
    its refund, its finish and its chatbot's knowledge search run there, not under a user's RLS. A turn
    with a ledger is not resumable and gets no title."""

    def refund(self, db: Database, prepared: PreparedTurn, *, unit: bool = True) -> None:
        """Give back what the turn took: its credits hold, and its message unit when `unit`."""
        ...

    def finish(self, db: Database, prepared: PreparedTurn, outcome: ReplyOutcome) -> FinishedTurn:
        """Write the reply and settle its payment (as `finish_turn`)."""
        ...

    def read(self, db: Database, statements: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
        """The rows of the last of `statements` (the chatbot's knowledge search)."""
        ...


@dataclass(frozen=True)
class PreparedTurn:
    principal: Principal
    turn: ChatTurn
    offered: OfferedModel
    conversation: Conversation
    # The message the reply answers (the user's message), and the one it replaces when regenerating.
    parent: Message
    replaces: Message | None
    user_message: Message | None
    history: list[Message]
    # The unit of the caller's quota (a plain turn), or None (a chatbot's turn: `admission` instead).
    reservation: Reservation | None
    reply_id: uuid.UUID
    # The S3 keys of the user message's attachments: tagged attached once this turn committed.
    attachment_keys: tuple[str, ...] = ()
    # A chatbot's turn (oneai.chatbots.chatbot_turn): its settings, the workspace's unit it took, the
    # passages retrieval found (their `source-document` parts precede the text), and the fixed message
    # of its `message` fallback (the reply, without asking a model).
    chatbot: ChatbotConfig | None = None
    admission: WorkspaceAdmission | None = None
    knowledge: tuple[Passage, ...] = ()
    fixed_reply: str | None = None
    # Who pays for a chatbot's reply (oneai.chatbots.payment): the workspace's key the prepare call chose
    # (`provider_key_id`; `key`, opened, once the prepare committed), else the credits it reserved.
    provider_key_id: uuid.UUID | None = None
    key: UsableKey | None = None
    credits: CreditReservation | None = None
    # A turn kept elsewhere than a user's conversations (a widget visitor's); None: the user's own.
    ledger: TurnLedger | None = None

    @property
    def first_exchange(self) -> bool:
        """The turn that names the conversation (a visitor's conversation has no title)."""
        return self.ledger is None and self.conversation.title is None and self.parent.sequence_number == 1


@dataclass(frozen=True)
class ReplyOutcome:
    text: str
    status: Literal["complete", "incomplete"]
    served_model: str
    generation_id: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    # Images the model made, already in S3: attachments of the reply.
    images: tuple[GeneratedImage, ...] = ()
    # When (time.monotonic()) the reply's first text came (the fixed message: when it was sent); None when
    # it had none. A visitor's reply records its time to first token from it.
    first_text_at: float | None = None


@dataclass(frozen=True)
class FinishedTurn:
    message: Message
    quota: QuotaStatus | None
    # A reply paid from credits: its settle (announce its low-balance crossing after the commit).
    settlement: Settlement | None = None


# The offered models and defaults as the prepare call takes them (it resolves and checks the model).
_OFFERED_JSON: Final = {m.model_id: {"quota_key": m.quota_key, "tiers": sorted(m.tiers)} for m in OFFERED_MODELS}
_OFFERED_BY_ID: Final = {m.model_id: m for m in OFFERED_MODELS}


def chatbot_offer(model_id: str) -> OfferedModel:
    """A chatbot's model (checked against the workspace's plan when the chatbot was saved, not against the
    member's tier): its offer, for its fallbacks and quota class."""
    return _OFFERED_BY_ID.get(model_id) or OfferedModel(model_id, "small_messages", ALL_TIERS)


def _refusal(error: dict[str, Any]) -> OneAIError:
    """The API error of a refusal the prepare or finish call answered (the rules of
    `supabase/migrations/20261122110000_chat_turn_one_round_trip.sql`, the errors they always were)."""
    chatbot_refusal = chatbot_turn.refusal(error)
    if chatbot_refusal is not None:
        return chatbot_refusal
    code = error.get("code")
    if code == "model":
        offered_model(str(error["model"]), str(error["tier"]))  # raises the 422 or 403
    if code == "insufficient_credits":
        return InsufficientCreditsError(
            details={
                "balance": balance_decimal(Decimal(str(error["balance"]))),
                "needed": balance_decimal(Decimal(str(error["needed"]))),
            }
        )
    if code == "quota":
        return quota.refusal(ReserveOutcome.model_validate(error["reserve"]))
    if code == "revise_role":
        role = error["role"]
        return ValidationError(
            f"Only {role} messages can be revised this way",
            details={"errors": [field_error("message_id", f"must be a {role} message", "message_role")]},
        )
    refusals: dict[str, OneAIError] = {
        "unknown_user": UnauthorizedError("Unknown user"),
        "too_long": PayloadTooLargeError(MESSAGE_TOO_LONG),
        "conversation_not_found": NotFoundError("Conversation not found"),
        "message_not_found": NotFoundError("Message not found"),
        "nothing_to_regenerate": ValidationError(
            "There is nothing to regenerate",
            details={"errors": [field_error("message_id", "empty conversation", "conversation_empty")]},
        ),
        "regenerate_not_latest": ConflictError("Only the latest revision of a message can be regenerated"),
        "regenerate_answered": ValidationError(
            "Only an assistant reply, or an unanswered last message, can be regenerated",
            details={"errors": [field_error("message_id", "must be an assistant message", "message_role")]},
        ),
        "regenerate_no_prompt": ValidationError(
            "This reply answers no message",
            details={"errors": [field_error("message_id", "no prompt", "message_without_prompt")]},
        ),
        "revise_not_latest": ConflictError("Only the latest revision of a message can be revised"),
        "reply_conflict": ConflictError("The conversation changed while the reply was written"),
    }
    if code not in refusals:
        raise RuntimeError(f"the chat turn call answered an unknown refusal: {code!r}")
    return refusals[str(code)]


def _message_or_none(value: Any) -> Message | None:
    return None if value is None else Message.model_validate(value)


def default_model_for(db: Database, principal: Principal) -> str:
    """The model of a turn with images that names none (it must be known before the images are checked
    against it): the caller's preferred model while their tier may use it, else the tier's default (the
    rule the prepare call applies)."""
    with db.user_transaction(principal) as conn:
        profile = caller_profile(conn)
    tier, preferred = profile.subscription_tier, (profile.preferences or {}).get("default_model")
    offered = {m.model_id: m for m in OFFERED_MODELS}
    if isinstance(preferred, str) and preferred in offered and tier in offered[preferred].tiers:
        return preferred
    return TIER_DEFAULT_MODELS.get(tier, TIER_DEFAULT_MODELS["free"])


def prepare_turn(
    db: Database,
    principal: Principal,
    turn: ChatTurn,
    *,
    too_long_for: frozenset[str] = frozenset(),
    inline: Sequence[tuple[uuid.UUID, InlineImage]] = (),
    credits: dict[str, Any] | None = None,
) -> PreparedTurn:
    """One round trip for a turn without images: the request's scope, user and rate checks and the prepare
    call travel together. `too_long_for`: the models whose window the message does not fit (checked when
    the call picks the caller's default model; a named model was checked before). `inline`: the turn's
    `data:` URL images, already stored in S3 under these attachment ids.

    A turn with images takes two more: the attachments are checked before anything is reserved (404 not
    the caller's, 409 never uploaded or another message's; a pending upload's S3 HEAD happens in Python),
    and after the call they are checked again, linked to the user message and the history re-read with
    them in one transaction (a refusal there refunds the unit)."""
    store = get_object_store() if turn.has_images else None
    if store is not None and turn.attachment_ids:
        with db.user_transaction(principal) as conn:
            attachments.turn_attachments(conn, store, turn.attachment_ids)
    arguments = {
        "action": turn.action,
        "model": turn.model,
        "content": turn.content,
        "message_id": None if turn.message_id is None else str(turn.message_id),
        "conversation_id": None if turn.conversation_id is None else str(turn.conversation_id),
        "client_chat_id": turn.client_chat_id,
        "create_missing": turn.create_missing_conversation,
        "offered": _OFFERED_JSON,
        "tier_defaults": TIER_DEFAULT_MODELS,
        "too_long_for": sorted(too_long_for),
        "warning_percent": WARNING_THRESHOLDS[0],
        "history_limit": HISTORY_LIMIT,
        "chatbot_id": None if turn.chatbot_id is None else str(turn.chatbot_id),
        "workspace_message_limits": limit_by_tier(db.settings, "widget_messages_per_day"),
        # A chatbot's reply: its payer decided in the call (oneai.chatbots.payment.credits_terms).
        "credits": credits,
    }
    result = db.user_call(principal, "prepare_chat_turn", arguments)
    if "error" in result:
        raise _refusal(result["error"])
    model = str(result["model"])
    chatbot = None if result.get("chatbot") is None else ChatbotConfig.model_validate(result["chatbot"])
    reservation = (
        None
        if result.get("reserve") is None
        else quota.reservation_of(
            ReserveOutcome.model_validate(result["reserve"]), units=1, crossed=result["warnings"]
        )
    )
    parent = Message.model_validate(result["parent"])
    prepared = PreparedTurn(
        principal=principal,
        turn=turn if turn.model == model else turn.model_copy(update={"model": model}),
        offered=chatbot_offer(model) if chatbot is not None else offered_model(model, str(result["tier"])),
        conversation=Conversation.model_validate(result["conversation"]),
        parent=parent,
        replaces=_message_or_none(result["replaces"]),
        user_message=_message_or_none(result["user_message"]),
        history=MESSAGE_LIST.validate_python(result["history"]),
        reservation=reservation,
        reply_id=uuid.uuid4(),
        chatbot=chatbot,
        admission=None
        if chatbot is None or result.get("admission") is None
        else chatbot_turn.admission_of(chatbot, result["admission"]),
        provider_key_id=None
        if result.get("provider_key_id") is None
        else uuid.UUID(str(result["provider_key_id"])),
        credits=None if chatbot is None else reservation_of(chatbot.workspace_id, result.get("credits")),
    )
    if prepared.chatbot is not None and turn.has_images:  # a follow-up of a chatbot's conversation
        refund_turn(db, prepared)
        raise ValidationError(
            "Attachments are not accepted in a chatbot's conversation",
            details={"errors": [field_error("attachments", "not accepted with a chatbot", "attachments_invalid")]},
        )
    if store is None or prepared.user_message is None:
        return prepared
    try:
        return _with_attachments(db, store, prepared, inline)
    except OneAIError:
        refund_turn(db, prepared)
        raise


def _with_attachments(
    db: Database, store: ObjectStore, prepared: PreparedTurn, inline: Sequence[tuple[uuid.UUID, InlineImage]]
) -> PreparedTurn:
    """The turn's images become the user message's, and the history is read again with them."""
    assert prepared.user_message is not None
    principal, turn, conversation_id = prepared.principal, prepared.turn, prepared.conversation.id
    with db.user_transaction(principal) as conn:
        taken = attachments.turn_attachments(conn, store, turn.attachment_ids)
        for attachment_id, image in inline:
            taken.append(
                attachments.record_inline_image(
                    conn,
                    principal.user_id,
                    attachment_id,
                    image,
                    filename=f"image-{len(taken) + 1}.{image.extension}",
                )
            )
        linked = attachment_rows.attach_to_message(
            conn, [row.id for row in taken], conversation_id=conversation_id, message_id=prepared.user_message.id
        )
        if linked != len(taken):  # another turn took one since the first check
            raise ConflictError("This attachment belongs to another message already")
        history = conversation_rows.recent_branch(
            conn, conversation_id, up_to=prepared.parent.sequence_number, limit=HISTORY_LIMIT
        )
    return replace(prepared, history=history, attachment_keys=tuple(row.s3_key for row in taken))


def refund_turn(db: Database, prepared: PreparedTurn) -> None:
    """The model failed before its first token: the unit goes back (the user's message stays): the
    caller's quota unit, or the workspace's message of a chatbot's turn (a visitor's turn: its ledger's)."""
    if prepared.ledger is not None:
        prepared.ledger.refund(db, prepared)
        return
    if prepared.admission is not None:
        chatbot_turn.refund_admission(db, prepared.principal, prepared.admission)
    if prepared.credits is not None:
        with db.user_transaction(prepared.principal) as conn:
            credits_service.refund(conn, prepared.credits.id)
    if prepared.reservation is None:
        return
    with db.user_transaction(prepared.principal) as conn:
        quota.refund(conn, prepared.reservation)


def refund_credits(db: Database, prepared: PreparedTurn) -> PreparedTurn:
    """The turn's credits hold back whole (the chatbot answered with its fixed message); the turn without it."""
    if prepared.credits is None:
        return prepared
    if prepared.ledger is not None:
        prepared.ledger.refund(db, prepared, unit=False)
    else:
        with db.user_transaction(prepared.principal) as conn:
            credits_service.refund(conn, prepared.credits.id)
    return replace(prepared, credits=None)


def finish_turn(db: Database, prepared: PreparedTurn, outcome: ReplyOutcome) -> FinishedTurn:
    """One round trip: the reply, its usage record and the quotas after it (the unit stays counted)."""
    if prepared.ledger is not None:
        return prepared.ledger.finish(db, prepared, outcome)
    reply = {
        "conversation_id": str(prepared.conversation.id),
        "replaces_id": None if prepared.replaces is None else str(prepared.replaces.id),
        "parent_id": str(prepared.parent.id),
        "message": {
            "id": str(prepared.reply_id),
            "role": "assistant",
            "content": outcome.text,
            "model_id": outcome.served_model,
            "status": outcome.status,
            "tokens_used": outcome.prompt_tokens + outcome.completion_tokens,
            "sources": [p.source() for p in prepared.knowledge] if prepared.chatbot is not None else None,
            "metadata": {
                "requested_model": prepared.turn.model_id,
                "generation_id": outcome.generation_id,
                "prompt_tokens": outcome.prompt_tokens,
                "completion_tokens": outcome.completion_tokens,
                "cost": str(outcome.cost),
            },
        },
        "quota_key": prepared.offered.quota_key,
        "requested_model": prepared.turn.model_id,
        "generation_id": outcome.generation_id,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "cost": str(outcome.cost),
        # A chatbot's reply is the workspace's usage; its fixed fallback message is nobody's.
        "workspace_usage": prepared.chatbot is not None,
        "record_usage": prepared.fixed_reply is None,
        # Who paid: the key that served it, or the credits hold settled with `cost` in the same transaction.
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
        result = db.user_call(prepared.principal, "finish_chat_turn", reply)
    except Exception:
        settle_unsaved_reply(db, prepared, outcome)
        raise
    if "error" in result:
        settle_unsaved_reply(db, prepared, outcome)
        raise _refusal(result["error"])
    settlement = None if result.get("settlement") is None else credits_service.settlement_of(result["settlement"])
    status = None
    if prepared.reservation is not None:
        quota.settled_whole(prepared.reservation)
        statuses = [quota.status_of(QuotaRow.model_validate(q)) for q in result["quotas"]]
        status = next((q for q in statuses if q.quota_key == prepared.offered.quota_key), None)
    message = Message.model_validate(result["message"])
    if outcome.images:  # one more round trip, only for a reply with images: their rows (already in S3)
        with db.user_transaction(prepared.principal) as conn:
            attachments.record_generated_images(
                conn, prepared.principal.user_id, prepared.conversation.id, message.id, outcome.images
            )
        refs = [AttachmentRef(id=i.attachment_id, media_type=i.media_type, size=i.size) for i in outcome.images]
        message = message.model_copy(update={"attachments": refs})
    return FinishedTurn(message=message, quota=status, settlement=settlement)


def settle_unsaved_reply(db: Database, prepared: PreparedTurn, outcome: ReplyOutcome) -> None:
    """The reply was made but its finish call was refused or failed (the conversation changed or was deleted
    meanwhile, the caller left the workspace): a credits hold is settled with the reply's cost all the same,
    as the service (the caller may not spend the workspace's credits any more; the hold is this turn's own),
    and its low-balance crossing announced after the commit. Settling is once: a hold the failed call did
    settle after all answers `not_held`. A failure here is logged; the stale-hold sweep releases the hold."""
    if prepared.credits is None:
        return
    try:
        with db.service_transaction() as conn:
            late = credits_service.settle(conn, db.settings, prepared.credits.id, cost_usd=outcome.cost)
    except Exception as exc:
        logger.warning(
            "credits: an unsaved reply's cost not settled",
            extra={"reservation_id": str(prepared.credits.id), "error_type": type(exc).__name__},
        )
        return
    announce(late)


def save_title(db: Database, prepared: PreparedTurn, title: str) -> None:
    """Set the generated title, unless the user named the conversation meanwhile."""
    with db.user_transaction(prepared.principal) as conn:
        current = conversation_rows.get_conversation(conn, prepared.conversation.id, for_update=True)
        if current is not None and current.title is None:
            conversations.update_conversation(conn, current.id, ConversationUpdate(title=title))
