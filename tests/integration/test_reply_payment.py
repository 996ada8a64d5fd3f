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

import psycopg.errors
import pytest

from oneai.chat.requests import ChatTurn
from oneai.chat.turn import PreparedTurn, ReplyOutcome, finish_turn, prepare_turn, refund_turn
from oneai.chatbots import service as chatbots
from oneai.chatbots.models import ChatbotCreate
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.errors import ConflictError, InsufficientCreditsError
from oneai.provider_keys import service as provider_keys
from oneai.provider_keys.models import ProviderKeyCreate
from tests.aws_support import captured_events
from tests.conftest import AppUser
from tests.integration.test_credits import account, admin, buy, databases, ledger, race
from tests.integration.test_provider_keys import kms
from tests.integration.test_webhooks import BUS
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


def test_replies_in_flight_when_a_keys_limit_is_reached_finish_and_may_overshoot_it_by_their_cost(
    db: Database, databases: Callable[[int], list[Database]], make_user: Any, database_url: str
) -> None:
    """The documented bound of `monthly_limit` (docs/api/provider-keys.md): a key is chosen while its
    finished replies' spend is under the limit and nothing is held against it, so the replies already
    started when the spend reaches it still finish on the key: the spend may go over the limit by their cost.
    Then no new reply uses the key."""
    owner, viewer = make_user(), make_user()
    workspace_id, bot = workspace_with_chatbot(db, owner, {viewer.id: "viewer"})
    # GIVEN a key with a limit of 10.00 INR, nothing spent yet, and no credits
    with db.user_transaction(owner.principal) as conn:
        key = provider_keys.create_key(
            conn,
            db.settings,
            workspace_id,
            ProviderKeyCreate.model_validate(
                {"provider": "openai", "name": "Capped", "key": "sk-test-capped-5678", "monthly_limit": "10.00"}
            ),
        )
    # WHEN five replies start at once: every one is given the key (the spend is 0.00 for each of them)
    results = race(databases(5), viewer, lambda d: prepare_turn(d, viewer.principal, turn(bot), credits=TERMS))
    assert all(isinstance(r, PreparedTurn) and r.provider_key_id == key.id for r in results), results
    # AND each costs 0.1 USD = 8.50 INR: they all finish on the key, the spend 42.50 against a limit of 10.00
    with db.service_transaction() as conn:
        usable = provider_keys.key_for(conn, db.settings, workspace_id, MODEL)
    assert usable is not None and usable.key_id == key.id
    for prepared in results:
        assert isinstance(prepared, PreparedTurn)
        finish_turn(db, replace(prepared, key=usable), outcome("0.1"))
    with db.user_transaction(owner.principal) as conn:
        assert provider_keys.get_key(conn, db.settings, key.id).spent_this_month == Decimal("42.50")
    # THEN the next reply does not use the key (no credits either: 402)
    with pytest.raises(InsufficientCreditsError):
        prepare_turn(db, viewer.principal, turn(bot), credits=TERMS)


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


def test_a_reply_whose_save_is_refused_is_still_charged_and_its_low_balance_crossing_announced(
    db: Database, make_user: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finish call refused (the conversation changed while the reply streamed): the reply was made, so
    its cost is settled on its own; that settle crossed the threshold and marked the account warned, so
    its one email must go out (before, it was dropped: the owner was never told, however low it fell)."""
    owner = make_user()
    workspace_id, bot = workspace_with_chatbot(db, owner, {})
    buy(db, database_url, workspace_id, "100.00")  # the default threshold is 100.00
    prepared = prepare_turn(db, owner.principal, turn(bot), credits=TERMS)
    # WHEN the user's message is edited while the reply is written (the reply answers an old revision)
    edit = ChatTurn(
        conversation_id=prepared.conversation.id,
        model=None,
        action="edit",
        content="And exchanges?",
        message_id=prepared.parent.id,
        chatbot_id=bot,
    )
    refund_turn(db, prepare_turn(db, owner.principal, edit, credits=TERMS))
    with (
        captured_events(monkeypatch, bus=BUS, source="oneai.credits") as received,
        override_settings(event_bus_name=BUS),
    ):
        with pytest.raises(ConflictError):
            finish_turn(db, prepared, outcome("0.01"))
        events = received()
    # THEN the reply's cost was taken (0.01 USD x 85), its hold released, and the owner warned once
    assert (account(database_url, workspace_id)["balance"], account(database_url, workspace_id)["reserved"]) == (
        Decimal("99.15"),
        0,
    )
    assert [(e["detail-type"], e["detail"]["crossing"], e["detail"]["user_id"]) for e in events] == [
        ("CreditsLow", 1, str(owner.id))
    ]


def test_a_member_removed_while_their_reply_streams_still_has_the_reply_charged_not_held_for_an_hour(
    db: Database, make_user: Any, database_url: str
) -> None:
    """The viewer is removed from the workspace while the chatbot's reply streams: the finish call fails (the
    conversation is no longer theirs to write) but the platform's OpenRouter made the reply, so its cost is
    taken (as the service: the caller may not spend the credits any more) and the hold released. Before, the
    hold stayed until the hourly stale-hold sweep gave it back whole: a reply for nothing."""
    owner, viewer = make_user(), make_user()
    workspace_id, bot = workspace_with_chatbot(db, owner, {viewer.id: "viewer"})
    buy(db, database_url, workspace_id, "100.00")
    prepared = prepare_turn(db, viewer.principal, turn(bot), credits=TERMS)
    with admin(database_url) as conn:
        conn.execute(
            "delete from public.workspace_members where workspace_id = %s and user_id = %s",
            (workspace_id, viewer.id),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the save fails (RLS): it is not what is tested
        finish_turn(db, prepared, outcome("0.01"))
    state = account(database_url, workspace_id)
    assert (state["balance"], state["reserved"]) == (Decimal("99.15"), 0)  # 0.01 USD x 85
    assert [t["type"] for t in ledger(database_url, workspace_id)] == ["purchase", "usage"]
