"""The one entry point of a chat turn: from the parsed request to the reply being generated.

A door that opens a turn (today `POST /chat/stream`) only wires: it parses its body, calls `start_turn`,
and wraps the `LiveReply` it gets in its streaming response (`oneai.web.streaming.ReplyStreamResponse`).
Everything between is here, once, for every door:

1. the model's window: a named model must fit the message (413); when the prepare call picks the model,
   it is told which offered models the message does not fit (`too_long_for`);
2. images: the model must be known before they are checked, so a turn with images that names no model
   gets the kind's default model first (one round trip, only then); a model known not to read images is
   refused (422) before anything is reserved;
3. the body's `data:` URL images are stored in S3 before the transaction, so it never waits on S3;
4. the prepare: ONE round trip (admission, the reserved unit, the user message, the history);
5. the turn's images are kept (tagged attached) once it committed;
6. the model is asked (`ChatRelay.open`, which waits for the first token: a failure up to then refunds
   the unit and is still a plain error answer) while the payer is told of the quota warnings the
   reservation crossed, in parallel;
7. the `LiveReply` starts: from here the reply is generated to its end whoever reads it.

`POST /v1/chat/completions` is not such a door: stateless (no conversation, message, image or window
check, no resumable reply), it has its own prepare and relay (`oneai.chat.completions`); it shares step 6
(`open_while_announcing`) through `start_completion`.

How a turn is prepared and paid is a `TurnKind`; `PERSONAL_TURN` (a signed-in user's turn) is the one
`POST /chat/stream` uses, for plain and chatbot turns alike: whether a turn is a chatbot's is decided by
the prepare call itself (the body names `chatbot_id`, or the conversation is filed under a chatbot: a
follow-up, an edit or a regeneration need not name it), in the same round trip, which then admits it on
the chatbot's terms (its model; one unit of its workspace's daily messages instead of the user's quota;
`PreparedTurn.chatbot`, `.admission`). The widget's public chat (`POST /public/chatbots/{public_id}/chat`)
is a kind of its own, `oneai.widget.chat.VisitorTurn` (a visitor, no user row): its prepare is one call as
the service (the visitor's conversation, one unit of the chatbot's daily widget messages, the payer), and
the turn it prepares carries a `TurnLedger` (`PreparedTurn.ledger`) where its refund, its finish and its
chatbot's search go instead of a user's rows; the steps below are the same.

Retrieval runs here once, for every kind: after step 5, before step 6 (`oneai.chatbots.retrieval.
with_knowledge`: the question comes from the prepared history, and the passages go into the model's
request, so it ends before the model is asked). The `ChatRelay` puts the chatbot's prompt and the passages'
block before the history and emits one `source-document` part per passage after `start`, before the text;
with no passage over `min_score`, the chatbot's `message` fallback makes its fixed message the reply and no
model is asked.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, Protocol

import anyio.to_thread

from oneai.attachments.images import InlineImage
from oneai.auth import Principal
from oneai.chat.completions import CompletionRelay, CompletionRequest, prepare_completion
from oneai.chat.context import estimate_tokens, reply_budget
from oneai.chat.offered_models import DEFAULT_CONTEXT_LENGTH, OFFERED_MODELS
from oneai.chat.relay import ChatRelay
from oneai.chat.requests import ChatTurn
from oneai.chat.resumable import LiveReply
from oneai.chat.turn import (
    MESSAGE_TOO_LONG,
    PreparedTurn,
    default_model_for,
    prepare_turn,
    refund_credits,
    refund_turn,
)
from oneai.chat.turn_images import keep_attached, refuse_images_the_model_cannot_read, store_inline_images
from oneai.chatbots import payment
from oneai.chatbots.retrieval import with_knowledge
from oneai.db.connection import Database
from oneai.errors import PayloadTooLargeError
from oneai.events import get_publisher
from oneai.openrouter.catalog import OpenRouterModel
from oneai.openrouter.client import OpenRouterClient
from oneai.quota import warnings as quota_warnings
from oneai.quota.service import Reservation


class TurnKind(Protocol):
    """How one kind of turn is prepared and paid. The methods that touch the database or the event bus
    are blocking: `start_turn` runs them in a worker thread."""

    def default_model(self, db: Database, principal: Principal) -> str:
        """The model of a turn that names none, when it must be known before the prepare call (a turn
        with images: the model must read them)."""
        ...

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
        """The turn's admission and payment in ONE round trip (a turn with images takes the two more
        `prepare_turn` says): the model allowed to the payer, one unit reserved, the user message
        written, the history the model will see read. `too_long_for`: the models the message does not
        fit (a model the call picks must not be one); `inline`: the body's images, already in S3;
        `credits`: what a chatbot's reply paid from credits reserves (`oneai.chatbots.payment`)."""
        ...

    def announce_warnings(self, principal: Principal, reservation: Reservation) -> None:
        """Tell the payer of the quota warning thresholds `reservation` crossed (it crossed some)."""
        ...


class PersonalTurn:
    """A signed-in user's turn in their own conversation, paid from their tier's quota."""

    def default_model(self, db: Database, principal: Principal) -> str:
        return default_model_for(db, principal)

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
        return prepare_turn(db, principal, turn, too_long_for=too_long_for, inline=inline, credits=credits)

    def announce_warnings(self, principal: Principal, reservation: Reservation) -> None:
        quota_warnings.announce_warnings(get_publisher(), principal.user_id, reservation)


