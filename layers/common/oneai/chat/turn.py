"""The two short transactions of a chat turn (docs/architecture.md, "How requests flow"); no transaction is held open
while the reply streams.

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
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import psycopg

from oneai.attachments import service as attachments
from oneai.attachments.images import InlineImage
from oneai.attachments.models import AttachmentRef
from oneai.attachments.service import GeneratedImage
from oneai.attachments.storage import get_object_store
from oneai.auth import Principal
from oneai.chat.offered_models import OfferedModel, default_model, offered_model
from oneai.chat.requests import ChatTurn
from oneai.conversations import service as conversations
from oneai.conversations.models import Conversation, ConversationUpdate, Message, NewMessage
from oneai.db import attachments as attachment_rows
from oneai.db import conversations as conversation_rows
from oneai.db import usage
from oneai.db.connection import Connection, Database
from oneai.db.users import caller_chat_defaults, caller_tier
from oneai.errors import ConflictError, NotFoundError, ValidationError
from oneai.quota import service as quota
from oneai.quota.service import QuotaStatus, Reservation

# More history than any context window takes; trimming to the model's window happens afterwards.
HISTORY_LIMIT = 400


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
    reservation: Reservation
    reply_id: uuid.UUID
    # The S3 keys of the user message's attachments: tagged attached once this turn committed.
    attachment_keys: tuple[str, ...] = ()

    @property
    def first_exchange(self) -> bool:
        return self.conversation.title is None and self.parent.sequence_number == 1


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


@dataclass(frozen=True)
class FinishedTurn:
    message: Message
    quota: QuotaStatus | None


def _conversation_for(conn: Connection, principal: Principal, turn: ChatTurn) -> Conversation:
    if turn.client_chat_id is not None:
        if not turn.create_missing_conversation:
            found = conversation_rows.get_conversation_by_client_id(conn, turn.client_chat_id)
            if found is None:
                raise NotFoundError("Conversation not found")
            return found
        return conversation_rows.conversation_for_client_id(
            conn, user_id=principal.user_id, client_id=turn.client_chat_id
        )
    if turn.conversation_id is None:
        return conversation_rows.insert_conversation(conn, user_id=principal.user_id, title=None, metadata={})
    # Not locked here: the message services lock the conversation row themselves before they write.
    found = conversation_rows.get_conversation(conn, turn.conversation_id)
    if found is not None:
        return found
    if not turn.create_missing_conversation:
        raise NotFoundError("Conversation not found")
    # The AI SDK names a new chat by its own id: create it under that id, unless the id is taken
    # (by someone else, since RLS hid it from us), which is simply "not found".
    try:
        with conn.transaction():
            return conversation_rows.insert_conversation(
                conn, user_id=principal.user_id, title=None, metadata={}, conversation_id=turn.conversation_id
            )
    except psycopg.errors.UniqueViolation:
        raise NotFoundError("Conversation not found") from None


def _to_regenerate(conn: Connection, conversation: Conversation, turn: ChatTurn) -> tuple[Message | None, Message]:
    """What a regeneration answers: (the assistant message it replaces, the user message before it).

    Without a message id it is the tip of the branch. A user message at the tip (its reply failed
    before the first token) is answered anew, replacing nothing: that is how a client retries.
    """
    if turn.message_id is not None:
        target = conversation_rows.get_message(conn, conversation.id, turn.message_id)
        if target is None:
            raise NotFoundError("Message not found")
    else:
        target = conversation_rows.branch_tip(conn, conversation.id)
    if target is None:
        raise ValidationError(
            "There is nothing to regenerate",
            details={"errors": [{"field": "message_id", "message": "empty conversation"}]},
        )
    if not target.is_latest:
        raise ConflictError("Only the latest revision of a message can be regenerated")
    if target.role == "user":
        tip = conversation_rows.branch_tip(conn, conversation.id)
        if tip is None or tip.id != target.id:
            raise ValidationError(
                "Only an assistant reply, or an unanswered last message, can be regenerated",
                details={"errors": [{"field": "message_id", "message": "must be an assistant message"}]},
            )
        return None, target
    parent = None
    if target.parent_message_id is not None:
        parent = conversation_rows.get_message(conn, conversation.id, target.parent_message_id)
    if parent is None:
        raise ValidationError(
            "This reply answers no message", details={"errors": [{"field": "message_id", "message": "no prompt"}]}
        )
    return target, parent


def default_model_for(db: Database, principal: Principal) -> str:
    """The model of a turn that names none: the caller's preferred model while their tier may use it,
    else the tier's default."""
    with db.user_transaction(principal) as conn:
        tier, preferred = caller_chat_defaults(conn)
    return default_model(tier, preferred)


