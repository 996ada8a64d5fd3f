"""Who pays for a chatbot's reply, at the chat turn's prepare and finish calls (issue 26 items 3 and 5): the
credits hold is taken in the prepare's one round trip, so 50 concurrent chatbot turns against a balance that
covers 10 admit exactly 10 and the 40 refused ones leave nothing behind (no message, no unit, no
conversation); the finish settles the real cost in its transaction and the balance equals purchases minus
settled usage; a refund before the first token gives the hold back; a workspace key within its monthly
limit pays instead (nothing reserved, the usage record names it), and one over its limit is skipped.

Concurrent turns are real transactions on their own connections, released at once by a barrier."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from oneai.chat.requests import ChatTurn
from oneai.chat.turn import PreparedTurn, ReplyOutcome, finish_turn, prepare_turn, refund_turn
from oneai.chatbots import service as chatbots
from oneai.chatbots.models import ChatbotCreate
from oneai.db.connection import Database
from oneai.errors import InsufficientCreditsError
from oneai.provider_keys import service as provider_keys
from oneai.provider_keys.models import ProviderKeyCreate
from tests.conftest import AppUser
from tests.integration.test_credits import account, admin, buy, databases, ledger, race
from tests.integration.test_provider_keys import kms
from tests.integration.test_workspaces_rls import team

__all__ = ["databases", "kms"]  # fixtures, used by name

pytestmark = pytest.mark.integration

MODEL = "openai/gpt-4o-mini"
# No price known (an empty catalog): every reply reserves the minimum, 10.00 INR here.
TERMS: dict[str, Any] = {
    "prices": {},
    "rate": "85",
    "markup": "1",
    "min_reserve": "10.00",
    "passage_tokens": 600,
}


def workspace_with_chatbot(db: Database, owner: AppUser, members: dict[UUID, str]) -> tuple[UUID, UUID]:
    workspace_id = team(db, owner, members)
    with db.user_transaction(owner.principal) as conn:
        bot = chatbots.create_chatbot(
            conn, db.settings, workspace_id, ChatbotCreate.model_validate({"name": "Help", "model": MODEL})
        )
    return workspace_id, bot.id


def turn(chatbot_id: UUID, content: str = "How long do refunds take?") -> ChatTurn:
    return ChatTurn(
        conversation_id=None, model=None, action="send", content=content, message_id=None, chatbot_id=chatbot_id
    )


def outcome(cost: str) -> ReplyOutcome:
    return ReplyOutcome(
        text="Within 14 days.",
        status="complete",
        served_model=MODEL,
        generation_id=f"gen-{uuid.uuid4().hex[:8]}",
        prompt_tokens=100,
        completion_tokens=20,
        cost=Decimal(cost),
    )


def scalar(database_url: str, query: str, *args: object) -> Any:
    with admin(database_url) as conn:
        row = conn.execute(query, args).fetchone()
    assert row is not None
    return next(iter(row.values()))


def test_fifty_concurrent_chatbot_replies_against_a_balance_for_ten_admit_ten_and_the_rest_write_nothing(
    db: Database, databases: Callable[[int], list[Database]], make_user: Any, database_url: str
) -> None:
    owner, viewer = make_user(), make_user()
    workspace_id, bot = workspace_with_chatbot(db, owner, {viewer.id: "viewer"})
    buy(db, database_url, workspace_id, "100.00")  # ten replies' holds of 10.00

    results = race(databases(50), viewer, lambda d: prepare_turn(d, viewer.principal, turn(bot), credits=TERMS))
    admitted = [r for r in results if isinstance(r, PreparedTurn)]
    refused = [r for r in results if isinstance(r, InsufficientCreditsError)]
    assert (len(admitted), len(refused)) == (10, 40), [r for r in results if not isinstance(r, PreparedTurn)][:3]
    assert {(e.status, e.details["balance"], e.details["needed"]) for e in refused} == {(402, "0.00", "10.00")}
    assert all(p.credits is not None and p.credits.amount == Decimal("10.00") for p in admitted)
    # The refused turns wrote nothing: one conversation, one message and one workspace unit per admitted turn.
    assert scalar(database_url, "select count(*) from public.conversations where chatbot_id = %s", bot) == 10
    assert (
        scalar(
            database_url,
            "select count(*) from public.chat_messages m join public.conversations c on c.id = m.conversation_id"
            " where c.chatbot_id = %s",
            bot,
        )
        == 10
    )
    assert (
        scalar(
            database_url,
            "select sum(used) from public.workspace_message_counts where workspace_id = %s",
            workspace_id,
        )
        == 10
    )
    assert account(database_url, workspace_id)["reserved"] == Decimal("100")

    # Five replies finish (their real cost settled in the finish call), five fail before their first token.
    costs = ["0.01", "0.02", "0.05", "0.2", "0"]
    finished = [finish_turn(db, p, outcome(c)) for p, c in zip(admitted[:5], costs, strict=True)]
    for prepared in admitted[5:]:
        refund_turn(db, prepared)
    state, rows = account(database_url, workspace_id), ledger(database_url, workspace_id)
    assert state["reserved"] == 0 and state["balance"] >= 0
    usage = [t for t in rows if t["type"] == "usage"]
    assert len(usage) == 5
    assert state["balance"] == sum(t["amount"] for t in rows if t["type"] == "purchase") + sum(
        t["amount"] for t in usage
    )
    charged = [f.settlement.charged for f in finished if f.settlement is not None]
    assert charged == [Decimal("0.85"), Decimal("1.7"), Decimal("4.25"), Decimal("17"), Decimal("0")]
    assert state["balance"] == Decimal("100") - sum(charged)
    # Each usage transaction is linked to its reply's usage record, which names no key (credits paid).
    linked = scalar(
        database_url,
        "select count(*) from public.credit_transactions t join public.usage_records u on u.id = t.usage_record_id"
        " where t.workspace_id = %s and u.provider_key_id is null",
        workspace_id,
    )
    assert linked == 5
    # The refunded turns gave their workspace unit back too.
    assert (
        scalar(
            database_url,
            "select sum(used) from public.workspace_message_counts where workspace_id = %s",
            workspace_id,
        )
        == 5
    )


def test_a_workspace_key_pays_within_its_limit_and_is_skipped_over_it(
    db: Database, make_user: Any, database_url: str
) -> None:
    owner = make_user()
    workspace_id, bot = workspace_with_chatbot(db, owner, {})
    # GIVEN no credits at all, and the workspace's own openai key with a monthly limit of 10.00 INR
    with db.user_transaction(owner.principal) as conn:
        key = provider_keys.create_key(
            conn,
            db.settings,
            workspace_id,
            ProviderKeyCreate.model_validate(
                {"provider": "openai", "name": "Prod", "key": "sk-test-secret-1234", "monthly_limit": "10.00"}
            ),
        )
    # WHEN a reply is prepared: the key pays, nothing is reserved
    prepared = prepare_turn(db, owner.principal, turn(bot), credits=TERMS)
    assert (prepared.provider_key_id, prepared.credits) == (key.id, None)
    assert account(database_url, workspace_id)["reserved"] == 0
    with db.service_transaction() as conn:
        usable = provider_keys.key_for(conn, db.settings, workspace_id, MODEL)
    assert usable is not None
    # AND its usage record names the key, with the estimated cost (0.2 USD = 17.00 INR: over the limit now)
    finished = finish_turn(db, replace(prepared, key=usable), outcome("0.2"))
    assert finished.settlement is None
    assert (
        scalar(
            database_url,
            "select provider_key_id from public.usage_records where message_id = %s",
            finished.message.id,
        )
        == key.id
    )
    # WHEN the next reply is prepared: the key is over its limit, so credits would pay, and there are none
    with pytest.raises(InsufficientCreditsError):
        prepare_turn(db, owner.principal, turn(bot), credits=TERMS)
    # AND with credits, they pay
    buy(db, database_url, workspace_id, "50.00")
    again = prepare_turn(db, owner.principal, turn(bot), credits=TERMS)
    assert again.provider_key_id is None and again.credits is not None
    refund_turn(db, again)
    assert account(database_url, workspace_id)["reserved"] == 0


def test_a_settle_that_crosses_the_low_balance_threshold_says_so_once(
    db: Database, make_user: Any, database_url: str
) -> None:
    owner = make_user()
    workspace_id, bot = workspace_with_chatbot(db, owner, {})
    buy(db, database_url, workspace_id, "100.00")  # the default threshold is 100.00
    first = finish_turn(db, prepare_turn(db, owner.principal, turn(bot), credits=TERMS), outcome("0.01"))
    assert first.settlement is not None and first.settlement.low_balance is not None
    assert (first.settlement.low_balance.crossing, first.settlement.balance) == (1, Decimal("99.15"))
    second = finish_turn(db, prepare_turn(db, owner.principal, turn(bot), credits=TERMS), outcome("0.01"))
    assert second.settlement is not None and second.settlement.low_balance is None