PERSONAL_TURN: TurnKind = PersonalTurn()


def fits_window(content: str, model: OpenRouterModel | None) -> bool:
    """Whether the message leaves the reply its budget in the model's window (the default window for a
    model the catalog does not know)."""
    window = (model.context_length if model else None) or DEFAULT_CONTEXT_LENGTH
    return estimate_tokens(content) <= window - reply_budget(window)


async def start_turn(
    db: Database,
    client: OpenRouterClient,
    principal: Principal,
    turn: ChatTurn,
    *,
    kind: TurnKind = PERSONAL_TURN,
) -> LiveReply:
    """Prepare the turn, ask the model, and start generating the reply (the module's steps). Raises the
    API error of a turn refused before its first token (nothing is charged then); the reply it returns is
    already running, for the door to stream."""
    # The catalog never waits for OpenRouter: the cached entries (a refresh runs in the background), else
    # the default window. The message must fit the model's window: a named model is checked here, the
    # default model (resolved by the prepare call) there, with the models it does not fit.
    if turn.model is None and turn.has_images:  # the model must read the images: it is known first
        turn = turn.model_copy(update={"model": await anyio.to_thread.run_sync(kind.default_model, db, principal)})
    if (
        turn.model is not None
        and turn.content is not None
        and not fits_window(turn.content, client.known_model(turn.model))
    ):
        raise PayloadTooLargeError(MESSAGE_TOO_LONG)
    too_long_for: frozenset[str] = frozenset()
    if turn.model is None and turn.content is not None:
        content = turn.content
        too_long_for = frozenset(
            m.model_id for m in OFFERED_MODELS if not fits_window(content, client.known_model(m.model_id))
        )
    if turn.model is not None:
        refuse_images_the_model_cannot_read(turn, client.known_model(turn.model))
    inline = await anyio.to_thread.run_sync(store_inline_images, principal.user_id, turn.inline_images)
    terms = payment.credits_terms(db.settings, client)
    prepared = await anyio.to_thread.run_sync(
        partial(kind.prepare, too_long_for=too_long_for, inline=inline, credits=terms), db, principal, turn
    )
    await anyio.to_thread.run_sync(keep_attached, prepared.attachment_keys)
    # A chatbot's turn (the prepare call says whether it is one): its passages, or its fallback.
    prepared = await with_knowledge(db, client, prepared)
    prepared, upstream = await _payer(db, client, prepared)
    model = client.known_model(prepared.turn.model_id)
    relay = ChatRelay(db, client, prepared, model=model, title_model=db.settings.title_model, upstream=upstream)
    await open_while_announcing(relay, prepared.reservation, partial(kind.announce_warnings, principal))
    # From here the reply is generated to its end whoever reads it (oneai.chat.resumable).
    reply = LiveReply(
        db,
        relay,
        principal,
        reply_id=prepared.reply_id,
        conversation_id=prepared.conversation.id,
        # A visitor's reply is not resumable (its rows are not a user's): its one reader streams it.
        persist=db.settings.reply_persistence and prepared.ledger is None,
        time_limit=db.settings.reply_time_limit_seconds,
    )
    reply.start()
    return reply


async def _payer(
    db: Database, client: OpenRouterClient, prepared: PreparedTurn
) -> tuple[PreparedTurn, OpenRouterClient | None]:
    """A chatbot's reply: the fixed fallback message costs nothing (its credits hold goes back); a reply
    the workspace's key pays gets the key opened and a client at its endpoint. Anything refused here
    refunds the turn (its unit, its hold)."""
    if prepared.fixed_reply is not None:
        if prepared.credits is not None:
            prepared = await anyio.to_thread.run_sync(refund_credits, db, prepared)
        return prepared, None
    if prepared.provider_key_id is None or prepared.chatbot is None:
        return prepared, None
    try:
        key = await anyio.to_thread.run_sync(
            payment.open_key, db, prepared.chatbot.workspace_id, prepared.provider_key_id, prepared.turn.model_id
        )
        if key is None:
            raise payment.key_gone()
        return replace(prepared, key=key), await payment.keyed_client(db.settings, key, client)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(refund_turn, db, prepared)
        raise


class _Opening(Protocol):
    async def open(self) -> None: ...


async def open_while_announcing(
    relay: _Opening, reservation: Reservation | None, announce: Callable[[Reservation], object]
) -> None:
    """Open the model's stream; the quota warnings the reservation crossed, if any, go out meanwhile
    (`announce`, in a worker thread), and are sent whether or not the model answers. No reservation (a
    chatbot's turn, which the workspace pays): nothing to announce."""
    crossed = reservation is not None and reservation.warnings_crossed
    announcing = (
        asyncio.create_task(anyio.to_thread.run_sync(announce, reservation))
        if crossed and reservation is not None
        else None
    )
    try:
        await relay.open()
    finally:
        if announcing is not None:
            await announcing


async def start_completion(
    db: Database, client: OpenRouterClient, principal: Principal, request: CompletionRequest
) -> CompletionRelay:
    """The `/v1` door (stateless: its own prepare and relay): reserve, then open the model's stream with
    the quota warnings the reserve crossed announced meanwhile, as a chat turn announces them."""
    prepared = await anyio.to_thread.run_sync(prepare_completion, db, principal, request)
    relay = CompletionRelay(db, client, prepared)
    await open_while_announcing(relay, prepared.reservation, partial(PERSONAL_TURN.announce_warnings, principal))
    return relay