def prepare_turn(
    db: Database, principal: Principal, turn: ChatTurn, *, inline: Sequence[tuple[uuid.UUID, InlineImage]] = ()
) -> PreparedTurn:
    """`inline`: the turn's `data:` URL images, already stored in S3 under these attachment ids."""
    store = get_object_store() if turn.has_images else None
    with db.user_transaction(principal) as conn:
        offered = offered_model(turn.model_id, caller_tier(conn))
        conversation = _conversation_for(conn, principal, turn)
        # The attachments are checked before the reserve (404 someone else's, 409 never uploaded).
        taken = attachments.turn_attachments(conn, store, turn.attachment_ids) if store is not None else []
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
        reservation = quota.reserve(conn, offered.quota_key)
        replaces = user_message = None
        if turn.action == "regenerate":
            replaces, parent = _to_regenerate(conn, conversation, turn)
        elif turn.action == "edit":
            assert turn.message_id is not None
            assert turn.content is not None
            user_message = conversations.edit_message(
                conn,
                principal.user_id,
                conversation.id,
                turn.message_id,
                content=turn.content,
                model_id=turn.model_id,
            )
            parent = user_message
        else:
            assert turn.content is not None
            user_message = conversations.append_message(
                conn,
                principal.user_id,
                conversation.id,
                NewMessage(role="user", content=turn.content, model_id=turn.model_id),
            )
            parent = user_message
        if taken and user_message is not None:
            attachment_rows.attach_to_message(
                conn, [row.id for row in taken], conversation_id=conversation.id, message_id=user_message.id
            )
        history = conversation_rows.recent_branch(
            conn, conversation.id, up_to=parent.sequence_number, limit=HISTORY_LIMIT
        )
    return PreparedTurn(
        principal=principal,
        turn=turn,
        offered=offered,
        conversation=conversation,
        parent=parent,
        replaces=replaces,
        user_message=user_message,
        history=history,
        reservation=reservation,
        reply_id=uuid.uuid4(),
        attachment_keys=tuple(row.s3_key for row in taken),
    )


def refund_turn(db: Database, prepared: PreparedTurn) -> None:
    """The model failed before its first token: the unit goes back (the user's message stays)."""
    with db.user_transaction(prepared.principal) as conn:
        quota.refund(conn, prepared.reservation)


def finish_turn(db: Database, prepared: PreparedTurn, outcome: ReplyOutcome) -> FinishedTurn:
    reply = NewMessage(
        id=prepared.reply_id,
        role="assistant",
        content=outcome.text,
        model_id=outcome.served_model,
        status=outcome.status,
        tokens_used=outcome.prompt_tokens + outcome.completion_tokens,
        metadata={
            "requested_model": prepared.turn.model_id,
            "generation_id": outcome.generation_id,
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "cost": str(outcome.cost),
        },
    )
    user_id, conversation_id = prepared.principal.user_id, prepared.conversation.id
    with db.user_transaction(prepared.principal) as conn:
        if prepared.replaces is not None:
            message = conversations.regenerate_message(conn, user_id, conversation_id, prepared.replaces.id, reply)
        else:
            message = conversations.add_reply(conn, user_id, conversation_id, prepared.parent.id, reply)
        if outcome.images:
            attachments.record_generated_images(conn, user_id, conversation_id, message.id, outcome.images)
            message = message.model_copy(
                update={
                    "attachments": [
                        AttachmentRef(id=i.attachment_id, media_type=i.media_type, size=i.size)
                        for i in outcome.images
                    ]
                }
            )
        usage.record_usage(
            conn,
            conversation_id=conversation_id,
            message_id=message.id,
            quota_key=prepared.offered.quota_key,
            requested_model=prepared.turn.model_id,
            model_id=outcome.served_model,
            generation_id=outcome.generation_id,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            cost=outcome.cost,
            status=outcome.status,
        )
        quota.settle(conn, prepared.reservation, 1)
        status = next((q for q in quota.current_quotas(conn) if q.quota_key == prepared.offered.quota_key), None)
    return FinishedTurn(message=message, quota=status)


def save_title(db: Database, prepared: PreparedTurn, title: str) -> None:
    """Set the generated title, unless the user named the conversation meanwhile."""
    with db.user_transaction(prepared.principal) as conn:
        current = conversation_rows.get_conversation(conn, prepared.conversation.id, for_update=True)
        if current is not None and current.title is None:
            conversations.update_conversation(conn, current.id, ConversationUpdate(title=title))
